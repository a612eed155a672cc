"""Uncertainty scores from class probabilities ``[B, C]``; higher means more worth asking."""

from __future__ import annotations

import math

import numpy as np
import torch

from streamal.strategies.edge import check_shape, numpy_edge

__all__ = ["entropy", "least_confidence", "margin", "random_scores", "ratio"]


@numpy_edge
def least_confidence(probs: torch.Tensor) -> torch.Tensor:
    """One minus the top probability, in ``[0, 1 - 1/C]``.

    Examples
    --------
    >>> import numpy as np
    >>> least_confidence(np.array([[0.95, 0.03, 0.02], [0.45, 0.35, 0.20]]))
    array([0.05, 0.55])
    """
    check_shape(probs, 2, "probs")
    return 1 - probs.amax(dim=-1)


def _top_two(probs: torch.Tensor) -> torch.Tensor:
    check_shape(probs, 2, "probs", min_classes=2)
    return probs.topk(2, dim=-1).values


@numpy_edge
def margin(probs: torch.Tensor, *, raw: bool = False) -> torch.Tensor:
    """One minus the gap between the two top probabilities, in ``[0, 1]``.

    Parameters
    ----------
    raw
        Return the gap ``p1 - p2`` itself (lower means more uncertain).

    Examples
    --------
    >>> import numpy as np
    >>> margin(np.array([[0.8, 0.15, 0.05], [0.41, 0.39, 0.2]]), raw=True)
    array([0.65, 0.02])
    >>> margin(np.array([[0.8, 0.15, 0.05]]))
    array([0.35])
    """
    top = _top_two(probs)
    gap = top[:, 0] - top[:, 1]
    return gap if raw else 1 - gap


@numpy_edge
def ratio(probs: torch.Tensor) -> torch.Tensor:
    """The second top probability over the top one, in ``[0, 1]``.

    Examples
    --------
    >>> import numpy as np
    >>> ratio(np.array([[0.8, 0.2, 0.0], [0.4, 0.4, 0.2]]))
    array([0.25, 1.  ])
    """
    top = _top_two(probs)
    return top[:, 1] / top[:, 0]


def entropy_of(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats over the last dimension, any leading shape (``0 log 0 = 0``)."""
    return torch.special.entr(probs).sum(dim=-1)


@numpy_edge
def entropy(probs: torch.Tensor, *, base: float = math.e, normalized: bool = False) -> torch.Tensor:
    """Shannon entropy of the predicted distribution.

    Parameters
    ----------
    base
        Logarithm base: ``e`` gives nats, ``2`` bits.
    normalized
        Divide by ``log C`` so the score lies in ``[0, 1]`` whatever the base.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[1.0, 0.0, 0.0], [0.34, 0.33, 0.33]])
    >>> entropy(p).round(4)
    array([0.    , 1.0985])
    >>> entropy(p, base=2).round(2)
    array([0.  , 1.58])
    >>> entropy(p, normalized=True).round(4)
    array([0.    , 0.9999])
    """
    check_shape(probs, 2, "probs", min_classes=2 if normalized else 1)
    scale = math.log(probs.shape[-1]) if normalized else math.log(base)
    nats = entropy_of(probs) / scale
    return nats.clamp(max=1.0) if normalized else nats


@numpy_edge
def random_scores(
    probs: torch.Tensor, *, seed: int | np.random.Generator | None = None
) -> torch.Tensor:
    """Uniform draws in ``[0, 1)``, one per row of ``probs``: the random-sampling baseline.

    Parameters
    ----------
    seed
        A seed, or a generator that advances with each call (for a stream of batches).

    Examples
    --------
    >>> import numpy as np
    >>> p = np.full((3, 2), 0.5)
    >>> bool((random_scores(p, seed=7) == random_scores(p, seed=7)).all())
    True
    """
    check_shape(probs, 2, "probs")
    draws = np.random.default_rng(seed).random(probs.shape[0])
    return torch.as_tensor(draws, dtype=probs.dtype, device=probs.device)
