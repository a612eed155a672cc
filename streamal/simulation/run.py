"""Replay a labeled stream through the real serve and train code with a simulated annotator.

Each strategy runs in a directory of its own on the embedded transport. The run goes in
lockstep on the stream's clock (``rate`` samples per simulated second): a tick of samples (a
tenth of a second by default, ``Options.tick_s``) is produced, the daemon routes all of it, the
annotator answers the requests that are due, the trainer stores them and trains when a round
or an update is due, and the daemon swaps in what the trainer announced before the next tick.
Label delays and the round interval are measured on that clock and serving and training take no
stream time, so a run does not depend on the machine's speed or load: the same seed gives the
same report.

The run is then measured from what it left: every sample is predicted by the model version that
served it (rebuilt from the model store), which gives the prequential accuracy over the whole
stream, against the labels spent so far.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamal.config import Settings
from streamal.messages import AutoLabel, LabelRequest, Retraction, decode, encode
from streamal.metrics import HELD_BACK, STOPPING_RULES, Metrics
from streamal.model import ModelLoader
from streamal.simulation.annotator import SimulatedAnnotator
from streamal.simulation.streams import LabeledStream
from streamal.stream.daemon import Daemon
from streamal.training.trainer import Trainer
from streamal.transport import Envelope, Record, Transport, open_transport

ROLLING = 500
POINTS = 200
FLAT_TOLERANCE = 0.02  # a learning curve has flattened within this of the best still to come


@dataclass
class Status:
    """How a running simulation is doing, for a progress display."""

    strategy: str
    produced: int
    total: int
    routed: int
    asked: int
    auto_labeled: int
    version: int
    answered_accuracy: float | None
    """Over the last 500 answered requests (the trainer's), not the whole stream."""


@dataclass
class Options:
    """How a simulation runs: ``rate`` samples per second of the stream's clock, on which
    ``label_delay_s`` passes between a request and its answer."""

    budget: float = 0.1
    label_delay_s: float = 0.2
    label_noise: float = 0.0
    rate: float = 1000.0
    tick_s: float = 0.1
    """The lockstep's step on the stream's clock: samples come, are served and answered, and
    the trainer learns, a tick at a time."""
    seed: int = 0
    min_new_labels: int = 50
    own_model: bool = False
    """Keep the model of the base settings (a user's ``module``, ``featurizer`` or ``factory``)
    rather than the default model over the stream's features."""
    time_limit_s: float = float("inf")
    progress: Callable[[Status], None] | None = None
    strategy: dict[str, Any] = field(default_factory=dict)


LOG, LABELS, MODELS = "log.sqlite", "labels.sqlite", "models"
"""Where a run keeps, in its directory, the transport's log, the label store, the model store."""
RUN_STATE = (f"{LOG}*", f"{LABELS}*", MODELS)  # with SQLite's -wal and -shm files


def run_settings(
    base: Settings, stream: LabeledStream, workdir: Path, score: str, options: Options
) -> Settings:
    """``base`` pointed at ``workdir``, shaped for ``stream``, asking with utility ``score``."""
    data = base.model_dump(mode="json")
    data["transport"] = {
        "kind": "local",
        "local": {"path": str(workdir / LOG), "synchronous": "normal"},
    }
    data["model"] |= {  # every version that served is judged afterwards (`measure`): kept
        "classes": stream.classes, "store": str(workdir / MODELS), "keep_versions": 0,
    }  # fmt: skip
    if not options.own_model:
        data["model"] |= {
            "n_features": stream.features.shape[1], "module": None, "featurizer": None,
            "factory": None, "options": {},
        }  # fmt: skip
    data["strategy"] |= {
        "score": score,
        "budget": options.budget,
        "seed": options.seed,
        **options.strategy,
    }
    data["serve"] |= {"metrics_address": "127.0.0.1:0", "max_batch": 64}
    data["train"] |= {
        "label_store": str(workdir / LABELS), "metrics_address": "127.0.0.1:0",
        "min_new_labels": options.min_new_labels, "interval_s": 2.0,
        "publish_interval_s": options.tick_s / 2,  # an update each tick, if labels came
    }  # fmt: skip
    return Settings(**data)


def start_afresh(workdir: Path) -> None:
    """``workdir``, without what an earlier run left there (`RUN_STATE`): serve and train go on
    from the log and the stores they find, so a second run in the same place would learn from
    the first one's labels and spend its budget on top of the first one's.

    >>> import tempfile
    >>> workdir = Path(tempfile.mkdtemp())
    >>> for name in ("log.sqlite", "log.sqlite-wal", "models/m/v1.pt", "notes.txt"):
    ...     (workdir / name).parent.mkdir(parents=True, exist_ok=True)
    ...     (workdir / name).touch()
    >>> start_afresh(workdir)
    >>> sorted(path.name for path in workdir.iterdir())
    ['notes.txt']
    """
    workdir.mkdir(parents=True, exist_ok=True)
    for pattern in RUN_STATE:
        for path in workdir.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def simulate(
    base: Settings, stream: LabeledStream, name: str, score: str, workdir: Path, options: Options
) -> dict[str, Any]:
    """Run one strategy over ``stream``; its report (see `measure`). Past
    ``options.time_limit_s`` the stream is cut short and the report covers what was served."""
    start_afresh(workdir)
    settings = run_settings(base, stream, workdir, score, options)
    metrics = Metrics()
    clock = StreamClock(options.rate)
    daemon = Daemon(settings, metrics=metrics, clock=clock)
    annotator = SimulatedAnnotator(
        settings, stream.truth(), delay_s=options.label_delay_s, noise=options.label_noise,
        seed=options.seed,
    )  # fmt: skip
    trainer = Trainer(settings, metrics=metrics, clock=clock)
    watcher = daemon.start()
    chunk = max(1, round(options.rate * options.tick_s))
    deadline = time.monotonic() + options.time_limit_s
    served = 0
    try:
        with (
            daemon.connect() as serving,
            annotator.connect() as answering,
            trainer.connected() as training,
            open_transport(settings) as models,
            open_transport(settings) as labels,
            open_transport(settings) as producer,
        ):
            models.subscribe([settings.topics.models])
            labels.subscribe([settings.topics.labels])
            while served < len(stream.ids) and time.monotonic() < deadline:
                end = min(served + chunk, len(stream.ids))
                _produce(producer, settings, stream, served, end)
                clock.position = end
                while served < end:
                    served += daemon.step(serving, watcher)
                while annotator.step(answering, clock()):
                    pass
                while trainer.step(training, 0.0):
                    pass
                while watcher.read(models, 0.0):
                    pass
                while daemon.follower.read(labels, 0.0):
                    pass
                _report(name, metrics, served, len(stream.ids), options)
    finally:
        trainer.labels.close()
    drifts = [round(at * options.rate) for at, _ in trainer.drift_events]
    stops = [(round(at * options.rate), rule) for at, rule in trainer.stop_events]
    report = measure(settings, stream.head(served), name, drifts, stops)
    pauses = metrics.registry.get_sample_value
    report["auto_label_pauses"] = {
        reason: int(pauses("streamal_auto_label_pauses_total", {"reason": reason}) or 0)
        for reason in HELD_BACK
    }
    return report


class StreamClock:
    """Seconds on the stream's clock: the samples produced so far over the rate."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.position = 0

    def __call__(self) -> float:
        return self.position / self.rate


def _produce(
    producer: Transport, settings: Settings, stream: LabeledStream, start: int, end: int
) -> None:
    for sample in stream.samples(range(start, end)):
        producer.produce(Record(settings.topics.samples, encode(sample), key=sample.id.encode()))
    producer.flush()


def _routed(value: Callable[..., float | None]) -> int:
    return int(
        sum(
            value("streamal_samples_total", {"route": r}) or 0
            for r in ("oracle", "auto_label", "skip")
        )
    )


def _report(name: str, metrics: Metrics, produced: int, total: int, options: Options) -> None:
    if options.progress is None:
        return
    value = metrics.registry.get_sample_value
    options.progress(
        Status(
            strategy=name,
            produced=produced,
            total=total,
            routed=_routed(value),
            asked=int(value("streamal_samples_total", {"route": "oracle"}) or 0),
            auto_labeled=int(value("streamal_samples_total", {"route": "auto_label"}) or 0),
            version=int(value("streamal_model_version") or 0),
            answered_accuracy=value("streamal_answered_accuracy"),
        )
    )


def _read(settings: Settings, topic: str) -> list[Envelope]:
    got: list[Envelope] = []
    with open_transport(settings) as reader:
        reader.subscribe([topic])
        while batch := reader.poll(10_000, 0.5):
            got += batch
    return got


def measure(
    settings: Settings,
    stream: LabeledStream,
    name: str,
    drifts: list[int],
    stops: Sequence[tuple[int, str]] = (),
) -> dict[str, Any]:
    """The report of a finished run, from its topics and model store; ``stops`` are the
    positions where the trainer's stopping rules began to hold."""
    n = len(stream.ids)
    position = {sample_id: i for i, sample_id in enumerate(stream.ids)}
    requests = [
        decode(LabelRequest, e.value) for e in _read(settings, settings.topics.label_requests)
    ]
    autos = [decode(AutoLabel, e.value) for e in _read(settings, settings.topics.auto_labels)]
    retracted = {
        decode(Retraction, e.value).id for e in _read(settings, settings.topics.retractions)
    }
    served = np.full(n, -1)
    for sample_id, version in [(r.id, r.model_version) for r in requests] + [
        (a.id, a.model_version) for a in autos
    ]:
        served[position[sample_id]] = version
    served = np.maximum.accumulate(np.where(served < 0, 0, served))  # versions only move forward
    correct = _correct(settings, stream, served)
    asked = np.zeros(n, dtype=int)
    for request in requests:
        asked[position[request.id]] += 1
    labels_used = np.cumsum(asked)
    rolling = rolling_mean(correct, ROLLING)
    points = np.unique(np.linspace(0, n - 1, min(POINTS, n)).astype(int))
    truth = stream.truth()
    in_stream_order = sorted(autos, key=lambda a: position[a.id])
    swaps = [
        int(np.argmax(served >= v)) for v in range(1, int(served.max()) + 1) if (served >= v).any()
    ]
    return {
        "strategy": name,
        "score": settings.strategy.score,
        "budget": settings.strategy.budget,
        "samples": n,
        "prequential_accuracy": round(float(correct.mean()), 4),
        "final_accuracy": round(float(correct[-min(ROLLING * 2, n) :].mean()), 4),
        "labels_used": int(labels_used[-1]),
        "label_rate": round(float(labels_used[-1] / n), 4),
        **auto_label_outcomes(
            [a.label == truth[a.id] for a in in_stream_order],
            [position[a.id] for a in in_stream_order],
            n,
        ),
        "retracted": len(retracted),
        "standing_precision": _precision(
            [a.label == truth[a.id] for a in autos if a.id not in retracted]
        ),
        "model_versions": int(served.max()),
        "model_swaps": swaps,
        "drift_events": drifts,
        "stream_drifts": list(stream.drifts),
        "stopping": stopping_outcomes(stops, labels_used, rolling, start=min(ROLLING, n - 1)),
        "series": {
            "position": points.tolist(),
            "accuracy": [round(float(rolling[i]), 4) for i in points],
            "labels_used": [int(labels_used[i]) for i in points],
        },
    }


def flattened(rolling: np.ndarray, start: int, tolerance: float = FLAT_TOLERANCE) -> int | None:
    """Where a learning curve flattened: the first position from ``start`` on (where the
    rolling window is full) whose accuracy is within ``tolerance`` of the best still to come.

    >>> flattened(np.array([0.5, 0.6, 0.7, 0.79, 0.8, 0.78, 0.8]), start=1, tolerance=0.02)
    3
    >>> flattened(np.array([0.5, 0.6]), start=5) is None
    True
    """
    if start >= len(rolling):
        return None
    best_to_come = np.maximum.accumulate(rolling[::-1])[::-1]
    return start + int(np.argmax(rolling[start:] >= best_to_come[start:] - tolerance))


def stopping_outcomes(
    stops: Sequence[tuple[int, str]], labels_used: np.ndarray, rolling: np.ndarray, start: int
) -> dict[str, Any]:
    """Where each stopping rule first began to hold (position, labels spent, rolling accuracy,
    the accuracy still to come by going on, and labels against the flattening point), and
    where the learning curve actually flattened (`flattened`, from ``start``).

    >>> labels = np.arange(10) * 10
    >>> curve = np.array([0.3, 0.5, 0.7, 0.8, 0.9, 0.9, 0.91, 0.9, 0.9, 0.9])
    >>> report = stopping_outcomes([(6, "stable_predictions")], labels, curve, start=1)
    >>> report["flattened"]
    {'position': 4, 'labels': 40, 'accuracy': 0.9}
    >>> report["rules"]["stable_predictions"]
    {'position': 6, 'labels': 60, 'accuracy': 0.91, 'accuracy_to_come': 0.0, 'labels_over_flat': 20}
    >>> report["rules"]["budget_spent"] is None
    True
    """
    flat = flattened(rolling, start)

    def point(position: int) -> dict[str, Any]:
        return {
            "position": position,
            "labels": int(labels_used[position]),
            "accuracy": round(float(rolling[position]), 4),
        }

    rules: dict[str, Any] = dict.fromkeys(STOPPING_RULES)
    for position, rule in stops:
        at = min(position, len(rolling) - 1)
        if rule in rules and rules[rule] is None:
            rules[rule] = point(at) | {
                "accuracy_to_come": round(float(rolling[at:].max() - rolling[at]), 4),
                "labels_over_flat": None
                if flat is None
                else int(labels_used[at] - labels_used[flat]),
            }
    return {"flattened": None if flat is None else point(flat), "rules": rules}


def auto_label_outcomes(right: list[bool], positions: list[int], samples: int) -> dict[str, Any]:
    """How the auto-labels of a run of ``samples`` did as issued, from whether each was right
    and where in the stream its sample was (in stream order); the share is also given over the
    stream's second half, once the model had time to become good.

    >>> auto_label_outcomes([True, False, False, True, False], [0, 2, 5, 6, 9], 10)
    {'auto_labeled_share': 0.5, 'auto_labeled_share_second_half': 0.6, \
'auto_label_precision': 0.4, 'longest_wrong_run': 2}
    """
    wrong = np.concatenate([[0], ~np.asarray(right, dtype=bool), [0]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(wrong))
    runs = edges[1::2] - edges[::2]
    half = samples // 2
    return {
        "auto_labeled_share": round(len(right) / samples, 4),
        "auto_labeled_share_second_half": round(
            sum(p >= half for p in positions) / max(1, samples - half), 4
        ),
        "auto_label_precision": _precision(right),
        "longest_wrong_run": int(runs.max()) if len(runs) else 0,
    }


def _precision(right: list[bool]) -> float | None:
    return round(float(np.mean(right)), 4) if right else None


def rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    """The mean of the last ``window`` values (fewer at the start) at every position.

    >>> rolling_mean(np.array([1.0, 0.0, 1.0, 1.0]), 2).tolist()
    [1.0, 0.5, 0.5, 1.0]
    """
    total = np.cumsum(values)
    before = np.concatenate([np.zeros(window), total])[: len(values)]
    return (total - before) / np.minimum(np.arange(1, len(values) + 1), window)


def _correct(settings: Settings, stream: LabeledStream, served: np.ndarray) -> np.ndarray:
    """Whether the version that served each sample predicted its label."""
    loader = ModelLoader(settings.model, settings.strategy.seed)
    correct = np.zeros(len(served), dtype=float)
    for version in np.unique(served):
        if version == 0:
            predictor = loader.untrained()
        else:
            predictor = loader.load(loader.store.checkpoint(int(version)))
        rows = np.flatnonzero(served == version)
        inputs = predictor.encode(stream.samples(rows)).inputs
        predicted = predictor.logits(inputs).argmax(1).cpu().numpy()
        correct[rows] = predicted == stream.labels[rows]
    return correct
