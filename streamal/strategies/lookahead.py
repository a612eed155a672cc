"""Look-ahead scores for small pools: what one more label would do to the whole pool.

Expected error reduction (Roy & McCallum 2001) asks for the item whose label is expected to
lower the pool's total error the most; expected model change, here the expected change of the
model's outputs over the pool (Freytag et al. 2014), asks for the one expected to move the
predictions the most. Both need "the model after one more label" for every item and every
label: retraining the network that often is out of reach, so the retrained model is the
current one updated like a Parzen-window classifier in embedding space. The label ``y`` of item
``i`` moves every item ``j``'s prediction towards ``y`` with weight
``w_ij = K_ij / (s + K_ij)``, where ``K_ij = exp(-||h_i - h_j||^2 / (2 bandwidth^2))`` and
``s`` (``strength``) counts the current prediction as that many labels at distance 0; item
``i`` itself becomes certain.

The cost is ``O(N^2 C)`` time for ``N`` items of ``C`` classes (``O(N C)`` memory per chunk),
against ``O(N C)`` for the plain uncertainty scores: pools of at most `POOL_LIMIT` items x
classes. `expected_gradient_length` is the cheap form of expected model change (of the last
layer's parameters, per item).
"""

from __future__ import annotations

import torch

from streamal.pool.distances import CHUNK_ELEMENTS, row_chunks, squared_distances
from streamal.strategies.edge import as_float_tensor, check_shape, numpy_edge

__all__ = ["POOL_LIMIT", "expected_error_reduction", "expected_model_change"]

POOL_LIMIT = 50_000
"""The largest pool (items x classes) the look-ahead scores take."""

MEDIAN_SAMPLE = 1_000
"""Items the default bandwidth (the median pairwise distance) is measured on, at most."""


def _checked(probs: torch.Tensor, embeddings: torch.Tensor, name: str, limit: int) -> torch.Tensor:
    check_shape(probs, 2, "probs")
    h = as_float_tensor(embeddings, probs.device).to(probs.dtype)
    check_shape(h, 2, "embeddings")
    if h.shape[0] != probs.shape[0]:
        raise ValueError(f"embeddings have {h.shape[0]} rows, probs {probs.shape[0]}")
    items, classes = probs.shape
    if items * classes > limit:
        raise ValueError(
            f"{name} scores at most {limit:,} pool items x classes (got {items:,} x {classes}): "
            "subsample the pool or use a cheaper score"
        )
    return h


def median_bandwidth(h: torch.Tensor) -> float:
    """The median distance between two items (of at most `MEDIAN_SAMPLE`, evenly spaced).

    >>> median_bandwidth(torch.tensor([[0.0], [1.0], [3.0]]))
    2.0
    """
    sample = h[:: max(1, len(h) // MEDIAN_SAMPLE)]
    distances = squared_distances(sample, sample)
    pairs = distances[torch.triu_indices(len(sample), len(sample), 1, device=h.device).unbind()]
    return float(pairs.median().sqrt()) if len(pairs) else 1.0


def _label_weights(h: torch.Tensor, rows: slice, bandwidth: float, strength: float) -> torch.Tensor:
    """``w_ij``, ``[len(rows), N]``: how far item ``i``'s label moves item ``j``'s
    prediction; 1 for ``j = i`` (a labeled item is known)."""
    kernel = torch.exp(-squared_distances(h[rows], h) / (2 * bandwidth**2))
    weights = kernel / (strength + kernel)
    own = torch.arange(rows.start, rows.stop, device=h.device)
    weights[torch.arange(len(own), device=h.device), own] = 1.0
    return weights


@numpy_edge
def expected_error_reduction(
    probs: torch.Tensor,
    *,
    embeddings: torch.Tensor,
    bandwidth: float | None = None,
    strength: float = 1.0,
    limit: int = POOL_LIMIT,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> torch.Tensor:
    """How much labeling each item is expected to lower the pool's total 0/1 error.

    The error of item ``j`` is ``1 - max_c p_jc``; after item ``i`` is labeled ``y`` it is that
    of ``(1 - w_ij) p_j + w_ij e_y`` (see the module), and ``y`` is drawn from ``p_i``. The
    score is ``sum_j (1 - max p_j) - E_y[sum_j error_j after (i, y)]``.

    Parameters
    ----------
    probs
        The pool's class probabilities ``[N, C]``.
    embeddings
        The pool's embeddings ``[N, D]``.
    bandwidth
        The kernel's width; by default the median distance between two items.
    strength
        How many labels at distance 0 the current prediction counts as.
    limit
        The largest ``N x C`` taken; beyond it a one-line ``ValueError``.
    chunk_elements
        The largest block of ``[items, N, C]`` computed at once.

    Examples
    --------
    Three undecided items in a row and a confident one far away: the middle one's label moves
    both of its neighbours, an end one's moves one neighbour and, less, the other end; the far
    one's only itself (its error, 0.1).

    >>> import numpy as np
    >>> p = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.9, 0.1]])
    >>> h = np.array([[0.0], [1.0], [2.0], [10.0]])
    >>> expected_error_reduction(p, embeddings=h, bandwidth=1.0).round(4)
    array([0.7484, 0.8775, 0.7484, 0.1   ])
    """
    h = _checked(probs, embeddings, "expected_error_reduction", limit)
    width = bandwidth or median_bandwidth(h)
    top = probs.amax(dim=1)
    reductions = []
    for rows in row_chunks(len(probs), probs.numel(), chunk_elements):
        keep = 1 - _label_weights(h, rows, width, strength)  # [b, N]: weight of the old belief
        labeled = (keep.unsqueeze(2) * probs + (1 - keep).unsqueeze(2)).maximum(
            (keep * top).unsqueeze(2)
        )  # [b, N, y]: the top probability of item j after (i, y)
        after = torch.einsum("bny,by->b", 1 - labeled, probs[rows])
        reductions.append((1 - top).sum() - after)
    return torch.cat(reductions)


@numpy_edge
def expected_model_change(
    probs: torch.Tensor,
    *,
    embeddings: torch.Tensor,
    bandwidth: float | None = None,
    strength: float = 1.0,
    limit: int = POOL_LIMIT,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> torch.Tensor:
    """How much labeling each item is expected to change the predictions over the pool.

    The change is the L1 distance between each item's prediction before and after item ``i``
    is labeled ``y`` (see the module), summed over the pool, expected over ``y ~ p_i``: in
    closed form ``2 sum_j w_ij (1 - p_i . p_j)``. The parameters are those of
    `expected_error_reduction`.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.9, 0.1]])
    >>> h = np.array([[0.0], [1.0], [2.0], [10.0]])
    >>> expected_model_change(p, embeddings=h, bandwidth=1.0).round(4)
    array([1.4967, 1.7551, 1.4967, 0.36  ])
    """
    h = _checked(probs, embeddings, "expected_model_change", limit)
    width = bandwidth or median_bandwidth(h)
    changes = []
    for rows in row_chunks(len(probs), len(probs), chunk_elements):
        weights = _label_weights(h, rows, width, strength)
        changes.append(2 * (weights * (1 - probs[rows] @ probs.T)).sum(dim=1))
    return torch.cat(changes)
