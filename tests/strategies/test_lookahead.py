"""Expected error reduction and expected model change: against their definitions computed item
by item, on hand-calculated toy pools, and on a pool where they must differ from margin."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamal.config import Settings
from streamal.errors import ConfigError
from streamal.model import FeatureModel, Predictor
from streamal.strategies import build_score, expected_error_reduction, expected_model_change, margin
from streamal.stream.router import Router

TOY_P = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.9, 0.1]])
TOY_H = np.array([[0.0], [1.0], [2.0], [10.0]])


def after_label(p: np.ndarray, h: np.ndarray, i: int, y: int, width: float, s: float) -> np.ndarray:
    """The pool's predictions once item ``i`` is labeled ``y``, one item at a time."""
    updated = p.copy()
    for j in range(len(p)):
        k = math.exp(-float(np.sum((h[i] - h[j]) ** 2)) / (2 * width**2))
        w = 1.0 if j == i else k / (s + k)
        updated[j] = (1 - w) * p[j] + w * np.eye(p.shape[1])[y]
    return updated


def definitions(p: np.ndarray, h: np.ndarray, width: float, s: float) -> tuple[list, list]:
    """Expected error reduction and expected output change, by their definitions."""
    now = np.sum(1 - p.max(axis=1))
    eer, emc = [], []
    for i in range(len(p)):
        futures = [after_label(p, h, i, y, width, s) for y in range(p.shape[1])]
        eer.append(now - sum(p[i, y] * np.sum(1 - f.max(axis=1)) for y, f in enumerate(futures)))
        emc.append(sum(p[i, y] * np.abs(f - p).sum() for y, f in enumerate(futures)))
    return eer, emc


def test_the_toy_pool_gets_the_hand_calculated_scores_and_the_middle_item() -> None:
    w1 = math.exp(-1 / 2) / (1 + math.exp(-1 / 2))  # a neighbour at distance 1
    w2 = math.exp(-2) / (1 + math.exp(-2))  # at distance 2
    # labeling item 1 leaves items 0 and 2 at error 0.5 - w1 / 2 each, item 3 at 0.1
    middle = 1.6 - (2 * (0.5 - w1 / 2) + 0.1)
    end = 1.6 - ((0.5 - w1 / 2) + (0.5 - w2 / 2) + 0.1)
    eer = expected_error_reduction(TOY_P, embeddings=TOY_H, bandwidth=1.0)
    np.testing.assert_allclose(eer, [end, middle, end, 0.1])
    assert int(np.argmax(eer)) == 1
    emc = expected_model_change(TOY_P, embeddings=TOY_H, bandwidth=1.0)
    np.testing.assert_allclose(emc[1], 2 * (0.5 + w1 * 0.5 * 2))
    assert int(np.argmax(emc)) == 1


@pytest.mark.parametrize("classes", [2, 4])
def test_both_scores_match_their_definitions(classes: int) -> None:
    rng = np.random.default_rng(classes)
    p = rng.dirichlet(np.ones(classes), size=30)
    h = rng.normal(size=(30, 3))
    eer, emc = definitions(p, h, width=1.3, s=0.7)
    for chunk in (1 << 22, 7 * classes):  # one block, and blocks of a few items
        options = {"embeddings": h, "bandwidth": 1.3, "strength": 0.7, "chunk_elements": chunk}
        np.testing.assert_allclose(expected_error_reduction(p, **options), eer, rtol=1e-9)
        np.testing.assert_allclose(expected_model_change(p, **options), emc, rtol=1e-9)


def test_unlike_margin_they_prefer_an_uncertain_crowd_to_uncertain_outliers() -> None:
    rng = np.random.default_rng(0)
    crowd = rng.normal(scale=0.3, size=(200, 2))
    outliers = rng.uniform(-30, 30, size=(20, 2))
    h = np.vstack([crowd, outliers])
    p = np.vstack([np.tile([0.65, 0.35], (200, 1)), np.tile([0.5, 0.5], (20, 1))])
    assert (np.argsort(-margin(p))[:10] >= 200).all()  # the outliers are the most uncertain
    for score in (expected_error_reduction, expected_model_change):
        assert (np.argsort(-score(p, embeddings=h))[:10] < 200).all(), score.__name__


def test_a_pool_beyond_the_limit_is_refused_in_one_line() -> None:
    p, h = np.full((30, 2), 0.5), np.zeros((30, 1))
    with pytest.raises(ValueError) as refused:
        expected_model_change(p, embeddings=h, limit=50)
    assert str(refused.value) == (
        "expected_model_change scores at most 50 pool items x classes (got 30 x 2): subsample "
        "the pool or use a cheaper score"
    )
    assert build_score("expected_error_reduction").pool_limit == 50_000


def test_serve_refuses_at_start_a_batch_larger_than_the_look_ahead_limit() -> None:
    def settings(max_batch: int) -> Settings:
        return Settings(
            model={"n_features": 3, "classes": ["a", "b", "c"], "hidden": [4]},
            strategy={"score": "expected_error_reduction"},
            serve={"max_batch": max_batch},
        )

    assert Router(settings(256), Predictor(FeatureModel(settings(256).model), 1))
    with pytest.raises(ConfigError) as refused:
        Router(settings(20_000), Predictor(FeatureModel(settings(20_000).model), 1))
    assert str(refused.value) == (
        "config error: strategy.score: expected_error_reduction scores pools of at most 50,000 "
        "items x classes (got 20,000 x 3): lower serve.max_batch"
    )
