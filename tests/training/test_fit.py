"""A training round learns, warm-starts, and compares challenger with champion fairly."""

from __future__ import annotations

import copy

import numpy as np
import torch

from streamal.model import MLP, ModelConfig
from streamal.training.config import TrainConfig
from streamal.training.fit import accuracy, fit, held_out

MODEL = ModelConfig(n_features=2, classes=["a", "b", "c"], hidden=[16], dropout=0.0)


def blobs(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    centers = np.array([[0, 4], [4, 0], [-4, -4]], dtype=np.float32)
    features = (centers[labels] + rng.normal(size=(n, 2))).astype(np.float32)
    return [f"s{seed}-{i}" for i in range(n)], features, labels


def test_a_round_learns_separable_classes() -> None:
    ids, x, y = blobs(600)
    result = fit(TrainConfig(), MODEL, ids, x, y, champion=None)
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
    first = fit(TrainConfig(), MODEL, ids, x, y, champion=None)
    assert first is not None
    untrained = MLP(2, 3, [16], 0.0)
    second = fit(TrainConfig(max_epochs=1), MODEL, ids, x, y, champion=first.challenger)
    assert second is not None
    assert second.champion_accuracy == first.accuracy  # the champion on the same held-out labels
    assert second.accuracy > 0.9  # one epoch from the champion's weights, not from scratch
    mask = held_out(ids, 0.2)
    assert accuracy(untrained, torch.as_tensor(x[mask]), torch.as_tensor(y[mask])) < 0.9


def test_too_few_labels_train_nothing() -> None:
    ids, x, y = blobs(1)
    assert fit(TrainConfig(), MODEL, ids, x, y, champion=None) is None


def test_a_few_labels_of_a_new_concept_move_the_champion() -> None:
    ids, x, y = blobs(600)
    old = fit(TrainConfig(), MODEL, ids, x, y, champion=None)
    assert old is not None
    new_ids, new_x, new_y = blobs(40, seed=1)
    swapped = (new_y + 1) % 3  # after a drift the classes trade places
    result = fit(TrainConfig(), MODEL, new_ids, new_x, swapped, champion=old.challenger)
    assert result is not None and result.champion_accuracy == 0.0
    _, test_x, test_y = blobs(500, seed=2)
    # 32 training labels: one batch, but at least min_steps steps an epoch
    assert (
        accuracy(result.challenger, torch.as_tensor(test_x), torch.as_tensor((test_y + 1) % 3))
        > 0.9
    )
    slow = fit(TrainConfig(min_steps=1), MODEL, new_ids, new_x, swapped, champion=old.challenger)
    assert slow is not None and slow.accuracy < result.accuracy  # one step an epoch: stuck


def test_one_huge_labeled_sample_sets_no_later_model_s_scaling() -> None:
    ids, x, y = blobs(600)
    x[17] = 1e20  # one labeled sample of absurd features, among the first round's labels
    _, test_x, test_y = blobs(500, seed=2)
    test_x, test_y = torch.as_tensor(test_x), torch.as_tensor(test_y)
    first = fit(TrainConfig(), MODEL, ids, x, y, champion=None)
    assert first is not None
    assert accuracy(first.challenger, test_x, test_y) > 0.95
    scale = first.challenger.std
    assert bool((scale < 10).all()), scale  # the blobs' spread, not the outlier's

    more_ids, more_x, more_y = blobs(300, seed=3)  # later rounds warm-start from it
    second = fit(
        TrainConfig(), MODEL, ids + more_ids, np.concatenate([x, more_x]),
        np.concatenate([y, more_y]), champion=first.challenger,
    )  # fmt: skip
    assert second is not None
    assert accuracy(second.challenger, test_x, test_y) > 0.95


def test_a_champion_scaled_by_an_outlier_passes_no_scaling_on() -> None:
    ids, x, y = blobs(600)
    poisoned = MLP(2, 3, [16], 0.0)
    poisoned.std.fill_(1e19)  # what a model fitted before robust scaling kept forever
    result = fit(TrainConfig(), MODEL, ids, x, y, champion=poisoned)
    assert result is not None
    assert result.accuracy > 0.95 and result.champion_accuracy is not None
    assert result.champion_accuracy < 0.6
    assert bool((result.challenger.std < 10).all())


def test_a_feature_constant_in_the_first_labels_does_not_swamp_later_predictions() -> None:
    ids, x, y = blobs(600)
    x[:, 1] = 0.0  # constant so far (a sparse feature, say); the class is in feature 0 alone
    x[:, 0] = np.array([0.0, 4.0, -4.0], dtype=np.float32)[y] + np.float32(0.3) * x[:, 0]
    result = fit(TrainConfig(), MODEL, ids, x, y, champion=None)
    assert result is not None
    _, later, later_y = blobs(500, seed=4)
    later[:, 0] = np.array([0.0, 4.0, -4.0], dtype=np.float32)[later_y]
    later[:, 1] = np.random.default_rng(5).normal(scale=2.0, size=500)  # now it varies
    result.challenger.eval()
    with torch.inference_mode():
        p = torch.softmax(result.challenger(torch.as_tensor(later)), 1)
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
