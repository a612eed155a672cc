"""Scores from ``T`` stochastic passes (MC dropout) or ``K`` committee members, ``[T, B, C]``."""

from __future__ import annotations

import torch
from torch.nn.functional import one_hot

from streamal.strategies.edge import check_shape, numpy_edge
from streamal.strategies.scores import entropy_of

__all__ = ["bald", "consensus_kl", "max_disagreement", "variation_ratio", "vote_entropy"]


def _vote_shares(passes: torch.Tensor) -> torch.Tensor:
    """The share of passes voting for each class, ``[B, C]``."""
    check_shape(passes, 3, "passes")
    votes = one_hot(passes.argmax(dim=-1), passes.shape[-1]).to(passes.dtype)
    return votes.mean(dim=0)


@numpy_edge
def variation_ratio(passes: torch.Tensor) -> torch.Tensor:
    """One minus the share of passes that vote for the modal class.

    Examples
    --------
    Ten passes, six voting for class A and four for class B:

    >>> import numpy as np
    >>> passes = np.array([[[0.7, 0.3]]] * 6 + [[[0.3, 0.7]]] * 4)
    >>> variation_ratio(passes)
    array([0.4])
    """
    return 1 - _vote_shares(passes).amax(dim=-1)


@numpy_edge
def vote_entropy(passes: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of the distribution of the members' votes.

    Examples
    --------
    >>> import numpy as np
    >>> passes = np.array([[[0.7, 0.3]]] * 2 + [[[0.3, 0.7]]] * 2)
    >>> vote_entropy(passes).round(4)
    array([0.6931])
    """
    return entropy_of(_vote_shares(passes))


@numpy_edge
def bald(passes: torch.Tensor) -> torch.Tensor:
    """Mutual information between the label and the model: ``H(mean p) - mean H(p)`` (nats).

    High when passes are each confident but disagree; equal to `consensus_kl` in exact
    arithmetic (the mutual information is the mean KL divergence from the mean).

    Examples
    --------
    >>> import numpy as np
    >>> disagree = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    >>> bald(disagree).round(4)
    array([0.6931])
    >>> bald(np.full((2, 1, 2), 0.5))
    array([0.])
    """
    check_shape(passes, 3, "passes")
    return (entropy_of(passes.mean(dim=0)) - entropy_of(passes).mean(dim=0)).clamp(min=0.0)


def _divergences(passes: torch.Tensor) -> torch.Tensor:
    """Kullback-Leibler divergence (nats) of each member from the consensus (mean), ``[K, B]``."""
    check_shape(passes, 3, "passes")
    consensus = passes.mean(dim=0, keepdim=True)
    log_ratio = torch.special.xlogy(passes, passes) - torch.special.xlogy(passes, consensus)
    return log_ratio.sum(dim=-1)


@numpy_edge
def consensus_kl(passes: torch.Tensor) -> torch.Tensor:
    """Mean Kullback-Leibler divergence (nats) of each member from the consensus (mean).

    Examples
    --------
    >>> import numpy as np
    >>> consensus_kl(np.array([[[0.9, 0.1]], [[0.5, 0.5]]])).round(4)
    array([0.1017])
    """
    return _divergences(passes).mean(dim=0).clamp(min=0.0)


@numpy_edge
def max_disagreement(passes: torch.Tensor) -> torch.Tensor:
    """The largest Kullback-Leibler divergence (nats) of a member from the consensus: high
    when one member disagrees with the rest, even if the others agree (at most ``log K``).

    Examples
    --------
    Four members; one dissents on the second sample:

    >>> import numpy as np
    >>> agree, dissent = [[0.9, 0.1], [0.9, 0.1]], [[0.9, 0.1], [0.1, 0.9]]
    >>> max_disagreement(np.array([agree, agree, agree, dissent])).round(4)
    array([0.    , 0.7942])
    >>> consensus_kl(np.array([agree, agree, agree, dissent])).round(4)
    array([0.    , 0.2858])
    """
    return _divergences(passes).amax(dim=0).clamp(min=0.0)
