"""Thresholds published with a model are computed for that model."""

from __future__ import annotations

import numpy as np
from torch import nn

from streamal.config import Settings
from streamal.messages import Sample
from streamal.model import FeatureModel, ModelConfig, Predictor
from streamal.model.features import FeatureRows
from streamal.training.thresholds import (
    MIN_ANSWERS_EACH,
    auto_label_out_of_reach,
    auto_label_threshold,
    budget_threshold,
    explore_share,
)

CLASSES = ["a", "b"]


def identity_module(n_features: int, n_classes: int) -> nn.Module:
    return nn.Identity()


def identity() -> Predictor:
    module = "tests.training.test_thresholds:identity_module"
    return Predictor(FeatureModel(ModelConfig(n_features=2, classes=CLASSES, module=module)), 3)


def logits(p_first: np.ndarray) -> list[Sample]:
    """Samples whose features an identity model turns into probabilities (p, 1 - p)."""
    features = np.stack([np.log(p_first), np.log1p(-p_first)], axis=1).astype(np.float32)
    return FeatureRows([str(i) for i in range(len(p_first))], features)[:]


def test_the_budget_threshold_lets_the_budget_share_through() -> None:
    settings = Settings(strategy={"score": "least_confidence", "budget": 0.2})
    p = np.random.default_rng(0).uniform(0.5, 1.0, 5000)
    threshold = budget_threshold(settings, identity(), logits(p))
    assert threshold is not None
    share = np.mean(1 - p >= threshold)  # least confidence of each sample against it
    assert abs(share - 0.2) < 0.01
    assert budget_threshold(settings, identity(), logits(p[:99])) is None  # too few to trust


def test_auto_labeling_waits_for_enough_audits_then_meets_the_target() -> None:
    settings = Settings(strategy={"auto_label": {"min_audits": 100, "target_precision": 0.95}})
    rng = np.random.default_rng(1)
    p = rng.uniform(0.5, 1.0, 3000)
    correct = rng.random(3000) < p  # a calibrated model, as served
    assert auto_label_threshold(settings, p[:50], correct[:50]) is None
    found = auto_label_threshold(settings, p, correct)
    assert found is not None
    threshold, bound = found
    assert bound >= 0.95
    above = p >= threshold
    realized = np.mean(correct[above])
    assert realized >= 0.95
    # calibrated: precision above t is (1 + t) / 2, so the point estimate would stop at 0.90;
    # the lower bound must ask for more, but not absurdly much
    assert 0.9 < threshold < 0.96


def test_the_first_models_wrong_audits_do_not_hold_a_better_model_back() -> None:
    settings = Settings(strategy={"auto_label": {"min_audits": 100}})
    rng = np.random.default_rng(2)
    confidences = rng.uniform(0.9, 1.0, 300)
    first = rng.random(100) < 0.9  # the first model's audits: right 90% of the time
    correct = np.concatenate([first, np.ones(200, dtype=bool)])  # the better models' since
    found = auto_label_threshold(settings, confidences, correct)
    assert found is not None and found[1] >= 0.98
    assert found[0] <= 0.91  # every confidence seen qualifies
    # the same outcomes the other way round: a model that got worse keeps auto-labeling off
    assert auto_label_threshold(settings, confidences, correct[::-1]) is None


def test_audits_right_too_seldom_for_the_target_put_auto_labeling_out_of_reach() -> None:
    # answers that disagree with the model 6% of the time, however sure it is: no threshold,
    # and serve is told to audit fewer; a calibrated model's audits are never out of reach,
    # nor the first model's wrong ones once better models' came
    settings = Settings(strategy={"auto_label": {"min_audits": 200}})
    rng = np.random.default_rng(5)
    sure = rng.uniform(0.9, 1.0, 1000)
    noisy = rng.random(1000) > 0.06
    assert auto_label_threshold(settings, sure, noisy) is None
    assert auto_label_out_of_reach(settings, sure, noisy)
    assert not auto_label_out_of_reach(settings, sure[:150], noisy[:150])  # fewer than 200
    calibrated = rng.random(1000) < sure
    assert not auto_label_out_of_reach(settings, sure, calibrated)
    better = np.concatenate([noisy[:300], np.ones(700, dtype=bool)])
    assert not auto_label_out_of_reach(settings, sure, better)


def answers(confidence: float, right_share: float, n: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """``n`` answers served at ``confidence``, the first ``right_share`` of them right."""
    return np.full(n, confidence), np.arange(n) < right_share * n


def test_random_answers_get_the_budget_as_they_surprise_the_model_more() -> None:
    unsure = answers(0.55, 0.55)  # uncertain requests: as right as the model said
    # sure, and as right as sure: random requests teach little, the share stays near the floor
    calibrated = explore_share(answers(0.95, 0.95), unsure, 2, floor=0.2)
    assert calibrated is not None and 0.2 <= calibrated < 0.25
    assert explore_share(answers(0.99, 1.0), unsure, 2, floor=0.2) == 0.2
    # sure and wrong more and more often (a concept that moved far): the share grows with it
    shares = [explore_share(answers(0.95, r), unsure, 2, floor=0.2) for r in (0.8, 0.6, 0.3)]
    assert shares == sorted(shares) and shares[0] > calibrated and shares[-1] > 0.7  # type: ignore[operator]


def test_no_explore_share_until_both_kinds_have_enough_answers() -> None:
    few = answers(0.95, 0.5, n=MIN_ANSWERS_EACH - 1)
    assert explore_share(few, answers(0.55, 0.55), 2, floor=0.2) is None
    assert explore_share(answers(0.55, 0.55), few, 2, floor=0.2) is None
