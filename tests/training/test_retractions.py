"""Retractions through a trainer's SIGKILL: every wrong auto-label that the old concept's models
issued on a swapped concept is retracted, each exactly once, on both transports."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np

from streamal.config import Settings
from streamal.messages import AutoLabel, Retraction, decode
from streamal.metrics import Metrics
from streamal.simulation.annotator import SimulatedAnnotator
from streamal.simulation.streams import gaussian_classes
from streamal.stream.daemon import Daemon
from tests.conftest import unique
from tests.helpers import read_all, wait_for, write_config
from tests.training.test_loop import FEATURES, loop_settings, running, stream_in
from tests.training.test_trainer import run_train, stored_answers

MOST_BEFORE = 14_000  # samples of the first concept at most: auto-labeling began by then
AFTER = 2500  # samples of the swapped concept


def test_retractions_are_exactly_once_through_a_sigkill_of_the_trainer(
    cluster: Settings, tmp_path: Path
) -> None:
    # every class swaps places once auto-labeling ran a while (observed, not at a fixed
    # sample: a loaded machine trains slower per sample), so the replica is confident and wrong
    n = MOST_BEFORE + AFTER
    stream = gaussian_classes(n, n_features=FEATURES, spread=1.5, drift_at=n, seed=4)
    swapped = gaussian_classes(n, n_features=FEATURES, spread=1.5, drift_at=0, seed=4)
    assert np.array_equal(stream.labels, swapped.labels)  # the same samples, moved
    settings = loop_settings(cluster, tmp_path, stream.classes)
    config = write_config(settings, tmp_path / "train.yaml")
    metrics = Metrics()
    daemon = Daemon(settings, metrics=metrics)
    annotator = SimulatedAnnotator(settings, stream.truth(), delay_s=0.3, group=unique("ann"))
    routed = metrics.registry.get_sample_value
    trainers: list[subprocess.Popen[str]] = [run_train(config)]
    change: list[int] = []  # where the classes swap, once decided
    asked_at_change: list[float] = []

    def total() -> float:
        return sum(
            routed("streamal_samples_total", {"route": r}) or 0
            for r in ("oracle", "auto_label", "skip")
        )

    def caught_up(samples: int) -> bool:
        """Serve routed ``samples``, the trainer stored the answers asked before the last
        second; the trainer is killed (once) when 40 answers past the change are stored."""
        assert trainers[-1].poll() is None, trainers[-1].communicate()[1][-2000:]
        asked = routed("streamal_samples_total", {"route": "oracle"}) or 0
        stored = stored_answers(settings.train.label_store)
        if change and total() >= change[0] and not asked_at_change:
            asked_at_change.append(asked)
        if asked_at_change and len(trainers) == 1 and stored >= asked_at_change[0] + 40:
            trainers[0].send_signal(signal.SIGKILL)
            trainers[0].wait()
            trainers.append(run_train(config))
        return total() >= samples and stored >= asked - 150

    try:
        with running((daemon.run, daemon.stop), (annotator.run, annotator.stop)):
            position = 0
            while (routed("streamal_samples_total", {"route": "auto_label"}) or 0) < 100:
                assert position < MOST_BEFORE, "auto-labeling never began"
                stream_in(settings, stream, position + 500, 1500, caught_up, start=position)
                position += 500
            change.append(position)
            stream_in(settings, swapped, position + AFTER, 1500, caught_up, start=position)
            wait_for(lambda: total() >= position + AFTER, timeout_s=120)
    finally:
        for trainer in trainers:
            if trainer.poll() is None:
                trainer.send_signal(signal.SIGTERM)
                trainer.communicate(timeout=60)
    assert len(trainers) == 2  # the trainer was killed and replaced mid-drift

    truth = stream.truth()
    issued = [decode(AutoLabel, e.value) for e in read_all(settings, settings.topics.auto_labels)]
    retractions = [
        decode(Retraction, e.value) for e in read_all(settings, settings.topics.retractions)
    ]
    retracted = Counter(r.id for r in retractions)
    assert any(int(a.id[1:]) < change[0] for a in issued)  # auto-labeling ran before the change
    assert retracted and set(retracted.values()) == {1}  # each exactly once
    # every wrong auto-label of the new concept that the models up to the last one retracted
    # from issued; a model published after it, trained on the new concept, may auto-label
    # again once the new concept's audits support it, within the precision target (below)
    last = max(r.model_version for r in retractions)
    old_models = [a for a in issued if int(a.id[1:]) >= change[0] and a.model_version <= last]
    wrong = {a.id for a in old_models if a.label != truth[a.id]}
    assert wrong and wrong <= set(retracted)
    standing = [a.label == truth[a.id] for a in issued if a.id not in retracted]
    assert not standing or sum(standing) / len(standing) >= 0.98
