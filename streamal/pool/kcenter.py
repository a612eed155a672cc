"""Greedy k-center (core-set) selection."""

from __future__ import annotations

import numpy as np
import torch

from streamal.pool.distances import CHUNK_ELEMENTS, as_matrix, min_squared_distances

__all__ = ["k_center"]


def k_center(
    embeddings: torch.Tensor | np.ndarray,
    k: int,
    *,
    centers: torch.Tensor | np.ndarray | None = None,
    seed: int = 0,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> np.ndarray:
    """Pick ``k`` points greedily, each the farthest from everything picked or labeled so far.

    The covering radius is at most twice the optimum (Sener & Savarese 2018, after Gonzalez
    1985). Memory beyond the embeddings is one distance per point plus one chunk.

    Parameters
    ----------
    embeddings
        The pool, ``[N, D]``, on any device.
    centers
        Embeddings of labeled items, ``[L, D]``, already covering the space; without them the
        first pick is a random point.
    seed
        Seeds the first pick when there are no ``centers``.
    chunk_elements
        The largest distance block computed at once.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0], [1.0], [10.0], [11.0], [5.0]])
    >>> k_center(x, 2, centers=np.array([[0.0]]))
    array([3, 4])
    """
    x = as_matrix(embeddings, "embeddings")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    k = min(k, len(x))
    if k == 0:
        return np.empty(0, dtype=np.int64)
    if centers is not None and len(centers):
        labeled = as_matrix(centers, "centers").to(x)
        nearest = min_squared_distances(x, labeled, chunk_elements=chunk_elements)
    else:  # nothing covered: all points are far, the seeded one farthest so it comes first
        nearest = torch.full((len(x),), torch.finfo(x.dtype).max, dtype=x.dtype, device=x.device)
        nearest[int(np.random.default_rng(seed).integers(len(x)))] = torch.inf
    norms = x.square().sum(dim=1)
    selected: list[int] = []
    while len(selected) < k:
        index = int(nearest.argmax())
        selected.append(index)
        torch.minimum(nearest, norms + norms[index] - 2 * (x @ x[index]), out=nearest)
        nearest[index] = -1.0  # picked: never the farthest again
    return np.array(selected, dtype=np.int64)
