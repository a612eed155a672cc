"""Stopping criteria against where the learning curve actually flattened; prints one JSON object.

Each built-in stream runs through the real serve + simulated annotator + train loop
(`streamal.simulation.run.simulate`, margin at budget 0.1, the trainer's default
``train.stopping``), and the run's report says where each rule first held and where the
rolling prequential accuracy came within 0.02 of the best still to come (the curve
flattened). Per stream and rule: the labels spent when it held over those at the flattening
(below 1: early, above: late), and the accuracy still to come by going on; then, per rule,
the median ratio and the mean accuracy to come over the streams where it held, and where it
never did.

Usage: ``python benchmarks/stopping.py [--quick] [--samples N] [--streams A,B]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from streamal.config import Settings
from streamal.metrics import STOPPING_RULES
from streamal.simulation.run import Options, simulate
from streamal.simulation.streams import builtin

STREAMS = ("stationary", "many_classes", "rare", "sparse", "abrupt", "relocated")


def run(name: str, samples: int, folder: Path) -> dict[str, Any]:
    stream = builtin(name, samples, seed=0)
    options = Options(budget=0.1, rate=1500, seed=0)
    report = simulate(Settings(), stream, name, "margin", folder / name, options)
    stopping = report["stopping"]
    flat = stopping["flattened"]
    result: dict[str, Any] = {
        "samples": len(stream.ids),
        "labels_used": report["labels_used"],
        "final_accuracy": report["final_accuracy"],
        "stream_drifts": report["stream_drifts"],
        "flattened": flat,
    }
    for rule in STOPPING_RULES:
        point = stopping["rules"][rule]
        if point is None or flat is None:
            result[rule] = point
            continue
        result[rule] = {
            "labels": point["labels"],
            "labels_over_flattened": round(point["labels"] / max(flat["labels"], 1), 2),
            "accuracy_to_come": point["accuracy_to_come"],
        }
    return result


def summary(streams: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rules: dict[str, Any] = {}
    for rule in STOPPING_RULES:
        held = [r[rule] for r in streams.values() if r[rule] and "labels_over_flattened" in r[rule]]
        rules[rule] = {
            "held_on": len(held),
            "never_on": [name for name, r in streams.items() if r[rule] is None],
            "median_labels_over_flattened": round(
                float(np.median([h["labels_over_flattened"] for h in held])), 2
            )
            if held
            else None,
            "mean_accuracy_to_come": round(float(np.mean([h["accuracy_to_come"] for h in held])), 4)
            if held
            else None,
        }
    return rules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two short streams, a smoke run")
    parser.add_argument("--samples", type=int, default=8000)
    parser.add_argument("--streams", default=",".join(STREAMS))
    args = parser.parse_args()
    names = ["stationary", "abrupt"] if args.quick else args.streams.split(",")
    samples = 3000 if args.quick else args.samples
    with tempfile.TemporaryDirectory() as folder:
        streams = {name: run(name, samples, Path(folder)) for name in names}
    report = {"budget": 0.1, "score": "margin", "rules": summary(streams), "streams": streams}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
