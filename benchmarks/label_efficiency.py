"""Label efficiency of the whole system on the built-in streams; prints one JSON object.

For each built-in stream (``streamal simulate --stream NAME``: stationary multi-class, abrupt
and gradual drift, sparse word counts, binary pixels, many classes, a rare class, boundaries
that move far, a short stream) the real serve + simulated annotator + train loop runs three
times on the same samples at budget 0.1: streamal's default strategy, random, and the default
strategy with the MLP alone (``mlp``: ``model.online: []``, ``model.neighbors: 0``,
``model.kalman: []``, the default before the blend); and
streamal's own model learns from every label as soon as it is seen (``all_labels``, the
ceiling: `streamal.simulation.ceiling`, test-then-train with the trainer's recipe, no budget).
Reported per stream:

- ``labels_to_95``: labels spent until the rolling prequential accuracy first reaches 95% of
  the ceiling's final accuracy, for each run, and default's over random's (below 1: streamal
  needs fewer labels);
- ``labels_to_95_held_out`` (streams without drift that grow longer: not ``short``): the
  same target, on the learning curve of every version the default and random publish, tested
  on the 2,000 samples after the stream (`held_out_labels_to_reach`), where the rolling
  accuracy lags by the labels spent over its window; ``held_out_ratio_default_vs_random``;
- ``accuracy``: prequential accuracy over the stream at budget 0.1, default against random and
  mlp (and the ceiling);
- ``labels_used`` and ``label_rate``: labels spent and their share of the stream (the realized
  budget, audits and exploration included).

``summary`` says what each group of streams (built-in, peer, held-out) shows together, as the
issue's goals read it (`summary`): the mean of the default's lead over random, the mean of the
ceiling's (the room a strategy has over random labels) and the share of that room the default
takes, how many peer streams meet their goal, and the mean lead over the peer learners.

With ``--peers``, the peer-anchor streams (``sea_abrupt``, ``hyperplane``, ``rbf5``, ``phishing``,
``image_segments``, generated with river as the anchors describe) run too, at budget 0.1 only
(default, random, mlp), beside the peers' measured accuracy under the same prequential
protocol (`PEER_ANCHORS`: random, and the best peer), and the ceiling (unless
``--no-ceiling``): ``goal_over_all_labels``, how far the goal (the best peer + 1 point) lies
above streamal's own model learning from every label (positive: even every label falls short).
This is the system level: streamal's own model and trainer, against peers that learn online
after every label.

Every stream runs under the peers' protocol (`PEERS_PROTOCOL`: a label, once asked, is learned
before the next samples, within a tick of 30 samples); ``--protocol annotator`` runs the
built-in streams with the simulation's annotator instead (`ANNOTATOR_PROTOCOL`: answers 0.2 s
of stream time after the request, 300 samples at the default rate, and a lockstep of 150
samples), where the first model comes about 450 samples in for every strategy alike.
``--label-delay S`` has the built-in and held-out streams' answers come ``S`` seconds of stream
time after the request (``S`` x ``--rate`` samples) under either protocol: what asking
carefully is worth when the annotators are late (`with_label_delay`). The peer streams keep the
peers' protocol, under which their anchors were measured.

With ``--held-out``, the held-out streams run too, as the built-in ones do (``bananas``,
``agrawal``, ``led``, ``waveform``, ``random_tree``, ``sine``, ``stagger``, ``mixed``,
``rbf_moving``: `streamal.simulation.streams.held_out`, from river's generators and a bundled
dataset): streams no default was chosen on, to check that a change helps on streams it was not
made for. Keep them that way: measure on them, never tune to them.

With ``--peer-learners``, every stream also runs what a user would pick instead of streamal
(`PEER_LEARNERS`, from `benchmarks/peers.py`): river's logistic regression and river's adaptive
random forest, learning each granted label at once under the peers' protocol (under
``--protocol annotator`` or ``--label-delay``, as late as the annotator answers streamal), on
the same samples and seeds; ``default_minus_best_peer_learner`` is the default's lead over the
best of them. On any stream, not only the five with published anchors, this is the issue's
question: is streamal worth adopting over a plain online learner with a peer's strategy?

To measure a change of settings side by side, ``--variant NAME=JSON`` adds a run of the
default strategy with those settings (a JSON object, as in a config file) and reports its
accuracy less the default's; ``--runs`` keeps only some of the runs above (``default`` always
runs).

Usage: ``python benchmarks/label_efficiency.py [--quick] [--samples N] [--rate R]
[--streams A,B] [--peers [A,B]] [--held-out [A,B]] [--seeds N] [--no-ceiling]
[--protocol peers|annotator] [--label-delay S] [--jobs N] [--runs default,random,mlp]
[--peer-learners] [--variant NAME=JSON ...]`` (``--streams ""``: none of the built-in streams;
``--jobs``: streams run at once, each in a process of its own, with the same results).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from peers import DEFAULT_STRATEGY as PEERS_STRATEGY  # benchmarks/peers.py, beside this one
from peers import GOAL, run_strategy, z_scored
from pydantic import ValidationError

from streamal.config import Settings
from streamal.model.config import MLP_ALONE
from streamal.model.loader import ModelLoader
from streamal.simulation.ceiling import all_labels
from streamal.simulation.run import ROLLING, Options, simulate
from streamal.simulation.run import run_settings as shaped_settings
from streamal.simulation.streams import (
    BUILTIN,
    HELD_OUT,
    PEERS,
    LabeledStream,
    builtin,
    held_out,
    peer,
)
from streamal.validation import one_line

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


def with_label_delay(protocol: dict[str, float], seconds: float | None) -> dict[str, float]:
    """``protocol`` with its answers ``seconds`` of stream time late (None: as it has them).

    >>> with_label_delay(PEERS_PROTOCOL, 0.5)
    {'label_delay_s': 0.5, 'tick_s': 0.02}
    >>> with_label_delay(ANNOTATOR_PROTOCOL, None) == ANNOTATOR_PROTOCOL
    True
    """
    return protocol if seconds is None else protocol | {"label_delay_s": seconds}


Run = tuple[str | None, dict[str, Any]]
"""A run: its score (None: the settings' own) and its settings, as overrides of the defaults."""

RUNS: dict[str, Run] = {
    "default": (None, {}),
    "random": ("random", {}),
    "mlp": (None, {"model": MLP_ALONE}),
}


PEER_LEARNERS = {
    "linear+random": ("linear", "random"),
    f"linear+{PEERS_STRATEGY}": ("linear", PEERS_STRATEGY),
    "forest+random": ("forest", "random"),
    f"forest+{PEERS_STRATEGY}": ("forest", PEERS_STRATEGY),
}
"""``--peer-learners``: what a user would run instead, on the same stream under the peers'
protocol (`benchmarks/peers.py`): river's logistic regression (one-vs-rest above two
classes) on online z-scored features and river's adaptive random forest, each with random
labels and with the strategy chosen there before any result (the anchors' table has both
learners' random baselines: on some streams a learner does better with random labels)."""


def run_settings(run: Run) -> tuple[Settings, str]:
    """The settings and the score of ``run``."""
    score, overrides = run
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


def default_over_random(needed: dict[str, int | None]) -> float | None:
    """The default's labels over random's (None: either never got there, or no random run).

    >>> default_over_random({"default": 33, "random": 75}), default_over_random({"default": 9})
    (0.44, None)
    """
    default, random = needed["default"], needed.get("random")
    return round(default / random, 3) if default and random else None


HELD_OUT_TEST = 2000
"""Samples after the end of a stream without drift on which every published version is tested
(`held_out_labels_to_reach`)."""


def labels_to_stay(curve: list[tuple[int, float]], target: float) -> int | None:
    """Labels learned by the first version of a learning curve (labels, accuracy) from which
    on every version reaches ``target`` (a lucky early version does not count); None: never.

    >>> labels_to_stay([(10, 0.5), (20, 0.91), (30, 0.85), (40, 0.9), (50, 0.95)], 0.9)
    40
    """
    for i, (labels, _) in enumerate(curve):
        if all(accuracy >= target for _, accuracy in curve[i:]):
            return labels
    return None


def held_out_labels_to_reach(
    name: str, samples: int, rate: float, workdir: Path, target: float,
    make: Callable[..., LabeledStream], protocol: dict[str, float],
) -> dict[str, int | None] | None:  # fmt: skip
    """For a stream without drift, seed 0: the default and random run on its first
    ``samples``, every version they publish is tested on the `HELD_OUT_TEST` samples that
    follow, and each run's labels to reach ``target`` is `labels_to_stay` on that learning
    curve (the labels spent by the time the version first served). Unlike the rolling
    accuracy, which averages the last `ROLLING` samples served (as many labels as the budget
    spends in them, at least), this is how good each model is when it comes. None: a stream
    with drift, or one that does not grow longer (``short``)."""
    whole = make(name, samples + HELD_OUT_TEST, seed=0)
    if whole.drifts or len(whole.ids) < samples + HELD_OUT_TEST:
        return None
    stream, rows = whole.head(samples), range(samples, len(whole.ids))
    test, truth = whole.samples(rows), whole.labels[samples:]
    options = Options(budget=0.1, rate=rate, seed=0, **protocol)
    needed: dict[str, int | None] = {}
    for run in ("default", "random"):
        settings, score = run_settings(RUNS[run])
        where = workdir / name / f"held-out-{run}"
        report = simulate(settings, stream, run, score, where, options)
        model = shaped_settings(settings, stream, where, score, options).model
        loader, series = ModelLoader(model, 0), report["series"]
        curve = []
        for version, position in enumerate(report["model_swaps"], start=1):
            predictor = loader.load(loader.store.checkpoint(version))
            predicted = predictor.logits(predictor.encode(test).inputs).argmax(1).cpu().numpy()
            spent = np.interp(position, series["position"], series["labels_used"])
            curve.append((round(float(spent)), float((predicted == truth).mean())))
        needed[run] = labels_to_stay(curve, target)
    return needed


def ceiling_run(
    name: str, samples: int, make: Callable[..., LabeledStream]
) -> dict[str, Any]:  # fmt: skip
    """The all-labels ceiling's report (`all_labels`) on ``make``'s stream ``name``, seed 0,
    its accuracy printed as the runs' are."""
    top = all_labels(Settings(), make(name, samples, seed=0))
    print(f"{name}/all_labels: accuracy {top['prequential_accuracy']}", file=sys.stderr)
    return top


def stream_result(
    name: str, samples: int, rate: float, workdir: Path, ceiling: bool = True, seeds: int = 1,
    protocol: dict[str, float] = PEERS_PROTOCOL, runs: dict[str, Run] = RUNS,
    make: Callable[..., LabeledStream] = builtin, peer_learners: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """The built-in stream ``name`` (or ``make``'s) at budget 0.1 under ``protocol`` (one of
    `PROTOCOLS`, maybe `with_label_delay`), and its ceiling, from seed 0; with ``seeds`` > 1,
    accuracies are means over the generator's seeds ``0 .. seeds - 1``."""
    by_seed, labels_used, first = runs_over_seeds(
        name, samples, rate, workdir, seeds, make, protocol, runs, peer_learners
    )
    accuracy = mean_accuracy(by_seed)
    result: dict[str, Any] = {"samples": first["samples"]}
    if ceiling:
        top = ceiling_run(name, samples, make)
        accuracy["all_labels"] = top["prequential_accuracy"]
        target = 0.95 * top["final_accuracy"]
        reports = first["reports"]
        needed = {run: labels_to_reach(reports[run], target) for run in reports}
        result |= {
            "target_accuracy": round(target, 4),
            "labels_to_95": needed,
            "labels_ratio_default_vs_random": default_over_random(needed),
        }
        tested = held_out_labels_to_reach(name, samples, rate, workdir, target, make, protocol)
        if tested is not None:
            result |= {
                "labels_to_95_held_out": tested,
                "held_out_ratio_default_vs_random": default_over_random(tested),
            }
    return (
        result
        | {"accuracy": accuracy}
        | differences(accuracy, runs)
        | budget_spent(labels_used, first["samples"])
        | ({"accuracy_by_seed": by_seed} if seeds > 1 else {})
    )


def differences(accuracy: dict[str, float], runs: dict[str, Run]) -> dict[str, Any]:
    """The default's accuracy less random's and mlp's, each variant's (a run not in `RUNS`)
    less the default's, and the default's less the best of `PEER_LEARNERS`, for the runs that
    ran.

    >>> runs = {"default": RUNS["default"], "random": RUNS["random"], "fast": (None, {})}
    >>> differences({"default": 0.9, "random": 0.85, "fast": 0.91}, runs)
    {'default_minus_random': 0.05, 'minus_default': {'fast': 0.01}}
    >>> differences({"default": 0.9, "linear+random": 0.8, "forest+margin+split": 0.87}, {})
    {'best_peer_learner': 'forest+margin+split', 'default_minus_best_peer_learner': 0.03}
    """
    default = accuracy["default"]
    result: dict[str, Any] = {
        f"default_minus_{run}": round(default - accuracy[run], 4)
        for run in ("random", "mlp")
        if run in runs
    }
    variants = {run: round(accuracy[run] - default, 4) for run in runs if run not in RUNS}
    result |= {"minus_default": variants} if variants else {}
    learners = {run: accuracy[run] for run in PEER_LEARNERS if run in accuracy}
    if learners:
        best = max(learners, key=learners.__getitem__)
        result |= {
            "best_peer_learner": best,
            "default_minus_best_peer_learner": round(default - learners[best], 4),
        }
    return result


def runs_over_seeds(
    name: str,
    samples: int,
    rate: float,
    workdir: Path,
    seeds: int,
    make: Callable[..., LabeledStream],
    protocol: dict[str, float],
    runs: dict[str, Run] = RUNS,
    peer_learners: bool = False,
) -> tuple[dict[str, list[float]], dict[str, list[int]], dict[str, Any]]:
    """Every run of ``runs`` (and with ``peer_learners``, of `PEER_LEARNERS`) on stream
    ``name`` (``make(name, samples, seed=...)``) for seeds ``0 .. seeds - 1``: accuracies and
    labels used by run, and seed 0's reports."""
    names = [*runs, *(PEER_LEARNERS if peer_learners else ())]
    by_seed: dict[str, list[float]] = {run: [] for run in names}
    labels_used: dict[str, list[int]] = {run: [] for run in names}
    first: dict[str, Any] = {"reports": {}}
    for seed in range(seeds):
        stream = make(name, samples, seed=seed)
        first.setdefault("samples", len(stream.ids))
        for run in runs:
            settings, chosen = run_settings(runs[run])
            options = Options(
                budget=0.1, rate=rate, seed=seed, label_delay_s=protocol["label_delay_s"],
                tick_s=protocol["tick_s"],
            )  # fmt: skip
            where = workdir / name / f"{run}-{seed}"
            report = simulate(settings, stream, run, chosen, where, options)
            if seed == 0:
                first["reports"][run] = report
            by_seed[run].append(report["prequential_accuracy"])
            labels_used[run].append(report["labels_used"])
            print(f"{name}/{run}/seed {seed}: accuracy {by_seed[run][-1]}", file=sys.stderr)
        if peer_learners:
            rows = (dict(enumerate(map(float, row))) for row in stream.features)
            seen = z_scored(name, zip(rows, stream.labels.tolist(), strict=True))
            delay = round(protocol["label_delay_s"] * rate)  # as the annotator's answers
            for run, (learner, strategy) in PEER_LEARNERS.items():
                outcome = run_strategy(seen, strategy, 0.1, learner, seed, delay)
                by_seed[run].append(outcome["accuracy"])
                labels_used[run].append(outcome["labels_used"])
                print(f"{name}/{run}/seed {seed}: accuracy {outcome['accuracy']}", file=sys.stderr)
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


def summary(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What a group of streams' ``results`` (`stream_result` or `peer_result`) say together,
    as the issue's goals read them: the mean of the default's lead over random; with the
    ceilings, the mean of the all-labels run's lead over random (roughly the most any strategy
    could add at the budget: the room) and the share of it the default takes; with the peers'
    goals, how many streams meet theirs; with the peer learners, the mean of the default's
    lead over the best of them.

    >>> summary({
    ...     "a": {"accuracy": {"default": 0.92, "random": 0.9, "all_labels": 0.95},
    ...           "goal_accuracy": 0.93},
    ...     "b": {"accuracy": {"default": 0.81, "random": 0.8, "all_labels": 0.83},
    ...           "goal_accuracy": 0.8},
    ... })  # doctest: +NORMALIZE_WHITESPACE
    {'default_minus_random': 0.015, 'all_labels_minus_random': 0.04,
     'share_of_room_taken': 0.375, 'goals_met': '1 of 2'}
    """
    streams = list(results.values())
    lead: dict[str, Any] = {}
    for run in ("default", "all_labels"):
        leads = [
            r["accuracy"][run] - r["accuracy"]["random"]
            for r in streams
            if run in r["accuracy"] and "random" in r["accuracy"]
        ]
        if leads:
            lead[f"{run}_minus_random"] = round(float(np.mean(leads)), 4)
    if lead.get("all_labels_minus_random", 0) > 0 and "default_minus_random" in lead:
        taken = lead["default_minus_random"] / lead["all_labels_minus_random"]
        lead["share_of_room_taken"] = round(taken, 3)
    goals = [
        r["accuracy"]["default"] >= r["goal_accuracy"] for r in streams if "goal_accuracy" in r
    ]
    if goals:
        lead["goals_met"] = f"{sum(goals)} of {len(goals)}"
    over = [r["default_minus_best_peer_learner"] for r in streams if "best_peer_learner" in r]
    if over:
        lead["default_minus_best_peer_learner"] = round(float(np.mean(over)), 4)
    return lead


def peer_result(
    name: str, samples: int, rate: float, workdir: Path, seeds: int = 1,
    runs: dict[str, Run] = RUNS, peer_learners: bool = False, ceiling: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """The peer stream ``name`` at budget 0.1; with ``seeds`` > 1, means over seeds ``0 ..
    seeds - 1`` (of the generator, or for a bundled dataset in file order of the model and the
    draws alone) beside each seed's accuracy: one run of a short stream moves by points.

    With ``ceiling``, streamal's own model learning from every label (``all_labels``, seed 0)
    and the goal (the best peer + 1 point) against it: ``goal_over_all_labels`` > 0 where the
    goal asks more than learning from every label reaches."""
    by_seed, labels_used, first = runs_over_seeds(
        name, samples, rate, workdir, seeds, peer, PEERS_PROTOCOL, runs, peer_learners
    )
    accuracy = mean_accuracy(by_seed)
    random, best, best_accuracy = PEER_ANCHORS[name]
    goal = round(best_accuracy + GOAL["over_best_peer"], 4)
    result = {
        "samples": first["samples"],
        "accuracy": accuracy,
        "peers": {"random": random, "best": best, "best_accuracy": best_accuracy},
        "default_minus_best_peer": round(accuracy["default"] - best_accuracy, 4),
        "goal_accuracy": goal,
    }
    if ceiling:
        accuracy["all_labels"] = ceiling_run(name, samples, peer)["prequential_accuracy"]
        result["goal_over_all_labels"] = round(goal - accuracy["all_labels"], 4)
    if "mlp" in runs:
        result["mlp_minus_best_peer"] = round(accuracy["mlp"] - best_accuracy, 4)
    result |= differences(accuracy, runs) | budget_spent(labels_used, first["samples"])
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


def _variant(text: str) -> tuple[str, Run]:
    """``NAME=JSON``: a run of the default strategy with the settings in ``JSON``.

    >>> _variant('slow={"model": {"online": [0.003]}}')
    ('slow', (None, {'model': {'online': [0.003]}}))
    """
    name, _, overrides = text.partition("=")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in RUNS or "=" not in text:
        raise argparse.ArgumentTypeError(
            f"expected NAME=JSON, NAME of letters, digits, _ . - and not one of {list(RUNS)}"
        )
    try:
        settings = json.loads(overrides)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{name}: not JSON ({error})") from None
    if not isinstance(settings, dict):
        raise argparse.ArgumentTypeError(f"{name}: expected a JSON object of settings")
    try:
        Settings(**settings)
    except ValidationError as error:
        raise argparse.ArgumentTypeError(f"{name}: {one_line(error, Settings)}") from None
    return name, (None, settings)


def _runs(listed: str) -> list[str]:
    names = _names(listed)
    if "default" not in names or not set(names) <= set(RUNS):
        raise argparse.ArgumentTypeError(f"a comma-separated choice of {list(RUNS)}, default in it")
    return names


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be seconds >= 0 (got {text})")
    return value


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
        "--held-out", nargs="?", const=",".join(HELD_OUT), default="", metavar="LIST",
        help="also the held-out streams, as the built-in ones (all, or those named)",
    )  # fmt: skip
    parser.add_argument(
        "--seeds", type=int, default=1, metavar="N",
        help="means over seeds 0 .. N-1 (one run of a short stream moves by points)",
    )  # fmt: skip
    parser.add_argument(
        "--no-ceiling", dest="ceiling", action="store_false",
        help="skip the all-labels run (the slowest): no labels_to_95, no goal_over_all_labels",
    )  # fmt: skip
    parser.add_argument(
        "--protocol", choices=sorted(PROTOCOLS), default="peers",
        help="the built-in streams' labels: learned before the next samples (peers), or "
        "answered after the simulated annotator's delay (annotator)",
    )  # fmt: skip
    parser.add_argument(
        "--label-delay", type=_seconds, metavar="S",
        help="the built-in and held-out streams' answers S seconds of stream time after the "
        "request (S x --rate samples), under either protocol",
    )  # fmt: skip
    parser.add_argument(
        "--jobs", type=_positive, default=1, metavar="N",
        help="streams run at once, each in a process of its own (the runs are deterministic: "
        "the same JSON as one at a time)",
    )  # fmt: skip
    parser.add_argument(
        "--runs", type=_runs, default=list(RUNS), metavar="A,B",
        help="which of default, random, mlp run (default always)",
    )  # fmt: skip
    parser.add_argument(
        "--peer-learners", action="store_true",
        help="also river's logistic regression and adaptive random forest on every stream, "
        "under the peers' protocol (what a user would run instead)",
    )  # fmt: skip
    parser.add_argument(
        "--variant", type=_variant, action="append", default=[], metavar="NAME=JSON",
        help="also the default strategy with these settings, e.g. "
        "'slow={\"model\": {\"online\": [0.003, 0.03]}}' (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()
    if len({name for name, _ in args.variant}) < len(args.variant):
        parser.error("--variant: each NAME once")
    runs = {name: RUNS[name] for name in args.runs} | dict(args.variant)
    samples = args.samples or (6000 if args.quick else 20_000)
    default = Settings().strategy
    protocol = with_label_delay(PROTOCOLS[args.protocol], args.label_delay)
    ours = {"name": args.protocol, **protocol}
    result: dict[str, Any] = {
        "default_strategy": f"{default.score} + {default.gate.name}, budget 0.1",
        "protocol": {
            "builtin": ours,
            "held_out": ours,
            "peers": {"name": "peers", **PEERS_PROTOCOL},
        },
        "variants": {name: settings for name, (_, settings) in args.variant},
        "streams": {},
    }
    with (
        tempfile.TemporaryDirectory(prefix="streamal-efficiency-") as workdir,
        _executor(args.jobs) as pool,
    ):
        at = (args.rate, Path(workdir))
        result_of = partial(
            stream_result, samples=samples, rate=args.rate, workdir=Path(workdir),
            ceiling=args.ceiling, seeds=args.seeds, protocol=protocol, runs=runs,
            peer_learners=args.peer_learners,
        )  # fmt: skip
        builtins = {name: pool.submit(result_of, name) for name in _names(args.streams)}
        held = {name: pool.submit(result_of, name, make=held_out) for name in _names(args.held_out)}
        peers = {
            name: pool.submit(
                peer_result, name, 20_000, *at, args.seeds, runs, args.peer_learners, args.ceiling
            )
            for name in _names(args.peers)
        }
        result["streams"] = {name: done.result() for name, done in builtins.items()}
        if peers:
            result["peers"] = {name: done.result() for name, done in peers.items()}
        if held:
            result["held_out"] = {name: done.result() for name, done in held.items()}
    groups = ("streams", "peers", "held_out")
    result["summary"] = {group: summary(result[group]) for group in groups if result.get(group)}
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
