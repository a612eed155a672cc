"""Budget adherence on a stationary stream, and the sliding-window accounting."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamal.gates import (
    BudgetGate,
    FixedThreshold,
    LabelAllowance,
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


def decide_in_batches(gate: BudgetGate[Any], utilities: np.ndarray, batches: int) -> np.ndarray:
    """The routes of ``utilities`` decided (and committed) in ``batches`` consecutive batches."""
    routes = []
    for batch in np.array_split(utilities, batches):
        decision = gate.decide(batch)
        gate.update(decision)
        routes.append(decision.routes)
    return np.concatenate(routes)


def busiest_stretch(asked: np.ndarray, length: int = 1_000) -> float:
    """The highest share of samples asked in any ``length`` consecutive samples.

    >>> busiest_stretch(np.array([0, 1, 1, 0]), length=2)
    1.0
    """
    return float((np.convolve(asked, np.ones(length), "valid") / length).max())


@pytest.mark.parametrize("name", GATES)
@pytest.mark.parametrize("stream", ["uniform", "beta"])
def test_realized_query_rate_is_within_ten_percent_of_the_budget(name: str, stream: str) -> None:
    rng = np.random.default_rng(42)
    utilities = rng.random(10_000) if stream == "uniform" else rng.beta(2, 5, 10_000)
    gate = GATES[name]()
    rate = decide_in_batches(gate, utilities, 40)[WARM_UP:].mean()
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
def test_samples_taken_by_other_gates_come_out_of_the_same_budget(name: str) -> None:
    gate = GATES[name]()
    rng = np.random.default_rng(7)
    flags = []
    for _ in range(400):  # 20,000 samples in batches of 50, a quarter of the budget taken
        taken = rng.random(50) < BUDGET / 4
        decision = gate.decide(rng.random(50), taken)
        gate.update(decision)
        assert not (taken & (decision.routes == 1)).any()  # never asked twice
        flags.append(taken | (decision.routes == 1))
    asked = np.concatenate(flags)
    assert abs(asked.mean() - BUDGET) <= 0.1 * BUDGET
    assert busiest_stretch(asked) <= 1.5 * BUDGET  # no burst an alert would see


def adversarial(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Utility streams that break budget controllers: ties, constants, two modes, drift."""
    if kind == "ties":
        return np.zeros(n)
    if kind == "constant":
        return np.full(n, rng.random())
    if kind == "bimodal":
        return np.where(rng.random(n) < rng.uniform(0.05, 0.95), 1.0, rng.uniform(0, 0.2))
    if kind == "rising":
        return np.linspace(0, rng.uniform(0.1, 10), n)
    if kind == "falling":
        return np.linspace(rng.uniform(0.1, 10), 0, n)
    if kind == "walk":
        return np.abs(np.cumsum(rng.normal(0, 0.05, n)))
    return np.round(rng.random(n), 1)  # "coarse": few distinct values, many ties


ADVERSARIAL = ["ties", "constant", "bimodal", "rising", "falling", "walk", "coarse"]


EVERY_GATE: dict[str, Callable[[], BudgetGate[Any]]] = {
    **GATES,
    "fixed": lambda: FixedThreshold(0.0, budget=BUDGET),
}


@pytest.mark.parametrize("name", sorted(EVERY_GATE))
@pytest.mark.parametrize("kind", ADVERSARIAL)
@pytest.mark.parametrize("seed", range(3))
def test_no_gate_overspends_on_adversarial_utilities(name: str, kind: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    utilities = adversarial(kind, 5_000, rng)
    asked = decide_in_batches(EVERY_GATE[name](), utilities, 100)
    assert asked.mean() <= BUDGET * 1.1, asked.mean()
    assert busiest_stretch(asked) <= BUDGET * 1.5  # no burst an alert would see


@pytest.mark.parametrize("kind", ADVERSARIAL)
def test_the_quantile_gate_spends_its_budget_on_adversarial_utilities(kind: str) -> None:
    """Ties included: a quantile filter whose utilities all tie still asks a share ``b``."""
    utilities = adversarial(kind, 5_000, np.random.default_rng(0))
    asked = decide_in_batches(QuantileBudget(budget=BUDGET), utilities, 100)
    assert abs(asked.mean() - BUDGET) <= 0.1 * BUDGET, asked.mean()


@given(
    wanted=st.lists(st.booleans(), max_size=400),
    cuts=st.lists(st.integers(0, 400), max_size=6),
    budget=st.sampled_from([0.05, 0.1, 0.3, 1.0]),
)
def test_the_allowance_never_grants_ahead_of_what_was_earned(
    wanted: list[bool], cuts: list[int], budget: float
) -> None:
    """Over every prefix of the stream the labels granted before a sample stay within the
    budget times the samples seen (the peers' protocol: the first sample may be asked), and
    how the stream is cut into batches changes nothing."""
    allowance = LabelAllowance(budget, bank=budget * 100)
    whole, _ = allowance.grant(wanted)
    before = np.cumsum(whole) - whole  # labels granted before each granted request
    assert (before[whole] <= budget * np.arange(1, len(wanted) + 1)[whole] + 1e-9).all()
    pieces = []
    for start, end in itertools.pairwise([0, *sorted(cuts), len(wanted)]):
        granted, allowance = allowance.grant(wanted[start:end])
        pieces.append(granted)
    assert np.concatenate([whole[:0], *pieces]).tolist() == whole.tolist()
    # asked all along, it grants every label as soon as it is earned
    always, _ = LabelAllowance(budget, bank=2.0).grant([True] * len(wanted))
    assert always.sum() == min(len(wanted), 1 + int(budget * len(wanted) + 1e-9))
