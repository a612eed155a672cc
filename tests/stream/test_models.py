"""Where a replica gets its models, through the real daemon and watcher on both transports: the
newest stored version that verifies at start, then only announced versions that verify."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from streamal.config import Settings
from streamal.messages import ExploreBoost, LabelRequest, decode, now
from streamal.metrics import Metrics
from streamal.model import MLP, Checkpoint, ModelLoader, ModelStore
from streamal.model.announce import announcement_record
from streamal.stream.daemon import Daemon
from streamal.stream.models import Loaded, ModelWatcher, initial_model
from streamal.transport import Record, TopicSpec, open_transport
from tests.conftest import settings_for
from tests.helpers import read_all
from tests.stream.test_daemon import CLASSES, outputs, produce_samples, serve_settings, wait_for

Serving = tuple[Settings, Daemon, Callable[[], float]]


@pytest.fixture
def serving(cluster: Settings, tmp_path: Path) -> Iterator[Serving]:
    """A daemon serving in a thread of this process, and how to stop it (the seconds taken)."""
    settings = serve_settings(cluster, tmp_path, budget=1.0, gate={"name": "fixed", "threshold": 0})
    daemon = Daemon(settings, metrics=Metrics())
    thread = threading.Thread(target=daemon.run)
    thread.start()

    def stop() -> float:
        started = time.monotonic()
        daemon.stop()  # what SIGTERM does
        thread.join(timeout=60)
        return time.monotonic() - started

    yield settings, daemon, stop
    stop()


def weights(poison: float | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a default model of the test's shape, one set to ``poison`` if given."""
    module = MLP(4, 3, [16], 0.0)
    if poison is not None:
        with torch.no_grad():
            module.head.bias[0] = poison
    return module.state_dict()


def announce(
    settings: Settings, *checkpoints: Checkpoint, boost: ExploreBoost | None = None
) -> None:
    with open_transport(settings) as producer:  # a plain topic if missing: keeps every record
        producer.ensure_topics({settings.topics.models: TopicSpec(partitions=1)})
        for checkpoint in checkpoints:
            producer.produce(announcement_record(settings.topics.models, checkpoint, boost))


def read_announcements(
    settings: Settings, watcher: ModelWatcher, count: int, taking: bool
) -> list[Loaded]:
    """Have ``watcher`` read the ``count`` announcements on ``models`` (bounded by polls); what
    the replica took after each poll, if ``taking``."""
    taken: list[Loaded] = []
    with open_transport(settings) as transport:
        transport.subscribe([settings.topics.models])
        read = 0
        for _ in range(200):
            read += watcher.read(transport, 0.2)
            if taking and (loaded := watcher.take()) is not None:
                taken.append(loaded)
            if read >= count:
                break
    assert read == count
    return taken


def served_versions(settings: Settings, count: int) -> Counter[int]:
    """How many label requests each model version made; every one of ``count`` samples once."""
    found = outputs(settings, count)[settings.topics.label_requests]
    requests = [decode(LabelRequest, value) for value in found]
    assert sorted(Counter(r.id for r in requests).values()) == [1] * count
    return Counter(r.model_version for r in requests)


def test_refused_announcements_leave_the_current_model_serving(
    serving: Serving, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings, daemon, stop = serving
    value = daemon.metrics.registry.get_sample_value
    oracle = lambda: value("streamal_samples_total", {"route": "oracle"}) or 0  # noqa: E731
    store = ModelStore(settings.model.store, settings.model.name)
    ids = produce_samples(settings, 500, bad=False)
    wait_for(lambda: oracle() > 0)

    outside = ModelStore(tmp_path / "elsewhere", settings.model.name).save(weights(), CLASSES)
    poisoned = store.save(weights(poison=float("nan")), CLASSES)  # v1: NaN, its sha256 matches
    real = store.save(weights(), CLASSES)  # v2
    fifo = settings.model.store / settings.model.name / "v000007.pt"
    os.mkfifo(fifo)
    climbing = f"file://{fifo.parent}/../../elsewhere/{settings.model.name}/v000001.pt"
    refused = [
        (replace(outside, version=3), "outside the model store"),
        (replace(outside, version=4, uri=climbing), "outside the model store"),
        (replace(real, version=7, uri=fifo.as_uri()), "not a regular file"),
        (poisoned, "'head.bias' holds NaN or inf"),
        (replace(real, version=999999), "not the checkpoint of v999999"),  # pins nothing
    ]
    with caplog.at_level(logging.ERROR, logger="streamal.stream.models"):
        for count, (announced, _) in enumerate(refused, 1):  # one at a time: compaction
            announce(settings, announced)
            wait_for(lambda: value("streamal_model_rejections_total") == count)  # noqa: B023
        announce(settings, real)  # a real version still gets through
        wait_for(lambda: value("streamal_model_version") == 2)
    refusals = [r.getMessage() for r in caplog.records if "refused model" in r.getMessage()]
    assert len(refusals) == len(refused)
    for line, (_, reason) in zip(refusals, refused, strict=True):
        assert reason in line and "\n" not in line, line

    ids += produce_samples(settings, 500, start=500, bad=False)
    wait_for(lambda: oracle() == len(ids))
    assert value("streamal_model_swaps_total") == 1
    assert set(served_versions(settings, len(ids))) == {0, 2}
    assert stop() < 15  # nothing waits on the FIFO: SIGTERM stays fast


def test_a_tombstone_on_models_is_ignored(
    serving: Serving, caplog: pytest.LogCaptureFixture
) -> None:
    settings, daemon, _ = serving
    value = daemon.metrics.registry.get_sample_value
    real = ModelStore(settings.model.store, settings.model.name).save(weights(), CLASSES)
    wait_for(daemon.ready)
    with caplog.at_level(logging.INFO, logger="streamal.stream.models"):
        with open_transport(settings) as producer:  # a deleted key: a null value
            producer.produce(Record(settings.topics.models, None, key=settings.model.name.encode()))
        wait_for(lambda: "ignored a tombstone" in caplog.text)
        announce(settings, real)  # after it: a compacted topic would keep only the newest
        wait_for(lambda: value("streamal_model_version") == 1)
    assert value("streamal_model_rejections_total") == 0


def test_a_restarted_replica_serves_the_newest_stored_version_that_verifies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = serve_settings(
        settings_for("local", tmp_path=tmp_path), tmp_path, budget=1.0,
        gate={"name": "fixed", "threshold": 0},
    )  # fmt: skip
    store = ModelStore(settings.model.store, settings.model.name)
    store.save(weights(), CLASSES)  # v1: intact
    store.save(weights(), CLASSES)
    (settings.model.store / settings.model.name / "v000002.pt").write_bytes(b"scrambled")
    store.save(weights(poison=float("inf")), CLASSES)
    ids = produce_samples(settings, 200, bad=False)
    metrics = Metrics()
    with caplog.at_level(logging.WARNING, logger="streamal.model.loader"):
        Daemon(settings, metrics=metrics, idle_timeout_s=1.0).run()
    assert served_versions(settings, len(ids)) == {1: len(ids)}
    skipped = [r.getMessage() for r in caplog.records]
    assert len(skipped) == 2
    assert skipped[0].startswith("skipped stored model v3: ") and "holds NaN or inf" in skipped[0]
    assert skipped[1].startswith("skipped stored model v2: ") and "sha256 mismatch" in skipped[1]
    assert metrics.registry.get_sample_value("streamal_model_rejections_total") == 2
    assert len(read_all(settings, settings.topics.label_requests)) == len(ids)


def test_a_drift_boost_is_passed_on_once_and_never_from_before_the_replica_started(
    cluster: Settings, tmp_path: Path
) -> None:
    settings = serve_settings(cluster, tmp_path, budget=0.1)
    store = ModelStore(settings.model.store, settings.model.name)
    v1 = store.save(weights(), CLASSES, thresholds={"budget": 0.4})
    old = ExploreBoost(share=1.0, samples=500, id="before", started_at=now())
    announce(settings, v1, boost=old)  # a boost under way when the replica restarts

    loader = ModelLoader(settings.model, settings.strategy.seed, Metrics())
    predictor, thresholds = initial_model(loader)  # the store: thresholds, never a boost
    assert (predictor.version, thresholds) == (1, {"budget": 0.4})
    watcher = ModelWatcher(settings, loader, predictor.version, thresholds, Metrics())
    new = ExploreBoost(share=1.0, samples=500, id="after", started_at=now())
    announce(settings, v1, boost=new)
    announce(settings, v1, boost=new)  # the same announcement again: a rewind, a re-read
    taken = read_announcements(settings, watcher, 3, taking=True)
    assert [(t.predictor, t.thresholds, t.boost) for t in taken] == [(None, thresholds, new)]


def test_announcements_read_before_the_replica_takes_them_lose_no_model_and_no_boost(
    cluster: Settings, tmp_path: Path
) -> None:
    settings = serve_settings(cluster, tmp_path, budget=0.1)
    store = ModelStore(settings.model.store, settings.model.name)
    v1 = store.save(weights(), CLASSES, thresholds={"budget": 0.4})
    v2 = store.save(weights(), CLASSES, thresholds={"budget": 0.3})
    loader = ModelLoader(settings.model, settings.strategy.seed, Metrics())
    watcher = ModelWatcher(settings, loader, v1.version, dict(v1.thresholds), Metrics())
    boost = ExploreBoost(share=1.0, samples=500, id="drift", started_at=now())
    announce(settings, replace(v1, thresholds={"budget": 0.4, "auto_label": 0.0}), boost=boost)
    announce(settings, v2, replace(v2, thresholds={"budget": 0.2}))  # then a retune of v2
    assert read_announcements(settings, watcher, 3, taking=False) == []
    taken = watcher.take()
    assert taken is not None and taken.predictor is not None
    assert (taken.predictor.version, taken.thresholds, taken.boost) == (2, {"budget": 0.2}, boost)
    assert watcher.take() is None


def test_an_announcement_read_after_retention_deleted_its_version_is_skipped_not_refused(
    cluster: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = serve_settings(cluster, tmp_path, budget=0.1)
    store = ModelStore(settings.model.store, settings.model.name)
    saved = [store.save(weights(), CLASSES) for _ in range(4)]
    assert store.prune(keep=2) == [1, 2]
    metrics = Metrics()
    loader = ModelLoader(settings.model, settings.strategy.seed, metrics)
    watcher = ModelWatcher(settings, loader, 1, {}, metrics)
    announce(settings, saved[1], saved[3])  # v2 read late: the store holds v3 and v4
    with caplog.at_level(logging.INFO, logger="streamal.stream.models"):
        taken = read_announcements(settings, watcher, 2, taking=True)
    assert [loaded.predictor.version for loaded in taken if loaded.predictor] == [4]
    assert metrics.registry.get_sample_value("streamal_model_rejections_total") == 0
    assert "skipped model v2: the store holds newer ones only" in caplog.text
