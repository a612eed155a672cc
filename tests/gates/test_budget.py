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


@pytest.mark.parametrize("name", sorted(GATES))
def test_samples_asked_for_other_reasons_come_out_of_the_same_budget(name: str) -> None:
    gate = GATES[name]()
    rng = np.random.default_rng(7)
    asked = 0
    for _ in range(400):  # 20,000 samples in batches of 50, a quarter of the budget audited
        decision = gate.decide(rng.random(50))
        audited = rng.random(50) < BUDGET / 4
        gate.update(gate.charged(decision, audited))
        asked += int(((decision.routes == 1) | audited).sum())
    assert abs(asked / 20_000 - BUDGET) <= 0.1 * BUDGET


def test_a_charged_sample_counts_once_in_the_window() -> None:
    spend = SlidingWindowBudget(0.5, window=4)
    for was_asked in (True, False, False):
        spend.record(was_asked)
    spend.amend(0)
    spend.amend(0)  # already counted
    spend.amend(2)  # the first one was asked already
    assert spend.rate == 0.5
    spend.amend(9)  # out of the window: nothing to amend
    assert spend.rate == 0.5
