"""A model that follows the stream by itself (online or neighbours parts blended in) does not
hide a change from the drift detectors: they watch the part that learns in rounds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from streamal.config import Settings
from streamal.messages import LabelRequest, OracleLabel, encode
from streamal.model.config import MLP_ALONE as ALONE
from streamal.model.config import ModelConfig
from streamal.model.default import FeatureModel
from streamal.simulation.streams import LabeledStream, gaussian_classes
from streamal.training.trainer import Trainer
from streamal.transport import Record, Transport, open_transport, topic_specs
from tests.conftest import settings_for
from tests.training.test_trainer import trainer_settings

BEFORE, AFTER = 300, 150


@pytest.mark.parametrize("parts", [{"online": [0.1], "neighbors": 0}, {"online": []}])
def test_rounds_logits_are_the_mlps_own_only_with_other_parts(parts: dict[str, object]) -> None:
    blend = FeatureModel(ModelConfig(n_features=3, hidden=[4], **parts))  # type: ignore[arg-type]
    inputs = torch.randn(5, 3)
    assert torch.equal(blend.rounds_logits(inputs), blend.network.deep(inputs))
    alone = FeatureModel(ModelConfig(n_features=3, hidden=[4], **ALONE))  # type: ignore[arg-type]
    assert alone.rounds_logits(inputs) is None


def produce_answered(
    settings: Settings, stream: LabeledStream, rows: range, served: float, right: float,
    reason: str = "uncertain", version: int = 1,
) -> None:  # fmt: skip
    """Requests for ``rows`` of ``stream``, asked for ``reason`` and served by ``version`` at
    confidence ``served``, predicted right at random with chance ``right``, and their
    answers."""
    at, chance = datetime.now(UTC), np.random.default_rng(rows.start)
    with open_transport(settings) as producer:
        producer.ensure_topics(topic_specs(settings.topics))
        for i in rows:
            truth = stream.classes[stream.labels[i]]
            wrong = stream.classes[stream.labels[i] - 1]
            predicted = truth if chance.random() < right else wrong
            request = LabelRequest(
                id=f"s{i}", features=stream.features[i].tolist(), utility=0.5, reason=reason,
                prediction=[{"label": predicted, "p": served}], model_version=version,
                requested_at=at,
            )  # fmt: skip
            key = f"s{i}".encode()
            producer.produce(Record(settings.topics.label_requests, encode(request), key=key))
            answer = OracleLabel(id=f"s{i}", label=truth, labeled_at=at)
            producer.produce(Record(settings.topics.labels, encode(answer), key=key))
        producer.flush()


def steps_until_quiet(trainer: Trainer, transport: Transport) -> None:
    """Step ``trainer`` until a poll brings nothing (at most 50 steps)."""
    for _ in range(50):
        if not trainer.step(transport, 0.5):
            return
    raise AssertionError("the trainer kept reading")


@pytest.mark.parametrize("parts", [{}, ALONE])
def test_a_change_that_a_blend_half_follows_is_found_on_its_rounds_part(
    tmp_path: Path, parts: dict[str, object]
) -> None:
    """Every class moves to another's place. The served blend was confident and right before,
    and only half right and unsure after (its fast part half follows), which alone says
    little; its MLP part, confidently wrong, says a drift. A model that has no other part is
    judged by what it served."""
    settings = trainer_settings(settings_for("local", tmp_path=tmp_path), tmp_path)
    model = settings.model.model_copy(update=parts)
    settings = settings.model_copy(update={"model": model})
    n = BEFORE + AFTER
    before = gaussian_classes(n, spread=0.5, drift_at=n, seed=2)
    moved = gaussian_classes(n, spread=0.5, drift_at=0, seed=2)
    assert np.array_equal(before.labels, moved.labels)
    trainer = Trainer(settings)
    with trainer.connected() as transport:
        produce_answered(settings, before, range(BEFORE), served=0.9, right=0.9)
        steps_until_quiet(trainer, transport)
        assert trainer.champion is not None and not trainer.drift_events
        produce_answered(settings, moved, range(BEFORE, n), served=0.5, right=0.5)
        steps_until_quiet(trainer, transport)
    assert bool(trainer.drift_events) == (parts != ALONE), trainer.drift_events


def test_the_untrained_models_guesses_set_no_detectors_baseline(tmp_path: Path) -> None:
    """A trainer comes up to a backlog: random requests served by the untrained version 0
    (uniform guesses, as sure as they are right) and answered, 10 read before its first
    round and 190 after it, late. Then its model is as over-confident as it always is: sure
    at 0.95, right 70% of the time. Had the detectors learned from version 0's guesses, they
    would take that model's first labels for a change for the worse (a model judged by what
    it served: the MLP alone)."""
    settings = trainer_settings(settings_for("local", tmp_path=tmp_path), tmp_path)
    settings = settings.model_copy(update={"model": settings.model.model_copy(update=ALONE)})
    stream = gaussian_classes(BEFORE + AFTER * 2, spread=0.5, seed=3)
    trainer = Trainer(settings)
    with trainer.connected() as transport:
        for backlog in (range(10), range(10, 200)):
            produce_answered(
                settings, stream, backlog, served=1 / 3, right=1 / 3, reason="explore", version=0
            )
            steps_until_quiet(trainer, transport)
            assert trainer.champion is not None
        trained = range(200, len(stream.labels))
        produce_answered(settings, stream, trained, served=0.95, right=0.7, reason="explore")
        steps_until_quiet(trainer, transport)
    assert trainer.labels.counts()["labeled"] == len(stream.labels)
    assert not trainer.drift_events
