"""Stream gates: ``decide()`` routes a batch without side effects, ``update()`` commits it.

A budget gate routes each sample to the oracle or skips it; the auto-label gate then turns
confident skipped samples into auto-labels, auditing a share of them.
"""

from streamal.gates.autolabel import AutoLabelGate
from streamal.gates.base import BudgetGate, Decision, Gate, Reason, Route
from streamal.gates.budget import SlidingWindowBudget
from streamal.gates.precision import BoundMethod, precision_lower_bound, select_threshold
from streamal.gates.quantile import QuantileBudget
from streamal.gates.split import Split
from streamal.gates.threshold import FixedThreshold
from streamal.gates.variable import RandomizedVariableUncertainty, VariableUncertainty

__all__ = [
    "AutoLabelGate",
    "BoundMethod",
    "BudgetGate",
    "Decision",
    "FixedThreshold",
    "Gate",
    "QuantileBudget",
    "RandomizedVariableUncertainty",
    "Reason",
    "Route",
    "SlidingWindowBudget",
    "Split",
    "VariableUncertainty",
    "precision_lower_bound",
    "select_threshold",
]
