"""The trainer against bad label requests and a label store that cannot be written."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streamal.config import Settings
from streamal.messages import DeadLetter, LabelRequest, OracleLabel, decode, encode
from streamal.model import ModelStore
from streamal.training.labels import LabelStore
from streamal.training.trainer import Trainer
from streamal.transport import Record, open_transport
from tests.conftest import settings_for
from tests.helpers import read_all, wait_for
from tests.training.test_trainer import produce_labeled, trainer_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Trainer settings on the embedded transport."""
    return trainer_settings(settings_for("local", tmp_path=tmp_path), tmp_path)


def labeled_request(settings: Settings, sample_id: str, features: list[float]) -> None:
    """A request of ``features`` (valid or not) and its answer, as a producer could send them."""
    at = datetime.now(UTC)
    request = LabelRequest(
        id=sample_id, features=[0.0], utility=0.5, reason="uncertain", model_version=0,
        prediction=[{"label": "c0", "p": 0.5}, {"label": "c1", "p": 0.3}], requested_at=at,
    )  # fmt: skip
    request = request.model_construct(**{**dict(request), "features": features})
    answer = OracleLabel(id=sample_id, label="c1", labeled_at=at)
    topics = settings.topics
    with open_transport(settings) as producer:
        producer.produce(Record(topics.label_requests, encode(request), key=sample_id.encode()))
        producer.produce(Record(topics.labels, encode(answer), key=sample_id.encode()))


def test_requests_the_model_cannot_read_are_dead_lettered_and_rounds_go_on(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    produce_labeled(settings, 300)
    unchecked = LabelStore(settings.train.label_store, settings.model.classes)
    wide = LabelRequest(
        id="old-wide", features=[0.0] * 12, utility=0.5, reason="uncertain", model_version=0,
        prediction=[{"label": "c0", "p": 0.5}], requested_at=0,
    )  # fmt: skip
    unchecked.add_request(wide)  # stored before requests were checked
    unchecked.add_label(OracleLabel(id="old-wide", label="c2", labeled_at=0), "labels:9:9")
    unchecked.close()
    labeled_request(settings, "narrow", [1.0] * 7)
    labeled_request(settings, "huge", [1e39] + [0.0] * 9)

    with caplog.at_level(logging.WARNING):
        Trainer(settings, idle_timeout_s=2).run()

    letters = {
        letter.error for e in read_all(settings, settings.topics.dead_letter)
        if (letter := decode(DeadLetter, e.value))
    }  # fmt: skip
    assert letters == {
        "the model cannot read it: features: expected 10 values (got 7)",
        "features.0: must be a finite float32 number (got 1e+39)",  # refused by decoding
    }
    assert "skipped 1 labeled samples the model cannot read, e.g. 'old-wide'" in caplog.text
    latest = ModelStore(settings.model.store, settings.model.name).latest()
    assert latest is not None and latest.version >= 1


def test_a_full_label_store_holds_the_batch_until_there_is_room(settings: Settings) -> None:
    trainer = Trainer(settings, healthy_within_s=1.0)
    db = trainer.labels._db
    db.execute(f"PRAGMA max_page_count={db.execute('PRAGMA page_count').fetchone()[0]}")
    thread = threading.Thread(target=trainer.run)
    thread.start()
    try:
        produce_labeled(settings, 300)
        wait_for(lambda: not trainer.healthy())  # it keeps failing: /healthz says so
        assert thread.is_alive()
        with open_transport(settings, group=settings.train.group) as probe:
            partitions = probe.partitions_for(settings.topics.labels)
            assert set(probe.committed(partitions).values()) == {None}  # nothing committed
        db.execute("PRAGMA max_page_count=1000000")  # room again
        store = ModelStore(settings.model.store, settings.model.name)
        wait_for(lambda: store.latest() is not None and trainer.healthy())
    finally:
        trainer.stop()
        thread.join(timeout=60)
    labels = LabelStore(settings.train.label_store, settings.model.classes)
    assert labels.counts()["labeled"] == 300  # every label of the held batches, once
    labels.close()
