"""BADGE: k-means++ seeding on last-layer gradient embeddings."""

from __future__ import annotations

import numpy as np
import torch

from streamal.pool.distances import as_matrix, draw_far

__all__ = ["badge"]


def badge(
    probs: torch.Tensor | np.ndarray,
    embeddings: torch.Tensor | np.ndarray,
    k: int,
    *,
    seed: int = 0,
) -> np.ndarray:
    """Pick ``k`` points by k-means++ seeding on gradient embeddings (Ash et al. 2020).

    A point's gradient embedding is the last layer's cross-entropy gradient for its predicted
    label, ``(p - e_yhat) h^T``: large for uncertain points, spread out for diverse ones. It is
    never built: distances use ``<a_i h_i^T, a_j h_j^T> = (a_i . a_j)(h_i . h_j)``, so memory
    and time per pick are ``O(N (C + D))``.

    Parameters
    ----------
    probs
        Predicted probabilities ``[N, C]``.
    embeddings
        Penultimate activations ``[N, D]``.
    seed
        Seeds the k-means++ draws; the first pick is the largest gradient.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[0.5, 0.5], [0.99, 0.01], [0.5, 0.5], [0.6, 0.4]])
    >>> h = np.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    >>> sorted(badge(p, h, 2).tolist())
    [0, 2]
    """
    p = as_matrix(probs, "probs")
    h = as_matrix(embeddings, "embeddings").to(p)
    if len(h) != len(p):
        raise ValueError(f"embeddings have {len(h)} rows, probs {len(p)}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    residual = p.clone()
    residual[torch.arange(len(p), device=p.device), p.argmax(dim=1)] -= 1
    sq_norms = residual.square().sum(dim=1) * h.square().sum(dim=1)
    rng = np.random.default_rng(seed)
    taken = np.zeros(len(p), dtype=bool)
    nearest = torch.full_like(sq_norms, torch.inf)
    selected: list[int] = []
    for _ in range(min(k, len(p))):
        index = draw_far(nearest, taken, rng) if selected else int(sq_norms.argmax())
        selected.append(index)
        taken[index] = True
        dots = (residual @ residual[index]) * (h @ h[index])
        torch.minimum(nearest, sq_norms + sq_norms[index] - 2 * dots, out=nearest)
    return np.array(selected, dtype=np.int64)
