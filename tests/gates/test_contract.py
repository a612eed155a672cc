"""The contract every gate keeps: pure decide, committing update, batch == one by one."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamal.errors import StreamalError
from streamal.gates import (
    AutoLabelGate,
    BudgetGate,
    Decision,
    ExploreGate,
    FixedThreshold,
    QuantileBudget,
    RandomizedVariableUncertainty,
    Reason,
    Route,
    Split,
    VariableUncertainty,
)

T = TypeVar("T")
FAST = settings(max_examples=30, derandomize=True, deadline=None, database=None)

GATES: dict[str, Callable[[], BudgetGate[Any]]] = {
    "fixed": lambda: FixedThreshold(0.5, budget=0.3, window=10),
    "variable_uncertainty": lambda: VariableUncertainty(budget=0.3, window=10, step=0.1),
    "randomized": lambda: RandomizedVariableUncertainty(budget=0.3, window=10, seed=1),
    "split": lambda: Split(budget=0.3, window=10, explore=0.3, seed=2),
    "quantile": lambda: QuantileBudget(budget=0.3, window=10, tolerance_window=5),
}

utility_lists = st.lists(st.floats(0, 1), min_size=1, max_size=60)
cuts = st.lists(st.integers(0, 60), max_size=6)


def pieces(values: list[T], at: list[int]) -> list[list[T]]:
    """``values`` cut into consecutive batches at the positions ``at``."""
    bounds = [0, *sorted(min(cut, len(values)) for cut in at), len(values)]
    return [values[a:b] for a, b in itertools.pairwise(bounds)]


def run(gate: BudgetGate[Any], batches: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    routes, reasons = [], []
    for batch in batches:
        decision = gate.decide(batch)
        gate.update(decision)
        routes.append(decision.routes)
        reasons.append(decision.reasons)
    return np.concatenate(routes), np.concatenate(reasons)


@pytest.mark.parametrize("name", GATES)
@FAST
@given(utilities=utility_lists, at=cuts)
def test_a_batch_decides_as_its_samples_one_by_one(
    name: str, utilities: list[float], at: list[int]
) -> None:
    batched, single = GATES[name](), GATES[name]()
    routes, reasons = run(batched, pieces(utilities, at))
    one_routes, one_reasons = run(single, [[u] for u in utilities])
    np.testing.assert_array_equal(routes, one_routes)
    np.testing.assert_array_equal(reasons, one_reasons)
    assert batched.threshold == single.threshold or np.isnan(batched.threshold)
    assert batched.label_rate == single.label_rate


@pytest.mark.parametrize("name", GATES)
@FAST
@given(utilities=utility_lists, at=cuts, seed=st.integers(0, 1000))
def test_a_batch_with_taken_samples_decides_as_its_samples_one_by_one(
    name: str, utilities: list[float], at: list[int], seed: int
) -> None:
    taken = (np.random.default_rng(seed).random(len(utilities)) < 0.2).tolist()

    def walk(batches: list[list[int]]) -> tuple[np.ndarray, float]:
        gate, routes = GATES[name](), []
        for rows in batches:
            decision = gate.decide([utilities[i] for i in rows], [taken[i] for i in rows])
            gate.update(decision)
            routes.append(decision.routes)
        return np.concatenate(routes), gate.label_rate

    rows = list(range(len(utilities)))
    batched, one_by_one = walk(pieces(rows, at)), walk([[i] for i in rows])
    np.testing.assert_array_equal(batched[0], one_by_one[0])
    assert batched[1] == one_by_one[1]
    assert not (batched[0][np.array(taken)] == Route.ORACLE).any()


@pytest.mark.parametrize("name", GATES)
def test_decide_changes_nothing(name: str) -> None:
    gate = GATES[name]()
    utilities = np.random.default_rng(0).random(200)
    gate.update(gate.decide(utilities[:50]))
    before = (gate.threshold, gate.label_rate)
    first, second = gate.decide(utilities[50:]), gate.decide(utilities[50:])
    np.testing.assert_array_equal(first.routes, second.routes)
    np.testing.assert_array_equal(first.reasons, second.reasons)
    assert (gate.threshold, gate.label_rate) == before


@pytest.mark.parametrize("name", GATES)
def test_update_commits_once(name: str) -> None:
    gate = GATES[name]()
    decision = gate.decide([0.9, 0.1, 0.5])
    gate.update(decision)
    with pytest.raises(StreamalError, match="stale decision"):
        gate.update(decision)


@pytest.mark.parametrize("name", GATES)
def test_set_threshold_makes_pending_decisions_stale(name: str) -> None:
    gate = GATES[name]()
    decision = gate.decide([0.9])
    gate.set_threshold(0.7)
    assert gate.threshold == 0.7
    with pytest.raises(StreamalError, match="stale decision"):
        gate.update(decision)


@pytest.mark.parametrize("name", GATES)
def test_routes_and_reasons_agree(name: str) -> None:
    decision = GATES[name]().decide(np.random.default_rng(1).random(100))
    assert decision.routes.dtype == np.int8 and decision.reasons.dtype == np.int8
    asked = decision.routes == Route.ORACLE
    assert set(decision.routes.tolist()) <= {Route.SKIP, Route.ORACLE}
    assert (asked == (decision.reasons != Reason.NONE)).all()
    assert not decision.routes.flags.writeable


@pytest.mark.parametrize("name", GATES)
@pytest.mark.parametrize("bad", [[[0.1, 0.2]], [0.1, float("nan")], [float("inf")]])
def test_bad_utilities_are_refused(name: str, bad: list[Any]) -> None:
    with pytest.raises(ValueError, match="utilities must be"):
        GATES[name]().decide(bad)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: FixedThreshold(budget=0), "budget must be > 0"),
        (lambda: FixedThreshold(budget=1.5), "budget must be > 0"),
        (lambda: FixedThreshold(window=0), "window must be >= 1"),
        (lambda: FixedThreshold(float("nan")), "threshold must be finite"),
        (lambda: VariableUncertainty(threshold=0), "threshold must be > 0"),
        (lambda: VariableUncertainty(step=1), "step must be"),
        (lambda: RandomizedVariableUncertainty(delta=0), "delta must be > 0"),
        (lambda: Split(explore=1.5), "explore must be"),
        (lambda: QuantileBudget(tolerance_window=0), "tolerance_window must be"),
        (lambda: AutoLabelGate(target=1), "target must be"),
        (lambda: AutoLabelGate(audit_share=0), "audit_share must be"),
        (lambda: AutoLabelGate(min_audits=10, window=5), "min_audits must be"),
        (lambda: AutoLabelGate(threshold=1.5), "threshold must be"),
        (lambda: AutoLabelGate(level=1), "level must be"),
        (lambda: AutoLabelGate(method="hoeffding"), "unknown bound method"),  # type: ignore[arg-type]
    ],
)
def test_bad_settings_are_refused(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_variable_uncertainty_threshold_moves_as_zliobaite_describes() -> None:
    gate = VariableUncertainty(threshold=0.5, step=0.1, budget=1.0)
    gate.update(gate.decide([0.9]))
    assert gate.threshold == pytest.approx(0.55)  # asked: the threshold on utility grows
    gate.update(gate.decide([0.0]))
    assert gate.threshold == pytest.approx(0.495)  # skipped: it shrinks


def test_variable_uncertainty_asks_nothing_over_budget() -> None:
    gate = VariableUncertainty(threshold=0.01, budget=0.1, window=10)
    decision = gate.decide(np.ones(10))
    assert decision.routes.tolist() == [1] + [0] * 9
    gate.update(decision)
    assert gate.label_rate == 0.1


def test_split_explores_with_reason_explore() -> None:
    gate = Split(threshold=10.0, budget=1.0, explore=0.5, seed=0)
    reasons = gate.decide(np.zeros(400)).reasons
    assert set(reasons.tolist()) == {Reason.NONE, Reason.EXPLORE}
    assert 0.4 < (reasons == Reason.EXPLORE).mean() < 0.6


def test_quantile_budget_starts_from_a_set_threshold_until_its_window_refills() -> None:
    gate = QuantileBudget(budget=0.5, window=4, tolerance_window=1000)
    gate.set_threshold(0.95)
    decision = gate.decide([0.9, 0.9, 0.9, 0.9, 0.9])
    # the first three face about 0.95; with four utilities the 0.5 quantile (0.9) takes over
    assert decision.routes.tolist() == [0, 0, 0, 1, 1]


def upstream(routes: list[int]) -> Decision[Any]:
    codes = np.array(routes, dtype=np.int8)
    return Decision(codes, codes.copy(), None, 0)


@FAST
@given(confidences=st.lists(st.floats(0, 1), min_size=1, max_size=60), at=cuts)
def test_auto_label_batch_decides_as_one_by_one(confidences: list[float], at: list[int]) -> None:
    upstream_routes = [i % 2 for i in range(len(confidences))]

    def run_auto(batches: list[list[int]]) -> np.ndarray:
        gate = AutoLabelGate(min_audits=5, audit_share=0.3, threshold=0.5, seed=3)
        gate.observe([0.6] * 100, [True] * 100)
        routes = []
        for rows in batches:
            conf = [confidences[i] for i in rows]
            decision = gate.decide(conf, upstream([upstream_routes[i] for i in rows]))
            gate.update(decision)
            routes.append(decision.routes)
        return np.concatenate(routes)

    rows = list(range(len(confidences)))
    np.testing.assert_array_equal(run_auto(pieces(rows, at)), run_auto([[i] for i in rows]))


def test_auto_label_decide_changes_nothing() -> None:
    gate = AutoLabelGate(min_audits=5, audit_share=0.5, threshold=0.5, seed=0)
    gate.observe([0.9] * 300, [True] * 300)
    batch = np.linspace(0.5, 1.0, 50)
    first, second = gate.decide(batch, upstream([0] * 50)), gate.decide(batch, upstream([0] * 50))
    np.testing.assert_array_equal(first.routes, second.routes)
    gate.update(first)
    with pytest.raises(StreamalError, match="stale decision"):
        gate.update(second)


def explore_gate() -> ExploreGate:
    gate = ExploreGate(share=0.5, budget=0.4, audit_window=7, seed=5)
    gate.start_boost(1.0, 9, "drift-1")
    return gate


@FAST
@given(audits=st.lists(st.booleans(), min_size=1, max_size=60), at=cuts)
def test_exploration_batch_decides_as_one_by_one(audits: list[bool], at: list[int]) -> None:
    def walk(batches: list[list[bool]]) -> tuple[np.ndarray, float, int]:
        gate, routes = explore_gate(), []
        for batch in batches:
            decision = gate.decide(batch)
            gate.update(decision)
            routes.append(decision.routes)
        return np.concatenate(routes), gate.audit_rate, gate.boost_left

    batched, one_by_one = walk(pieces(audits, at)), walk([[a] for a in audits])
    np.testing.assert_array_equal(batched[0], one_by_one[0])
    assert batched[1] == pytest.approx(one_by_one[1]) and batched[2] == one_by_one[2]
    assert not batched[0][np.array(audits)].any()  # an audit is never also explored


def test_exploration_decide_changes_nothing_and_a_boost_starts_once() -> None:
    gate = explore_gate()
    first, second = gate.decide([False] * 50), gate.decide([False] * 50)
    np.testing.assert_array_equal(first.routes, second.routes)
    assert gate.boost_left == 9
    gate.update(first)
    assert gate.boost_left == 0
    gate.start_boost(1.0, 9, "drift-1")  # the same boost read again
    assert gate.boost_left == 0
    gate.start_boost(1.0, 9, "drift-2")
    assert gate.boost_left == 9
    with pytest.raises(StreamalError, match="stale decision"):
        gate.update(second)
