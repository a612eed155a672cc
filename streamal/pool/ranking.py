"""Top-k selection by utility."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["top_k"]


def top_k(utilities: torch.Tensor | np.ndarray, k: int) -> np.ndarray:
    """The indices of the ``k`` highest utilities, highest first (ties: lower index first).

    Random selection is ``top_k`` of `streamal.strategies.random_scores`.

    Examples
    --------
    >>> import numpy as np
    >>> top_k(np.array([0.1, 0.9, 0.5, 0.9]), 3)
    array([1, 3, 2])
    """
    scores = torch.as_tensor(utilities)
    if scores.ndim != 1:
        raise ValueError(f"utilities must be 1-D, got shape {tuple(scores.shape)}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    order = torch.sort(scores, descending=True, stable=True).indices
    return order[:k].cpu().numpy()
