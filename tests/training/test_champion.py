"""The trainer's champion at start: the newest stored version that verifies."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from streamal.messages import ModelAnnouncement, decode
from streamal.model import FeatureModel, ModelStore
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
    first = store.save(FeatureModel(model).state_dict(), model.classes)
    store.save(FeatureModel(model).state_dict(), model.classes)
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
    assert trainer.champion.predictor.version == 3
    announced = read_all(settings, settings.topics.models)[-1]
    assert decode(ModelAnnouncement, announced.value).sha256 == latest.sha256


class NanOnOnes(nn.Module):
    """A linear model whose logits are NaN for a row of ones (the loader's trial input), so
    every replica would refuse it; the training labels never hold such a row."""

    def __init__(self, n_features: int, n_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones = (x == 1).all(dim=1, keepdim=True)
        return torch.where(ones, torch.nan, self.linear(x))


def nan_on_ones(n_features: int, n_classes: int) -> nn.Module:
    """A model factory for ``model.module``."""
    return NanOnOnes(n_features, n_classes)


def test_a_challenger_every_replica_would_refuse_is_never_published(tmp_path: Path) -> None:
    settings = trainer_settings(settings_for("local", tmp_path=tmp_path), tmp_path)
    model = settings.model.model_copy(update={"module": f"{__name__}:nan_on_ones"})
    settings = settings.model_copy(update={"model": model})
    produce_labeled(settings, 300)
    trainer = Trainer(settings, max_rounds=1)
    trainer.run()
    assert trainer.champion is None
    assert ModelStore(model.store, model.name).latest() is None
    assert read_all(settings, settings.topics.models) == []
    assert (
        trainer.metrics.registry.get_sample_value(
            "streamal_training_runs_total", {"outcome": "rejected"}
        )
        == 1
    )
