"""Selection via proxy (Coleman et al. 2020) on a generated pool; prints one JSON object.

Three ways of choosing the same number of labels, run side by side on the same pool, from the
same random start: each round a model is trained on the labels so far and the pool's next
``k`` are the top ``k`` by margin among the unlabeled (`streamal.pool.job.select`):

- ``target``: the target model (an MLP [1024, 1024], slow to train and run) trains and selects;
- ``proxy``: the proxy (``pool.proxy``'s default, an MLP [16]) trains and selects
  (`streamal.pool.proxy.fit_proxy`);
- ``random``: ``k`` at random.

Then the target model is trained on each labeled set and tested on held-out samples.
Reported, as means over ``seeds`` random starts: ``selection_seconds`` (all rounds), split into
``train_seconds`` (training the selecting model) and ``score_seconds`` (the pool job: reading
the pool into samples, the model's forward pass, ranking), ``target_accuracy`` at equal labels,
and the ratios ``target / proxy`` of the seconds and the accuracy differences.

The pool: ``--classes`` classes, each a mixture of Gaussian blobs in ``--dim`` dimensions,
drawn with numpy (seed 0).

Usage: ``python benchmarks/proxy.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch

from streamal.config import Settings
from streamal.model import Labeled
from streamal.model.config import ModelConfig
from streamal.model.features import FeatureRows
from streamal.pool.job import Pool, select, selector_for
from streamal.pool.proxy import fit_proxy, proxy_model
from streamal.strategies import PoolConfig
from streamal.training.fit import accuracy, warm_up

METHODS = ("target", "proxy", "random")


def blobs(n: int, dim: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points of ``classes`` classes, three Gaussian blobs each (the blobs fixed by seed
    0, the draws by ``seed``)."""
    centers = np.random.default_rng(0).normal(scale=2.0, size=(3 * classes, dim))
    rng = np.random.default_rng(seed)
    blob = rng.integers(len(centers), size=n)
    x = centers[blob] + rng.normal(scale=3.0, size=(n, dim))
    return x.astype(np.float32), blob % classes


def labeled(x: np.ndarray, y: np.ndarray, rows: np.ndarray) -> Labeled:
    return Labeled(list(FeatureRows([f"p{i}" for i in rows], x[rows])), y[rows])


def choose(
    method: str,
    settings: Settings,
    config: ModelConfig,
    x: np.ndarray,
    y: np.ndarray,
    rows: np.ndarray,
    k: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, float, float]:
    """The next ``k`` pool rows ``method`` asks for, given the labeled ``rows``; the seconds
    spent training the selecting model and scoring the pool."""
    free = np.setdiff1d(np.arange(len(x)), rows)
    if method == "random":
        return rng.choice(free, size=k, replace=False), 0.0, 0.0
    began = time.perf_counter()
    predictor = fit_proxy(config, labeled(x, y, rows), 0.2, seed=0)
    trained = time.perf_counter()
    pool = Pool([f"p{i}" for i in free], FeatureRows([f"p{i}" for i in free], x[free]))
    selector = selector_for(PoolConfig(score="margin"), predictor)
    picked = free[select(settings, pool, k, selector, predictor).indices]
    return picked, trained - began, time.perf_counter() - trained


def run(
    pool_size: int, dim: int, classes: int, start: int, rounds: int, k: int, seed: int
) -> dict[str, Any]:
    """One repetition: every method from the same ``start`` random labels (drawn by ``seed``)."""
    x, y = blobs(pool_size, dim, classes, seed=1)
    x_test, y_test = blobs(5_000, dim, classes, seed=2)
    test = Labeled(list(FeatureRows([f"t{i}" for i in range(len(x_test))], x_test)), y_test)
    settings = Settings(
        model={"n_features": dim, "classes": [str(c) for c in range(classes)],
               "hidden": [1024, 1024], "device": "cpu"},
    )  # fmt: skip
    configs = {"target": settings.model, "proxy": proxy_model(settings)}
    first = np.random.default_rng(seed).choice(pool_size, size=start, replace=False)
    result: dict[str, Any] = {}
    for method in METHODS:
        rows, rng, train_s, score_s = first.copy(), np.random.default_rng(seed + 1), 0.0, 0.0
        for _ in range(rounds):
            config = configs.get(method, settings.model)
            picked, fit_s, scored_s = choose(method, settings, config, x, y, rows, k, rng)
            rows, train_s, score_s = (
                np.concatenate([rows, picked]),
                train_s + fit_s,
                score_s + scored_s,
            )
        assert len(set(rows.tolist())) == start + rounds * k
        final = fit_proxy(settings.model, labeled(x, y, rows), 0.2, seed=0)
        result[method] = {
            "train_seconds": train_s,
            "score_seconds": score_s,
            "target_accuracy": accuracy(final.model, test),
        }
    return result


def report(
    pool_size: int, dim: int, classes: int, start: int, rounds: int, k: int, seeds: int
) -> dict[str, Any]:
    """Every method over ``seeds`` repetitions: means, and the ratios between them."""
    warm_up()  # torch's one-time optimizer set-up is paid before anything is timed
    runs = [run(pool_size, dim, classes, start, rounds, k, seed) for seed in range(seeds)]
    result: dict[str, Any] = {
        "pool": pool_size, "dim": dim, "classes": classes, "start_labels": start,
        "rounds": rounds, "k": k, "labels": start + rounds * k, "seeds": seeds,
        "torch_threads": torch.get_num_threads(),
    }  # fmt: skip
    for method in METHODS:
        mean = {key: float(np.mean([r[method][key] for r in runs])) for key in runs[0][method]}
        result[method] = {
            "selection_seconds": round(mean["train_seconds"] + mean["score_seconds"], 2),
            "train_seconds": round(mean["train_seconds"], 2),
            "score_seconds": round(mean["score_seconds"], 2),
            "target_accuracy": round(mean["target_accuracy"], 4),
            "target_accuracy_per_seed": [round(r[method]["target_accuracy"], 4) for r in runs],
        }
    target, proxy, random = (result[m] for m in METHODS)
    result["ratios"] = {
        "selection_seconds_target_over_proxy": round(
            target["selection_seconds"] / proxy["selection_seconds"], 2
        ),
        "train_seconds_target_over_proxy": round(
            target["train_seconds"] / proxy["train_seconds"], 2
        ),
        "score_seconds_target_over_proxy": round(
            target["score_seconds"] / proxy["score_seconds"], 2
        ),
        "accuracy_proxy_minus_target": round(
            proxy["target_accuracy"] - target["target_accuracy"], 4
        ),
        "accuracy_proxy_minus_random": round(
            proxy["target_accuracy"] - random["target_accuracy"], 4
        ),
        "accuracy_target_minus_random": round(
            target["target_accuracy"] - random["target_accuracy"], 4
        ),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    quick = parser.parse_args().quick
    pool_size, rounds, k, seeds = (3_000, 2, 50, 1) if quick else (30_000, 6, 150, 3)
    result = report(pool_size, 32, 10, start=100, rounds=rounds, k=k, seeds=seeds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
