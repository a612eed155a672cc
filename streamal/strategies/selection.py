"""Pool selection: a registered score plus a diversity rule, applied to a pool's predictions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from streamal.pool import badge, k_center, seals_candidates, top_k
from streamal.strategies.config import PoolConfig
from streamal.strategies.edge import as_float_tensor

if TYPE_CHECKING:
    from streamal.strategies.registry import Score

__all__ = [
    "DiversityRule",
    "Pick",
    "PoolSelector",
    "Tensorish",
    "pick_badge",
    "pick_kcenter",
    "pick_seals",
    "pick_top",
]

Tensorish = torch.Tensor | np.ndarray
Pick = Callable[["PoolSelector", int, torch.Tensor, Tensorish | None, Tensorish | None], np.ndarray]
"""How a diversity rule picks: (selector, k, probs, embeddings, labeled) -> indices."""


@dataclass(frozen=True)
class DiversityRule:
    """A pool selection rule and what it takes.

    Attributes
    ----------
    pick
        Picks ``k`` pool positions (see `Pick`); ``selector.rank`` ranks by the score.
    needs_embeddings
        Reads the pool's embeddings (and the labeled items'); only then are they computed.
    """

    pick: Pick
    needs_embeddings: bool = False


@dataclass(frozen=True)
class PoolSelector:
    """Picks ``k`` pool items with ``score`` and the configured diversity rule.

    Call it with the pool's predictions: ``probs`` (``[N, C]``, or ``[T, N, C]`` passes for a
    score that needs them), ``embeddings`` (``[N, D]``, for ``kcenter``, ``badge``, ``seals``
    and gradient scores) and ``labeled`` (``[L, D]`` embeddings of labeled items, initial
    centers for ``kcenter``, required by ``seals``).

    Examples
    --------
    >>> import numpy as np
    >>> from streamal.strategies import PoolConfig, build_selector
    >>> select = build_selector(PoolConfig(score="least_confidence"))
    >>> select(2, probs=np.array([[0.9, 0.1], [0.5, 0.5], [0.6, 0.4]]))
    array([1, 2])
    """

    config: PoolConfig
    score: Score
    rule: DiversityRule
    _last: list[Any] = field(default_factory=list, init=False, compare=False, repr=False)

    @property
    def needs_embeddings(self) -> bool:
        """Whether the score or the diversity rule reads embeddings."""
        return self.score.needs_embeddings or self.rule.needs_embeddings

    def __call__(
        self,
        k: int,
        *,
        probs: Tensorish,
        embeddings: Tensorish | None = None,
        labeled: Tensorish | None = None,
    ) -> np.ndarray:
        """The indices of the ``k`` picked items, in picking order."""
        return self.rule.pick(self, k, as_float_tensor(probs), embeddings, labeled)

    def rank(self, k: int, probs: torch.Tensor, embeddings: Tensorish | None) -> np.ndarray:
        """Top ``k`` by utility alone."""
        return top_k(self.utilities(probs, embeddings), k)

    def utilities(self, probs: Tensorish, embeddings: Tensorish | None = None) -> Tensorish:
        """The score of every item; the same arrays again get the last answer, not a second
        computation (a look-ahead score costs ``O(N^2 C)``)."""
        last = self._last
        if last and last[0] is probs and last[1] is embeddings:
            return last[2]
        values = self.score(probs, embeddings=embeddings)
        last[:] = [probs, embeddings, values]
        return values


def _need(value: Tensorish | None, name: str, diversity: str) -> Tensorish:
    if value is None:
        raise ValueError(f"pool selection with diversity {diversity!r} needs {name}")
    return value


def _mean_probs(probs: torch.Tensor) -> torch.Tensor:
    return probs.mean(dim=0) if probs.ndim == 3 else probs


def pick_top(
    selector: PoolSelector,
    k: int,
    probs: torch.Tensor,
    embeddings: Tensorish | None,
    labeled: Tensorish | None,
) -> np.ndarray:
    """Top ``k`` by utility."""
    return selector.rank(k, probs, embeddings)


def pick_kcenter(
    selector: PoolSelector,
    k: int,
    probs: torch.Tensor,
    embeddings: Tensorish | None,
    labeled: Tensorish | None,
) -> np.ndarray:
    """Greedy k-center on the embeddings, the labeled items as initial centers."""
    config = selector.config
    return k_center(
        _need(embeddings, "embeddings", "kcenter"),
        k,
        centers=labeled,
        seed=config.seed,
        chunk_elements=config.chunk_elements,
    )


def pick_badge(
    selector: PoolSelector,
    k: int,
    probs: torch.Tensor,
    embeddings: Tensorish | None,
    labeled: Tensorish | None,
) -> np.ndarray:
    """BADGE on the (mean) probabilities and embeddings."""
    points = _need(embeddings, "embeddings", "badge")
    return badge(_mean_probs(probs), points, k, seed=selector.config.seed)


def pick_seals(
    selector: PoolSelector,
    k: int,
    probs: torch.Tensor,
    embeddings: Tensorish | None,
    labeled: Tensorish | None,
) -> np.ndarray:
    """Top ``k`` by utility among the labeled items' nearest neighbours."""
    config = selector.config
    points = as_float_tensor(_need(embeddings, "embeddings", "seals"))
    candidates = seals_candidates(
        points,
        _need(labeled, "labeled", "seals"),
        neighbors=config.neighbors,
        chunk_elements=config.chunk_elements,
    )
    rows = torch.as_tensor(candidates, device=probs.device)
    subset = probs.index_select(-2, rows)
    return candidates[selector.rank(k, subset, points[rows.to(points.device)])]
