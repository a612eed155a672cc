"""Input scaling that one outlier cannot set: a robust center and spread per feature."""

from __future__ import annotations

import numpy as np

NORMAL_IQR = 1.349  # the interquartile range of a standard normal distribution


def robust_scaling(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The center (median) and scale of each column of ``features`` [N, F], as float32.

    The scale is the interquartile range over 1.349 (the standard deviation of normal data);
    where that is 0 (a feature constant in most rows, e.g. a sparse one) the standard
    deviation, and where that is 0 too (a feature constant so far) 1, so a value that comes
    later is not multiplied by a huge factor.

    >>> x = np.array([[1.0, 5.0, 0.0], [2.0, 5.0, 0.0], [3.0, 5.0, 4.0], [4.0, 5.0, 0.0],
    ...               [1e20, 5.0, 0.0]])
    >>> center, scale = robust_scaling(x)
    >>> center.tolist(), [round(float(s), 3) for s in scale]
    ([3.0, 5.0, 0.0], [1.483, 1.0, 1.6])
    """
    values = np.asarray(features, dtype=np.float64)
    center = np.median(values, axis=0)
    low, high = np.percentile(values, [25, 75], axis=0)
    scale = (high - low) / NORMAL_IQR
    spread = values.std(axis=0)
    scale = np.where(scale > 0, scale, np.where(spread > 0, spread, 1.0))
    scale = np.minimum(scale, np.finfo(np.float32).max)  # std of values near the float32 limit
    return center.astype(np.float32), scale.astype(np.float32)


def winsorized_standard_scaling(
    features: np.ndarray, bound: float = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """The mean and standard deviation of each column of ``features`` [N, F] once its values
    are clipped to the `robust_scaling` center +- ``bound`` robust scales, as float32.

    A linear model learned by SGD trains best on inputs of mean 0 and variance 1 (a median
    center on a skewed or discrete feature leaves an offset the bias and weights must fight
    over); the clipping keeps one outlier from setting either. Where the clipped values do not
    vary, the robust scale stands.

    >>> x = np.array([[0.0, 5.0, 0.0], [0.0, 5.0, 0.0], [1.0, 5.0, 4.0], [1.0, 5.0, 0.0],
    ...               [1.0, 5.0, 0.0], [1e20, 5.0, 0.0]])
    >>> center, scale = winsorized_standard_scaling(x)
    >>> [round(float(c), 3) for c in center], [round(float(s), 3) for s in scale]
    ([1.593, 5.0, 0.667], [2.266, 1.0, 1.491])
    """
    values = np.asarray(features, dtype=np.float64)
    center, scale = (v.astype(np.float64) for v in robust_scaling(values))
    clipped = np.clip(values, center - bound * scale, center + bound * scale)
    spread = clipped.std(axis=0)
    spread = np.where(spread > 0, spread, scale)
    return clipped.mean(axis=0).astype(np.float32), spread.astype(np.float32)
