"""Budget adherence on a stationary stream, and the sliding-window accounting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from streamal.gates import (
    BudgetGate,
    QuantileBudget,
    RandomizedVariableUncertainty,
    SlidingWindowBudget,
    Split,
    VariableUncertainty,
)

BUDGET = 0.1
WARM_UP = 1_000

GATES: dict[str, Callable[[], BudgetGate[Any]]] = {
    "variable_uncertainty": lambda: VariableUncertainty(budget=BUDGET),
    "randomized_variable_uncertainty": lambda: RandomizedVariableUncertainty(budget=BUDGET),
    "split": lambda: Split(budget=BUDGET),
    "quantile": lambda: QuantileBudget(budget=BUDGET),
}


@pytest.mark.parametrize("name", GATES)
@pytest.mark.parametrize("stream", ["uniform", "beta"])
def test_realized_query_rate_is_within_ten_percent_of_the_budget(name: str, stream: str) -> None:
    rng = np.random.default_rng(42)
    utilities = rng.random(10_000) if stream == "uniform" else rng.beta(2, 5, 10_000)
    gate = GATES[name]()
    routes = []
    for batch in np.array_split(utilities, 40):
        decision = gate.decide(batch)
        gate.update(decision)
        routes.append(decision.routes)
    rate = np.concatenate(routes)[WARM_UP:].mean()
    assert abs(rate - BUDGET) / BUDGET <= 0.10, rate
    assert abs(gate.label_rate - BUDGET) <= 0.05


def test_sliding_window_forgets_old_queries() -> None:
    spend = SlidingWindowBudget(0.5, window=2)
    spend.record(True)
    twin = spend.copy()
    spend.record(True)
    assert (spend.rate, spend.available) == (1.0, False)
    assert twin.rate == 0.5
    spend.record(False)
    spend.record(False)
    assert (spend.rate, spend.available) == (0.0, True)
