"""A fixed utility threshold under the label budget."""

from __future__ import annotations

from streamal.gates.base import BudgetGate, GateState, Reason, new_rng_state
from streamal.gates.budget import SlidingWindowBudget

__all__ = ["FixedThreshold"]


class FixedThreshold(BudgetGate[GateState]):
    """Ask when the utility reaches ``threshold`` and the window spend is under budget.

    Zliobaite et al. (2014), "fixed uncertainty", with utilities in place of confidences.

    Parameters
    ----------
    threshold
        The utility at or above which a sample is asked.
    budget
        The share of samples that may be asked, over the last ``window`` samples.

    Examples
    --------
    >>> gate = FixedThreshold(0.5, budget=0.5, window=4)
    >>> decision = gate.decide([0.9, 0.2, 0.7, 0.8])
    >>> decision.routes.tolist(), decision.reasons.tolist()
    ([1, 0, 1, 0], [1, 0, 1, 0])
    >>> gate.update(decision)
    >>> gate.label_rate
    0.5
    """

    def __init__(self, threshold: float = 0.5, *, budget: float = 0.1, window: int = 100) -> None:
        spend = SlidingWindowBudget(budget, window)
        super().__init__(GateState(self._checked_threshold(threshold), new_rng_state(0), spend))

    def _step(self, state: GateState, utility: float, draw: float) -> Reason:
        asked = state.spend.available and utility >= state.threshold
        return Reason.UNCERTAIN if asked else Reason.NONE
