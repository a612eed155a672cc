"""The one registry: configured names -> scores, gates and pool selection rules."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np

from streamal.errors import RegistryError
from streamal.gates import (
    AutoLabelGate,
    BudgetGate,
    FixedThreshold,
    QuantileBudget,
    RandomizedVariableUncertainty,
    Split,
    VariableUncertainty,
)
from streamal.strategies.bayesian import bald, consensus_kl, variation_ratio, vote_entropy
from streamal.strategies.config import PoolConfig, StrategyConfig
from streamal.strategies.gradient import expected_gradient_length
from streamal.strategies.scores import entropy, least_confidence, margin, random_scores, ratio
from streamal.strategies.selection import (
    Pick,
    PoolSelector,
    Tensorish,
    pick_badge,
    pick_kcenter,
    pick_seals,
    pick_top,
)

__all__ = [
    "DIVERSITIES",
    "GATES",
    "SCORES",
    "GateEntry",
    "Score",
    "build_auto_label",
    "build_gate",
    "build_score",
    "build_selector",
]


@dataclass(frozen=True)
class Score:
    """A registered utility function and what it takes.

    Attributes
    ----------
    needs_passes
        Takes ``[T, B, C]`` stochastic passes (run MC dropout) instead of ``[B, C]``.
    needs_embeddings
        Takes the penultimate embeddings ``[B, D]`` as well.
    seeded
        Draws random numbers; `build_score` gives it its own seeded generator.
    """

    name: str
    fn: Callable[..., Any]
    needs_passes: bool = False
    needs_embeddings: bool = False
    seeded: bool = False

    def __call__(self, probs: Tensorish, *, embeddings: Tensorish | None = None) -> Any:
        """Utilities for ``probs`` (same kind and device), higher means ask."""
        if not self.needs_embeddings:
            return self.fn(probs)
        if embeddings is None:
            raise ValueError(f"score {self.name!r} needs embeddings")
        return self.fn(probs, embeddings=embeddings)


def _scores(*scores: Score) -> Mapping[str, Score]:
    return MappingProxyType({score.name: score for score in scores})


SCORES = _scores(
    Score("least_confidence", least_confidence),
    Score("margin", margin),
    Score("ratio", ratio),
    Score("entropy", entropy),
    Score("normalized_entropy", partial(entropy, normalized=True)),
    Score("variation_ratio", variation_ratio, needs_passes=True),
    Score("bald", bald, needs_passes=True),
    Score("vote_entropy", vote_entropy, needs_passes=True),
    Score("consensus_kl", consensus_kl, needs_passes=True),
    Score("expected_gradient_length", expected_gradient_length, needs_embeddings=True),
    Score("random", random_scores, seeded=True),
)
"""Score name -> `Score`, in the order of `streamal.strategies.ScoreName`."""


@dataclass(frozen=True)
class GateEntry:
    """A budget gate class; ``seeded`` gates take the strategy's seed."""

    gate: Callable[..., BudgetGate[Any]]
    seeded: bool = False


GATES: Mapping[str, GateEntry] = MappingProxyType(
    {
        "fixed": GateEntry(FixedThreshold),
        "variable_uncertainty": GateEntry(VariableUncertainty),
        "randomized_variable_uncertainty": GateEntry(RandomizedVariableUncertainty, seeded=True),
        "split": GateEntry(Split, seeded=True),
        "quantile": GateEntry(QuantileBudget),
    }
)
"""Gate name (the ``name`` of its config) -> `GateEntry`."""

DIVERSITIES: Mapping[str, Pick] = MappingProxyType(
    {"none": pick_top, "kcenter": pick_kcenter, "badge": pick_badge, "seals": pick_seals}
)
"""Pool diversity rule -> how it picks."""

T = TypeVar("T")


def _lookup(kind: str, table: Mapping[str, T], name: str) -> T:
    if name not in table:
        raise RegistryError(f"unknown {kind} {name!r}; allowed: {', '.join(table)}")
    return table[name]


def seed_for(seed: int, user: str) -> int:
    """The seed ``user`` (the gate, the auto-label gate, the random score, exploration) draws
    with: one strategy seed, but independent streams, so that no two users draw the same
    numbers (a sample audited whenever it is also explored, say).

    >>> seed_for(0, "gate") == seed_for(0, "gate") != seed_for(0, "auto_label")
    True
    """
    sequence = np.random.SeedSequence([seed, zlib.crc32(user.encode())])
    return int(sequence.generate_state(1)[0])


def build_score(name: str, *, seed: int = 0) -> Score:
    """The score registered as ``name``; a random one draws from a generator seeded ``seed``.

    Examples
    --------
    >>> build_score("bald").needs_passes
    True
    >>> build_score("smallest_margin")
    Traceback (most recent call last):
    ...
    streamal.errors.RegistryError: unknown score 'smallest_margin'; allowed: least_confidence, \
margin, ratio, entropy, normalized_entropy, variation_ratio, bald, vote_entropy, consensus_kl, \
expected_gradient_length, random
    """
    score = _lookup("score", SCORES, name)
    if score.seeded:
        draws = np.random.default_rng(seed_for(seed, "score"))
        return replace(score, fn=partial(score.fn, seed=draws))
    return score


def build_gate(config: StrategyConfig) -> BudgetGate[Any]:
    """The budget gate ``config.gate`` describes, at budget ``config.budget``.

    Examples
    --------
    >>> gate = build_gate(StrategyConfig(budget=0.2, gate={"name": "split", "explore": 0.3}))
    >>> type(gate).__name__, gate.budget, gate.explore
    ('Split', 0.2, 0.3)
    """
    entry = _lookup("gate", GATES, config.gate.name)
    options = config.gate.model_dump(exclude={"name"})
    if entry.seeded:
        options["seed"] = seed_for(config.seed, "gate")
    return entry.gate(budget=config.budget, **options)


def build_auto_label(config: StrategyConfig) -> AutoLabelGate | None:
    """The auto-label gate ``config.auto_label`` describes, or None when disabled."""
    auto = config.auto_label
    if not auto.enabled:
        return None
    return AutoLabelGate(
        target=auto.target_precision,
        audit_share=auto.audit_share,
        min_audits=auto.min_audits,
        method=auto.bound,
        level=auto.confidence_level,
        threshold=auto.threshold,
        window=auto.window,
        seed=seed_for(config.seed, "auto_label"),
    )


def build_selector(config: PoolConfig) -> PoolSelector:
    """The pool selector ``config`` describes (see `PoolSelector`)."""
    pick = _lookup("diversity", DIVERSITIES, config.diversity)
    return PoolSelector(config, build_score(config.score, seed=config.seed), pick)
