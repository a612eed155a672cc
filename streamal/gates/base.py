"""Routes, reasons, decisions and the gate contract: ``decide()`` is pure, ``update()`` commits.

A gate keeps its whole memory in one state object. ``decide()`` works on a copy of it and
returns the copy, advanced past the batch, inside the `Decision`; ``update(decision)`` makes
that the gate's state. Random draws come from a generator whose state is part of the state, so
a decision replays exactly, and a batch is decided exactly as its samples one by one would be.
Every mutator (``update``, ``set_threshold``, ...) makes decisions not yet committed stale.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any, Generic, Self, TypeVar, cast

import numpy as np
from numpy.typing import ArrayLike

from streamal.errors import StreamalError
from streamal.gates.budget import SlidingWindowBudget
from streamal.messages import RequestReason

__all__ = ["BudgetGate", "Decision", "Gate", "GateState", "Reason", "Route", "State"]


class Route(IntEnum):
    """Where a sample goes."""

    SKIP = 0
    ORACLE = 1
    AUTO_LABEL = 2


class Reason(IntEnum):
    """Why a sample goes to the oracle; ``label`` is the ``LabelRequest.reason`` value."""

    NONE = 0
    UNCERTAIN = 1
    AUDIT = 2
    EXPLORE = 3
    RETRACTED = 4

    @property
    def label(self) -> RequestReason:
        """The name on the wire, e.g. ``"uncertain"``."""
        return cast(RequestReason, self.name.lower())


@dataclass
class State:
    """What every gate remembers: its threshold and its random generator's state."""

    threshold: float
    rng: Mapping[str, Any]

    def copy(self) -> Self:
        """An independent copy (the generator state is replaced, never mutated)."""
        return replace(self)

    def with_threshold(self, value: float) -> Self:
        """A copy that starts from threshold ``value``."""
        return replace(self.copy(), threshold=value)


S = TypeVar("S", bound=State)


@dataclass(frozen=True)
class Decision(Generic[S]):
    """The routes chosen for a batch, and the gate state to commit with ``update``.

    Attributes
    ----------
    routes
        One `Route` code per sample (``int8``).
    reasons
        One `Reason` code per sample (``int8``), ``NONE`` unless routed to the oracle.
    state
        The gate's state after the batch, private to the gate.
    version
        Which version of the gate's state the decision started from.
    """

    routes: np.ndarray
    reasons: np.ndarray
    state: S
    version: int

    def __post_init__(self) -> None:
        self.routes.flags.writeable = False
        self.reasons.flags.writeable = False


def as_scores(values: ArrayLike, name: str) -> np.ndarray:
    """``values`` as a 1-D float64 array of finite numbers, or ``ValueError``."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite")
    return array


def new_rng_state(seed: int) -> Mapping[str, Any]:
    """The state of a fresh PCG64 generator seeded with ``seed``."""
    return np.random.PCG64(seed).state


class Gate(ABC, Generic[S]):
    """A stateful stream decision: ``decide`` has no side effects, mutators return None."""

    def __init__(self, state: S) -> None:
        self._state = state
        self._version = 0
        self._generator = np.random.Generator(np.random.PCG64(0))

    @property
    def threshold(self) -> float:
        """The current threshold (read-only; see `set_threshold`)."""
        return self._state.threshold

    def set_threshold(self, value: float) -> None:
        """Start again from threshold ``value`` (e.g. the one published with a new model)."""
        self._commit(self._state.with_threshold(self._checked_threshold(value)))

    def update(self, decision: Decision[S]) -> None:
        """Commit ``decision``: the gate continues from the state it reached.

        Raises
        ------
        StreamalError
            If the gate changed since the decision was made.
        """
        if decision.version != self._version:
            raise StreamalError(
                f"stale decision: made at gate version {decision.version}, "
                f"the gate is at version {self._version}"
            )
        self._commit(decision.state)

    def _commit(self, state: S) -> None:
        self._state = state
        self._version += 1

    def _checked_threshold(self, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"threshold must be finite, got {value}")
        return float(value)

    def _decision(self, routes: np.ndarray, reasons: np.ndarray, state: S) -> Decision[S]:
        return Decision(routes, reasons, state, self._version)

    def _draw(self, state: S, draw: Callable[[np.random.Generator], np.ndarray]) -> np.ndarray:
        """Draw from ``state``'s generator and advance ``state`` (a working copy) past it."""
        self._generator.bit_generator.state = state.rng
        values = draw(self._generator)
        state.rng = self._generator.bit_generator.state
        return values


@dataclass
class GateState(State):
    """A budget gate's state: threshold, generator and label spend."""

    spend: SlidingWindowBudget

    def copy(self) -> Self:
        """An independent copy."""
        return replace(self, spend=self.spend.copy())


G = TypeVar("G", bound=GateState)


class BudgetGate(Gate[G]):
    """Routes each sample to the oracle or skips it, one sample after another.

    Subclasses say what happens to one sample in ``_step`` and, if random, what each sample
    draws in ``_draws``.
    """

    @property
    def budget(self) -> float:
        """The target share of samples asked."""
        return self._state.spend.budget

    @property
    def label_rate(self) -> float:
        """The realized share of samples asked over the budget window."""
        return self._state.spend.rate

    def decide(self, utilities: ArrayLike, taken: ArrayLike | None = None) -> Decision[G]:
        """Route a batch of utilities (higher means more worth asking).

        Parameters
        ----------
        utilities
            One utility per sample.
        taken
            Flags the samples another gate already sent to the oracle (audits, exploration):
            they count as spent where they stand in the walk, so the gate asks that many fewer,
            and are never asked again.

        Returns
        -------
        Decision
            ``ORACLE`` (reason ``UNCERTAIN`` or ``EXPLORE``) or ``SKIP`` per sample; a taken
            sample is ``SKIP`` here.
        """
        scores = as_scores(utilities, "utilities")
        asked = np.zeros(len(scores), dtype=bool) if taken is None else np.asarray(taken, bool)
        if asked.shape != scores.shape:
            raise ValueError(f"{len(asked)} taken flags for {len(scores)} utilities")
        state = self._state.copy()
        draws = self._draws(state, len(scores))
        walk = self._walk(state, scores.tolist(), draws, asked.tolist())
        reasons = np.fromiter(walk, dtype=np.int8, count=len(scores))
        routes = (reasons != Reason.NONE).astype(np.int8)  # Route.ORACLE or Route.SKIP
        return self._decision(routes, reasons, state)

    def _walk(
        self, state: G, utilities: list[float], draws: Iterable[float], taken: list[bool]
    ) -> Iterator[int]:
        for utility, draw, by_another in zip(utilities, draws, taken, strict=True):
            if by_another:
                self._taken(state, utility)
                state.spend.record(True)
                yield Reason.NONE
                continue
            reason = self._step(state, utility, draw)
            state.spend.record(reason != Reason.NONE)
            yield reason

    def _taken(self, state: G, utility: float) -> None:
        """Note a sample another gate sent to the oracle (``state`` is a working copy)."""

    def _draws(self, state: G, n: int) -> Iterable[float]:
        """One random draw per sample; a deterministic gate draws nothing (all ones)."""
        return [1.0] * n

    @abstractmethod
    def _step(self, state: G, utility: float, draw: float) -> Reason:
        """Decide one sample, updating ``state`` (a working copy) in place."""
