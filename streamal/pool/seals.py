"""SEALS: restrict the candidates to the nearest neighbours of labeled items."""

from __future__ import annotations

import numpy as np
import torch

from streamal.pool.distances import CHUNK_ELEMENTS, as_matrix, row_chunks, squared_distances

__all__ = ["seals_candidates"]


def seals_candidates(
    embeddings: torch.Tensor | np.ndarray,
    labeled: torch.Tensor | np.ndarray,
    *,
    neighbors: int = 100,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> np.ndarray:
    """The pool points among the ``neighbors`` nearest of some labeled item (sorted indices).

    Coleman et al. (2022) score only these, which keeps the cost of a selection round
    proportional to the labeled set rather than the pool. Neighbours are exact here, found
    in chunks of labeled items.

    Parameters
    ----------
    embeddings
        The pool, ``[N, D]``.
    labeled
        Embeddings of the labeled items, ``[L, D]``.
    neighbors
        How many nearest pool points each labeled item contributes.

    Examples
    --------
    >>> import numpy as np
    >>> pool = np.array([[0.0], [1.0], [5.0], [9.0], [10.0]])
    >>> seals_candidates(pool, np.array([[0.2], [9.8]]), neighbors=2)
    array([0, 1, 3, 4])
    """
    x = as_matrix(embeddings, "embeddings")
    queries = as_matrix(labeled, "labeled").to(x)
    if neighbors < 1:
        raise ValueError(f"neighbors must be >= 1, got {neighbors}")
    count = min(neighbors, len(x))
    found = [
        squared_distances(queries[rows], x).topk(count, dim=1, largest=False).indices.flatten()
        for rows in row_chunks(len(queries), len(x), chunk_elements)
    ]
    if not found:
        return np.empty(0, dtype=np.int64)
    return torch.unique(torch.cat(found)).cpu().numpy()
