"""`streamal.pool.job.select` in process: scores with a pool limit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamal.config import Settings
from streamal.model import Predictor
from streamal.model.default import FeatureModel
from streamal.model.features import FeatureRows
from streamal.pool.job import Pool, PoolError, select, selector_for
from streamal.strategies import PoolConfig

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
        "use a cheaper --strategy"
    )
