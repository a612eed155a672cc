"""Label efficiency of the whole system on the built-in streams; prints one JSON object.

For each built-in stream (``streamal simulate --stream NAME``: stationary multi-class, abrupt
and gradual drift, sparse word counts, binary pixels, many classes, a rare class, boundaries
that move far, a short stream) the real serve + simulated annotator + train loop runs three
times on the same samples at budget 0.1: streamal's default strategy, random, and the default
strategy with the MLP alone (``mlp``: ``model.online: []``, ``model.neighbors: 0``, the default
before the blend); and
streamal's own model learns from every label as soon as it is seen (``all_labels``, the
ceiling: `streamal.simulation.ceiling`, test-then-train with the trainer's recipe, no budget).
Reported per stream:

- ``labels_to_95``: labels spent until the rolling prequential accuracy first reaches 95% of
  the ceiling's final accuracy, for default and random, and their ratio (below 1: streamal
  needs fewer labels);
- ``accuracy``: prequential accuracy over the stream at budget 0.1, default against random and
  mlp (and the ceiling);
- ``labels_used`` and ``label_rate``: labels spent and their share of the stream (the realized
  budget, audits and exploration included).

With ``--peers``, the peer-anchor streams (``sea_abrupt``, ``hyperplane``, ``rbf5``, ``phishing``,
``image_segments``, generated with river as the anchors describe) run too, at budget 0.1 only
(default, random, mlp), beside the peers' measured accuracy under the same prequential
protocol (`PEER_ANCHORS`: random, and the best peer). This is the system level: streamal's own
model and trainer, against peers that learn online after every label.

Every stream runs under the peers' protocol (`PEERS_PROTOCOL`: a label, once asked, is learned
before the next samples, within a tick of 30 samples); ``--protocol annotator`` runs the
built-in streams with the simulation's annotator instead (`ANNOTATOR_PROTOCOL`: answers 0.2 s
of stream time after the request, 300 samples at the default rate, and a lockstep of 150
samples), where the first model comes about 450 samples in for every strategy alike.

Usage: ``python benchmarks/label_efficiency.py [--quick] [--samples N] [--rate R]
[--streams A,B] [--peers [A,B]] [--seeds N] [--no-ceiling] [--protocol peers|annotator]
[--jobs N]`` (``--streams ""``: none of the built-in streams; ``--jobs``: streams run at once,
each in a process of its own, with the same results).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamal.config import Settings
from streamal.simulation.ceiling import all_labels
from streamal.simulation.run import ROLLING, Options, simulate
from streamal.simulation.streams import BUILTIN, PEERS, LabeledStream, builtin, peer

PEER_ANCHORS = {  # accuracy at budget 0.1, measured with the peers' own code: random (linear
    # learner), and the best peer with the better of the two learners (linear, river's ARF)
    "sea_abrupt": (0.858, "skactiveml.FixedUncertainty", 0.874),
    "hyperplane": (0.898, "skactiveml.StreamProbabilisticAL", 0.926),
    "rbf5": (0.490, "skactiveml.VariableUncertainty with ARF", 0.624),
    "phishing": (0.846, "skactiveml.StreamProbabilisticAL", 0.876),
    "image_segments": (0.608, "skactiveml.Split with ARF", 0.722),
}

PEERS_PROTOCOL = {"label_delay_s": 0.0, "tick_s": 0.02}
"""The peers' protocol: a sample's label, once asked, is learned before the next samples (here
within a tick of the lockstep, 30 samples at the default rate), not after an annotator's delay."""

ANNOTATOR_PROTOCOL = {"label_delay_s": Options.label_delay_s, "tick_s": Options.tick_s}
"""The simulation's annotator: answers some time after the request, in a coarser lockstep."""

PROTOCOLS = {"peers": PEERS_PROTOCOL, "annotator": ANNOTATOR_PROTOCOL}

RUNS: dict[str, tuple[str | None, dict[str, Any]]] = {  # score (None: the default), settings
    "default": (None, {}),
    "random": ("random", {}),
    "mlp": (None, {"model": {"online": [], "neighbors": 0}}),
}


def run_settings(run: str) -> tuple[Settings, str]:
    """The settings and the score of ``run`` (`RUNS`)."""
    score, overrides = RUNS[run]
    settings = Settings(**overrides)
    return settings, score or settings.strategy.score


def labels_to_reach(report: dict[str, Any], target: float) -> int | None:
    """Labels spent when the rolling accuracy first reaches ``target`` where its window is
    full (a mean of the first few samples can touch it by chance); None: never.

    >>> series = {"position": [0, 600, 1200], "accuracy": [1.0, 0.7, 0.9],
    ...           "labels_used": [1, 60, 120]}
    >>> labels_to_reach({"series": series, "samples": 1200}, 0.8)
    120
    """
    series, start = report["series"], min(ROLLING, report["samples"] - 1)
    for position, accuracy, labels in zip(
        series["position"], series["accuracy"], series["labels_used"], strict=True
    ):
        if position >= start and accuracy >= target:
            return int(labels)
    return None


def stream_result(
    name: str, samples: int, rate: float, workdir: Path, ceiling: bool = True, seeds: int = 1,
    protocol: str = "peers",
) -> dict[str, Any]:  # fmt: skip
    """The built-in stream ``name`` at budget 0.1 under ``protocol`` (`PROTOCOLS`), and its
    ceiling, from seed 0; with ``seeds`` > 1, accuracies are means over the generator's seeds
    ``0 .. seeds - 1``."""
    by_seed, labels_used, first = runs_over_seeds(
        name, samples, rate, workdir, seeds, builtin, PROTOCOLS[protocol]
    )
    accuracy = mean_accuracy(by_seed)
    result: dict[str, Any] = {"samples": first["samples"]}
    if ceiling:
        stream = builtin(name, samples, seed=0)
        top = all_labels(Settings(), stream)
        accuracy["all_labels"] = top["prequential_accuracy"]
        print(f"{name}/all_labels: accuracy {accuracy['all_labels']}", file=sys.stderr)
        target = 0.95 * top["final_accuracy"]
        reports = first["reports"]
        needed = {run: labels_to_reach(reports[run], target) for run in ("default", "random")}
        ratio = None
        if needed["default"] and needed["random"]:
            ratio = round(needed["default"] / needed["random"], 3)
        result |= {
            "target_accuracy": round(target, 4),
            "labels_to_95": needed,
            "labels_ratio_default_vs_random": ratio,
        }
    return (
        result
        | {
            "accuracy": accuracy,
            "default_minus_random": round(accuracy["default"] - accuracy["random"], 4),
            "default_minus_mlp": round(accuracy["default"] - accuracy["mlp"], 4),
        }
        | budget_spent(labels_used, first["samples"])
        | ({"accuracy_by_seed": by_seed} if seeds > 1 else {})
    )


def runs_over_seeds(
    name: str,
    samples: int,
    rate: float,
    workdir: Path,
    seeds: int,
    make: Callable[..., LabeledStream],
    protocol: dict[str, float] | None = None,
) -> tuple[dict[str, list[float]], dict[str, list[int]], dict[str, Any]]:
    """Every run (`RUNS`) on stream ``name`` (``make(name, samples, seed=...)``) for seeds
    ``0 .. seeds - 1``: accuracies and labels used by run, and seed 0's reports."""
    by_seed: dict[str, list[float]] = {run: [] for run in RUNS}
    labels_used: dict[str, list[int]] = {run: [] for run in RUNS}
    first: dict[str, Any] = {"reports": {}}
    for seed in range(seeds):
        stream = make(name, samples, seed=seed)
        first.setdefault("samples", len(stream.ids))
        for run in RUNS:
            settings, chosen = run_settings(run)
            options = Options(budget=0.1, rate=rate, seed=seed, **(protocol or {}))
            where = workdir / name / f"{run}-{seed}"
            report = simulate(settings, stream, run, chosen, where, options)
            if seed == 0:
                first["reports"][run] = report
            by_seed[run].append(report["prequential_accuracy"])
            labels_used[run].append(report["labels_used"])
            print(f"{name}/{run}/seed {seed}: accuracy {by_seed[run][-1]}", file=sys.stderr)
    return by_seed, labels_used, first


def mean_accuracy(by_seed: dict[str, list[float]]) -> dict[str, float]:
    """Each run's mean accuracy over seeds."""
    return {run: round(float(np.mean(values)), 4) for run, values in by_seed.items()}


def budget_spent(labels_used: dict[str, list[int]], samples: int) -> dict[str, Any]:
    """Each run's mean labels used and label rate over seeds."""
    return {
        "labels_used": {run: round(float(np.mean(n))) for run, n in labels_used.items()},
        "label_rate": {
            run: round(float(np.mean(n)) / samples, 4) for run, n in labels_used.items()
        },
    }


def peer_result(
    name: str, samples: int, rate: float, workdir: Path, seeds: int = 1
) -> dict[str, Any]:
    """The peer stream ``name`` at budget 0.1; with ``seeds`` > 1, means over seeds ``0 ..
    seeds - 1`` (of the generator, or for a bundled dataset in file order of the model and the
    draws alone) beside each seed's accuracy: one run of a short stream moves by points."""
    by_seed, labels_used, first = runs_over_seeds(
        name, samples, rate, workdir, seeds, peer, PEERS_PROTOCOL
    )
    accuracy = mean_accuracy(by_seed)
    random, best, best_accuracy = PEER_ANCHORS[name]
    result = {
        "samples": first["samples"],
        "accuracy": accuracy,
        "peers": {"random": random, "best": best, "best_accuracy": best_accuracy},
        "default_minus_best_peer": round(accuracy["default"] - best_accuracy, 4),
        "mlp_minus_best_peer": round(accuracy["mlp"] - best_accuracy, 4),
        "default_minus_random": round(accuracy["default"] - accuracy["random"], 4),
    } | budget_spent(labels_used, first["samples"])
    return result | ({"accuracy_by_seed": by_seed} if seeds > 1 else {})


class _InProcess(Executor):
    """Runs each task when it is submitted, in this process (``--jobs 1``)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        done: Future[Any] = Future()
        done.set_result(fn(*args, **kwargs))
        return done


def _executor(jobs: int) -> Executor:
    """``jobs`` worker processes (spawned: torch is not fork-safe), each on one torch thread,
    or this process alone."""
    if jobs == 1:
        return _InProcess()
    return ProcessPoolExecutor(
        jobs, mp_context=multiprocessing.get_context("spawn"), initializer=torch.set_num_threads,
        initargs=(1,),
    )  # fmt: skip


def _names(listed: str) -> list[str]:
    """The comma-separated names, each once: a name listed twice would run twice at once in the
    same directory.

    >>> _names("short,,sea,short")
    ['short', 'sea']
    """
    return list(dict.fromkeys(filter(None, listed.split(","))))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (got {text})")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter streams (6,000 samples)")
    parser.add_argument("--samples", type=int, help="samples per stream")
    parser.add_argument("--rate", type=float, default=1500.0, help="samples per second")
    parser.add_argument("--streams", default=",".join(BUILTIN), help="comma-separated")
    parser.add_argument(
        "--peers", nargs="?", const=",".join(PEERS), default="", metavar="LIST",
        help="also the peer-anchor streams (all, or those named, comma-separated)",
    )  # fmt: skip
    parser.add_argument(
        "--seeds", type=int, default=1, metavar="N",
        help="means over seeds 0 .. N-1 (one run of a short stream moves by points)",
    )  # fmt: skip
    parser.add_argument(
        "--no-ceiling", dest="ceiling", action="store_false",
        help="skip the all-labels run (the slowest): no labels_to_95",
    )  # fmt: skip
    parser.add_argument(
        "--protocol", choices=sorted(PROTOCOLS), default="peers",
        help="the built-in streams' labels: learned before the next samples (peers), or "
        "answered after the simulated annotator's delay (annotator)",
    )  # fmt: skip
    parser.add_argument(
        "--jobs", type=_positive, default=1, metavar="N",
        help="streams run at once, each in a process of its own (the runs are deterministic: "
        "the same JSON as one at a time)",
    )  # fmt: skip
    args = parser.parse_args()
    samples = args.samples or (6000 if args.quick else 20_000)
    default = Settings().strategy
    result: dict[str, Any] = {
        "default_strategy": f"{default.score} + {default.gate.name}, budget 0.1",
        "protocol": {"builtin": args.protocol, "peers": "peers"},
        "streams": {},
    }
    with (
        tempfile.TemporaryDirectory(prefix="streamal-efficiency-") as workdir,
        _executor(args.jobs) as pool,
    ):
        at = (args.rate, Path(workdir))
        builtins = {
            name: pool.submit(
                stream_result, name, samples, *at, args.ceiling, args.seeds, args.protocol
            )
            for name in _names(args.streams)
        }
        peers = {
            name: pool.submit(peer_result, name, 20_000, *at, args.seeds)
            for name in _names(args.peers)
        }
        result["streams"] = {name: done.result() for name, done in builtins.items()}
        if peers:
            result["peers"] = {name: done.result() for name, done in peers.items()}
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
