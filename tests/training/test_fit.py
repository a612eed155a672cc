"""A training round learns, warm-starts, and compares challenger with champion fairly; the
default model's scaling is robust."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch

from streamal.messages import Sample
from streamal.model import MLP, FeatureModel, FitConfig, Labeled, ModelConfig
from streamal.training.fit import FitResult, accuracy, fit, held_out

CENTERS = np.array([[0, 4], [4, 0], [-4, -4]], dtype=np.float32)


def config(neighbors: int = ModelConfig().neighbors, **recipe: int) -> ModelConfig:
    return ModelConfig(
        n_features=2, classes=["a", "b", "c"], hidden=[16], dropout=0.0, neighbors=neighbors,
        fit=FitConfig(**recipe),
    )  # fmt: skip


def blobs(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    features = (CENTERS[labels] + rng.normal(size=(n, 2))).astype(np.float32)
    return [f"s{seed}-{i}" for i in range(n)], features, labels


def labeled(ids: list[str], x: np.ndarray, y: np.ndarray) -> Labeled:
    return Labeled([Sample(id=i, features=row.tolist()) for i, row in zip(ids, x, strict=True)], y)


def round_on(
    data: Labeled, champion: FeatureModel | None = None, **recipe: int
) -> FitResult | None:
    return fit(lambda: FeatureModel(config(**recipe)), data, 0.2, champion)


def network(result: FitResult | None) -> MLP:
    assert result is not None
    assert isinstance(result.challenger.network, MLP)
    return result.challenger.network


def test_a_round_learns_separable_classes() -> None:
    result = round_on(labeled(*blobs(600)))
    assert result is not None
    assert result.accuracy > 0.95
    assert result.champion_accuracy is None and result.better_or_equal
    assert result.validation_size + result.train_size == 600
    assert 0.1 < result.validation_size / 600 < 0.3


def test_the_held_out_part_is_stable_across_rounds() -> None:
    ids, _, _ = blobs(500)
    assert held_out(ids[:300], 0.2).tolist() == held_out(ids, 0.2)[:300].tolist()


def test_a_challenger_starts_from_the_champion_and_is_compared_on_the_same_labels() -> None:
    ids, x, y = blobs(600)
    data = labeled(ids, x, y)
    first = round_on(data)
    assert first is not None
    second = round_on(data, first.challenger, max_epochs=1)  # type: ignore[arg-type]
    assert second is not None
    assert second.champion_accuracy == first.accuracy  # the champion on the same held-out labels
    assert second.accuracy > 0.9  # one epoch from the champion's weights, not from scratch
    mask = held_out(ids, 0.2)
    untrained = FeatureModel(config())
    assert accuracy(untrained, labeled(*(part[mask] for part in (np.array(ids), x, y)))) < 0.9


def test_a_few_labels_train_a_first_model_on_all_of_them() -> None:
    assert round_on(labeled([], np.empty((0, 2), np.float32), np.empty(0, np.int64))) is None
    few = labeled(*blobs(8))  # fewer than MIN_HELD_OUT would be held out: learn from all
    result = round_on(few)
    assert result is not None and result.train_size == result.validation_size == 8
    assert accuracy(result.challenger, labeled(*blobs(300, seed=7))) > 0.7  # chance: 1/3


def test_a_few_labels_of_a_new_concept_move_the_champion() -> None:
    old = round_on(labeled(*blobs(600)))
    assert old is not None
    new_ids, new_x, new_y = blobs(40, seed=1)
    swapped = labeled(new_ids, new_x, (new_y + 1) % 3)  # after a drift the classes trade places
    result = round_on(swapped, old.challenger)  # type: ignore[arg-type]
    assert result is not None and result.champion_accuracy == 0.0
    test_ids, test_x, test_y = blobs(500, seed=2)
    # 32 training labels: one batch, but at least min_steps steps an epoch
    assert accuracy(result.challenger, labeled(test_ids, test_x, (test_y + 1) % 3)) > 0.9
    # one step an epoch: the MLP is stuck (without the neighbours part, which would be right
    # from the new labels alone whatever the MLP does)
    old_alone = round_on(labeled(*blobs(600)), neighbors=0)
    assert old_alone is not None
    alone = round_on(swapped, old_alone.challenger, neighbors=0)  # type: ignore[arg-type]
    slow = round_on(swapped, old_alone.challenger, neighbors=0, min_steps=1)  # type: ignore[arg-type]
    assert alone is not None and slow is not None and slow.accuracy < alone.accuracy


def test_one_huge_labeled_sample_sets_no_later_model_s_scaling() -> None:
    ids, x, y = blobs(600)
    x[17] = 1e20  # one labeled sample of absurd features, among the first round's labels
    test = labeled(*blobs(500, seed=2))
    first = round_on(labeled(ids, x, y))
    assert first is not None
    assert accuracy(first.challenger, test) > 0.95
    scale = network(first).std
    assert bool((scale < 10).all()), scale  # the blobs' spread, not the outlier's

    more_ids, more_x, more_y = blobs(300, seed=3)  # later rounds warm-start from it
    both = labeled(ids + more_ids, np.concatenate([x, more_x]), np.concatenate([y, more_y]))
    second = round_on(both, first.challenger)  # type: ignore[arg-type]
    assert second is not None
    assert accuracy(second.challenger, test) > 0.95


def test_a_champion_scaled_by_an_outlier_passes_no_scaling_on() -> None:
    poisoned = FeatureModel(config())
    assert isinstance(poisoned.network, MLP)
    poisoned.network.std.fill_(1e19)  # what a model fitted before robust scaling kept forever
    result = round_on(labeled(*blobs(600)), poisoned)
    assert result is not None
    assert result.accuracy > 0.95 and result.champion_accuracy is not None
    assert result.champion_accuracy < 0.6
    assert bool((network(result).std < 10).all())


def test_a_feature_constant_in_the_first_labels_does_not_swamp_later_predictions() -> None:
    ids, x, y = blobs(600)
    x[:, 1] = 0.0  # constant so far (a sparse feature, say); the class is in feature 0 alone
    x[:, 0] = np.array([0.0, 4.0, -4.0], dtype=np.float32)[y] + np.float32(0.3) * x[:, 0]
    result = round_on(labeled(ids, x, y))
    _, later, later_y = blobs(500, seed=4)
    later[:, 0] = np.array([0.0, 4.0, -4.0], dtype=np.float32)[later_y]
    later[:, 1] = np.random.default_rng(5).normal(scale=2.0, size=500)  # now it varies
    with torch.inference_mode():
        p = torch.softmax(network(result)(torch.as_tensor(later)), 1)
    assert len(set(p.argmax(1).tolist())) == 3  # not one class for everything
    assert float((p.max(1).values > 0.9999).float().mean()) < 0.5  # nor all certain


def test_refitting_the_scaling_of_a_warm_start_keeps_what_the_champion_computes() -> None:
    _, x, _ = blobs(300)
    _, later, _ = blobs(300, seed=6)
    later = later * 1.3 + 0.5  # the labels of a later round spread a little differently
    champion = MLP(2, 3, [16], 0.0).eval()
    champion.fit_scaling(x)
    challenger = copy.deepcopy(champion)
    challenger.fit_scaling(later, keep_function=True)
    assert not torch.equal(challenger.std, champion.std)
    with torch.inference_mode():
        inputs = torch.as_tensor(x)
        assert torch.allclose(challenger(inputs), champion(inputs), atol=1e-4)


def test_labeled_samples_the_model_cannot_read_are_skipped_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = labeled(*blobs(300))
    wide = Sample(id="wide", features=[1.0, 2.0, 3.0])  # stored before the model changed
    mixed = Labeled([*data.samples[:10], wide, *data.samples[10:]], np.insert(data.targets, 10, 0))
    with caplog.at_level(logging.WARNING, logger="streamal.training.fit"):
        result = round_on(mixed)
    assert result is not None and result.train_size + result.validation_size == 300
    assert "skipped 1 labeled samples the model cannot read, e.g. 'wide': features:" in caplog.text
