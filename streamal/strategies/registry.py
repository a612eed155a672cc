"""The one registry: configured names -> scores, gates and pool selection rules.

Each may also be a user's object, named by import path ``package.module:object`` and checked
when it is built (at start), with a one-line `ConfigError` naming the field:

- a score: a callable ``(probs) -> utilities`` (``[B, C]`` in, ``[B]`` out, same kind and
  device, higher means ask), or a `Score` that declares ``needs_passes`` (it then gets
  ``[T, B, C]`` MC-dropout passes) or ``needs_embeddings`` (it then gets ``embeddings=``);
- a gate: a `streamal.gates.BudgetGate` subclass, or a factory returning one, called with
  ``budget=`` and the ``options`` of its config;
- a pool selector (``diversity``): a `streamal.strategies.selection.Pick`, or a
  `DiversityRule` that declares ``needs_embeddings``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np

from streamal.errors import ConfigError, RegistryError
from streamal.gates import (
    AutoLabelGate,
    BudgetGate,
    FixedThreshold,
    QuantileBudget,
    RandomizedVariableUncertainty,
    Split,
    VariableUncertainty,
)
from streamal.plugins import is_import_path, load_function
from streamal.strategies.bayesian import (
    bald,
    consensus_kl,
    max_disagreement,
    variation_ratio,
    vote_entropy,
)
from streamal.strategies.config import PoolConfig, StrategyConfig, UserGateConfig
from streamal.strategies.gradient import expected_gradient_length
from streamal.strategies.lookahead import (
    POOL_LIMIT,
    expected_error_reduction,
    expected_model_change,
)
from streamal.strategies.scores import entropy, least_confidence, margin, random_scores, ratio
from streamal.strategies.selection import (
    DiversityRule,
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
    """A utility function (registered, or a user's) and what it takes.

    Attributes
    ----------
    needs_passes
        Takes ``[T, B, C]`` stochastic passes (run MC dropout) instead of ``[B, C]``.
    needs_embeddings
        Takes the penultimate embeddings ``[B, D]`` as well.
    seeded
        Draws random numbers; `build_score` passes it its own seeded generator as ``seed=``.
    pool_limit
        The largest pool (items x classes) it scores, for a score whose cost grows faster than
        the pool; a pool job refuses a larger one at start.
    """

    name: str
    fn: Callable[..., Any]
    needs_passes: bool = False
    needs_embeddings: bool = False
    seeded: bool = False
    pool_limit: int | None = None

    def refuses(self, items: int, classes: int) -> str | None:
        """Why it takes no pool (or batch) of ``items`` x ``classes``, or None when it does.

        >>> build_score("expected_model_change").refuses(60_000, 2)
        'expected_model_change scores pools of at most 50,000 items x classes (got 60,000 x 2)'
        >>> build_score("margin").refuses(10**9, 10) is None
        True
        """
        if self.pool_limit is None or items * classes <= self.pool_limit:
            return None
        return (
            f"{self.name} scores pools of at most {self.pool_limit:,} items x classes "
            f"(got {items:,} x {classes})"
        )

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
    Score("max_disagreement", max_disagreement, needs_passes=True),
    Score("expected_gradient_length", expected_gradient_length, needs_embeddings=True),
    Score(
        "expected_error_reduction",
        expected_error_reduction,
        needs_embeddings=True,
        pool_limit=POOL_LIMIT,
    ),
    Score(
        "expected_model_change",
        expected_model_change,
        needs_embeddings=True,
        pool_limit=POOL_LIMIT,
    ),
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

DIVERSITIES: Mapping[str, DiversityRule] = MappingProxyType(
    {
        "none": DiversityRule(pick_top),
        "kcenter": DiversityRule(pick_kcenter, needs_embeddings=True),
        "badge": DiversityRule(pick_badge, needs_embeddings=True),
        "seals": DiversityRule(pick_seals, needs_embeddings=True),
    }
)
"""Pool diversity rule -> how it picks, in the order of `streamal.strategies.Diversity`."""

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


def build_score(name: str, *, seed: int = 0, field: str = "strategy.score") -> Score:
    """The score registered as ``name``, or the user's at import path ``name``; a random one
    draws from a generator seeded ``seed``. A user's score that cannot be loaded is a
    `ConfigError` naming ``field``.

    Examples
    --------
    >>> build_score("bald").needs_passes
    True
    >>> build_score("math:fabs").name
    'math:fabs'
    >>> build_score("math:nope", field="--strategy")
    Traceback (most recent call last):
    ...
    streamal.errors.ConfigError: config error: --strategy: module 'math' has no attribute 'nope'
    >>> build_score("smallest_margin")
    Traceback (most recent call last):
    ...
    streamal.errors.RegistryError: unknown score 'smallest_margin'; allowed: least_confidence, \
margin, ratio, entropy, normalized_entropy, variation_ratio, bald, vote_entropy, consensus_kl, \
max_disagreement, expected_gradient_length, expected_error_reduction, expected_model_change, \
random
    """
    if is_import_path(name):
        found = load_function(name, field)
        score = found if isinstance(found, Score) else Score(name, found)
    else:
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
    if isinstance(config.gate, UserGateConfig):
        return _user_gate(config.gate, config.budget)
    entry = _lookup("gate", GATES, config.gate.name)
    options = config.gate.model_dump(exclude={"name"})
    if entry.seeded:
        options["seed"] = seed_for(config.seed, "gate")
    return entry.gate(budget=config.budget, **options)


def _user_gate(config: UserGateConfig, budget: float) -> BudgetGate[Any]:
    make = load_function(config.name, "strategy.gate.name")
    try:
        gate = make(budget=budget, **config.options)
    except (TypeError, ValueError) as error:  # options it does not take, or values it refuses
        raise ConfigError(f"config error: strategy.gate.options: {config.name}: {error}") from None
    if not isinstance(gate, BudgetGate):
        raise ConfigError(
            f"config error: strategy.gate.name: {config.name} made a {type(gate).__name__}, "
            "not a streamal.gates.BudgetGate"
        )
    return gate


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
        budget=config.budget,
        paused_audits=auto.paused_audits,
        noise=auto.label_noise,
        seed=seed_for(config.seed, "auto_label"),
    )


def build_selector(config: PoolConfig) -> PoolSelector:
    """The pool selector ``config`` describes (see `PoolSelector`); a user's score or selector
    that cannot be loaded is a `ConfigError` naming ``pool select``'s flag.

    Examples
    --------
    >>> build_selector(PoolConfig(diversity="kcenter")).needs_embeddings
    True
    """
    score = build_score(config.score, seed=config.seed, field="--strategy")
    if is_import_path(config.diversity):
        found = load_function(config.diversity, "--diversity", or_a=DiversityRule)
        rule = found if isinstance(found, DiversityRule) else DiversityRule(found)
    else:
        rule = _lookup("diversity", DIVERSITIES, config.diversity)
    return PoolSelector(config, score, rule)
