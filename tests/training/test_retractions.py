"""Retractions through a trainer's SIGKILL: every wrong auto-label of a swapped concept is
retracted, each exactly once, on both transports."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path

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


def test_retractions_are_exactly_once_through_a_sigkill_of_the_trainer(
    cluster: Settings, tmp_path: Path
) -> None:
    change, end = 8000, 10_500  # every class swaps places at 8,000: confident and wrong
    stream = gaussian_classes(end, n_features=FEATURES, spread=1.5, drift_at=change, seed=4)
    settings = loop_settings(cluster, tmp_path, stream.classes)
    config = write_config(settings, tmp_path / "train.yaml")
    metrics = Metrics()
    daemon = Daemon(settings, metrics=metrics)
    annotator = SimulatedAnnotator(settings, stream.truth(), delay_s=0.3, group=unique("ann"))
    routed = metrics.registry.get_sample_value
    trainers: list[subprocess.Popen[str]] = [run_train(config)]
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
        if total() >= change and not asked_at_change:
            asked_at_change.append(asked)
        if asked_at_change and len(trainers) == 1 and stored >= asked_at_change[0] + 40:
            trainers[0].send_signal(signal.SIGKILL)
            trainers[0].wait()
            trainers.append(run_train(config))
        return total() >= samples and stored >= asked - 150

    try:
        with running((daemon.run, daemon.stop), (annotator.run, annotator.stop)):
            stream_in(settings, stream, end, 1500, caught_up)
            wait_for(lambda: total() >= end, timeout_s=120)
    finally:
        for trainer in trainers:
            if trainer.poll() is None:
                trainer.send_signal(signal.SIGTERM)
                trainer.communicate(timeout=60)
    assert len(trainers) == 2  # the trainer was killed and replaced mid-drift

    truth = stream.truth()
    issued = [decode(AutoLabel, e.value) for e in read_all(settings, settings.topics.auto_labels)]
    retracted = Counter(
        decode(Retraction, e.value).id for e in read_all(settings, settings.topics.retractions)
    )
    assert any(int(a.id[1:]) < change for a in issued)  # auto-labeling ran before the change
    assert retracted and set(retracted.values()) == {1}  # each exactly once
    wrong = {a.id for a in issued if a.label != truth[a.id] and int(a.id[1:]) >= change}
    assert wrong <= set(retracted)  # every wrong auto-label of the new concept
    standing = [a.label == truth[a.id] for a in issued if a.id not in retracted]
    assert not standing or sum(standing) / len(standing) >= 0.98
