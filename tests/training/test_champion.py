"""The trainer's champion at start: the newest stored version that verifies."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from streamal.messages import ModelAnnouncement, decode
from streamal.model import MLP, ModelStore
from streamal.training.trainer import Trainer
from tests.conftest import settings_for
from tests.helpers import read_all
from tests.training.test_trainer import produce_labeled, trainer_settings


def test_a_corrupt_newest_version_is_skipped_and_never_reused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = trainer_settings(settings_for("local", tmp_path=tmp_path), tmp_path)
    model = settings.model
    store = ModelStore(model.store, model.name)
    first = store.save(MLP(model.n_features, len(model.classes), model.hidden, 0.1), model.classes)
    store.save(MLP(model.n_features, len(model.classes), model.hidden, 0.1), model.classes)
    (model.store / model.name / "v000002.pt").write_bytes(b"scrambled by a failing disk")
    produce_labeled(settings, 300)
    with caplog.at_level(logging.WARNING, logger="streamal.model.loader"):
        trainer = Trainer(settings, max_rounds=1)
    assert trainer.champion is not None and trainer.champion.checkpoint == first
    assert [r.getMessage().split(": ")[0] for r in caplog.records] == ["skipped stored model v2"]
    assert "sha256 mismatch" in caplog.text

    trainer.run()  # a trained challenger beats the untrained champion
    latest = store.latest()
    assert latest is not None and latest.version == 3  # v2 stays taken
    announced = read_all(settings, settings.topics.models)[-1]
    assert decode(ModelAnnouncement, announced.value).sha256 == latest.sha256
