"""What a replica learns from its own audits: pauses on a shift, holds while answers are late."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import numpy as np

from streamal.gates import Route
from streamal.messages import AutoLabel, ExploreBoost, LabelRequest, Retraction, decode
from streamal.stream.audits import Audit, AuditLedger
from streamal.stream.router import Router
from streamal.transport import Envelope
from tests.stream.test_router import envelope, logits_of, predictor_for, settings


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def confident_router(
    clock: Clock, ask_retracted: bool = False, paused_audits: float = 0.5, **strategy: object
) -> Router:
    auto_label = {"audit_share": 0.05, "min_audits": 5000, "max_label_delay_s": 10.0}
    auto_label |= {"ask_retracted": ask_retracted, "paused_audits": paused_audits}
    configured = settings(budget=0.2, auto_label=auto_label, **strategy)
    model = predictor_for(configured)
    routing = Router(configured, model, clock)
    routing.use(model, {"auto_label": 0.9})
    return routing


def batch(rng: np.random.Generator, start: int, top: int) -> list[Envelope]:
    """64 samples the model predicts as class ``top`` with confidence about 0.95."""
    rows = []
    for i in range(64):
        p = np.full(3, 0.025)
        p[top] = 0.95
        features = np.array(logits_of(list(p))) + rng.normal(0, 0.05, 3)
        value = json.dumps({"id": f"s{start + i}", "features": features.tolist()}).encode()
        rows.append(envelope(value, start + i))
    return rows


def route(routing: Router, rows: list[Envelope]) -> list[LabelRequest]:
    plan = routing.plan(rows)
    routing.commit(plan)
    asked = [decode(LabelRequest, r.value) for r in plan.records if r.topic.endswith("requests")]
    return [r for r in asked if r.reason == "audit"]


def test_a_shift_pauses_auto_labels_until_audits_asked_since_clear_it() -> None:
    rng, clock = np.random.default_rng(0), Clock()
    routing = confident_router(clock)
    assert routing.auto_label is not None
    for b in range(40):  # class b, as it always was
        route(routing, batch(rng, 64 * b, top=1))
    assert routing.auto_label.held_back is None
    routing.learn([(r.id, "b") for r in route(routing, batch(rng, 64 * 40, top=1))])
    assert routing.auto_label.auto_labeling
    audits: list[LabelRequest] = []
    b = 41
    while routing.auto_label.held_back is None:  # the inputs move to class c's corner
        audits += route(routing, batch(rng, 64 * b, top=2))
        b += 1
        assert b < 50, "the shift was not seen within the recent window"
    # answers to audits asked before the pause do not end it
    routing.learn([(r.id, "c") for r in audits])
    assert routing.auto_label.held_back == "shift"
    since: list[LabelRequest] = []
    while len(since) < 250:  # the model is right about the new inputs: audits clear the pause
        plan = routing.plan(batch(rng, 64 * b, top=2))
        assert "auto_label" not in plan.routes  # held back meanwhile
        routing.commit(plan)
        since += [decode(LabelRequest, record.value) for record in plan.records]
        b += 1
    routing.learn([(r.id, "c") for r in since if r.reason == "audit"])
    assert routing.auto_label.held_back is None
    assert "auto_label" in routing.plan(batch(rng, 64 * b, top=2)).routes


def test_overdue_audit_answers_hold_auto_labels_back_until_they_come() -> None:
    rng, clock = np.random.default_rng(1), Clock()
    routing = confident_router(clock)
    assert routing.auto_label is not None
    audits = route(routing, batch(rng, 0, top=1))
    assert audits and routing.check_evidence() == 0
    clock.now = 11.0  # past max_label_delay_s without an answer
    assert routing.check_evidence() == len(audits)
    assert routing.auto_label.held_back == "stale"
    assert "auto_label" not in routing.plan(batch(rng, 64, top=1)).routes
    routing.learn([(r.id, "b") for r in audits])
    assert routing.check_evidence() == 0 and routing.auto_label.held_back is None


def test_audits_of_an_aborted_batch_are_not_remembered() -> None:
    routing = confident_router(Clock())
    routing.plan(batch(np.random.default_rng(2), 0, top=1))  # planned, never committed
    assert len(routing.ledger) == 0


def test_an_audit_unanswered_for_long_is_forgotten_as_lost() -> None:
    ledger = AuditLedger()
    ledger.record("s1", Audit("a", 0.99, asked_at=0.0, epoch=0))
    ledger.record("s2", Audit("a", 0.99, asked_at=20.0, epoch=0))
    assert ledger.overdue(now=31.0, max_delay_s=10.0) == 1  # s1 forgotten, s2 late
    assert (ledger.lost, len(ledger)) == (1, 1)
    assert ledger.answer("s1", "a") is None


def serve_confident(
    routing: Router, rng: np.random.Generator, clock: Clock, batches: int
) -> tuple[list[tuple[float, str]], list[tuple[float, LabelRequest]]]:
    """Route ``batches`` confident batches, batch ``b`` at clock time ``b``: (clock, sample id)
    of every auto-label issued, and (clock, request) of every audit asked."""
    issued: list[tuple[float, str]] = []
    audits: list[tuple[float, LabelRequest]] = []
    for b in range(batches):
        clock.now = float(b)
        plan = routing.plan(batch(rng, 64 * b, top=1))
        routing.commit(plan)
        for record in plan.records:
            if record.topic == "auto-labels":
                issued.append((clock.now, decode(AutoLabel, record.value).id))
            elif (request := decode(LabelRequest, record.value)).reason == "audit":
                audits.append((clock.now, request))
    return issued, audits


def test_audits_that_turn_wrong_retract_the_auto_labels_since_the_last_right_one() -> None:
    rng, clock = np.random.default_rng(3), Clock()
    routing = confident_router(clock)
    assert routing.auto_label is not None
    issued, audits = serve_confident(routing, rng, clock, 30)
    # the concept flipped at batch 20: the audits before are right, those since wrong
    routing.learn([(r.id, "b" if at < 20 else "a") for at, r in audits])
    assert routing.auto_label.held_back == "audits"
    last_right = max(at for at, _ in audits if at < 20)
    plan = routing.plan(batch(rng, 64 * 30, top=1))
    retractions = [decode(Retraction, r.value) for r in plan.records if r.topic.endswith("ions")]
    expected = [sample_id for at, sample_id in issued if at >= last_right]
    assert [r.id for r in retractions] == expected and plan.retracted == len(expected)
    assert {r.label for r in retractions} == {"b"}
    # an aborted batch carries them again; once committed, they are gone
    again = routing.plan(batch(rng, 64 * 30, top=1))
    assert again.records[: len(expected)] == plan.records[: len(expected)]
    routing.commit(again)
    assert routing.plan(batch(rng, 64 * 31, top=1)).retracted == 0


def issue(routing: Router, rng: np.random.Generator, batches: int) -> list[AutoLabel]:
    """Route ``batches`` confident batches; the auto-labels they issued, in order."""
    issued = []
    for b in range(batches):
        plan = routing.plan(batch(rng, 64 * b, top=1))
        routing.commit(plan)
        issued += [decode(AutoLabel, r.value) for r in plan.records if r.topic == "auto-labels"]
    return issued


def test_a_drift_the_trainer_dates_retracts_what_was_issued_since() -> None:
    rng, clock = np.random.default_rng(5), Clock()
    routing = confident_router(clock)
    issued = issue(routing, rng, 20)
    since = issued[len(issued) // 2].labeled_at  # the trainer's estimate of the new concept
    boost = ExploreBoost(share=0.5, samples=100, id="d1", started_at=since, drift_since=since)
    routing.use(routing.predictor, {"auto_label": 0.9}, boost)
    plan = routing.plan(batch(rng, 64 * 20, top=1))
    retracted = [decode(Retraction, r.value).id for r in plan.records if r.topic.endswith("ions")]
    assert retracted == [a.id for a in issued if a.labeled_at >= since]
    assert 0 < len(retracted) < len(issued)


def test_samples_retracted_on_their_audits_are_asked_again_in_the_place_of_uncertain_picks() -> (
    None
):
    rng, clock = np.random.default_rng(6), Clock()
    routing = confident_router(clock, ask_retracted=True, gate={"name": "quantile"})
    issued, audits = serve_confident(routing, rng, clock, 30)
    routing.learn([(r.id, "b" if at < 20 else "a") for at, r in audits])  # wrong from 20 on
    last_right = max(at for at, _ in audits if at < 20)
    retracted = [sample_id for at, sample_id in issued if at >= last_right]
    asked_again: list[str] = []
    for b in range(30, 90):
        clock.now = float(b)
        rows = batch(rng, 64 * b, top=1)
        plan = routing.plan(rows)
        replayed = routing.plan(rows)  # an aborted batch is planned to the same requests
        assert [(r.topic, r.key) for r in replayed.records] == [
            (r.topic, r.key) for r in plan.records
        ]
        routing.commit(plan)
        requests = [decode(LabelRequest, r.value) for r in plan.records if "requests" in r.topic]
        again = [r.id for r in requests if r.reason == "retracted"]
        uncertain = [r for r in requests if r.reason == "uncertain"]
        assert len(again) <= len(uncertain) + 1  # at most half of the gate's uncertain picks
        assert plan.routes["oracle"] == len(requests) - len(again)  # the batch's own samples
        assert plan.gate is not None
        # each re-ask took the place of one of the budget gate's picks the allowance granted
        others = sum(r.reason in ("audit", "explore") for r in requests)
        granted = int((plan.gate.routes == Route.ORACLE).sum()) - plan.over_budget["uncertain"]
        assert len(requests) == others + granted
        asked_again += again
    assert len(asked_again) > 150  # newest first, each once, until the queue is through
    assert asked_again == list(reversed(retracted))[: len(asked_again)]


def test_what_a_dated_drift_retracts_is_not_asked_again() -> None:
    rng, clock = np.random.default_rng(7), Clock()
    routing = confident_router(clock, ask_retracted=True, gate={"name": "quantile"})
    issued = issue(routing, rng, 20)
    since = issued[len(issued) // 2].labeled_at  # dated early: it may reach the old concept
    boost = ExploreBoost(share=0.0, samples=1, id="d1", started_at=since, drift_since=since)
    routing.use(routing.predictor, {}, boost)
    for b in range(20, 40):
        plan = routing.plan(batch(rng, 64 * b, top=1))
        routing.commit(plan)
        requests = [decode(LabelRequest, r.value) for r in plan.records if "requests" in r.topic]
        assert not [r for r in requests if r.reason == "retracted"]


def test_audits_and_exploration_are_paid_from_the_one_budget() -> None:
    """Held back after a drift, audits drawn at random to take the whole budget are at times
    ahead of it, and exploration and the budget gate want their share: every request is paid
    from one allowance, never ahead of what the samples seen earned."""
    rng, clock = np.random.default_rng(3), Clock()
    routing = confident_router(clock, paused_audits=1.0, explore=0.2)
    assert routing.auto_label is not None
    started = datetime(2026, 1, 1, tzinfo=UTC)
    boost = ExploreBoost(share=1.0, samples=100_000, id="d1", started_at=started)
    routing.use(routing.predictor, {"auto_label": 0.9}, boost)
    routing.auto_label.pause("shift")
    reasons: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    batches = 40
    for b in range(batches):
        plan = routing.plan(batch(rng, 64 * b, top=1))
        routing.commit(plan)
        requests = [r for r in plan.records if r.topic.endswith("requests")]
        reasons.update(decode(LabelRequest, r.value).reason for r in requests)
        refused += plan.over_budget
        # never ahead of what was earned (a fresh account holds one label: the peers' protocol)
        assert sum(reasons.values()) <= 0.2 * 64 * (b + 1) + 1
    assert sum(reasons.values()) >= 0.9 * 0.2 * 64 * batches  # and the budget is used
    assert reasons["audit"] > 0.8 * sum(reasons.values())
    assert refused["audit"] > 0, refused  # the allowance held them back


def test_a_replica_audits_a_quarter_as_many_while_the_trainer_finds_the_target_out_of_reach() -> (
    None
):
    # no threshold in either announcement: candidates are only audited, at the full share, or
    # at a quarter of it when the trainer's audits put every threshold out of reach
    audits = {}
    for announced in ({}, {"auto_label_out_of_reach": 1.0}):
        routing = confident_router(Clock())
        routing.use(routing.predictor, announced)
        rng = np.random.default_rng(0)
        audits[bool(announced)] = sum(len(route(routing, batch(rng, 64 * i, 0))) for i in range(60))
    assert 150 <= audits[False] <= 240  # 5% of 3,840 candidates: 192
    assert 0.15 <= audits[True] / audits[False] <= 0.35
