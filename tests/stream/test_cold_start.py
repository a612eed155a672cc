"""The router's diverse cold start: before the first trained model it asks the samples that
cover the features, and learns what it asked only when the batch is committed."""

from __future__ import annotations

import json

import numpy as np

from streamal.messages import LabelRequest, decode
from streamal.stream.router import Router
from tests.stream.test_router import envelope, router


def batch(rows: np.ndarray, prefix: str) -> list:  # type: ignore[type-arg]
    return [
        envelope(json.dumps({"id": f"{prefix}{i}", "features": row.tolist()}).encode(), i)
        for i, row in enumerate(rows)
    ]


def asked_ids(routing: Router, rows: np.ndarray, prefix: str) -> list[str]:
    plan = routing.plan(batch(rows, prefix))
    routing.commit(plan)
    return [decode(LabelRequest, r.value).id for r in plan.records if r.topic == "label-requests"]


def test_an_untrained_router_asks_the_sample_far_from_everything_asked() -> None:
    routing = router(version=0, budget=0.05, gate={"name": "quantile"})
    rng = np.random.default_rng(0)
    for b in range(5):  # a crowd around the origin
        asked_ids(routing, rng.normal(size=(100, 3)), f"{b}-")
    assert routing.coverage is not None and routing.coverage.asked > 0
    rows = rng.normal(size=(100, 3))
    rows[37] = [9.0, -9.0, 9.0]  # a lone sample of an unseen region
    first, again = routing.plan(batch(rows, "far")), routing.plan(batch(rows, "far"))
    assert [r.key for r in first.records] == [r.key for r in again.records]  # planning learns
    assert first.covered is not None and first.covered[1][37]  # nothing
    assert b"far37" in [r.key for r in first.records]
    routing.commit(first)
    assert "again37" not in asked_ids(routing, rows, "again")  # covered now


def test_a_trained_model_or_random_cold_start_does_not_cover() -> None:
    rows = np.random.default_rng(1).normal(size=(50, 3))
    assert router(version=1).plan(batch(rows, "t")).covered is None
    at_random = router(version=0, cold_start="random")
    assert at_random.coverage is None and at_random.plan(batch(rows, "r")).covered is None
