"""Variable uncertainty and its randomized variant (Zliobaite et al. 2014)."""

from __future__ import annotations

from collections.abc import Iterable

from streamal.gates.base import BudgetGate, GateState, Reason, new_rng_state
from streamal.gates.budget import SlidingWindowBudget

__all__ = ["RandomizedVariableUncertainty", "VariableUncertainty"]


class VariableUncertainty(BudgetGate[GateState]):
    """A threshold that tightens after each query and relaxes after each skip.

    Zliobaite et al. (2014) threshold the confidence and shrink it by ``(1 - s)`` after a
    query, growing it by ``(1 + s)`` otherwise. Here the threshold is on the utility (higher
    asks), so the same rule reads: after a query it grows by ``(1 + s)``, otherwise it shrinks
    by ``(1 - s)``. Only samples seen while the window spend is under budget are considered,
    and only they move the threshold.

    Parameters
    ----------
    threshold
        The starting utility threshold, > 0.
    budget
        The share of samples that may be asked, over the last ``window`` samples.
    step
        The adjusting step ``s``.

    Examples
    --------
    >>> gate = VariableUncertainty(threshold=0.5, step=0.1, budget=1.0)
    >>> decision = gate.decide([0.6, 0.5, 0.1])
    >>> decision.routes.tolist()
    [1, 0, 0]
    >>> gate.update(decision)
    >>> round(gate.threshold, 4)
    0.4455
    """

    def __init__(
        self,
        threshold: float = 0.5,
        *,
        budget: float = 0.1,
        step: float = 0.01,
        window: int = 100,
    ) -> None:
        if not 0 < step < 1:
            raise ValueError(f"step must be > 0 and < 1, got {step}")
        self.step = step
        spend = SlidingWindowBudget(budget, window)
        threshold = self._checked_threshold(threshold)
        super().__init__(GateState(threshold, new_rng_state(0), spend))

    def _checked_threshold(self, value: float) -> float:
        value = super()._checked_threshold(value)
        if value <= 0:
            raise ValueError(f"threshold must be > 0, got {value}")
        return value

    def _step(self, state: GateState, utility: float, draw: float) -> Reason:
        return self._vary(state, utility, draw) if state.spend.available else Reason.NONE

    def _vary(self, state: GateState, utility: float, scale: float) -> Reason:
        """Compare ``utility`` to the threshold times ``scale``, then move the threshold."""
        if utility >= state.threshold * scale:
            state.threshold *= 1 + self.step
            return Reason.UNCERTAIN
        state.threshold *= 1 - self.step
        return Reason.NONE


class RandomizedVariableUncertainty(VariableUncertainty):
    """Variable uncertainty compared against the threshold times ``eta ~ N(1, delta)``.

    The noise lets samples far from the boundary be asked now and then, which catches drift
    the model is confident about.

    Parameters
    ----------
    delta
        The standard deviation of the threshold multiplier.
    seed
        Seeds the multipliers.

    Examples
    --------
    >>> gate = RandomizedVariableUncertainty(budget=1.0, seed=1)
    >>> first = gate.decide([0.3, 0.4, 0.5])
    >>> bool((first.routes == gate.decide([0.3, 0.4, 0.5]).routes).all())
    True
    """

    def __init__(
        self,
        threshold: float = 0.5,
        *,
        budget: float = 0.1,
        step: float = 0.01,
        window: int = 100,
        delta: float = 1.0,
        seed: int = 0,
    ) -> None:
        if delta <= 0:
            raise ValueError(f"delta must be > 0, got {delta}")
        self.delta = delta
        super().__init__(threshold, budget=budget, step=step, window=window)
        self._state.rng = new_rng_state(seed)

    def _draws(self, state: GateState, n: int) -> Iterable[float]:
        return self._draw(state, lambda rng: rng.normal(1.0, self.delta, n)).tolist()
