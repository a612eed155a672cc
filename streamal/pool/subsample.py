"""Random subsampling of a pool before it is scored: a huge pool costs what the sample costs,
and the few outliers of a pool stay few among what is scored."""

from __future__ import annotations

import numpy as np

__all__ = ["subsample"]


def subsample(size: int, keep: int, *, seed: int = 0) -> np.ndarray:
    """``keep`` distinct positions of a pool of ``size`` items, drawn uniformly, in pool order
    (all of them if ``keep >= size``).

    Examples
    --------
    >>> subsample(10, 4, seed=1).tolist()
    [3, 4, 6, 9]
    >>> subsample(3, 5).tolist()
    [0, 1, 2]
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    if keep >= size:
        return np.arange(size)
    return np.sort(np.random.default_rng(seed).choice(size, size=keep, replace=False))
