"""The whole loop: serve + a simulated annotator + train, on generated fixed-seed streams."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from streamal.config import Settings
from streamal.examples import text
from streamal.messages import AutoLabel, LabelRequest, decode, encode
from streamal.metrics import Metrics
from streamal.model import ModelLoader, ModelStore
from streamal.simulation.annotator import SimulatedAnnotator
from streamal.simulation.streams import LabeledStream, gaussian_classes
from streamal.stream.daemon import Daemon
from streamal.training.labels import LabelStore
from streamal.training.trainer import Trainer
from streamal.transport import Record, open_transport, topic_specs
from tests.conftest import unique
from tests.helpers import read_all, wait_for, with_fresh_topics

FEATURES = 10


def loop_settings(cluster: Settings, tmp_path: Path, classes: list[str]) -> Settings:
    data = with_fresh_topics(cluster).model_dump(mode="json")
    data |= {
        "model": {
            "n_features": FEATURES, "classes": classes, "hidden": [32],
            "store": str(tmp_path / "m"),
        },
        "strategy": {
            "budget": 0.1,
            "auto_label": {"min_audits": 100, "audit_share": 0.1},
        },
        "serve": {"group": unique("serve"), "max_batch": 64, "metrics_address": "127.0.0.1:0"},
        "train": {
            "group": unique("train"), "label_store": str(tmp_path / "labels.sqlite"),
            "min_new_labels": 100, "interval_s": 5, "metrics_address": "127.0.0.1:0",
            "drift": {"boost_samples": 1000},
        },
    }  # fmt: skip
    if data["transport"]["kind"] == "kafka":
        data["transport"]["kafka"] |= {"session_timeout_ms": 6000, "replica_id": unique("r")}
    return Settings(**data)


@contextmanager
def running(*parts: tuple[Callable[[], None], Callable[[], None]]) -> Iterator[None]:
    """Run each ``(run, stop)`` in a thread for the duration of the block."""
    threads = [threading.Thread(target=run) for run, _ in parts]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        for _, stop in parts:
            stop()
        for thread in threads:
            thread.join(timeout=60)


def stream_in(
    settings: Settings,
    stream: LabeledStream,
    end: int,
    rate: float,
    caught_up: Callable[[int], bool],
    start: int = 0,
) -> None:
    """Produce samples ``[start, end)`` of ``stream`` at about ``rate`` per second, and never
    more than two tenths of a second ahead of the loop (``caught_up(n)``: serve routed ``n``
    samples and the trainer keeps up with the answers), so how far the loop gets does not
    depend on the machine's speed or load."""
    chunk = max(1, int(rate / 10))
    with open_transport(settings) as producer:
        producer.ensure_topics(topic_specs(settings.topics))
        for first in range(start, end, chunk):
            wait_for(lambda: caught_up(first - 2 * chunk), timeout_s=120)  # noqa: B023
            for sample in stream.samples(range(first, min(first + chunk, end))):
                producer.produce(
                    Record(settings.topics.samples, encode(sample), key=sample.id.encode())
                )
            producer.flush()
            time.sleep(0.1)


def latest_accuracy(settings: Settings, features: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the newest stored model on ``features`` (fresh samples, never streamed)."""
    newest = ModelLoader(settings.model).newest()
    assert newest is not None
    predicted = newest[1].logits(torch.as_tensor(features)).argmax(1).cpu().numpy()
    return float((predicted == labels).mean())


def run_loop(settings: Settings, stream: LabeledStream, end: int, rate: float) -> Metrics:
    """Serve, annotate and train while ``end`` samples stream in; the shared metrics."""
    metrics = Metrics()
    daemon = Daemon(settings, metrics=metrics)
    annotator = SimulatedAnnotator(settings, stream.truth(), delay_s=0.3, group=unique("ann"))
    trainer = Trainer(settings, metrics=metrics)
    routed = metrics.registry.get_sample_value
    total = lambda: sum(  # noqa: E731
        routed("streamal_samples_total", {"route": r}) or 0
        for r in ("oracle", "auto_label", "skip")
    )
    behind = int(0.1 * rate)  # answers of a second's requests may still be on their way

    def caught_up(samples: int) -> bool:
        asked = routed("streamal_samples_total", {"route": "oracle"}) or 0
        return total() >= samples and (routed("streamal_labels_received_total") or 0) >= (
            asked - behind
        )

    with running(
        (daemon.run, daemon.stop), (annotator.run, annotator.stop), (trainer.run, trainer.stop)
    ):
        stream_in(settings, stream, end, rate, caught_up)
        wait_for(lambda: total() >= end, timeout_s=120)
        asked = routed("streamal_samples_total", {"route": "oracle"})
        with contextlib.closing(
            LabelStore(settings.train.label_store, settings.model.classes)
        ) as store:  # the last answers, and a round that used every one of them
            wait_for(
                lambda: (
                    routed("streamal_labels_received_total") >= asked and store.last_round()[0] == 0
                ),
                timeout_s=120,
            )
    return metrics


def test_the_loop_learns_holds_the_budget_and_auto_labels_precisely(
    cluster: Settings, tmp_path: Path
) -> None:
    stream = gaussian_classes(14_000, n_features=FEATURES, spread=1.5, seed=3)
    end = 12_000  # the last 2,000 samples are kept apart to measure the model on
    settings = loop_settings(cluster, tmp_path, stream.classes)
    metrics = run_loop(settings, stream, end, rate=1500)
    value = metrics.registry.get_sample_value

    # learning: several versions published, the newest far above chance (1/3) on fresh samples
    latest = ModelStore(settings.model.store, settings.model.name).latest()
    assert latest is not None and latest.version >= 3
    assert latest_accuracy(settings, stream.features[end:], stream.labels[end:]) > 0.9
    # the trainer's answered accuracy is measured on the asked samples, the hardest ones by
    # design (the most uncertain); still well above chance once trained
    assert value("streamal_answered_accuracy") > 0.6

    truth = stream.truth()
    requests = [
        decode(LabelRequest, e.value) for e in read_all(settings, settings.topics.label_requests)
    ]
    autos = [decode(AutoLabel, e.value) for e in read_all(settings, settings.topics.auto_labels)]
    # auto-labels: realized precision at or above the 0.98 target
    assert len(autos) > 1000
    precision = np.mean([a.label == truth[a.id] for a in autos])
    assert precision >= 0.98, precision
    # the budget: after warm-up (until the first trained model, plus 1,000 samples), requests
    # stay within 10% of b = 0.1, audits included: they come out of the same budget
    warm = min(int(r.id[1:]) for r in requests if r.model_version >= 1) + 1000
    asked = sum(1 for r in requests if int(r.id[1:]) >= warm)
    rate = asked / (end - warm)
    assert end - warm >= 4000 and abs(rate - 0.1) <= 0.01, (warm, rate)
    reasons = Counter(r.reason for r in requests)
    assert reasons["audit"] > 100 and reasons["explore"] > 100  # audits; untrained exploration


def test_an_abrupt_concept_change_is_detected_and_accuracy_recovers(
    cluster: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    change, end = 5000, 11_000
    stream = gaussian_classes(end + 2000, n_features=FEATURES, spread=1.5, drift_at=change, seed=4)
    settings = loop_settings(cluster, tmp_path, stream.classes)
    with caplog.at_level(logging.INFO, logger="streamal.stream.daemon"):
        metrics = run_loop(settings, stream, end, rate=1500)
    value = metrics.registry.get_sample_value

    detected = {
        name: value("streamal_drift_detected_total", {"detector": name}) or 0
        for name in ("error", "audit", "confidence", "surprise", "overconfidence")
    }
    # the evidence comes from the labels: the audited confident predictions turning wrong, the
    # errors on the randomly asked ones, or any answer wrong where the model was sure (its
    # surprise, or the sequential test of its stated odds), whichever is seen first; the
    # drift's date below ties it to the real change
    assert sum(detected.values()) - detected["confidence"] >= 1, detected
    # recovery: within the 6,000 samples after the change the newest model learned the new
    # concept (it had swapped every class, so the old model scores 0 on it)
    assert latest_accuracy(settings, stream.features[end:], stream.labels[end:]) > 0.9
    requests = [
        decode(LabelRequest, e.value) for e in read_all(settings, settings.topics.label_requests)
    ]
    boosted = [r for r in requests if r.reason == "explore" and int(r.id[1:]) > change]
    assert len(boosted) > 50  # the exploration boost after the drift
    # the boost dates the new concept (when it began to be served): serve retracts from there
    dates = re.findall(r"drift since (\S+)", caplog.text)
    assert dates, caplog.text[-2000:]
    since = datetime.fromisoformat(dates[0])
    served = sorted((r.requested_at, int(r.id[1:])) for r in requests)
    dated = max(i for at, i in served if at <= since)  # the newest sample served by then
    assert change - 1500 <= dated <= change + 500, dated
    # the boost travels in its own announcement field (serve started it), never in the store
    assert "exploration boost " in caplog.text
    store = ModelStore(settings.model.store, settings.model.name)
    stored = [store.checkpoint(version).thresholds for version in store.versions()]
    known = {"budget", "explore", "auto_label", "auto_label_bound", "auto_label_out_of_reach"}
    assert all(set(thresholds) <= known for thresholds in stored), stored


def test_a_payload_deployment_trains_and_hot_swaps(cluster: Settings, tmp_path: Path) -> None:
    samples, labels = text.stream(4000, seed=5)
    stream = LabeledStream.of_samples(samples, labels, text.CLASSES)
    end = 3000  # the last 1,000 texts are kept apart to measure the model on
    data = loop_settings(cluster, tmp_path, text.CLASSES).model_dump(mode="json")
    data["model"] |= {"factory": "streamal.examples.text:model", "options": {"max_epochs": 10}}
    data["strategy"]["budget"] = 0.2
    data["train"]["min_new_labels"] = 100
    settings = Settings(**data)
    metrics = run_loop(settings, stream, end, rate=600)

    # the requests carried the texts, the label store kept them, the trainer learned from them
    requests = [
        decode(LabelRequest, e.value) for e in read_all(settings, settings.topics.label_requests)
    ]
    assert requests and all(r.features is None and isinstance(r.payload, str) for r in requests)
    with contextlib.closing(LabelStore(settings.train.label_store, text.CLASSES)) as store:
        assert len(store.labeled().samples) >= 400
    latest = ModelStore(settings.model.store, settings.model.name).latest()
    assert latest is not None and latest.version >= 2
    # serve swapped the trained versions in and asked with them
    assert metrics.registry.get_sample_value("streamal_model_version") >= 2
    assert max(r.model_version for r in requests) >= 2
    newest = ModelLoader(settings.model).newest()
    assert newest is not None
    held_out = samples[end:]
    predictor = newest[1]
    predicted = predictor.logits(predictor.encode(held_out).inputs).argmax(1).cpu().numpy()
    truth = np.array([text.CLASSES.index(label) for label in labels[end:]])
    assert float((predicted == truth).mean()) > 0.6  # chance is 0.2
