"""Squared Euclidean distances computed in chunks, so a large pool fits in memory."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

__all__ = [
    "CHUNK_ELEMENTS",
    "as_matrix",
    "draw_far",
    "min_squared_distances",
    "squared_distances",
]

CHUNK_ELEMENTS = 1 << 22
"""Default largest distance block, in elements (16 MiB of float32)."""


def as_matrix(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    """``x`` as a 2-D floating-point tensor (on its device), or ``ValueError``."""
    tensor = torch.as_tensor(x)
    if tensor.ndim != 2:
        raise ValueError(f"{name} must have 2 dimensions, got shape {tuple(tensor.shape)}")
    return tensor if tensor.is_floating_point() else tensor.to(torch.float64)


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """All squared distances between the rows of ``x`` and of ``y``, ``[len(x), len(y)]``.

    Examples
    --------
    >>> squared_distances(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0], [0.0, 1.0]]))
    tensor([[25.,  1.]])
    """
    block = x @ y.T  # the only [len(x), len(y)] allocation: the rest is in place
    block.mul_(-2).add_(x.square().sum(dim=1, keepdim=True)).add_(y.square().sum(dim=1))
    return block.clamp_(min=0.0)


def row_chunks(rows: int, width: int, chunk_elements: int) -> Iterator[slice]:
    """Slices of ``rows`` rows such that each block of ``width`` columns stays under budget."""
    step = max(1, chunk_elements // max(1, width))
    for start in range(0, rows, step):
        yield slice(start, min(start + step, rows))


def min_squared_distances(
    x: torch.Tensor, centers: torch.Tensor, *, chunk_elements: int = CHUNK_ELEMENTS
) -> torch.Tensor:
    """The squared distance from each row of ``x`` to its nearest row of ``centers``.

    Examples
    --------
    >>> x = torch.tensor([[0.0], [2.0], [9.0]])
    >>> min_squared_distances(x, torch.tensor([[1.0], [10.0]]), chunk_elements=2)
    tensor([1., 1., 1.])
    """
    return torch.cat(
        [
            squared_distances(x[rows], centers).amin(dim=1)
            for rows in row_chunks(len(x), len(centers), chunk_elements)
        ]
    )


def draw_far(nearest: torch.Tensor, taken: np.ndarray, rng: np.random.Generator) -> int:
    """A point not yet ``taken``, drawn with probability proportional to its squared distance
    ``nearest`` to what was picked (the k-means++ draw).

    >>> draw_far(torch.tensor([0.0, 4.0, 0.0]), np.zeros(3, dtype=bool), np.random.default_rng(0))
    1
    """
    weights = nearest.clamp(min=0.0).cpu().numpy().astype(np.float64)
    weights[taken] = 0.0
    total = weights.sum()
    if total > 0:
        return int(rng.choice(len(weights), p=weights / total))
    return int(rng.choice(np.flatnonzero(~taken)))  # every point left duplicates a pick
