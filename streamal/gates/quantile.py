"""The balanced incremental quantile filter (Kottke et al. 2015)."""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, replace
from typing import Self

from streamal.gates.base import BudgetGate, GateState, Reason, new_rng_state
from streamal.gates.budget import SlidingWindowBudget

__all__ = ["QuantileBudget"]


def quantile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted values, interpolated linearly (numpy's default).

    Examples
    --------
    >>> quantile([1.0, 2.0, 3.0, 4.0], 0.5)
    2.5
    """
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class QuantileState(GateState):
    """The filter's memory: recent utilities (in arrival and in sorted order) and counts."""

    recent: deque[float]
    ordered: list[float]
    seen: int = 0
    asked: int = 0
    starting: float | None = None

    def copy(self) -> Self:
        """An independent copy."""
        return replace(
            super().copy(),
            recent=deque(self.recent, maxlen=self.recent.maxlen),
            ordered=list(self.ordered),
        )

    def with_threshold(self, value: float) -> Self:
        """A copy that forgets recent utilities and uses ``value`` until the window refills."""
        state = replace(super().with_threshold(value), starting=value)
        state.recent.clear()
        state.ordered.clear()
        return state

    def remember(self, utility: float) -> None:
        """Add ``utility`` to the window, dropping the oldest one when full."""
        if len(self.recent) == self.recent.maxlen:
            del self.ordered[bisect.bisect_left(self.ordered, self.recent[0])]
        self.recent.append(utility)
        bisect.insort(self.ordered, utility)


class QuantileBudget(BudgetGate[QuantileState]):
    """Ask when the utility reaches the ``1 - b`` quantile of the last ``window`` utilities.

    The threshold is lowered when fewer queries were made than ``b`` times the samples seen
    and raised when more, by the utility range times the difference over
    ``tolerance_window``: the budget is met within about that many queries. A utility equal to
    the threshold is asked only while the filter is behind its budget, so utilities that all
    tie (where the range, and with it the correction, is 0) are asked at the rate ``b``.

    Parameters
    ----------
    budget
        The target share ``b`` of samples asked.
    window
        How many recent utilities the quantile is taken over (also the label-rate window).
    tolerance_window
        How many queries ahead or behind the budget move the threshold by the full range.

    Examples
    --------
    >>> import numpy as np
    >>> gate = QuantileBudget(budget=0.1)
    >>> decision = gate.decide(np.random.default_rng(0).random(10_000))
    >>> float(decision.routes.mean())
    0.1
    >>> float(QuantileBudget(budget=0.1).decide(np.zeros(1000)).routes.mean())
    0.1
    """

    def __init__(
        self, *, budget: float = 0.1, window: int = 100, tolerance_window: int = 50
    ) -> None:
        if tolerance_window < 1:
            raise ValueError(f"tolerance_window must be >= 1, got {tolerance_window}")
        self.tolerance_window = tolerance_window
        spend = SlidingWindowBudget(budget, window)
        recent: deque[float] = deque(maxlen=window)
        super().__init__(QuantileState(float("nan"), new_rng_state(0), spend, recent, []))

    def _taken(self, state: QuantileState, utility: float) -> None:
        state.remember(utility)
        state.seen += 1
        state.asked += 1

    def _step(self, state: QuantileState, utility: float, draw: float) -> Reason:
        state.remember(utility)
        state.seen += 1
        ordered = state.ordered
        if len(ordered) == state.recent.maxlen:
            state.starting = None
        budget = state.spend.budget
        level = quantile(ordered, 1 - budget) if state.starting is None else state.starting
        behind = budget * state.seen - state.asked
        state.threshold = level - (ordered[-1] - ordered[0]) * behind / self.tolerance_window
        above = utility > state.threshold or (utility == state.threshold and behind > 0)
        if above:
            state.asked += 1
            return Reason.UNCERTAIN
        return Reason.NONE
