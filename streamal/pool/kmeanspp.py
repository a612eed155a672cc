"""k-means++ seeding as a selector: picks spread over the data, rarely its outliers."""

from __future__ import annotations

import numpy as np
import torch

from streamal.pool.distances import CHUNK_ELEMENTS, as_matrix, draw_far, min_squared_distances

__all__ = ["k_means_pp"]


def k_means_pp(
    points: torch.Tensor | np.ndarray,
    k: int,
    *,
    centers: torch.Tensor | np.ndarray | None = None,
    seed: int = 0,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> np.ndarray:
    """Pick ``k`` points, each drawn with probability proportional to its squared distance to
    everything picked or labeled so far (k-means++ seeding, Arthur & Vassilvitskii 2007).

    Unlike `k_center`, which always takes the farthest point, a lone outlier is drawn only as
    often as its share of the squared distances: the picks cover the dense regions first.

    Parameters
    ----------
    points
        The pool, ``[N, D]``, on any device.
    centers
        Points already labeled, ``[L, D]``; without them the first pick is uniform.
    seed
        Seeds the draws.
    chunk_elements
        The largest distance block computed at once (for the ``centers``).

    Examples
    --------
    Two clusters, one of them labeled: the pick comes from the other.

    >>> import numpy as np
    >>> x = np.array([[0.0], [0.1], [10.0], [10.1]])
    >>> k_means_pp(x, 1, centers=np.array([[0.05]])).tolist() in ([2], [3])
    True
    """
    x = as_matrix(points, "points")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    rng = np.random.default_rng(seed)
    norms = x.square().sum(dim=1)
    taken = np.zeros(len(x), dtype=bool)
    nearest: torch.Tensor | None = None
    if centers is not None and len(centers):
        labeled = as_matrix(centers, "centers").to(x)
        nearest = min_squared_distances(x, labeled, chunk_elements=chunk_elements)
    selected: list[int] = []
    for _ in range(min(k, len(x))):
        index = int(rng.integers(len(x))) if nearest is None else draw_far(nearest, taken, rng)
        selected.append(index)
        taken[index] = True
        distances = norms + norms[index] - 2 * (x @ x[index])
        nearest = distances if nearest is None else torch.minimum(nearest, distances)
    return np.array(selected, dtype=np.int64)
