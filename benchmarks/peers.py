"""Compare streamal's stream strategies with the peers' numbers at budget 0.1; prints one JSON.

Reproduces, at the strategy level, the protocol under which the peers (river, scikit-activeml,
modAL) were measured with their own released code (the peer anchors, `ANCHORS`): prequential
(every sample is predicted first and counted for accuracy, then the strategy decides whether to
ask, and only asked samples are learned), the same learner for every strategy (river
``LogisticRegression``, one-vs-rest for more than 2 classes, on online z-scored features), and a
requested label is granted only while labels spent <= budget x samples seen. The streams are
generated with river from the anchors' parameters (`SEEDS`); the peers' numbers in `ANCHORS` are
the reference to compare against.

Strategies: ``random`` (ask with probability b), ``all_labels`` (the ceiling) and streamal's
``<score>+<gate>`` for the scores ``margin``, ``entropy``, ``least_confidence`` and the gates
``variable_uncertainty``, ``split``, ``quantile``, ``randomized_variable_uncertainty``
(defaults from `StrategyConfig`), each gate fed one sample at a time.

Usage: ``python benchmarks/peers.py [--quick] [--streams a,b] [--strategies x,y]``.
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
from river import datasets, forest, linear_model, multiclass, preprocessing
from river.datasets import synth

from streamal.gates import Route
from streamal.strategies import StrategyConfig, build_gate, build_score

BUDGET = 0.1
SCORES = ("margin", "entropy", "least_confidence")
GATES = ("variable_uncertainty", "split", "quantile", "randomized_variable_uncertainty")
STRATEGIES = ("random", "all_labels", *(f"{s}+{g}" for s in SCORES for g in GATES))
DEFAULT_STRATEGY = "margin+split"  # chosen before any result was seen
GOAL = {"over_best_peer": 0.01, "over_random": 0.03}

SEEDS = {
    "sea_abrupt": "SEA(variant=0, seed=42) -> SEA(variant=3, seed=43), ConceptDriftStream seed=42",
    "hyperplane": "Hyperplane(seed=42)",
    "rbf5": "RandomRBF(seed_model=42, seed_sample=42)",
    "random_strategy": "numpy default_rng(0)",
    "gates": "StrategyConfig.seed = 0 (split, randomized_variable_uncertainty)",
}

# Accuracy at budget 0.1 of the peers' own released code (river 0.26.1, scikit-activeml 1.0.1,
# modAL-python 0.4.2.1) under the protocol above, each driving river's LogisticRegression on
# online z-scored features, measured once on one machine and kept here as the reference.
# `q`: the queried fraction where it differed from the budget by more than 0.005.
ANCHORS: dict[str, dict[str, dict[str, float]]] = {
    "sea_abrupt": {
        "baseline.random": {"accuracy": 0.858},
        "river.EntropySampler": {"accuracy": 0.866},
        "river.EntropySampler(d=30)": {"accuracy": 0.871},
        "modAL.uncertainty>=0.4": {"accuracy": 0.872},
        "skactiveml.StreamRandomSampling": {"accuracy": 0.857},
        "skactiveml.PeriodicSampling": {"accuracy": 0.859},
        "skactiveml.FixedUncertainty": {"accuracy": 0.874},
        "skactiveml.VariableUncertainty": {"accuracy": 0.869},
        "skactiveml.RandomVariableUncertainty": {"accuracy": 0.858},
        "skactiveml.Split": {"accuracy": 0.866},
        "skactiveml.StreamProbabilisticAL": {"accuracy": 0.874},
        "baseline.all_labels": {"accuracy": 0.881},
    },
    "hyperplane": {
        "baseline.random": {"accuracy": 0.898},
        "river.EntropySampler": {"accuracy": 0.905},
        "river.EntropySampler(d=30)": {"accuracy": 0.917},
        "modAL.uncertainty>=0.4": {"accuracy": 0.916},
        "skactiveml.StreamRandomSampling": {"accuracy": 0.893},
        "skactiveml.PeriodicSampling": {"accuracy": 0.891},
        "skactiveml.FixedUncertainty": {"accuracy": 0.921},
        "skactiveml.VariableUncertainty": {"accuracy": 0.911},
        "skactiveml.RandomVariableUncertainty": {"accuracy": 0.898},
        "skactiveml.Split": {"accuracy": 0.910},
        "skactiveml.StreamProbabilisticAL": {"accuracy": 0.926},
        "baseline.all_labels": {"accuracy": 0.931},
    },
    "rbf5": {
        "baseline.random": {"accuracy": 0.490},
        "river.EntropySampler": {"accuracy": 0.485},
        "river.EntropySampler(d=30)": {"accuracy": 0.474, "q": 0.09},
        "modAL.uncertainty>=0.4": {"accuracy": 0.480},
        "skactiveml.StreamRandomSampling": {"accuracy": 0.476},
        "skactiveml.PeriodicSampling": {"accuracy": 0.480},
        "skactiveml.FixedUncertainty": {"accuracy": 0.517, "q": 0.07},
        "skactiveml.VariableUncertainty": {"accuracy": 0.540},
        "skactiveml.RandomVariableUncertainty": {"accuracy": 0.495},
        "skactiveml.Split": {"accuracy": 0.521},
        "skactiveml.StreamProbabilisticAL": {"accuracy": 0.408},
        "baseline.all_labels": {"accuracy": 0.512},
    },
    "phishing": {
        "baseline.random": {"accuracy": 0.846, "q": 0.09},
        "river.EntropySampler": {"accuracy": 0.847},
        "river.EntropySampler(d=30)": {"accuracy": 0.855},
        "modAL.uncertainty>=0.4": {"accuracy": 0.856},
        "skactiveml.StreamRandomSampling": {"accuracy": 0.865},
        "skactiveml.PeriodicSampling": {"accuracy": 0.847},
        "skactiveml.FixedUncertainty": {"accuracy": 0.868},
        "skactiveml.VariableUncertainty": {"accuracy": 0.870},
        "skactiveml.RandomVariableUncertainty": {"accuracy": 0.865},
        "skactiveml.Split": {"accuracy": 0.870},
        "skactiveml.StreamProbabilisticAL": {"accuracy": 0.876},
        "baseline.all_labels": {"accuracy": 0.892},
    },
    "image_segments": {
        "baseline.random": {"accuracy": 0.608},
        "river.EntropySampler": {"accuracy": 0.660},
        "river.EntropySampler(d=30)": {"accuracy": 0.708},
        "modAL.uncertainty>=0.4": {"accuracy": 0.655},
        "skactiveml.StreamRandomSampling": {"accuracy": 0.635},
        "skactiveml.PeriodicSampling": {"accuracy": 0.655},
        "skactiveml.FixedUncertainty": {"accuracy": 0.643},
        "skactiveml.VariableUncertainty": {"accuracy": 0.676},
        "skactiveml.RandomVariableUncertainty": {"accuracy": 0.677},
        "skactiveml.Split": {"accuracy": 0.690},
        "skactiveml.StreamProbabilisticAL": {"accuracy": 0.653},
        "baseline.all_labels": {"accuracy": 0.796},
    },
}

NOTES = [
    "Scaler: the anchors say 'online z-scored features' without saying which samples the "
    "scaler learns from; features are unlabeled, so river's StandardScaler learns every "
    "sample as it arrives (learn, then transform, as a river pipeline does), before the "
    "prediction. The z-scored features are therefore the same for every strategy.",
    "Budget cap: a requested label is granted iff labels spent before it <= budget x samples "
    "seen (this sample included), so labels used <= budget x n + 1. The gate is told nothing "
    "of a refusal: it commits its decision and counts the request in its own sliding-window "
    "spend (window 100), which is the stricter of the two limits after the first window.",
    "Probabilities: predict_proba_one mapped to the stream's sorted class list; a class the "
    "one-vs-rest learner has not learned yet gets 0 (the others are river's normalized "
    "votes), uniform before the first learned sample. The binary LogisticRegression models "
    "both classes from the start (its output is used as is).",
    "sea_abrupt drifts at n // 2 (10000 at n=20000, as in the anchors; 1500 with --quick).",
    "Margins are in accuracy units (0.01 = 1 point). over_random uses this run's random; "
    "over_random_anchor the anchors' baseline.random.",
]


class Stream(NamedTuple):
    """A materialized stream: z-scored features, labels and the class order."""

    name: str
    features: list[dict[Any, float]]
    labels: list[Any]
    classes: list[Any]


def _sea(n: int) -> Iterable[tuple[dict[Any, float], Any]]:
    return synth.ConceptDriftStream(
        stream=synth.SEA(variant=0, noise=0.1, seed=42),
        drift_stream=synth.SEA(variant=3, noise=0.1, seed=43),
        position=n // 2,
        width=100,
        seed=42,
    )


def _hyperplane(n: int) -> Iterable[tuple[dict[Any, float], Any]]:
    return synth.Hyperplane(
        seed=42,
        n_features=10,
        n_drift_features=5,
        mag_change=0.001,
        sigma=0.1,
        noise_percentage=0.05,
    )


def _rbf5(n: int) -> Iterable[tuple[dict[Any, float], Any]]:
    return synth.RandomRBF(
        seed_model=42, seed_sample=42, n_classes=5, n_features=10, n_centroids=50
    )


# name -> (source given n, whether it is synthetic: n applies)
SOURCES: dict[str, tuple[Callable[[int], Iterable[tuple[dict[Any, float], Any]]], bool]] = {
    "sea_abrupt": (_sea, True),
    "hyperplane": (_hyperplane, True),
    "rbf5": (_rbf5, True),
    "phishing": (lambda n: datasets.Phishing(), False),
    "image_segments": (lambda n: datasets.ImageSegments(), False),
}


def load_stream(name: str, n: int | None = None) -> Stream:
    """The first ``n`` samples of stream ``name`` (a real set: all of it when ``n`` is None).

    Features are z-scored online: the scaler learns each sample before transforming it.
    """
    source, synthetic = SOURCES[name]
    if synthetic and n is None:
        n = 20_000
    return z_scored(name, itertools.islice(source(n or 0), n))


def z_scored(name: str, samples: Iterable[tuple[dict[Any, float], Any]]) -> Stream:
    """``samples`` (feature dicts and labels) as a `Stream`, z-scored online as the peers'
    learners see them: the scaler learns each sample before transforming it.

    >>> z_scored("two", [({"a": 1.0}, "x"), ({"a": 3.0}, "y")]).features
    [{'a': 0.0}, {'a': 1.0}]
    """
    scaler = preprocessing.StandardScaler()
    features, labels = [], []
    for x, y in samples:
        scaler.learn_one(x)
        features.append(scaler.transform_one(x))
        labels.append(y)
    return Stream(name, features, labels, sorted(set(labels)))


class Learner:
    """river LR (one-vs-rest above 2 classes) with probabilities in a fixed class order
    (``seed`` is for `Forest`'s interface: this learner draws nothing)."""

    def __init__(self, classes: Sequence[Any], seed: int = 0) -> None:
        self.classes = list(classes)
        self.learned = 0
        if len(self.classes) == 2:
            self.model: Any = linear_model.LogisticRegression()
        else:
            self.model = multiclass.OneVsRestClassifier(linear_model.LogisticRegression())

    def proba(self, x: dict[Any, float]) -> list[float]:
        """Class probabilities in ``classes`` order (uniform before anything was learned)."""
        if not self.learned:
            return [1 / len(self.classes)] * len(self.classes)
        proba = self.model.predict_proba_one(x)
        if len(self.classes) == 2:
            return [proba[False], proba[True]]
        return [proba.get(label, 0.0) for label in self.classes]

    def learn(self, x: dict[Any, float], y: Any) -> None:
        """Learn one labeled sample."""
        self.model.learn_one(x, y == self.classes[1] if len(self.classes) == 2 else y)
        self.learned += 1

    def classes_learned(self) -> int | None:
        """How many classes have a one-vs-rest model (None with two classes)."""
        return len(self.model.classifiers) if len(self.classes) > 2 else None


class Forest:
    """river's adaptive random forest (``ARFClassifier(n_models=10)``), what a user would pick
    instead of a linear model, in `Learner`'s interface; uniform until it predicts a class."""

    def __init__(self, classes: Sequence[Any], seed: int = 0) -> None:
        self.classes = list(classes)
        self.learned = 0
        self.model = forest.ARFClassifier(n_models=10, seed=seed)

    def proba(self, x: dict[Any, float]) -> list[float]:
        proba = self.model.predict_proba_one(x)
        if not proba:  # nothing learned yet
            return [1 / len(self.classes)] * len(self.classes)
        return [proba.get(label, 0.0) for label in self.classes]

    def learn(self, x: dict[Any, float], y: Any) -> None:
        self.model.learn_one(x, y)
        self.learned += 1

    def classes_learned(self) -> int | None:
        return None


LEARNERS: dict[str, type[Learner] | type[Forest]] = {"linear": Learner, "forest": Forest}


def _asker(strategy: str, budget: float, seed: int = 0) -> Callable[[list[float]], bool]:
    """Whether the strategy requests the label of a sample with these probabilities."""
    if strategy == "all_labels":
        return lambda proba: True
    if strategy == "random":
        rng = np.random.default_rng(seed)
        return lambda proba: bool(rng.random() < budget)
    score_name, gate_name = strategy.split("+")
    score = build_score(score_name)
    gate = build_gate(StrategyConfig(score=score_name, budget=budget, gate={"name": gate_name}))

    def ask(proba: list[float]) -> bool:
        utility = score(np.array([proba]))
        decision = gate.decide(utility)
        gate.update(decision)
        return bool(decision.routes[0] == Route.ORACLE)

    return ask


def run_strategy(
    stream: Stream, strategy: str, budget: float = BUDGET, learner_name: str = "linear",
    seed: int = 0, delay: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Prequential run of one strategy driving one of `LEARNERS` on one stream: accuracy,
    labels used, requests (``seed``: the forest's, and random's draws). A granted label is
    learned ``delay`` samples after its own (0: before the next sample, the peers' protocol;
    more: an annotator's delay, as streamal's runs under it get)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; allowed: {', '.join(STRATEGIES)}")
    cap = 1.0 if strategy == "all_labels" else budget
    learner = LEARNERS[learner_name](stream.classes, seed)
    ask = _asker(strategy, budget, seed)
    classes = stream.classes
    correct = requested = used = 0
    answers: deque[tuple[int, dict[Any, float], Any]] = deque()  # (due, x, y), oldest first
    start = time.perf_counter()
    for seen, (x, y) in enumerate(zip(stream.features, stream.labels, strict=True), start=1):
        while answers and answers[0][0] < seen:
            learner.learn(*answers.popleft()[1:])
        proba = learner.proba(x)
        correct += classes[proba.index(max(proba))] == y
        if ask(proba):
            requested += 1
            if used <= cap * seen + 1e-9:
                used += 1
                answers.append((seen + delay, x, y))
    n = len(stream.labels)
    return {
        "accuracy": round(correct / n, 4),
        "queried_fraction": round(used / n, 4),
        "labels_used": used,
        "requested": requested,
        "classes_learned": learner.classes_learned(),
        "seconds": round(time.perf_counter() - start, 2),
    }


def best_peer(stream: str) -> tuple[str, float]:
    """The best peer (not a baseline) in the anchors' table for ``stream``."""
    peers = {k: v["accuracy"] for k, v in ANCHORS[stream].items() if not k.startswith("baseline")}
    name = max(peers, key=lambda k: peers[k])
    return name, peers[name]


def compare(stream: str, name: str, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How strategy ``name`` fares against the best peer and random."""
    accuracy = results[name]["accuracy"]
    _, peer_accuracy = best_peer(stream)
    out: dict[str, Any] = {
        "strategy": name,
        "accuracy": accuracy,
        "over_best_peer": round(accuracy - peer_accuracy, 4),
        "over_random_anchor": round(accuracy - ANCHORS[stream]["baseline.random"]["accuracy"], 4),
    }
    if "random" in results:
        out["over_random"] = round(accuracy - results["random"]["accuracy"], 4)
    out["meets_goal"] = out["over_best_peer"] >= GOAL["over_best_peer"] - 1e-9 and (
        out.get("over_random", out["over_random_anchor"]) >= GOAL["over_random"] - 1e-9
    )
    return out


def run(
    streams: Sequence[str], strategies: Sequence[str], n: int | None, budget: float = BUDGET
) -> dict[str, Any]:
    """Every strategy on every stream; the report printed by `main`."""
    report: dict[str, Any] = {
        "budget": budget,
        "protocol": "prequential: predict (counted), decide, learn only granted labels",
        "learner": "river StandardScaler -> LogisticRegression (OneVsRest for > 2 classes)",
        "default_strategy": DEFAULT_STRATEGY,
        "goal": GOAL,
        "seeds": SEEDS,
        "notes": NOTES,
        "streams": {},
    }
    for name in streams:
        stream = load_stream(name, n if SOURCES[name][1] else None)
        results: dict[str, dict[str, Any]] = {}
        for strategy in strategies:
            results[strategy] = run_strategy(stream, strategy, budget)
            print(
                f"{name:>14} {strategy:<40} acc={results[strategy]['accuracy']:.4f} "
                f"q={results[strategy]['queried_fraction']:.4f} "
                f"{results[strategy]['seconds']:.1f}s",
                file=sys.stderr,
                flush=True,
            )
        peer, peer_accuracy = best_peer(name)
        entry: dict[str, Any] = {
            "n": len(stream.labels),
            "classes": len(stream.classes),
            "strategies": results,
            "anchors": {
                "best_peer": {"name": peer, "accuracy": peer_accuracy},
                "random": ANCHORS[name]["baseline.random"]["accuracy"],
                "all_labels": ANCHORS[name]["baseline.all_labels"]["accuracy"],
            },
        }
        stalled = [
            s for s, r in results.items() if (r["classes_learned"] or 2) < len(stream.classes)
        ]
        if stalled:  # e.g. variable uncertainty once a one-class model gives utility 0 forever
            entry["never_learned_every_class"] = stalled
        ours = [s for s in results if "+" in s]
        if ours:
            best = max(ours, key=lambda s: results[s]["accuracy"])
            entry["best_streamal"] = compare(name, best, results)
        if DEFAULT_STRATEGY in results:
            entry["default"] = compare(name, DEFAULT_STRATEGY, results)
        report["streams"][name] = entry
    entries = report["streams"].values()
    report["mean_accuracy"] = {
        strategy: round(float(np.mean([e["strategies"][strategy]["accuracy"] for e in entries])), 4)
        for strategy in strategies
    }
    ours = [s for s in strategies if "+" in s]
    if ours:
        report["best_mean_streamal"] = max(ours, key=lambda s: report["mean_accuracy"][s])
    return report


def _names(allowed: Sequence[str], kind: str) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [name for name in text.split(",") if name]
        unknown = [name for name in names if name not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {kind} {', '.join(unknown)}; allowed: {', '.join(allowed)}"
            )
        return names

    return parse


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="n=3000 on the synthetic streams (real: all)"
    )
    parser.add_argument(
        "--streams",
        type=_names(list(SOURCES), "stream"),
        default=list(SOURCES),
        help="comma-separated stream names (default: all)",
    )
    parser.add_argument(
        "--strategies",
        type=_names(STRATEGIES, "strategy"),
        default=list(STRATEGIES),
        help="comma-separated strategy names (default: all)",
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    report = run(args.streams, args.strategies, 3_000 if args.quick else 20_000)
    report["quick"] = args.quick
    report["wall_seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
