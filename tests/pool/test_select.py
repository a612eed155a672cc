"""`streamal.pool.job.select` in process: scores with a pool limit, random subsampling."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from streamal.config import Settings
from streamal.model import Predictor
from streamal.model.default import FeatureModel
from streamal.model.features import FeatureRows
from streamal.pool import subsample, top_k
from streamal.pool.job import Pool, PoolError, select, selector_for
from streamal.strategies import PoolConfig, Score, margin
from tests.pool.test_job import pool_select, setup  # noqa: F401

SETTINGS = Settings(model={"n_features": 3, "classes": ["a", "b"], "hidden": [8]})


def predictor() -> Predictor:
    torch.manual_seed(0)
    return Predictor(FeatureModel(SETTINGS.model), 0)


def pool(n: int, seed: int = 0) -> Pool:
    features = np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)
    ids = [f"p{i}" for i in range(n)]
    return Pool(ids, FeatureRows(ids, features))


@pytest.mark.parametrize("score", ["expected_error_reduction", "expected_model_change"])
def test_a_look_ahead_score_selects_from_a_small_pool_and_refuses_a_large_one(score: str) -> None:
    model = predictor()
    selector = selector_for(PoolConfig(score=score), model)
    picked = select(SETTINGS, pool(300), 10, selector, model)
    assert len(set(picked.indices.tolist())) == 10
    assert (np.diff(picked.utilities) <= 1e-12).all()  # best first
    with pytest.raises(PoolError) as refused:
        select(SETTINGS, pool(25_001), 10, selector, model)
    assert str(refused.value) == (
        f"--strategy {score} scores pools of at most 50,000 items x classes (got 25,001 x 2): "
        "pass --subsample 25000 or use a cheaper --strategy"
    )
    subsampled = selector_for(PoolConfig(score=score, subsample=1_000), model)
    assert len(select(SETTINGS, pool(25_001), 3, subsampled, model).indices) == 3


def test_a_subsample_is_scored_alone_and_picks_keep_their_pool_positions() -> None:
    model, whole = predictor(), pool(2_000)
    config = PoolConfig(score="margin", subsample=300, seed=4)
    picked = select(SETTINGS, whole, 20, selector_for(config, model), model)
    drawn = subsample(2_000, 300, seed=4)
    assert set(picked.indices.tolist()) <= set(drawn.tolist())
    probs = model.probabilities(model.encode(whole.take(drawn).samples).inputs)
    np.testing.assert_array_equal(picked.indices, drawn[top_k(margin(probs), 20)])
    np.testing.assert_allclose(picked.utilities, margin(probs).numpy()[top_k(margin(probs), 20)])


def test_subsampling_keeps_k_center_from_picking_every_outlier() -> None:
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(20, 3))
    far = 8 * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    features = np.vstack([rng.normal(size=(2_000, 3)), far])
    ids = [f"p{i}" for i in range(len(features))]
    whole = Pool(ids, FeatureRows(ids, features.astype(np.float32)))
    model = predictor()
    outliers = {}
    for keep in (None, 200):
        selector = selector_for(PoolConfig(diversity="kcenter", subsample=keep), model)
        picked = select(SETTINGS, whole, 20, selector, model, labeled=list(whole.samples[:1]))
        outliers[keep] = int((picked.indices >= 2_000).sum())
    assert outliers[None] >= 12  # the farthest points first: most of the 20 outliers (1%)
    assert outliers[200] <= 4  # about 2 of the 200 drawn are outliers


def test_pool_select_subsamples_a_jsonl_pool(setup, tmp_path: Path) -> None:  # noqa: F811
    _, config, _ = setup
    pool = tmp_path / "pool.jsonl"
    pool.write_text(
        "".join(json.dumps({"id": f"j{i}", "features": [i, 0, 1, 2]}) + "\n" for i in range(50))
    )
    out = tmp_path / "picked.jsonl"
    result = pool_select(config, "-i", str(pool), "-k", "5", "--subsample", "10", "-o", str(out))
    assert result.returncode == 0, result.stderr
    drawn = {f"j{i}" for i in subsample(50, 10, seed=0)}
    assert {json.loads(line)["id"] for line in out.read_text().splitlines()} <= drawn
    refused = pool_select(config, "-i", str(pool), "-k", "5", "--subsample", "0", "-o", str(out))
    assert refused.returncode == 2 and "--subsample" in refused.stderr


def test_the_pools_utilities_are_computed_once_per_selection() -> None:
    calls = []

    def counted(probs: torch.Tensor) -> torch.Tensor:
        calls.append(len(probs))
        return margin(probs)

    model = predictor()
    selector = replace(selector_for(PoolConfig(), model), score=Score("counted", counted))
    picked = select(SETTINGS, pool(500), 5, selector, model)
    assert calls == [500] and len(picked.indices) == 5
