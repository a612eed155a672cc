"""Split: a random share explores, the rest goes through variable uncertainty."""

from __future__ import annotations

from collections.abc import Iterable

from streamal.gates.base import GateState, Reason, new_rng_state
from streamal.gates.variable import VariableUncertainty

__all__ = ["Split"]


class Split(VariableUncertainty):
    """Ask a share ``explore`` of the samples at random, the rest by variable uncertainty.

    Zliobaite et al. (2014): random queries reach regions far from the decision boundary where
    a drift would otherwise go unseen. Both kinds of queries share the window budget.

    Parameters
    ----------
    explore
        The share ``v`` of samples (seen under budget) asked at random, reason ``EXPLORE``.
    seed
        Seeds the draws that pick them.

    Examples
    --------
    >>> gate = Split(budget=1.0, explore=1.0)
    >>> gate.decide([0.0, 0.0]).reasons.tolist()
    [3, 3]
    """

    def __init__(
        self,
        threshold: float = 0.5,
        *,
        budget: float = 0.1,
        step: float = 0.01,
        window: int = 100,
        explore: float = 0.1,
        seed: int = 0,
    ) -> None:
        if not 0 <= explore <= 1:
            raise ValueError(f"explore must be >= 0 and <= 1, got {explore}")
        self.explore = explore
        super().__init__(threshold, budget=budget, step=step, window=window)
        self._state.rng = new_rng_state(seed)

    def _draws(self, state: GateState, n: int) -> Iterable[float]:
        return self._draw(state, lambda rng: rng.random(n)).tolist()

    def _step(self, state: GateState, utility: float, draw: float) -> Reason:
        if not state.spend.available:
            return Reason.NONE
        return Reason.EXPLORE if draw < self.explore else self._vary(state, utility, 1.0)
