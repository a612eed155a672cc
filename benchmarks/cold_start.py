"""Diverse cold start against random picks: labels asked until every class has been seen, on
streams with a rare class; prints one JSON object.

- ``stream``: the real router (`streamal.stream.router.Router`, as ``serve`` runs it) with an
  untrained model (version 0) routes the stream in batches of 100 at budget 0.05 (the default
  quantile gate), ``strategy.cold_start: diverse`` against ``random``, on the same samples;
  counted: label requests until every class was asked once.
- ``pool``: the first 3,000 samples as a pool, without a model: the order of
  `streamal.pool.coldstart.select_cold`'s picks (k-means++, k-center) against a random order;
  counted: picks until every class was picked once.

Streams: ``rare`` (the built-in one: 3 classes, the rare one 3% of the samples, between the
other two where they overlap) and ``rare_apart`` (3 Gaussian classes in 10 dimensions, the
rare one 3%, its own cluster), each drawn with ``--seeds`` seeds. Reported per stream: the
mean and median over seeds, per seed, and the ratio random / diverse of the means.

Usage: ``python benchmarks/cold_start.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from streamal.config import Settings
from streamal.messages import LabelRequest, decode
from streamal.model import FeatureModel, Predictor
from streamal.model.features import FeatureRows
from streamal.pool.coldstart import select_cold
from streamal.pool.job import Pool
from streamal.simulation.streams import LabeledStream, builtin, imbalanced
from streamal.strategies import PoolConfig
from streamal.stream.router import Router
from streamal.transport import Envelope

SAMPLES, BATCH, BUDGET, POOL = 6_000, 100, 0.05, 3_000


def rare_apart(n: int, seed: int) -> LabeledStream:
    """Three classes in the proportions 67 / 30 / 3 %, each its own Gaussian cluster."""
    stream = imbalanced(n, seed=seed)
    rng = np.random.default_rng([seed, 7])
    centers = rng.normal(scale=2.0, size=(3, stream.features.shape[1]))
    features = centers[stream.labels] + rng.normal(scale=1.5, size=stream.features.shape)
    return LabeledStream(features.astype(np.float32), stream.labels, stream.classes, stream.ids)


STREAMS: dict[str, Callable[[int, int], LabeledStream]] = {
    "rare": lambda n, seed: builtin("rare", n, seed=seed),
    "rare_apart": rare_apart,
}


def until_every_class(labels: list[int], classes: int) -> int | None:
    """How many of ``labels`` (in order) until every class appeared; None: never."""
    seen: set[int] = set()
    for count, label in enumerate(labels, 1):
        seen.add(label)
        if len(seen) == classes:
            return count
    return None


def stream_run(stream: LabeledStream, cold_start: str, seed: int) -> int | None:
    settings = Settings(
        model={"n_features": stream.features.shape[1], "classes": stream.classes,
               "hidden": [32], "device": "cpu"},
        strategy={"budget": BUDGET, "cold_start": cold_start, "seed": seed},
    )  # fmt: skip
    router = Router(settings, Predictor(FeatureModel(settings.model), 0))
    index = {sample_id: i for i, sample_id in enumerate(stream.ids)}
    asked: list[int] = []
    for start in range(0, len(stream.ids), BATCH):
        rows = range(start, min(start + BATCH, len(stream.ids)))
        envelopes = [
            Envelope("samples", 0, i, None, sample.model_dump_json().encode(), (), 0)
            for i, sample in zip(rows, stream.samples(rows), strict=True)
        ]
        plan = router.plan(envelopes)
        router.commit(plan)
        for record in plan.records:
            if record.topic == settings.topics.label_requests:
                asked.append(int(stream.labels[index[decode(LabelRequest, record.value).id]]))
    return until_every_class(asked, len(stream.classes))


def pool_run(stream: LabeledStream, method: str, seed: int) -> int | None:
    features, labels = stream.features[:POOL], stream.labels[:POOL]
    if method == "random":
        order = np.random.default_rng(seed).permutation(POOL)
    else:
        settings = Settings(
            model={"n_features": features.shape[1], "classes": stream.classes, "device": "cpu"}
        )
        ids = stream.ids[:POOL]
        picked = select_cold(
            Pool(ids, FeatureRows(ids, features)), 200, PoolConfig(cold_start=method, seed=seed),
            Predictor(FeatureModel(settings.model), 0), None,
        )  # fmt: skip
        order = picked.indices
    return until_every_class(labels[order].tolist(), len(stream.classes))


def summary(counts: list[int | None]) -> dict[str, Any]:
    found = [c for c in counts if c is not None]
    return {
        "mean": round(float(np.mean(found)), 1) if found else None,
        "median": float(np.median(found)) if found else None,
        "never": len(counts) - len(found),
        "per_seed": counts,
    }


def ratio(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    return round(a["mean"] / b["mean"], 2) if a["mean"] and b["mean"] else None


def report(seeds: int, samples: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "samples": samples, "batch": BATCH, "budget": BUDGET, "pool": POOL, "seeds": seeds,
    }  # fmt: skip
    for name, make in STREAMS.items():
        streams = [make(samples, seed) for seed in range(seeds)]
        shares = np.bincount(np.concatenate([s.labels for s in streams])) / (samples * seeds)
        on_stream = {
            mode: summary([stream_run(s, mode, seed) for seed, s in enumerate(streams)])
            for mode in ("diverse", "random")
        }
        on_pool = {
            method: summary([pool_run(s, method, seed) for seed, s in enumerate(streams)])
            for method in ("kmeans++", "kcenter", "random")
        }
        result[name] = {
            "class_shares": [round(float(s), 3) for s in shares],
            "stream_labels_until_every_class": on_stream,
            "stream_ratio_random_over_diverse": ratio(on_stream["random"], on_stream["diverse"]),
            "pool_picks_until_every_class": on_pool,
            "pool_ratio_random_over_kmeans++": ratio(on_pool["random"], on_pool["kmeans++"]),
            "pool_ratio_random_over_kcenter": ratio(on_pool["random"], on_pool["kcenter"]),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    quick = parser.parse_args().quick
    print(json.dumps(report(seeds=2 if quick else 10, samples=SAMPLES), indent=2))


if __name__ == "__main__":
    main()
