"""Selection via proxy: the proxy's settings, training it on labels, loading a stored one, and
``pool select --proxy`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from streamal.config import Settings
from streamal.errors import ConfigError, ModelError
from streamal.messages import Sample
from streamal.model import MLP, ModelStore
from streamal.pool.job import Pool, PoolError, read_pool, select, selector_for
from streamal.pool.proxy import fit_proxy, labeled_targets, load_proxy, proxy_model
from streamal.strategies import PoolConfig
from tests.pool.test_job import CLASSES, label_some, pool_select, setup  # noqa: F401


def test_the_proxy_is_the_model_section_with_its_own_fields() -> None:
    settings = Settings(
        model={"n_features": 7, "classes": ["x", "y"], "hidden": [512, 512], "dropout": 0.3},
        pool={"proxy": {"hidden": [4], "name": "small"}},
    )
    proxy = proxy_model(settings)
    assert (proxy.n_features, proxy.classes, proxy.hidden, proxy.dropout, proxy.name) == (
        7, ["x", "y"], [4], 0.0, "small",
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"^config error: pool.proxy: "):
        proxy_model(Settings(pool={"proxy": {"options": {"a": 1}}}))


def _two_classes(n: int, seed: int) -> tuple[list[Sample], np.ndarray]:
    """Points in 2-D, class 1 right of x = 0."""
    x = np.random.default_rng(seed).uniform(-1, 1, size=(n, 2))
    return [Sample(id=f"s{i}", features=row.tolist()) for i, row in enumerate(x)], x


def test_a_proxy_trained_on_labels_selects_near_the_class_boundary() -> None:
    settings = Settings(model={"n_features": 2, "classes": ["left", "right"]})
    labeled, x = _two_classes(200, seed=1)
    names = ["right" if row[0] > 0 else "left" for row in x]
    predictor = fit_proxy(
        proxy_model(settings), labeled_targets(labeled, names, settings.model.classes), 0.2, 0
    )
    pool_samples, pool_x = _two_classes(1_000, seed=2)
    pool = Pool([s.id for s in pool_samples], pool_samples)
    selector = selector_for(PoolConfig(score="margin"), predictor)
    picked = select(settings, pool, 50, selector, predictor).indices
    assert np.abs(pool_x[picked, 0]).mean() < 0.25 * np.abs(pool_x[:, 0]).mean()


def test_fitting_a_proxy_without_labels_says_so() -> None:
    with pytest.raises(PoolError, match="the label store has none it reads"):
        load_proxy(Settings(), "fit", None)


def test_a_stored_proxy_loads_from_its_own_folder_and_the_target_does_not_fit(
    tmp_path: Path,
) -> None:
    settings = Settings(model={"n_features": 4, "classes": CLASSES, "store": str(tmp_path)})
    torch.manual_seed(0)
    ModelStore(tmp_path, "proxy").save(MLP(4, 3, [16], 0.0).state_dict(), CLASSES)
    loaded = load_proxy(settings, "latest", None)
    assert loaded.version == 1 and loaded.model.network.head.in_features == 16
    target = tmp_path / "target.pt"
    torch.save(MLP(4, 3, [64, 64], 0.1).state_dict(), target)
    with pytest.raises(ModelError, match="checkpoint does not fit the model"):
        load_proxy(settings, str(target), None)


def test_pool_select_with_a_proxy_fitted_on_the_label_store(setup, tmp_path: Path) -> None:  # noqa: F811
    settings, config, pool = setup
    label_some(settings, 12)
    out = tmp_path / "picked.jsonl"
    result = pool_select(config, "-i", str(pool), "-k", "9", "--proxy", "fit", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "proxy fit" in result.stderr
    ids = {json.loads(line)["id"] for line in out.read_text().splitlines()}
    assert len(ids) == 9 and ids <= set(read_pool(pool).ids)
    bare = pool_select(config, "-i", str(pool), "-k", "9", "--proxy", "latest", "--cold-start",
                       "off", "-o", str(out))  # fmt: skip
    assert bare.returncode == 1 and "no usable model in" in bare.stderr
