"""Diverse cold start of pool selection: k-means++ and k-center cover a pool with a rare
cluster, labeled items count as covered, and ``pool select`` starts cold without a model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from streamal.config import Settings
from streamal.messages import Sample
from streamal.model import Predictor
from streamal.model.default import FeatureModel
from streamal.model.features import FeatureRows
from streamal.pool import k_center
from streamal.pool.coldstart import select_cold
from streamal.pool.job import Pool, PoolError
from streamal.pool.kmeanspp import k_means_pp
from streamal.strategies import PoolConfig
from tests.pool.test_job import label_some, pool_select, setup  # noqa: F401

SETTINGS = Settings(model={"n_features": 2, "classes": ["a", "b"], "hidden": [8]})


def clusters(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """990 items in two big clusters and 10 (1%) in a rare one; which cluster each is in."""
    rng = np.random.default_rng(seed)
    cluster = np.repeat([0, 1, 2], [600, 390, 10])
    centers = np.array([[0.0, 0.0], [8.0, 0.0], [4.0, 7.0]])
    return (centers[cluster] + rng.normal(scale=0.7, size=(1_000, 2))).astype(np.float32), cluster


def pool_of(x: np.ndarray) -> Pool:
    ids = [f"p{i}" for i in range(len(x))]
    return Pool(ids, FeatureRows(ids, x))


def untrained() -> Predictor:
    torch.manual_seed(0)
    return Predictor(FeatureModel(SETTINGS.model), 0)


def test_k_center_finds_the_rare_cluster_in_three_picks() -> None:
    x, cluster = clusters()
    assert sorted(cluster[k_center(x, 3)].tolist()) == [0, 1, 2]


def test_k_means_pp_finds_the_rare_cluster_far_more_often_than_random_picks() -> None:
    x, cluster = clusters()
    found = sum(2 in cluster[k_means_pp(x, 10, seed=seed)] for seed in range(20))
    by_chance = sum(
        2 in cluster[np.random.default_rng(seed).choice(1_000, 10, replace=False)]
        for seed in range(20)
    )
    assert found >= 15 and by_chance <= 6, (found, by_chance)


@pytest.mark.parametrize("method", ["kmeans++", "kcenter"])
def test_labeled_items_count_as_covered(method: str) -> None:
    x, cluster = clusters()
    labeled = [Sample(id="l0", features=[0.0, 0.0]), Sample(id="l1", features=[8.0, 0.0])]
    config = PoolConfig(cold_start=method)
    picked = select_cold(pool_of(x), 1, config, untrained(), labeled)
    if method == "kcenter":  # the farthest from the labeled: the rare cluster
        assert cluster[picked.indices[0]] == 2
    assert picked.utilities[0] > 0


def test_distances_are_measured_in_robustly_standardized_inputs() -> None:
    x, cluster = clusters()
    x[:, 1] *= 1_000  # the second feature in other units: the clusters differ in both
    noise = np.random.default_rng(1).normal(scale=5_000.0, size=(1_000, 1)).astype(np.float32)
    wide = np.hstack([x, noise])  # a wide noise column dominates raw distances
    settings = Settings(model={"n_features": 3, "classes": ["a", "b"], "hidden": [8]})
    predictor = Predictor(FeatureModel(settings.model), 0)
    picked = select_cold(pool_of(wide), 3, PoolConfig(cold_start="kcenter"), predictor, None)
    assert len(set(cluster[picked.indices].tolist())) >= 2
    assert (np.diff(picked.indices) != 0).all()


def test_a_model_without_features_or_embeddings_cannot_start_cold() -> None:
    settings = Settings(
        model={"n_features": 2, "classes": ["a", "b"], "module": "tests.plugins_for_tests:plain"}
    )
    predictor = Predictor(_ListModel(settings), 0)
    with pytest.raises(PoolError, match="input is no feature matrix and it has no embed"):
        select_cold(pool_of(clusters()[0]), 2, PoolConfig(), predictor, None)


class _ListModel(FeatureModel):
    """Reads features as a list of rows, and has no embeddings."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.model)

    @property
    def has_embeddings(self) -> bool:
        return False

    def encode(self, samples):  # type: ignore[no-untyped-def]
        encoded = super().encode(samples)
        encoded.inputs = encoded.inputs.tolist()
        return encoded


def test_pool_select_starts_cold_without_a_model_and_while_a_class_lacks_labels(
    setup,  # noqa: F811
    tmp_path: Path,
) -> None:
    settings, config, pool = setup
    for version in (settings.model.store / "default").glob("v*"):
        version.unlink()
    out = tmp_path / "picked.jsonl"
    result = pool_select(config, "-i", str(pool), "-k", "6", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "(cold start kcenter: no trained model yet)" in result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len({r["id"] for r in rows}) == 6 and all(r["utility"] > 0 for r in rows)
    off = pool_select(config, "-i", str(pool), "-k", "6", "--cold-start", "off", "-o", str(out))
    assert off.returncode == 1 and "no usable model in" in off.stderr
    label_some(settings, 2)  # classes a and b, no c
    missing = pool_select(config, "-i", str(pool), "-k", "6", "--proxy", "fit", "-o", str(out))
    assert "(cold start kcenter: no label of class c yet)" in missing.stderr, missing.stderr
