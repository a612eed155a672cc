"""The router on one batch: each sample lands where its utility says; bad ones dead-letter."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

from streamal.config import Settings
from streamal.errors import ConfigError
from streamal.messages import AutoLabel, DeadLetter, ExploreBoost, LabelRequest, decode, now
from streamal.model import FeatureModel, Predictor
from streamal.stream.router import Plan, Router
from streamal.transport import Envelope
from tests.gates.test_budget import busiest_stretch

CLASSES = ["a", "b", "c"]


def settings(**strategy: object) -> Settings:
    base = {
        "score": "least_confidence",
        "budget": 1.0,
        "gate": {"name": "fixed", "threshold": 0.3},
        "explore": 0.0,
        "auto_label": {"audit_share": 1e-9, "min_audits": 1},
    }
    base.update(strategy)
    return Settings(
        model={"n_features": 3, "classes": CLASSES, "module": f"{__name__}:identity"},
        strategy=base,
        serve={"max_record_bytes": 4096},
    )


def identity(n_features: int, n_classes: int) -> nn.Module:
    """A user's ``model.module`` that passes its features on as logits."""
    return nn.Identity()


def predictor_for(configured: Settings, version: int = 1) -> Predictor:
    return Predictor(FeatureModel(configured.model), version)


def logits_of(probabilities: list[float]) -> list[float]:
    """Features that an identity model turns into exactly these probabilities."""
    return [math.log(p) for p in probabilities]


def envelope(value: bytes | None, offset: int) -> Envelope:
    return Envelope("samples", 0, offset, None, value, (), 0)


def sample(sample_id: str, probabilities: list[float]) -> bytes:
    return json.dumps({"id": sample_id, "features": logits_of(probabilities)}).encode()


def boost(share: float, samples: int) -> ExploreBoost:
    return ExploreBoost(share=share, samples=samples, id="drift-1", started_at=now())


def router(version: int = 1, **strategy: object) -> Router:
    configured = settings(**strategy)
    model = predictor_for(configured, version)
    routing = Router(configured, model)
    routing.use(model, {"auto_label": 0.9})
    return routing


def test_each_sample_lands_where_its_utility_says() -> None:
    batch = [
        envelope(sample("unsure", [0.5, 0.3, 0.2]), 0),  # utility 0.5 >= 0.3: ask
        envelope(sample("sure", [0.03, 0.95, 0.02]), 1),  # utility 0.05, confidence 0.95: auto
        envelope(sample("meh", [0.8, 0.1, 0.1]), 2),  # utility 0.2, confidence 0.8: skip
    ]
    plan = router().plan(batch)
    assert plan.routes == {"oracle": 1, "auto_label": 1, "skip": 1}
    request, auto = plan.records
    assert request.topic == "label-requests" and request.key == b"unsure"
    asked = decode(LabelRequest, request.value)
    assert asked.reason == "uncertain" and asked.model_version == 1
    assert asked.utility == pytest.approx(0.5, abs=1e-6)
    assert [g.label for g in asked.prediction] == ["a", "b", "c"]
    assert asked.prediction[0].p == pytest.approx(0.5, abs=1e-6)
    labeled = decode(AutoLabel, auto.value)
    assert auto.topic == "auto-labels"
    assert (labeled.id, labeled.label) == ("sure", "b")
    assert labeled.confidence == pytest.approx(0.95, abs=1e-6)


def test_plan_changes_no_gate_until_committed() -> None:
    routing = router(gate={"name": "variable_uncertainty", "threshold": 0.3})
    batch = [envelope(sample(f"s{i}", [0.5, 0.3, 0.2]), i) for i in range(5)]
    before = routing.gate.threshold
    first, second = routing.plan(batch), routing.plan(batch)
    assert [r.value for r in first.records] != [] and first.routes == second.routes
    assert routing.gate.threshold == before
    routing.commit(first)
    assert routing.gate.threshold > before  # five queries raised the utility threshold


def test_an_untrained_model_explores_at_the_budget_and_auto_labels_nothing() -> None:
    routing = router(version=0, budget=0.2, gate={"name": "variable_uncertainty"})
    rng = np.random.default_rng(0)
    asked = 0
    for b in range(20):
        batch = [
            envelope(sample(f"{b}-{i}", list(rng.dirichlet([1, 1, 1]))), i) for i in range(100)
        ]
        plan = routing.plan(batch)
        routing.commit(plan)
        reasons = {decode(LabelRequest, r.value).reason for r in plan.records}
        assert reasons <= {"explore"}
        assert plan.routes["auto_label"] == 0
        asked += plan.routes["oracle"]
    assert abs(asked / 2000 - 0.2) < 0.03


def route_random_batches(routing: Router, batches: int, seed: int = 0) -> list[LabelRequest]:
    """Route ``batches`` of 100 samples with random probabilities; the requests, in order."""
    rng = np.random.default_rng(seed)
    requests = []
    for b in range(batches):
        probabilities = rng.dirichlet([1, 1, 1], size=100)
        plan = routing.plan(
            [envelope(sample(f"{b}-{i}", list(p)), i) for i, p in enumerate(probabilities)]
        )
        routing.commit(plan)
        requests += [
            decode(LabelRequest, r.value) for r in plan.records if r.topic == "label-requests"
        ]
    return requests


def test_a_share_of_the_budget_is_asked_at_random_and_the_gate_asks_fewer() -> None:
    quantile = {"name": "quantile"}
    routing = router(budget=0.2, gate=quantile, explore=0.25, auto_label={"enabled": False})
    requests = route_random_batches(routing, 40)
    explored = [r.utility for r in requests if r.reason == "explore"]
    uncertain = [r.utility for r in requests if r.reason == "uncertain"]
    assert abs(len(explored) / 4000 - 0.25 * 0.2) < 0.01
    assert abs(len(requests) / 4000 - 0.2) < 0.02  # one budget: the gate asked fewer
    assert np.mean(explored) < np.mean(uncertain) - 0.1  # random picks: not the uncertain ones
    everything = 1 - np.random.default_rng(0).dirichlet([1, 1, 1], size=4000).max(axis=1)
    assert abs(np.mean(explored) - everything.mean()) < 0.03  # an unbiased sample


def test_an_announced_explore_share_holds_until_a_version_comes_without_one() -> None:
    quantile = {"name": "quantile"}
    routing = router(budget=0.2, gate=quantile, explore=0.25, auto_label={"enabled": False})
    routing.use(routing.predictor, {"explore": 0.75})  # random answers surprised the model
    explored = [r for r in route_random_batches(routing, 40) if r.reason == "explore"]
    assert abs(len(explored) / 4000 - 0.75 * 0.2) < 0.015
    routing.use(routing.predictor, {})  # none announced: the configured share again
    assert routing.explore.threshold == 0.25


def test_a_drift_boost_asks_its_share_at_random_for_its_samples() -> None:
    routing = router(budget=0.2, gate={"name": "quantile"}, auto_label={"enabled": False})
    routing.use(routing.predictor, {}, boost(1.0, 2000))
    requests = route_random_batches(routing, 40)
    boosted = [r for r in requests if int(r.id.split("-")[0]) < 20]
    after = [r for r in requests if int(r.id.split("-")[0]) >= 20]
    assert sum(r.reason == "explore" for r in boosted) / len(boosted) > 0.9
    assert {r.reason for r in after} == {"uncertain"}  # explore 0: none at random afterwards
    assert abs(len(requests) / 4000 - 0.2) < 0.02


def test_a_drift_boost_asks_only_what_the_audits_leave_of_the_budget() -> None:
    audits = {"audit_share": 0.1, "min_audits": 1}
    routing = router(budget=0.2, gate={"name": "quantile"}, auto_label=audits)
    routing.use(routing.predictor, {"auto_label": 0.5}, boost(1.0, 4000))
    requests = route_random_batches(routing, 40)
    reasons = Counter(r.reason for r in requests)
    assert reasons["audit"] / 4000 > 0.03  # audits go on during the boost
    assert abs(len(requests) / 4000 - 0.2) < 0.01  # one budget for both


def test_the_random_utility_asks_for_exploration() -> None:
    routing = router(budget=0.2, score="random", gate={"name": "quantile"}, explore=0.5)
    requests = route_random_batches(routing, 10)
    assert requests and {r.reason for r in requests} <= {"explore", "audit"}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{oops", "invalid JSON"),
        (b'{"features": [0, 0, 0]}', "id: required field is missing"),
        (b'{"id": "x", "features": [0, 0]}', "features: expected 3 values (got 2)"),
        (b'{"id": "x", "features": [0, NaN, 0]}', "features.1: must be a finite number"),
        (b'{"id": "x", "features": [0, Infinity, 0]}', "features.1: must be a finite number"),
        (b'{"id": "x", "payload": {"text": "hi"}}', "no featurizer configured (model.featurizer)"),
        (b'{"id": "x", "features": [0, 0, 0], "pad": "' + b"x" * 5000 + b'"}', "record too large"),
        (b'{"id": ["x"], "features": [0, 0, 0]}', "id: must be a string"),
        (b'{"id": "x", "features": "0,0,0"}', "features: must be a list"),
        (b'{"id": "x", "features": [0, 1e308, 0]}', "features.1: must be a finite float32 number"),
        (b'{"id": "x", "features": [0, "1", 0]}', "features.1: must be a number (got '1')"),
        (None, "null value (tombstone): not a sample"),
    ],
)
def test_bad_input_goes_to_dead_letter_and_the_next_sample_is_routed(
    value: bytes | None, reason: str
) -> None:
    batch = [envelope(value, 7), envelope(sample("good", [0.5, 0.3, 0.2]), 8)]
    plan = router().plan(batch)
    dead, routed = plan.records
    assert dead.topic == "dead-letter"
    letter = decode(DeadLetter, dead.value)
    assert reason in letter.error
    assert (letter.topic, letter.partition, letter.offset) == ("samples", 0, 7)
    assert bool(letter.original) == (value is not None) and routed.key == b"good"
    assert plan.routes == {"dead_letter": 1, "oracle": 1}


def test_mc_dropout_scores_use_stochastic_passes() -> None:
    config = settings(score="bald", gate={"name": "fixed", "threshold": 0.0}).model_dump()
    config["model"] |= {"module": None, "hidden": [16], "dropout": 0.5}  # the default MLP
    configured = Settings(**config)
    routing = Router(configured, predictor_for(configured))
    plan = routing.plan([envelope(sample(f"s{i}", [0.4, 0.3, 0.3]), i) for i in range(4)])
    utilities = [decode(LabelRequest, r.value).utility for r in plan.records]
    assert len(utilities) == 4 and all(u > 0 for u in utilities)  # BALD > 0 needs varied passes


def words_to_features(payloads: list[object]) -> list[list[float]]:
    """A user featurizer: three counts from a text payload; fails on anything else."""
    rows = []
    for payload in payloads:
        text = payload["text"]  # type: ignore[index]
        rows.append([float(len(text)), float(text.count(" ")), float(text.count("!"))])
    return rows


def test_payloads_go_through_the_configured_featurizer_and_its_failures_dead_letter() -> None:
    config = settings().model_dump(mode="json")
    config["model"]["featurizer"] = "tests.stream.test_router:words_to_features"
    configured = Settings(**config)
    model = predictor_for(configured)
    routing = Router(configured, model)
    routing.use(model, {"auto_label": 0.9})
    batch = [
        envelope(b'{"id": "t1", "payload": {"text": "hi there!"}}', 0),
        envelope(b'{"id": "t2", "payload": ["not", "a", "mapping"]}', 1),
        envelope(sample("f1", [0.5, 0.3, 0.2]), 2),  # features still work beside payloads
    ]
    plan = routing.plan(batch)
    assert plan.routes["dead_letter"] == 1
    letter = next(decode(DeadLetter, r.value) for r in plan.records if r.topic == "dead-letter")
    assert letter.offset == 1 and letter.error.startswith("featurizer: ")
    routed = sorted(r.key for r in plan.records if r.topic != "dead-letter")
    assert routed == [b"f1", b"t1"]
    auto = next(decode(AutoLabel, r.value) for r in plan.records if r.topic == "auto-labels")
    assert (auto.id, auto.label) == ("t1", "a")  # logits [9, 1, 1] from "hi there!"


class Fragile(nn.Module):
    """Identity, except NaN for a sample whose first feature is 7, and for 8 under dropout
    (so its probabilities are finite and its MC-dropout utility is not)."""

    def __init__(self) -> None:
        super().__init__()
        self.dropout = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nan = (x[:, 0] == 7) | ((x[:, 0] == 8) & self.dropout.training)
        return torch.where(nan[:, None], torch.nan, x)


def fragile(n_features: int, n_classes: int) -> nn.Module:
    """A user's ``model.module``."""
    return Fragile()


@pytest.mark.parametrize("version", [0, 1])
def test_a_row_the_model_makes_non_finite_is_dead_lettered_and_the_batch_goes_on(
    version: int,
) -> None:
    config = settings(score="bald", gate={"name": "fixed", "threshold": 0.0}).model_dump()
    config["model"]["module"] = "tests.stream.test_router:fragile"
    configured = Settings(**config)
    routing = Router(configured, predictor_for(configured, version))
    batch = [
        envelope(json.dumps({"id": f"s{first}", "features": [first, 0, 0]}).encode(), offset)
        for offset, first in enumerate([1, 7, 2, 8, 3])
    ]
    plan = routing.plan(batch)
    letters = [decode(DeadLetter, r.value) for r in plan.records if r.topic == "dead-letter"]
    errors = {letter.offset: letter.error for letter in letters}
    routed = sorted(r.key for r in plan.records if r.topic == "label-requests")
    if version == 0:  # exploring: no MC-dropout passes, so only 7's probabilities are NaN
        assert errors == {1: "model: the class probabilities are not finite"}
        assert plan.routes["dead_letter"] == 1 and sum(plan.routes.values()) == 5
    else:
        assert errors == {
            1: "model: the class probabilities are not finite",
            3: "score: the utility is not finite (got nan)",
        }
        assert routed == [b"s1", b"s2", b"s3"] and plan.routes == {"dead_letter": 2, "oracle": 3}
    routing.commit(plan)


def test_the_label_request_of_a_sample_carries_it_as_it_came() -> None:
    config = settings(gate={"name": "fixed", "threshold": 0.0}).model_dump()
    config["model"]["featurizer"] = "tests.stream.test_router:words_to_features"
    configured = Settings(**config)
    routing = Router(configured, predictor_for(configured))
    plan = routing.plan([envelope(b'{"id": "t1", "payload": {"text": "hi there!"}}', 0)])
    [record] = plan.records
    request = decode(LabelRequest, record.value)  # the trainer learns from the payload itself
    assert (request.features, request.payload) == (None, {"text": "hi there!"})
    assert [(guess.label, round(guess.p, 3)) for guess in request.prediction] == [
        ("a", 0.999),  # logits [9, 1, 1] from "hi there!"
        ("b", 0.0),
        ("c", 0.0),
    ]


def test_announced_thresholds_are_applied_with_the_model() -> None:
    routing = router(gate={"name": "variable_uncertainty", "threshold": 0.3})
    newer = predictor_for(settings(), version=2)
    routing.use(newer, {"budget": 0.42, "auto_label": 0.97})
    assert routing.predictor is newer
    assert routing.gate.threshold == 0.42
    assert routing.auto_label is not None and routing.auto_label.active
    assert routing.auto_label.threshold == 0.97
    routing.use(newer, {})  # no auto-label threshold announced: auto-labeling off
    assert not routing.auto_label.active


PLUGINS = "tests.plugins_for_tests"


def test_a_users_score_and_gate_named_by_import_path_route_the_stream() -> None:
    routing = router(
        score=f"{PLUGINS}:second_class",
        gate={"name": f"{PLUGINS}:AtLeast", "options": {"level": 0.4}},
    )
    assert type(routing.gate).__name__ == "AtLeast" and routing.gate.budget == 1.0
    batch = [
        envelope(sample("b-likely", [0.3, 0.6, 0.1]), 0),  # utility 0.6: asked
        envelope(sample("b-half", [0.5, 0.45, 0.05]), 1),  # utility 0.45: asked
        envelope(sample("a-likely", [0.8, 0.1, 0.1]), 2),  # utility 0.1: skipped
    ]
    plan = routing.plan(batch)
    routing.commit(plan)
    asked = {r.id: r.utility for r in (decode(LabelRequest, x.value) for x in plan.records)}
    assert asked == pytest.approx({"b-likely": 0.6, "b-half": 0.45}, abs=1e-6)
    assert plan.routes == {"oracle": 2, "skip": 1}


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        ({"score": f"{PLUGINS}:nope"},
         f"strategy.score: module '{PLUGINS}' has no attribute 'nope'"),
        ({"score": "no_such_package.scores:mine"},
         "strategy.score: No module named 'no_such_package'"),
        ({"score": f"{PLUGINS}:NOT_CALLABLE"},
         f"strategy.score: {PLUGINS}:NOT_CALLABLE is not callable"),
        ({"gate": {"name": f"{PLUGINS}:not_a_gate"}},
         f"strategy.gate.name: {PLUGINS}:not_a_gate made a str, not a streamal.gates.BudgetGate"),
        ({"gate": {"name": f"{PLUGINS}:AtLeast", "options": {"levle": 0.4}}},
         f"strategy.gate.options: {PLUGINS}:AtLeast: AtLeast.__init__() got an unexpected "
         "keyword argument 'levle'"),
    ],
)  # fmt: skip
def test_a_user_object_that_does_not_load_is_one_line_at_start(
    strategy: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        router(**strategy)
    assert str(caught.value) == f"config error: {message}"


@pytest.mark.parametrize("score", ["expected_gradient_length", f"{PLUGINS}:embedding_norm"])
def test_a_score_reading_embeddings_needs_a_module_with_embed_at_start(score: str) -> None:
    config = settings(score=score).model_dump()
    config["model"]["module"] = f"{PLUGINS}:plain"
    configured = Settings(**config)
    plain = predictor_for(configured)
    with pytest.raises(ConfigError) as caught:
        Router(configured, plain)
    assert str(caught.value) == (
        f"config error: strategy.score: {score} needs embeddings, but the model's module "
        "(Sequential, see model.module) has no embed() method"
    )
    routing = Router(configured.model_copy(update={"strategy": settings().strategy}), plain)
    plan = routing.plan([envelope(sample("s", [0.5, 0.3, 0.2]), 0)])  # margin: no embed() needed
    assert sum(plan.routes.values()) == 1 and "dead_letter" not in plan.routes


def routed(plan: Plan) -> list[tuple[str, bytes | None, dict[str, object]]]:
    """The plan's records, less the time they were made."""
    untimed = [(r.topic, r.key, json.loads(r.value)) for r in plan.records]
    for _, _, value in untimed:
        value.pop("requested_at", None)
        value.pop("labeled_at", None)
    return untimed


def test_planning_a_batch_twice_gives_the_same_records_and_commits_once() -> None:
    audits = {"audit_share": 0.2, "min_audits": 1}
    gate = {"name": "randomized_variable_uncertainty"}
    replayed, once = (router(budget=0.2, gate=gate, explore=0.5, auto_label=audits) for _ in "ab")
    for routing in (replayed, once):
        routing.use(routing.predictor, {"auto_label": 0.5}, boost(1, 150))
    rng = np.random.default_rng(3)
    reasons: Counter[str] = Counter()
    for b in range(6):  # the boost ends inside the second batch
        batch = [
            envelope(sample(f"{b}-{i}", list(p)), i)
            for i, p in enumerate(rng.dirichlet([1, 1, 1], size=100))
        ]
        first, again = replayed.plan(batch), replayed.plan(batch)  # as after an aborted batch
        assert routed(first) == routed(again)
        replayed.commit(again)
        planned_once = once.plan(batch)
        once.commit(planned_once)
        assert routed(planned_once) == routed(first)  # the replica goes on as if planned once
        reasons.update(r["reason"] for t, _, r in routed(first) if t == "label-requests")
    assert reasons["explore"] and reasons["audit"] and reasons["uncertain"]


@pytest.mark.parametrize(
    "gate",
    ["fixed", "variable_uncertainty", "randomized_variable_uncertainty", "split", "quantile"],
)
def test_every_request_comes_out_of_one_budget_whatever_the_gate(gate: str) -> None:
    budget = 0.1
    config = {"name": gate} | ({"threshold": 0.2} if gate == "fixed" else {})
    audits = {"audit_share": 0.1, "min_audits": 1}
    routing = router(budget=budget, gate=config, explore=0.2, auto_label=audits)
    routing.use(routing.predictor, {"auto_label": 0.8})  # a trained-looking model: audits
    rng = np.random.default_rng(11)
    asked = np.zeros(0, dtype=bool)
    reasons: Counter[str] = Counter()
    for b in range(40):  # 10,000 samples in batches of 250, most of them confident
        probabilities = rng.dirichlet([0.3, 0.3, 0.3], size=250)
        plan = routing.plan(
            [envelope(sample(f"{b}-{i}", list(p)), i) for i, p in enumerate(probabilities)]
        )
        routing.commit(plan)
        requested = {r.key for r in plan.records if r.topic == "label-requests"}
        reasons.update(
            decode(LabelRequest, r.value).reason
            for r in plan.records
            if r.topic == "label-requests"
        )
        asked = np.concatenate([asked, [f"{b}-{i}".encode() in requested for i in range(250)]])
    assert reasons["audit"] > 100 and reasons["explore"] > 100
    assert abs(asked.mean() - budget) <= 0.1 * budget
    assert busiest_stretch(asked) <= 1.5 * budget  # no burst an alert would see
