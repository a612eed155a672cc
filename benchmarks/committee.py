"""Query by committee (``model.committee: K``): what it costs per K, and what it buys; prints one
JSON object, everything measured side by side in this run.

- ``cost``: per K, seconds to score a pool (a committee's K votes with ``vote_entropy``, against
  one model's ``margin`` and its MC-dropout ``bald`` over ``strategy.mc_passes`` passes), to
  train one round, and checkpoint bytes; each as a ratio to the single model's.
- ``pool``: pool-based learning on a generated pool (5 classes of two Gaussian blobs each, 10
  features): from 20 random labels, rounds of 20 picks up to ``--labels``, each round a fresh
  fit on the labels so far (`streamal.training.fit`) and picks by `streamal.pool.job.select`;
  test accuracy per round for random, margin, MC-dropout BALD and a committee of
  ``--members`` with vote entropy, consensus KL and max disagreement, averaged over
  ``--seeds``. Reported: the accuracy at the last round, the area under the learning curve
  (mean accuracy over the rounds) and the labels each needs to reach 95% of the accuracy of
  a single model trained on the whole pool; ratios against random and margin.

Usage: ``python benchmarks/committee.py [--quick] [--members K] [--labels N] [--seeds S]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamal.config import Settings
from streamal.model import Labeled, ModelConfig, ModelStore, Predictor
from streamal.model.factory import model_factory
from streamal.pool.job import Pool, select, selector_for
from streamal.simulation.streams import gaussian_classes
from streamal.strategies import PoolConfig, build_score
from streamal.training.fit import accuracy, fit

FEATURES, CLASSES, START, STEP = 10, 5, 20, 20
RUNS = {  # name: (score, committee members; None: --members)
    "random": ("random", 1),
    "margin": ("margin", 1),
    "mc_dropout_bald": ("bald", 1),
    "committee_vote_entropy": ("vote_entropy", None),
    "committee_consensus_kl": ("consensus_kl", None),
    "committee_max_disagreement": ("max_disagreement", None),
}


def model_config(members: int) -> ModelConfig:
    return ModelConfig(
        n_features=FEATURES, classes=[str(c) for c in range(CLASSES)], hidden=[64],
        committee=members, device="cpu", fit={"max_epochs": 30},
    )  # fmt: skip


def data(n: int, seed: int) -> Labeled:
    stream = gaussian_classes(
        n, n_features=FEATURES, n_classes=CLASSES, centroids=2, spread=1.5, seed=seed
    )
    return Labeled(stream.samples(range(n)), stream.labels.astype(np.int64))


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def best_of(run: Callable[[], Any], repeats: int = 3) -> float:
    """The fastest of ``repeats`` timed runs of ``run`` (after one to warm up)."""
    run()
    return min(timed(run)[0] for _ in range(repeats))


def cost(ks: list[int], pool_size: int, passes: int, tmp: Path) -> dict[str, Any]:
    train, pool = data(1000, seed=0), data(pool_size, seed=0)
    fit(model_factory(model_config(1)), data(50, seed=0), 0.2, None)  # warm up torch
    rows: dict[str, Any] = {}
    base: dict[str, float] = {}
    for k in ks:
        torch.manual_seed(0)
        train_s, result = timed(partial(fit, model_factory(model_config(k)), train, 0.2, None))
        assert result is not None
        predictor = Predictor(result.challenger, 0)
        inputs = predictor.encode(pool.samples).inputs
        if k == 1:
            score_s = best_of(partial(score_pool, predictor, inputs, "margin", None))
        else:
            score_s = best_of(partial(score_pool, predictor, inputs, "vote_entropy", passes))
        store = ModelStore(tmp / f"k{k}", "m")
        checkpoint = store.save(result.challenger.state_dict(), model_config(k).classes)
        size = store.weights_path(checkpoint.version).stat().st_size
        row = {"score_s": round(score_s, 4), "train_s": round(train_s, 2), "bytes": size}
        if k == 1:
            base = {"score_s": score_s, "train_s": train_s, "bytes": size}
            mc_s = best_of(partial(score_pool, predictor, inputs, "bald", passes))
            row["mc_dropout_bald_score_s"] = round(mc_s, 4)
            row["mc_dropout_bald_over_margin"] = round(mc_s / score_s, 2)
        else:
            for key in ("score_s", "train_s", "bytes"):
                row[f"{key}_over_single"] = round(row[key] / base[key], 2)
        rows[f"k{k}"] = row
    return {"pool": pool_size, "mc_passes": passes, "by_members": rows}


def score_pool(predictor: Predictor, inputs: Any, name: str, passes: int | None) -> Any:
    """Utilities of the pool: from probabilities, or from passes (a committee's K votes)."""
    score = build_score(name)
    if passes is None:
        return score(predictor.probabilities(inputs))
    return score(predictor.stochastic(inputs, passes))


def learning_curve(
    score: str, members: int, pool: Labeled, test: Labeled, labels: int, seed: int
) -> list[float]:
    settings = Settings(model=model_config(members))
    fresh = model_factory(settings.model)
    chosen = list(np.random.default_rng(seed).choice(len(pool), START, replace=False))
    curve = []
    while True:
        rows = np.array(chosen)
        labeled = Labeled([pool.samples[i] for i in rows], pool.targets[rows])
        torch.manual_seed(seed)
        result = fit(fresh, labeled, 0.2, None, seed)
        assert result is not None
        curve.append(accuracy(result.challenger, test))
        if len(chosen) >= labels:
            return curve
        rest = np.setdiff1d(np.arange(len(pool)), rows)
        candidates = Pool([pool.samples[i].id for i in rest], [pool.samples[i] for i in rest])
        predictor = Predictor(result.challenger, 0)
        config = PoolConfig(score=score, mc_passes=20, seed=seed + len(chosen))
        picked = select(settings, candidates, STEP, selector_for(config, predictor), predictor)
        chosen += [int(rest[i]) for i in picked.indices]


def labels_to(curve: list[float], target: float) -> int | None:
    reached = [START + STEP * i for i, a in enumerate(curve) if a >= target]
    return reached[0] if reached else None


def pool_runs(members: int, labels: int, seeds: int, pool_size: int) -> dict[str, Any]:
    curves: dict[str, list[list[float]]] = {name: [] for name in RUNS}
    ceilings = []
    for seed in range(seeds):
        everything = data(pool_size + 3000, seed=100 + seed)
        pool = Labeled(everything.samples[:pool_size], everything.targets[:pool_size])
        test = Labeled(everything.samples[pool_size:], everything.targets[pool_size:])
        torch.manual_seed(seed)
        full = fit(model_factory(model_config(1)), pool, 0.2, None, seed)
        assert full is not None
        ceilings.append(accuracy(full.challenger, test))
        for name, (score, k) in RUNS.items():
            curve = learning_curve(score, k or members, pool, test, labels, seed)
            curves[name].append(curve)
    target = 0.95 * float(np.mean(ceilings))
    mean = {name: np.mean(runs, axis=0) for name, runs in curves.items()}
    result: dict[str, Any] = {
        "pool": pool_size, "members": members, "labels": labels, "seeds": seeds,
        "full_pool_accuracy": round(float(np.mean(ceilings)), 4), "target": round(target, 4),
    }  # fmt: skip
    for name, curve in mean.items():
        area = float(curve.mean())
        result[name] = {
            "final_accuracy": round(float(curve[-1]), 4),
            "curve_area": round(area, 4),
            "area_over_random": round(area / float(mean["random"].mean()), 3),
            "area_over_margin": round(area / float(mean["margin"].mean()), 3),
            "labels_to_target": labels_to(list(curve), target),
            "curve": [round(float(a), 3) for a in curve],
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--labels", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        report = {
            "torch_threads": torch.get_num_threads(),
            "cost": cost([1, 3, 5, 10], 20_000 if args.quick else 200_000, 20, tmp),
            "pool": pool_runs(
                args.members,
                100 if args.quick else args.labels,
                1 if args.quick else args.seeds,
                1000 if args.quick else 3000,
            ),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
