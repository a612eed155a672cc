"""When the trainer learns: the first model after a few labels, rounds as the labeled set
doubles, and incremental updates of the champion in between."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from streamal.config import Settings
from streamal.messages import LabelRequest, OracleLabel, encode
from streamal.model import FeatureModel, Labeled, ModelConfig, ModelStore
from streamal.simulation.streams import LabeledStream, gaussian_classes
from streamal.training.fit import held_out
from streamal.training.trainer import Trainer
from streamal.transport import Record, Transport, open_transport, topic_specs
from tests.conftest import settings_for
from tests.training.test_trainer import trainer_settings, with_train

STREAM = gaussian_classes(1000, spread=1.0, seed=0)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Trainer settings on the embedded transport."""
    return trainer_settings(settings_for("local", tmp_path=tmp_path), tmp_path)


def label(settings: Settings, stream: LabeledStream, rows: range) -> None:
    """A request and its answer for each sample at ``rows``."""
    at = datetime.now(UTC)
    with open_transport(settings) as producer:
        producer.ensure_topics(topic_specs(settings.topics))
        for i, sample in zip(rows, stream.samples(rows), strict=True):
            request = LabelRequest(
                id=sample.id, features=sample.features, utility=0.5, reason="explore",
                prediction=[{"label": "c0", "p": 0.5}], model_version=0, requested_at=at,
            )  # fmt: skip
            answer = OracleLabel(
                id=sample.id, label=stream.classes[stream.labels[i]], labeled_at=at
            )
            producer.produce(Record(settings.topics.label_requests, encode(request)))
            producer.produce(Record(settings.topics.labels, encode(answer)))


@contextmanager
def stepping(settings: Settings) -> Iterator[tuple[Trainer, Transport]]:
    trainer = Trainer(settings)
    with trainer.connected() as transport:
        yield trainer, transport


def settle(trainer: Trainer, transport: Transport) -> None:
    """Step until a poll brings nothing: every label stored, every due round or update done."""
    while trainer.step(transport, 0.5):
        pass


def runs(trainer: Trainer, outcome: str) -> int:
    value = trainer.metrics.registry.get_sample_value
    return int(value("streamal_training_runs_total", {"outcome": outcome}) or 0)


def test_the_first_model_comes_after_a_few_labels_then_rounds_as_the_labels_double(
    settings: Settings,
) -> None:
    settings = with_train(settings, min_new_labels=1000, interval_s=3600.0, update_labels=0)
    counted = []
    with stepping(settings) as (trainer, transport):
        done = 0
        for end in (3, 4, 7, 8, 15, 16, 32):
            label(settings, STREAM, range(done, end))
            done = end
            settle(trainer, transport)
            counted.append(sum(runs(trainer, o) for o in ("published", "rejected")))
    # 4 labels (first_round_labels) make the first round; the next comes when as many more
    # came as the last round learned from: at 8, 16 and 32
    assert counted == [0, 1, 1, 2, 2, 3, 4]


def test_a_model_from_a_few_labels_already_predicts_well(settings: Settings) -> None:
    """The cold start: three well-separated classes in 10 dimensions (class centers about
    2.8 standard deviations of the noise apart in each feature), 8 labels; a nearest-centroid
    rule would be near perfect, so 0.8 (chance 1/3) leaves room for the few labels' luck."""
    settings = with_train(settings, min_new_labels=1000, interval_s=3600.0, update_labels=0)
    with stepping(settings) as (trainer, transport):
        label(settings, STREAM, range(8))
        settle(trainer, transport)
        assert trainer.champion is not None and trainer.champion.checkpoint.version == 1
        test = Labeled(STREAM.samples(range(500, 1000)), STREAM.labels[500:])
        predictor = trainer.champion.predictor
        predicted = predictor.logits(predictor.encode(test.samples).inputs).argmax(1).numpy()
        assert float((predicted == test.targets).mean()) > 0.8


class Recording(FeatureModel):
    """The default model, noting the ids each update and follow learned."""

    updated: ClassVar[list[str]] = []
    followed: ClassVar[list[str]] = []

    def update(self, new: Labeled, replay: Labeled) -> bool:
        Recording.updated += [sample.id for sample in new.samples]
        return super().update(new, replay)

    def follow(self, held_out: Labeled) -> bool:
        Recording.followed += [sample.id for sample in held_out.samples]
        return super().follow(held_out)


def recording(classes: list[str], device: torch.device) -> Recording:
    return Recording(ModelConfig(n_features=10, classes=classes), device)


def test_the_champion_learns_new_labels_between_rounds_held_out_ones_only_by_following(
    settings: Settings,
) -> None:
    settings = with_train(
        settings, min_new_labels=1000, interval_s=3600.0, update_labels=5, publish_interval_s=0.0
    )
    model = settings.model.model_copy(update={"factory": f"{__name__}:recording"})
    settings = settings.model_copy(update={"model": model})
    Recording.updated, Recording.followed = [], []
    with stepping(settings) as (trainer, transport):
        label(settings, STREAM, range(64))
        settle(trainer, transport)  # a round on the 64 labels
        assert trainer.champion is not None and runs(trainer, "updated") == 0
        before = trainer.champion.checkpoint
        label(settings, STREAM, range(64, 84))  # 20 new: an update, not a round (64 needed)
        settle(trainer, transport)
        after = trainer.champion.checkpoint
    assert runs(trainer, "updated") == 1 and after.version == before.version + 1
    assert after.sha256 != before.sha256
    ids = [STREAM.ids[i] for i in range(64, 84)]
    judges = held_out(ids, 0.2)
    assert after.metrics["updated_with"] == 20 and 0 < judges.sum() < 20
    assert sorted(Recording.updated) == sorted(np.array(ids)[~judges].tolist())
    assert sorted(Recording.followed) == sorted(np.array(ids)[judges].tolist())
    assert ModelStore(settings.model.store, settings.model.name).latest() == after


class Rounds(FeatureModel):
    """The default model, but it does not learn incrementally."""

    def update(self, new: Labeled, replay: Labeled) -> bool:
        return False


def rounds_only(classes: list[str], device: torch.device) -> Rounds:
    return Rounds(ModelConfig(n_features=10, classes=classes), device)


def test_a_model_that_does_not_update_improves_in_rounds_only(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = with_train(
        settings, min_new_labels=1000, interval_s=3600.0, update_labels=5, publish_interval_s=0.0
    )
    model = settings.model.model_copy(update={"factory": f"{__name__}:rounds_only"})
    settings = settings.model_copy(update={"model": model})
    with caplog.at_level("INFO"), stepping(settings) as (trainer, transport):
        label(settings, STREAM, range(64))
        settle(trainer, transport)
        label(settings, STREAM, range(64, 84))
        settle(trainer, transport)
        label(settings, STREAM, range(84, 104))
        settle(trainer, transport)
    assert runs(trainer, "updated") == 0 and runs(trainer, "published") == 1
    assert caplog.text.count("does not learn incrementally") == 1
    assert np.isfinite(trainer.champion.checkpoint.metrics["accuracy"])  # type: ignore[union-attr]


class LearnsOnce(FeatureModel):
    """The default model, but a warm-started round learns nothing: every challenger after the
    first loses to the champion."""

    def fit(self, train: Labeled, validation: Labeled, start: FeatureModel | None) -> None:
        if start is None:
            super().fit(train, validation, start)


def learns_once(classes: list[str], device: torch.device) -> LearnsOnce:
    return LearnsOnce(ModelConfig(n_features=10, classes=classes), device)


def test_the_labels_of_a_rejected_round_are_learned_by_the_champion_s_next_update(
    settings: Settings,
) -> None:
    settings = with_train(
        settings, min_new_labels=1000, interval_s=3600.0, update_labels=5, publish_interval_s=0.0
    )
    model = settings.model.model_copy(update={"factory": f"{__name__}:learns_once"})
    settings = settings.model_copy(update={"model": model})
    with stepping(settings) as (trainer, transport):
        label(settings, STREAM, range(64))
        settle(trainer, transport)  # the first round: the champion
        label(settings, STREAM, range(64, 128))  # as many again: a round, which it loses
        settle(trainer, transport)
    assert runs(trainer, "published") == 1 and runs(trainer, "rejected") == 1
    assert trainer.champion is not None and runs(trainer, "updated") == 1
    # all learned, the held-out ones by following only (see the test above)
    assert trainer.champion.checkpoint.metrics["updated_with"] == 64


def test_the_store_keeps_the_newest_versions_and_the_newest_older_round(
    settings: Settings,
) -> None:
    settings = with_train(
        settings, min_new_labels=1000, interval_s=3600.0, update_labels=1, publish_interval_s=0.0
    )
    model = settings.model.model_copy(update={"keep_versions": 3, "keep_rounds": 1})
    settings = settings.model_copy(update={"model": model})
    store = ModelStore(settings.model.store, settings.model.name)
    with stepping(settings) as (trainer, transport):
        for end in range(4, 20):  # rounds at 4, 8 and 16 labels, updates in between
            label(settings, STREAM, range(end - 1 if end > 4 else 0, end))
            settle(trainer, transport)
        published = runs(trainer, "published") + runs(trainer, "updated")
        assert trainer.champion is not None
        newest = trainer.champion.checkpoint.version
    assert runs(trainer, "published") == 3 and published == newest > 5
    checkpoints = store.checkpoints()
    rounds = [c.version for c in checkpoints if "accuracy" in c.metrics]
    assert [c.version for c in checkpoints][-3:] == [newest - 2, newest - 1, newest]
    assert len(checkpoints) == 4 and rounds[0] == checkpoints[0].version < newest - 2
    assert len(list(store.folder.glob("v*.pt"))) == 4  # no weights left without metadata
