"""Stream gates: ``decide()`` routes a batch without side effects, ``update()`` commits it.

The auto-label gate turns confident samples into auto-labels, auditing a share of them; the
exploration gate asks a share of the budget at random; a budget gate then routes each sample
to the oracle or skips it, counting the samples those two already asked; every request,
whatever its gate, is paid from one `LabelAllowance`.
"""

from streamal.gates.autolabel import AutoLabelGate
from streamal.gates.base import BudgetGate, Decision, Gate, Reason, Route
from streamal.gates.budget import LabelAllowance, SlidingWindowBudget
from streamal.gates.explore import ExploreGate
from streamal.gates.precision import (
    BoundMethod,
    current_evidence,
    out_of_reach,
    precision_lower_bound,
    select_threshold,
)
from streamal.gates.quantile import QuantileBudget
from streamal.gates.split import Split
from streamal.gates.threshold import FixedThreshold
from streamal.gates.variable import RandomizedVariableUncertainty, VariableUncertainty

__all__ = [
    "AutoLabelGate",
    "BoundMethod",
    "BudgetGate",
    "Decision",
    "ExploreGate",
    "FixedThreshold",
    "Gate",
    "LabelAllowance",
    "QuantileBudget",
    "RandomizedVariableUncertainty",
    "Reason",
    "Route",
    "SlidingWindowBudget",
    "Split",
    "VariableUncertainty",
    "current_evidence",
    "out_of_reach",
    "precision_lower_bound",
    "select_threshold",
]
