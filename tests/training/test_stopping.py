"""Stopping rules: the pure rules on known cases, and the trainer announcing them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from streamal.config import Settings
from streamal.messages import LabelRequest, OracleLabel, encode
from streamal.metrics import STOPPING_RULES
from streamal.simulation.streams import LabeledStream, gaussian_classes
from streamal.training.config import StoppingConfig
from streamal.training.stopping import StoppingMonitor, StopSetView, kappa
from streamal.training.trainer import Trainer
from streamal.transport import Record, open_transport, topic_specs
from tests.conftest import settings_for
from tests.training.test_trainer import trainer_settings, with_train


def test_kappa_is_one_for_agreement_and_zero_for_chance_agreement() -> None:
    draws = np.random.default_rng(0)
    first, second = draws.integers(0, 3, 20_000), draws.integers(0, 3, 20_000)
    assert kappa(first, first) == 1.0
    assert abs(kappa(first, second)) < 0.02  # independent: agreement as chance has it
    flipped = np.where(draws.random(20_000) < 0.1, second, first)  # 10% redrawn
    assert kappa(first, flipped) == pytest.approx(0.9, abs=0.01)


def view(predictions: np.ndarray, uncertainty: float = 0.5) -> StopSetView:
    return StopSetView(predictions, uncertainty)


def test_predictions_that_keep_changing_never_read_as_stable() -> None:
    monitor = StoppingMonitor(StoppingConfig(rounds=2))
    draws = np.random.default_rng(1)
    for labels in range(100, 1100, 100):
        monitor.observe(0, labels, None, view(draws.integers(0, 3, 200)))
        assert not monitor.holds["stable_predictions"]
    assert monitor.agreement is not None and monitor.agreement < 0.1


def test_agreement_needs_enough_shared_stop_set_samples_and_a_new_concept_starts_afresh() -> None:
    monitor = StoppingMonitor(StoppingConfig(rounds=2))
    same = np.zeros(49, dtype=int)
    for labels in (10, 20, 30):  # 49 samples: too few to compare
        assert monitor.observe(0, labels, None, view(same)) == []
    assert monitor.agreement is None
    grown = np.zeros(60, dtype=int)
    started = [monitor.observe(0, labels, None, view(grown)) for labels in (40, 50, 60)]
    assert started == [[], [], ["stable_predictions"]]
    assert monitor.observe(7, 70, None, view(grown)) == []  # a drift: the concept's first round
    assert not monitor.holds["stable_predictions"]


def test_the_budget_rule_holds_once_the_labels_reach_the_cap() -> None:
    monitor = StoppingMonitor(StoppingConfig(max_labels=500))
    assert monitor.observe(0, 499, 0.9, None) == []
    assert monitor.observe(0, 500, 0.9, None) == ["budget_spent"]
    assert "budget_spent (labels reached train.stopping.max_labels (500))" in monitor.summary()


def produce_explored(settings: Settings, stream: LabeledStream, rows: range) -> None:
    """Requests asked at random (``explore``) for ``rows`` of ``stream``, and their answers."""
    at = datetime.now(UTC)
    topics = settings.topics
    with open_transport(settings) as producer:
        producer.ensure_topics(topic_specs(topics))
        for i in rows:
            key, label = stream.ids[i], stream.classes[stream.labels[i]]
            request = LabelRequest(
                id=key, features=stream.features[i].tolist(), utility=0.5, reason="explore",
                prediction=[{"label": label, "p": 0.5}], model_version=0, requested_at=at,
            )  # fmt: skip
            answer = OracleLabel(id=key, label=label, labeled_at=at)
            producer.produce(Record(topics.label_requests, encode(request), key=key.encode()))
            producer.produce(Record(topics.labels, encode(answer), key=key.encode()))
        producer.flush()


def test_the_trainer_announces_where_more_labels_no_longer_pay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = trainer_settings(settings_for("local", tmp_path=tmp_path), tmp_path)
    settings = with_train(base, min_new_labels=100, update_labels=0)
    stream = gaussian_classes(1000, spread=0.5, seed=0)  # easy classes
    trainer = Trainer(settings)
    gauge = trainer.metrics.registry.get_sample_value
    caplog.set_level(logging.INFO, logger="streamal.training.trainer")
    with trainer.connected() as transport:
        for batch in range(10):
            produce_explored(settings, stream, range(100 * batch, 100 * (batch + 1)))
            while trainer.step(transport, 0.0):
                pass
            if batch == 0:
                assert all(gauge("streamal_stop_signal", {"rule": r}) == 0 for r in STOPPING_RULES)
    assert trainer._rounds >= 5
    rules = [rule for _, rule in trainer.stop_events]
    assert "stable_predictions" in rules and "accuracy_plateau" in rules
    assert gauge("streamal_stop_signal", {"rule": "stable_predictions"}) == 1
    assert gauge("streamal_stop_set_agreement") >= 0.99
    assert "more labels no longer pay: stable_predictions (kappa" in caplog.text
