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
