"""Random subsampling of a huge pool before scoring (``pool select --subsample N``); prints one
JSON object.

A pool of ``--items`` x 64 float32 features is generated with numpy (ten classes, three
Gaussian blobs each, and 1% outliers far out in random directions) and kept in memory, never
written. A model (MLP [64]) is trained on 2,000 random labeled items. Then the pool job
(`streamal.pool.job.select`) picks ``K`` items by margin (top K) and by k-center, from the whole
pool and from random subsamples of it, side by side in one run. Reported per selection:
seconds (subsampling, the model's passes, picking), the share of picks that are outliers and
the mean margin utility of the picks; and per subsample the ratios to the whole pool.

Usage: ``python benchmarks/subsample.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
import torch

from streamal.config import Settings
from streamal.model import Labeled, Predictor
from streamal.model.factory import model_factory
from streamal.model.features import FeatureRows
from streamal.pool.job import Pool, select, selector_for
from streamal.strategies import PoolConfig
from streamal.training.fit import fit, warm_up

DIM, CLASSES, OUTLIERS = 64, 10, 0.01


def generate(items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, labels and the outlier mask of a generated pool (seed 0)."""
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=2.0, size=(3 * CLASSES, DIM))
    blob = rng.integers(len(centers), size=items)
    x = centers[blob] + rng.normal(size=(items, DIM))
    outlier = rng.random(items) < OUTLIERS
    away = rng.normal(size=(int(outlier.sum()), DIM))
    x[outlier] = 40 * away / np.linalg.norm(away, axis=1, keepdims=True)
    return x.astype(np.float32), blob % CLASSES, outlier


def trained(settings: Settings, x: np.ndarray, y: np.ndarray, labels: int) -> Predictor:
    rows = np.random.default_rng(1).choice(len(x), size=labels, replace=False)
    samples = list(FeatureRows([f"l{i}" for i in rows], x[rows]))
    result = fit(model_factory(settings.model), Labeled(samples, y[rows]), 0.2, None)
    assert result is not None
    return Predictor(result.challenger, 0)


def run(items: int, k: int, subsamples: list[int]) -> dict[str, Any]:
    warm_up()
    x, y, outlier = generate(items)
    settings = Settings(
        model={"n_features": DIM, "classes": [str(c) for c in range(CLASSES)], "hidden": [64],
               "device": "cpu"},
    )  # fmt: skip
    predictor = trained(settings, x, y, 2_000)
    ids = [f"p{i}" for i in range(items)]
    pool = Pool(ids, FeatureRows(ids, x))
    labeled = list(FeatureRows(ids[:100], x[:100]))
    result: dict[str, Any] = {
        "items": items, "dim": DIM, "classes": CLASSES, "outlier_share": float(outlier.mean()),
        "k": k, "torch_threads": torch.get_num_threads(),
    }  # fmt: skip
    for diversity in ("none", "kcenter"):
        runs: dict[str, Any] = {}
        for keep in [None, *subsamples]:
            config = PoolConfig(score="margin", diversity=diversity, subsample=keep)
            selection = select(
                settings, pool, k, selector_for(config, predictor), predictor, labeled
            )
            runs["whole" if keep is None else str(keep)] = {
                "seconds": round(selection.seconds, 2),
                "outliers_picked_share": round(float(outlier[selection.indices].mean()), 4),
                "mean_utility": round(float(selection.utilities.mean()), 4),
            }
        whole = runs["whole"]
        for keep in subsamples:
            part = runs[str(keep)]
            part["ratios_to_whole"] = {
                "seconds": round(part["seconds"] / whole["seconds"], 4),
                "outliers_picked_share": (
                    round(part["outliers_picked_share"] / whole["outliers_picked_share"], 4)
                    if whole["outliers_picked_share"]
                    else None
                ),
            }
        result["top_k_margin" if diversity == "none" else "k_center"] = runs
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    quick = parser.parse_args().quick
    items, k, subsamples = (
        (50_000, 100, [5_000]) if quick else (1_000_000, 1_000, [100_000, 20_000])
    )
    print(json.dumps(run(items, k, subsamples), indent=2))


if __name__ == "__main__":
    main()
