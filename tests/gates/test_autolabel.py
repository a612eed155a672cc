"""Auto-labeling: precision kept on a calibrated stream, bounds and threshold selection."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.stats import binom

from streamal.errors import StreamalError
from streamal.gates import (
    AutoLabelGate,
    Decision,
    Reason,
    Route,
    VariableUncertainty,
    current_evidence,
    precision_lower_bound,
    select_threshold,
)


def skipped(n: int) -> Decision[Any]:
    """An upstream decision that skips all ``n`` samples."""
    codes = np.zeros(n, dtype=np.int8)
    return Decision(codes, codes.copy(), None, 0)


def test_nothing_is_auto_labeled_before_enough_audits() -> None:
    gate = AutoLabelGate(min_audits=50, audit_share=0.2, threshold=0.5, seed=0)
    gate.observe([0.99] * 49, [True] * 49)
    decision = gate.decide(np.full(500, 0.99), skipped(500))
    assert Route.AUTO_LABEL not in decision.routes
    audited = decision.reasons == Reason.AUDIT
    assert (decision.routes[audited] == Route.ORACLE).all()
    assert 0.15 < audited.mean() < 0.25
    assert not gate.active and np.isfinite(gate.precision_lower_bound)


def test_only_skipped_confident_samples_are_candidates() -> None:
    gate = AutoLabelGate(min_audits=1, audit_share=0.01, threshold=0.9, seed=0)
    gate.observe([0.95] * 500, [True] * 500)
    codes = np.array([Route.ORACLE, Route.SKIP, Route.SKIP], dtype=np.int8)
    reasons = np.array([Reason.UNCERTAIN, Reason.NONE, Reason.NONE], dtype=np.int8)
    decision = gate.decide([0.99, 0.99, 0.5], Decision(codes, reasons, None, 0))
    assert decision.routes.tolist() == [Route.ORACLE, Route.AUTO_LABEL, Route.SKIP]
    assert decision.reasons.tolist() == [Reason.UNCERTAIN, Reason.NONE, Reason.NONE]


def test_auto_labels_keep_their_precision_on_a_calibrated_stream() -> None:
    """Confidence c is right with probability c; audits come back after each batch."""
    rng = np.random.default_rng(7)
    target = 0.98
    budget_gate = VariableUncertainty(budget=0.1)
    gate = AutoLabelGate(target=target, audit_share=0.1, min_audits=200, threshold=0.9, seed=1)
    right_auto = total_auto = 0
    for _ in range(60):
        confidence = 0.5 + 0.5 * rng.beta(8, 1, 500)
        correct = rng.random(500) < confidence
        upstream = budget_gate.decide(1 - confidence)
        budget_gate.update(upstream)
        decision = gate.decide(confidence, upstream)
        gate.update(decision)
        auto = decision.routes == Route.AUTO_LABEL
        right_auto += int(correct[auto].sum())
        total_auto += int(auto.sum())
        audited = decision.reasons == Reason.AUDIT
        gate.observe(confidence[audited], correct[audited])
    assert total_auto > 1_000
    assert right_auto / total_auto >= target
    assert gate.active and gate.precision_lower_bound >= target


def test_a_model_below_target_never_auto_labels() -> None:
    gate = AutoLabelGate(target=0.98, min_audits=100, threshold=0.5, seed=0)
    gate.observe(np.linspace(0.9, 1.0, 1000), np.arange(1000) % 10 != 0)  # 90% right
    assert not gate.active
    assert Route.AUTO_LABEL not in gate.decide(np.full(100, 0.99), skipped(100)).routes


def test_select_threshold_picks_the_lowest_that_meets_the_target() -> None:
    confidences = np.r_[np.full(400, 0.99), np.full(400, 0.95), np.full(400, 0.9)]
    correct = np.r_[np.ones(400), np.ones(400), np.arange(400) % 5 != 0].astype(bool)
    assert select_threshold(confidences, correct) == 0.95
    assert select_threshold(confidences, correct, target=0.5) == 0.9
    assert select_threshold(confidences[:10], correct[:10]) is None
    assert select_threshold([], []) is None


def test_select_threshold_refuses_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="1-D alike"):
        select_threshold([0.9, 0.8], [True])


@pytest.mark.parametrize("method", ["wilson", "clopper_pearson"])
def test_lower_bounds_are_below_the_estimate_and_grow_with_evidence(method: Any) -> None:
    k = np.array([9, 90, 900])
    n = np.array([10, 100, 1000])
    bounds = precision_lower_bound(k, n, method=method)
    assert (bounds < k / n).all()
    assert (np.diff(bounds) > 0).all()


def test_clopper_pearson_is_exact() -> None:
    k, n, level = 45, 50, 0.95
    bound = precision_lower_bound(k, n, method="clopper_pearson", level=level)
    assert binom.sf(k - 1, n, bound) == pytest.approx(1 - level)


def test_wilson_matches_its_closed_form_at_full_success() -> None:
    z = 1.6448536269514722  # the one-sided 95% normal quantile
    assert precision_lower_bound(50, 50) == pytest.approx(1 / (1 + z**2 / 50))


def test_bad_audit_inputs_are_refused() -> None:
    gate = AutoLabelGate()
    with pytest.raises(ValueError, match="outcomes"):
        gate.observe([0.9, 0.8], [True])
    with pytest.raises(ValueError, match="routes"):
        gate.decide([0.9, 0.8], skipped(3))


def test_set_active_adopts_the_trainers_threshold_for_a_new_model() -> None:
    gate = AutoLabelGate(min_audits=100, audit_share=0.01, seed=0)
    gate.observe([0.99] * 50, [True] * 50)
    pending = gate.decide([0.97], skipped(1))
    gate.set_active(0.96)
    assert (gate.active, gate.threshold, gate.audits) == (True, 0.96, 0)
    assert gate.decide([0.97, 0.95], skipped(2)).routes.tolist() == [Route.AUTO_LABEL, Route.SKIP]
    gate.observe([0.97] * 10, [False] * 10)  # too few new audits to overrule the trainer
    assert gate.active
    gate.set_active(None)
    assert not gate.active and gate.threshold == 0.96
    with pytest.raises(StreamalError, match="stale decision"):
        gate.update(pending)
    with pytest.raises(ValueError, match="threshold must be"):
        gate.set_active(1.5)


def trusted_gate(**kwargs: Any) -> AutoLabelGate:
    """A gate auto-labeling at 0.9 after 300 right audits."""
    gate = AutoLabelGate(min_audits=100, audit_share=0.05, threshold=0.9, seed=3, **kwargs)
    gate.observe([0.95] * 300, [True] * 300)
    assert gate.auto_labeling
    return gate


def test_a_pause_holds_auto_labels_back_and_audits_more_from_the_budget() -> None:
    gate = trusted_gate(budget=0.1, paused_audits=0.5)
    gate.update(gate.decide(np.full(2000, 0.95), skipped(2000)))  # the candidate rate: all
    gate.pause("shift")
    assert (gate.held_back, gate.auto_labeling, gate.active) == ("shift", False, True)
    decision = gate.decide(np.full(4000, 0.95), skipped(4000))
    assert Route.AUTO_LABEL not in decision.routes
    # audits take half the budget (0.05 of the samples, every one a candidate), not more
    assert 0.04 < (decision.reasons == Reason.AUDIT).mean() < 0.06


def test_only_audits_asked_since_the_pause_end_it() -> None:
    gate = trusted_gate()
    before = gate.epoch
    gate.pause("shift")
    gate.observe([0.95] * 400, [True] * 400, [before] * 400)  # asked before: no evidence
    assert gate.held_back == "shift"
    gate.observe([0.95] * 100, [True] * 100, [gate.epoch] * 100)  # bound 0.974 < 0.98
    assert gate.held_back == "shift"
    gate.observe([0.95] * 100, [True] * 100, [gate.epoch] * 100)  # 200 right: bound 0.987
    assert gate.held_back is None and gate.auto_labeling


def test_wrong_audits_since_the_pause_keep_it_and_a_new_pause_starts_over() -> None:
    gate = trusted_gate()
    gate.pause("shift")
    gate.observe([0.95] * 300, [True, False] * 150, [gate.epoch] * 300)
    assert gate.held_back == "shift"
    first = gate.epoch
    gate.pause("shift")
    gate.observe([0.95] * 150, [True] * 150, [first] * 150)  # the first pause's audits
    assert gate.held_back == "shift" and gate.epoch == first + 1


def test_late_audits_hold_auto_labels_back_until_they_came() -> None:
    gate = trusted_gate()
    gate.set_stale(True)
    assert gate.held_back == "stale"
    assert Route.AUTO_LABEL not in gate.decide(np.full(100, 0.95), skipped(100)).routes
    gate.set_stale(False)
    assert gate.held_back is None
    assert Route.AUTO_LABEL in gate.decide(np.full(100, 0.95), skipped(100)).routes


def test_audits_that_turn_wrong_pause_auto_labels_and_the_target_rarely_does() -> None:
    rng = np.random.default_rng(8)
    gate = AutoLabelGate(min_audits=5000, seed=3)  # the trainer's threshold, kept
    gate.set_active(0.9)
    for _ in range(90):  # 4,500 audits right at the target's rate: no pause
        gate.observe([0.95] * 50, rng.random(50) < 0.98, [gate.epoch] * 50)
    assert gate.held_back is None
    gate.observe([0.95] * 100, [True] * 100, [gate.epoch] * 100)  # the CUSUM back at 0
    gate.observe([0.95] * 4, [False] * 4, [gate.epoch] * 4)
    assert gate.held_back is None  # four wrong in a row could still be chance
    gate.observe([0.95], [False], [gate.epoch])
    assert gate.held_back == "audits" and not gate.auto_labeling


def test_only_audits_asked_while_auto_labeling_can_pause_it() -> None:
    gate = AutoLabelGate(min_audits=5000, threshold=0.9, seed=3)
    gate.observe([0.95] * 20, [False] * 20, [gate.epoch] * 20, None, [False] * 20)
    assert gate.held_back is None  # they vouched for no auto-label: the trainer's evidence decides
    went_wrong = gate.observe([0.95] * 5, [False] * 5, [0] * 5, [7, 8, 9, 10, 11], [True] * 5)
    assert gate.held_back == "audits" and went_wrong == 7


def test_fewer_audits_while_their_bound_is_far_above_the_target() -> None:
    def audit_rate(gate: AutoLabelGate) -> float:
        decision = gate.decide(np.full(20_000, 0.99), skipped(20_000))
        return float((decision.reasons == Reason.AUDIT).mean())

    gate = AutoLabelGate(min_audits=10, audit_share=0.1, threshold=0.9, seed=2)
    gate.observe([0.95] * 100, [True] * 100)  # a bound near 0.96: below the target
    assert gate.precision_lower_bound < gate.target
    assert 0.09 < audit_rate(gate) < 0.11  # the full share
    gate.observe([0.95] * 900, [True] * 900)  # 1,000 right: a bound of 0.997
    assert (1 - gate.precision_lower_bound) / (1 - gate.target) < 0.25
    assert 0.023 < audit_rate(gate) < 0.027  # a quarter of it, the least
    gate.observe([0.95] * 6, [False] * 6)  # errors: the bound comes down, audits go up
    room = (1 - gate.precision_lower_bound) / (1 - gate.target)
    assert 0.25 < room < 1
    assert abs(audit_rate(gate) - 0.1 * room) < 0.006
    gate.set_active(0.95)  # a new model, no bound known: its audits start over, in full
    assert 0.09 < audit_rate(gate) < 0.11
    gate.set_active(0.95, bound=0.999)  # the trainer's bound on the audits as served
    assert 0.023 < audit_rate(gate) < 0.027


def test_fewer_audits_while_even_the_most_confident_ones_are_right_too_seldom() -> None:
    # answers that disagree with the model 6% of the time at every confidence (noisy
    # annotators, or a concept it cannot learn better): no threshold can ever vouch for 98%,
    # so audits only keep watch, at a quarter of their share, until they come right
    def audit_rate(gate: AutoLabelGate) -> float:
        decision = gate.decide(np.full(20_000, 0.99), skipped(20_000))
        return float((decision.reasons == Reason.AUDIT).mean())

    rng = np.random.default_rng(3)
    gate = AutoLabelGate(min_audits=200, audit_share=0.1, threshold=0.9, seed=2)
    confident = 0.9 + 0.1 * rng.random(400)
    gate.observe(confident[:100], rng.random(100) > 0.06)  # too few to tell
    assert 0.09 < audit_rate(gate) < 0.11
    gate.observe(confident[100:], rng.random(300) > 0.06)
    assert not gate.active and 0.023 < audit_rate(gate) < 0.027
    gate.observe(np.full(600, 0.99), np.ones(600, dtype=bool))  # a better model's audits
    assert gate.active and gate.threshold >= 0.99
    gate.set_active(None, unreachable=True)  # the trainer found every threshold out of reach
    assert 0.023 < audit_rate(gate) < 0.027
    gate.set_active(None)  # a new model's audits start over, in full
    assert 0.09 < audit_rate(gate) < 0.11
    calibrated = AutoLabelGate(min_audits=200, audit_share=0.1, threshold=0.9, seed=2)
    sure = 0.9 + 0.1 * rng.random(2000)
    calibrated.observe(sure, rng.random(2000) < sure)  # right as often as it is sure
    assert calibrated.active  # the most confident are right often enough: a high threshold
    assert 0.09 < audit_rate(calibrated) < 0.11  # the full share (its bound is near the target)


@pytest.mark.parametrize(("precision", "auto_labels"), [(1.0, True), (0.96, False)])
def test_declared_answer_noise_is_read_through_not_held_against_the_model(
    precision: float, auto_labels: bool
) -> None:
    rng = np.random.default_rng(4)
    right = rng.random(3000) < precision  # the model, against the truth
    flipped = rng.random(3000) < 0.02  # 2% of the answers are wrong (never the model's class)
    agrees = right & ~flipped
    trusting = AutoLabelGate(min_audits=200, threshold=0.9, seed=0)
    trusting.observe(np.full(3000, 0.95), agrees)
    assert not trusting.active  # 98% agreement can never show 98% precision
    declared = AutoLabelGate(min_audits=200, threshold=0.9, noise=0.02, seed=0)
    declared.observe(np.full(3000, 0.95), agrees)
    assert declared.active is auto_labels
    if auto_labels:  # the CUSUM expects the answers' errors: the noise alone pauses nothing
        declared.set_active(0.95)
        at = np.arange(3000.0)
        assert declared.observe(np.full(3000, 0.95), agrees, [0] * 3000, at) is None
        assert declared.held_back is None and declared.auto_labeling


def test_audits_of_weaker_models_are_forgotten_only_when_the_ones_since_are_better() -> None:
    rng = np.random.default_rng(3)
    weak = rng.random(100) < 0.9
    gate = AutoLabelGate(min_audits=100, seed=0)
    gate.observe([0.95] * 100, weak)
    gate.observe([0.95] * 200, [True] * 200)
    assert gate.active and gate.precision_lower_bound >= 0.98  # on the 200 right ones alone
    steady = AutoLabelGate(min_audits=100, seed=0)  # errors spread all along: nothing to forget
    steady.observe([0.95] * 300, np.concatenate([weak, [True] * 200])[rng.permutation(300)])
    assert not steady.active


def test_forgetting_earlier_audits_does_not_certify_a_model_below_the_target() -> None:
    """Looked at after every 25 audits, as the trainer does with each model, a model right 97%
    of the time (under the 0.98 target) is certified about as rarely with the forgetting as
    without it: a split is taken only where the errors are significantly more often early."""
    rng = np.random.default_rng(4)
    streams = rng.random((200, 1000)) < 0.97

    def certified(forget: bool) -> float:
        hits = 0
        for right in streams:
            for n in range(100, 1001, 25):
                start = current_evidence(right[:n], fewest=100) if forget else 0
                kept = right[start:n]
                if len(kept) >= 100 and precision_lower_bound(kept.sum(), len(kept)) >= 0.98:
                    hits += 1
                    break
        return hits / len(streams)

    with_forgetting, without = certified(forget=True), certified(forget=False)
    assert with_forgetting <= without + 0.03
