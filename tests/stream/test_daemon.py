"""``streamal serve`` end to end, on the embedded log and on a real Kafka broker."""

from __future__ import annotations

import base64
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from streamal.config import Settings
from streamal.errors import TransportError
from streamal.messages import AutoLabel, DeadLetter, LabelRequest, decode
from streamal.metrics import Metrics
from streamal.model import MLP, ModelStore
from streamal.model.announce import announcement_record
from streamal.stream.daemon import Daemon
from streamal.transport import (
    Envelope,
    Record,
    Transport,
    open_transport,
    record_size,
    topic_specs,
)
from tests.conftest import unique
from tests.helpers import (
    read_all,
    read_back,
    transport_class,
    wait_for,
    with_fresh_topics,
    write_config,
)

ROOT = Path(__file__).parent.parent.parent
CLASSES = ["a", "b", "c"]
ROUTES = ("oracle", "auto_label", "skip")
BAD: list[bytes | None] = [
    b"{nope",
    b'{"id": "short", "features": [1.0]}',
    b'{"id": "nan", "features": [1, NaN, 0, 0]}',
    b'{"id": "huge", "features": [1e308, 0, 0, 0]}',  # finite, but not in float32
    None,  # a null value (tombstone)
]


def serve_settings(cluster: Settings, tmp_path: Path, **strategy: object) -> Settings:
    """A small deployment on ``cluster`` with topics, group and model store of its own."""
    base = with_fresh_topics(cluster)
    changes: dict[str, object] = {
        "model": {
            "n_features": 4,
            "classes": CLASSES,
            "hidden": [16],
            "store": str(tmp_path / "m"),
        },
        "serve": {"group": unique("serve"), "max_batch": 64, "metrics_address": "127.0.0.1:0"},
        "strategy": strategy,
    }
    data = base.model_dump(mode="json") | changes
    if base.transport.kind == "kafka":
        data["transport"]["kafka"] |= {"session_timeout_ms": 6000, "replica_id": unique("r")}
    return Settings(**data)


def produce_samples(settings: Settings, count: int, start: int = 0, bad: bool = True) -> list[str]:
    """``count`` valid samples (and the BAD records); the ids of the valid ones."""
    rng = np.random.default_rng(start)
    ids = [f"s{i}" for i in range(start, start + count)]
    with open_transport(settings) as producer:
        producer.ensure_topics(topic_specs(settings.topics))
        for sample_id in ids:
            features = rng.normal(size=4).round(4).tolist()
            value = json.dumps({"id": sample_id, "features": features, "ts": time.time()})
            producer.produce(
                Record(settings.topics.samples, value.encode(), key=sample_id.encode())
            )
        for i, value in enumerate(BAD if bad else []):
            producer.produce(Record(settings.topics.samples, value, key=f"bad{start}-{i}".encode()))
    return ids


def outputs(settings: Settings, expected: int, timeout_s: float = 30) -> dict[str, list[bytes]]:
    """Every record on the three output topics, once ``expected`` records came in all."""
    topics = settings.topics
    names = (topics.label_requests, topics.auto_labels, topics.dead_letter)
    deadline = time.monotonic() + timeout_s
    while True:
        found = {topic: [e.value for e in read_all(settings, topic)] for topic in names}
        if sum(map(len, found.values())) >= expected or time.monotonic() > deadline:
            return found


def routed_ids(settings: Settings, found: dict[str, list[bytes]]) -> Counter[str]:
    """How many times each sample (or bad record's offset) was routed to an output."""
    topics = settings.topics
    seen: Counter[str] = Counter()
    seen.update(decode(LabelRequest, v).id for v in found[topics.label_requests])
    seen.update(decode(AutoLabel, v).id for v in found[topics.auto_labels])
    for value in found[topics.dead_letter]:
        letter = decode(DeadLetter, value)
        seen[f"dead:{letter.partition}:{letter.offset}"] += 1
    return seen


def store_model(settings: Settings, thresholds: dict[str, float], seed: int = 0) -> None:
    import torch

    torch.manual_seed(seed)
    store = ModelStore(settings.model.store, settings.model.name)
    store.save(MLP(4, 3, [16], 0.0).state_dict(), CLASSES, thresholds=thresholds)


def test_records_and_metrics_agree_on_every_route(cluster: Settings, tmp_path: Path) -> None:
    settings = serve_settings(cluster, tmp_path, budget=0.2, auto_label={"audit_share": 0.1})
    store_model(settings, {"auto_label": 0.4})  # an untrained MLP is about 0.35-0.45 sure
    ids = produce_samples(settings, 600)
    metrics = Metrics()
    Daemon(settings, metrics=metrics, idle_timeout_s=2.0).run()

    found = outputs(settings, 0)
    count = {t: len(v) for t, v in found.items()}
    value = metrics.registry.get_sample_value
    topics = settings.topics
    assert value("streamal_samples_total", {"route": "oracle"}) == count[topics.label_requests]
    assert value("streamal_samples_total", {"route": "auto_label"}) == count[topics.auto_labels]
    assert value("streamal_samples_total", {"route": "dead_letter"}) == len(BAD)
    assert count[topics.dead_letter] == len(BAD)
    skipped = value("streamal_samples_total", {"route": "skip"})
    assert skipped == len(ids) - count[topics.label_requests] - count[topics.auto_labels]
    assert min(count[topics.label_requests], count[topics.auto_labels], skipped) > 0
    reasons = Counter(decode(LabelRequest, v).reason for v in found[topics.label_requests])
    assert set(reasons) == {"uncertain", "audit", "explore"}  # explore: the random share
    assert value("streamal_model_version") == 1
    assert value("streamal_label_budget") == 0.2
    assert value("streamal_batch_size_count") >= len(ids) / 64
    assert value("streamal_end_to_end_seconds_count") == len(ids)  # every valid one had a ts


def test_a_commit_that_landed_though_its_answer_was_lost_counts_once(
    cluster: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker completed a batch's transaction but its answer never came: the batch is not
    read again (its offsets are committed), so the replica must learn from it as from any
    other, or what it issued there (auto-labels it may have to retract, audits it awaits)
    would be unknown to it."""
    settings = serve_settings(cluster, tmp_path, budget=0.2, auto_label={"audit_share": 0.1})
    store_model(settings, {"auto_label": 0.4})
    kind = transport_class(settings)
    commit, lost = kind._commit_transaction, []

    def answer_lost(transport: Transport) -> None:
        commit(transport)
        if not lost:
            lost.append(True)
            raise TransportError("no answer from the transaction (fault injected)")

    monkeypatch.setattr(kind, "_commit_transaction", answer_lost)
    ids = produce_samples(settings, 300, bad=False)
    metrics = Metrics()
    Daemon(settings, metrics=metrics, idle_timeout_s=2.0).run()

    assert lost
    found = outputs(settings, 0)
    assert set(routed_ids(settings, found).values()) == {1}  # committed once, not read again
    value = metrics.registry.get_sample_value
    routes = {route: value("streamal_samples_total", {"route": route}) for route in ROUTES}
    assert routes["oracle"] == len(found[settings.topics.label_requests])
    assert routes["auto_label"] == len(found[settings.topics.auto_labels]) > 0
    assert sum(routes.values()) == len(ids)  # the lost answer's batch counted, once
    assert value("streamal_batch_failures_total") == 0


def run_serve(config: str, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "streamal", "serve", "-c", config, *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def routed_by(port: int) -> float:
    """Samples a replica with its metrics on ``port`` routed so far (0 until it answers)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("streamal_samples_total{")
    )


def test_exactly_once_through_repeated_sigkills(cluster: Settings, tmp_path: Path) -> None:
    settings = serve_settings(
        cluster, tmp_path, budget=1.0, gate={"name": "fixed", "threshold": 0.0}
    )  # every sample is routed: none may be missing, none repeated
    config = write_config(settings, tmp_path / "serve.yaml")
    ids = produce_samples(settings, 20_000)
    # each run is killed once the committed requests reach its random target (a random point
    # of the stream, however fast the machine), some batches past where the last run stopped
    targets = sorted(random.Random(7).sample(range(1, 12_000), 5))
    with open_transport(settings) as reader:
        reader.subscribe([settings.topics.label_requests])
        routed = 0
        for target in targets:
            daemon = run_serve(config)

            def reached(target: int = target, daemon: subprocess.Popen[str] = daemon) -> bool:
                nonlocal routed
                assert daemon.poll() is None, daemon.communicate()[1][-2000:]
                routed += len(reader.poll(5000, 0.2))
                return routed >= target

            wait_for(reached, timeout_s=180, interval_s=0)
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
    daemon = run_serve(config)  # the last restart finishes the stream
    found = outputs(settings, len(ids) + len(BAD), timeout_s=240)
    daemon.send_signal(signal.SIGTERM)
    _, stderr = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, stderr[-2000:]

    seen = routed_ids(settings, found)
    assert {i: seen[i] for i in ids if seen[i] != 1} == {}
    assert sum(seen.values()) == len(ids) + len(BAD)


def test_sigterm_commits_the_batch_in_hand_and_exits_0(cluster: Settings, tmp_path: Path) -> None:
    settings = serve_settings(cluster, tmp_path, budget=1.0, gate={"name": "fixed", "threshold": 0})
    config = write_config(settings, tmp_path / "serve.yaml")
    ids = produce_samples(settings, 3000, bad=False)
    daemon = run_serve(config)
    wait_for(lambda: read_back(settings, settings.topics.label_requests, 0, timeout_s=0.5))
    daemon.send_signal(signal.SIGTERM)
    _, stderr = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr

    finish = run_serve(config, "--idle-timeout", "3")
    finish.communicate(timeout=120)
    seen = routed_ids(settings, outputs(settings, len(ids)))
    assert set(seen.values()) == {1} and len(seen) == len(ids)


def test_two_replicas_share_the_partitions_and_route_each_sample_once(
    cluster: Settings, tmp_path: Path
) -> None:
    settings = serve_settings(cluster, tmp_path, budget=1.0, gate={"name": "fixed", "threshold": 0})
    config = write_config(settings, tmp_path / "serve.yaml")
    ports = [free_port(), free_port()]
    replicas = [
        run_serve(config, "--idle-timeout", "6", env={
            "STREAMAL_TRANSPORT__KAFKA__REPLICA_ID": unique(name),
            "STREAMAL_SERVE__METRICS_ADDRESS": f"127.0.0.1:{port}",
        })
        for name, port in zip("ab", ports, strict=True)
    ]  # fmt: skip
    ids: list[str] = []
    # samples keep coming until each replica routed some (both joined, the partitions shared)
    for chunk in range(600):
        ids += produce_samples(settings, 50, start=chunk * 50, bad=False)
        if all(routed_by(port) > 0 for port in ports):
            break
        time.sleep(0.05)
    logs = [replica.communicate(timeout=180)[1] for replica in replicas]
    assert [r.returncode for r in replicas] == [0, 0], [log[-1500:] for log in logs]
    processed = [int(log.rsplit("stopped after ", 1)[1].split()[0]) for log in logs]
    assert all(n > 0 for n in processed), processed
    seen = routed_ids(settings, outputs(settings, len(ids)))
    assert set(seen.values()) == {1} and len(seen) == len(ids), logs
    assert sum(processed) == len(ids), logs  # each counted by the replica whose batch landed


@pytest.fixture
def serving(cluster: Settings, tmp_path: Path) -> Iterator[tuple[Settings, Daemon]]:
    """A daemon serving in a thread of this process until the test ends."""
    settings = serve_settings(cluster, tmp_path, budget=1.0, gate={"name": "fixed", "threshold": 0})
    daemon = Daemon(settings, metrics=Metrics())
    thread = threading.Thread(target=daemon.run)
    thread.start()
    yield settings, daemon
    daemon.stop()
    thread.join(timeout=60)


def test_hot_swap_under_load_and_a_corrupt_checkpoint_is_refused(
    serving: tuple[Settings, Daemon],
) -> None:
    settings, daemon = serving
    value = daemon.metrics.registry.get_sample_value
    store = ModelStore(settings.model.store, settings.model.name)
    ids = produce_samples(settings, 2000, bad=False)
    wait_for(daemon.ready)
    wait_for(lambda: (value("streamal_samples_total", {"route": "oracle"}) or 0) > 200)
    good = store.save(MLP(4, 3, [16], 0.0).state_dict(), CLASSES, thresholds={"budget": 0.0})
    corrupt = store.save(MLP(4, 3, [16], 0.0).state_dict(), CLASSES)
    with open_transport(settings) as producer:
        producer.produce(announcement_record(settings.topics.models, good))
    ids += produce_samples(settings, 2000, start=2000, bad=False)
    wait_for(lambda: value("streamal_model_version") == 1)
    Path(corrupt.uri.removeprefix("file://")).write_bytes(b"scrambled")
    with open_transport(settings) as producer:
        producer.produce(announcement_record(settings.topics.models, corrupt))
    wait_for(lambda: value("streamal_model_rejections_total") == 1)
    ids += produce_samples(settings, 2000, start=4000, bad=False)
    wait_for(lambda: value("streamal_samples_total", {"route": "oracle"}) == len(ids))

    requests = [
        decode(LabelRequest, v) for v in outputs(settings, len(ids))[settings.topics.label_requests]
    ]
    by_id = Counter(r.id for r in requests)
    assert set(by_id.values()) == {1} and len(by_id) == len(ids)
    versions = Counter(r.model_version for r in requests)
    assert set(versions) == {0, 1} and min(versions.values()) > 200
    assert value("streamal_model_swaps_total") == 1
    assert value("streamal_model_version") == 1  # the corrupt v2 never served


@pytest.mark.kafka
def test_unreachable_broker_is_reported_and_retried(tmp_path: Path) -> None:
    from streamal.testing.kafka_broker import free_port

    port = free_port()
    settings = Settings(
        transport={
            "kind": "kafka",
            "kafka": {"bootstrap_servers": [f"127.0.0.1:{port}"], "connect_timeout_ms": 300},
        },
        serve={"metrics_address": "127.0.0.1:0"},
        model={"store": str(tmp_path / "m")},
    )
    daemon = run_serve(write_config(settings, tmp_path / "c.yaml"))
    assert daemon.stderr is not None
    lines = []
    for line in daemon.stderr:  # until the second retry is announced (or serve exits)
        lines.append(line)
        if sum("cannot start consuming" in seen for seen in lines) == 2:
            break
    daemon.send_signal(signal.SIGTERM)
    stderr = "".join(lines) + daemon.communicate(timeout=60)[1]
    assert daemon.returncode == 0
    retries = [line for line in stderr.splitlines() if "cannot start consuming" in line]
    assert len(retries) >= 2
    assert f"cannot reach a broker at 127.0.0.1:{port}" in retries[0]
    assert "retrying in 0.5s" in retries[0] and "retrying in 1.0s" in retries[1]
    assert "Traceback" not in stderr


@pytest.mark.kafka
@pytest.mark.skipif("STREAMAL_TEST_KAFKA" in os.environ, reason="needs a broker of its own")
def test_a_broker_restart_mid_run_loses_and_repeats_nothing(tmp_path: Path) -> None:
    from streamal.testing.kafka_broker import KafkaBroker
    from tests.conftest import settings_for

    with KafkaBroker() as broker:
        cluster = settings_for("kafka", tmp_path=tmp_path, bootstrap=broker.bootstrap)
        settings = serve_settings(
            cluster, tmp_path, budget=1.0, gate={"name": "fixed", "threshold": 0}
        )
        ids = produce_samples(settings, 12_000, bad=False)
        daemon = Daemon(settings, metrics=Metrics())
        thread = threading.Thread(target=daemon.run)
        thread.start()
        try:
            routed = daemon.metrics.registry.get_sample_value
            wait_for(lambda: (routed("streamal_samples_total", {"route": "oracle"}) or 0) > 500)
            assert routed("streamal_samples_total", {"route": "oracle"}) < len(ids) / 2  # mid-run
            broker.restart()
            wait_for(
                lambda: routed("streamal_samples_total", {"route": "oracle"}) == len(ids),
                timeout_s=180,
            )
        finally:
            daemon.stop()
            thread.join(timeout=60)
        seen = routed_ids(settings, outputs(settings, len(ids)))
    assert set(seen.values()) == {1} and len(seen) == len(ids)


def test_max_samples_bounds_a_run_and_commits_what_it_routed(tmp_path: Path) -> None:
    from tests.conftest import settings_for

    settings = serve_settings(
        settings_for("local", tmp_path=tmp_path), tmp_path, budget=1.0,
        gate={"name": "fixed", "threshold": 0},
    )  # fmt: skip
    ids = produce_samples(settings, 500, bad=False)
    Daemon(settings, max_samples=200).run()
    assert len(read_all(settings, settings.topics.label_requests)) == 200
    Daemon(settings, idle_timeout_s=1.0).run()  # the rest, from the committed offsets
    seen = routed_ids(settings, outputs(settings, len(ids)))
    assert set(seen.values()) == {1} and len(seen) == len(ids)


def test_outputs_stay_under_the_record_limit_and_the_batch_goes_on(
    cluster: Settings, tmp_path: Path
) -> None:
    settings = serve_settings(cluster, tmp_path, budget=1.0, gate={"name": "fixed", "threshold": 0})
    limit = settings.transport.max_record_bytes
    head = b'{"id": "near", "features": [1, 2, 3, 4], "meta": {"pad": "'
    near = head + b"x" * (settings.serve.sample_limit(limit) - len(head) - 3) + b'"}}'
    big = {
        "invalid": b'{"id": "big", "junk": "' + b"x" * 900_000 + b'"}',
        "near": near,  # a sample at the input cap: its label request still fits
        "grows": b'{"id": "grows", "features": [1, 2, 3, 4], "meta": {"pad": [%s1]}}'
        % (b"1e5," * 150_000),  # 600 KB whose label request spells 100000.0: 1.35 MB
    }
    with open_transport(settings) as producer:
        producer.ensure_topics(topic_specs(settings.topics))
        for key, value in big.items():
            producer.produce(Record(settings.topics.samples, value, key=key.encode()))
    ids = produce_samples(settings, 50, bad=False)  # later samples, in the batches after
    metrics = Metrics()
    Daemon(settings, metrics=metrics, idle_timeout_s=2.0).run()

    topics = settings.topics
    requests = read_all(settings, topics.label_requests)
    assert Counter(decode(LabelRequest, e.value).id for e in requests) == Counter([*ids, "near"])
    letters = {
        e.key: (e, decode(DeadLetter, e.value)) for e in read_all(settings, topics.dead_letter)
    }
    assert set(letters) == {b"invalid", b"grows"}
    for envelope in [*requests, *(e for e, _ in letters.values())]:
        assert record_size(Record(envelope.topic, envelope.value, envelope.key)) <= limit
    envelope, invalid = letters[b"invalid"]
    assert invalid.truncated and invalid.original_bytes == len(big["invalid"])
    assert big["invalid"].startswith(base64.b64decode(invalid.original))
    assert (
        record_size(Record(envelope.topic, envelope.value, envelope.key)) > limit - 8
    )  # cut to fit
    assert invalid.error == "junk: unknown field; allowed: v, id, features, payload, meta, ts"
    _, grows = letters[b"grows"]
    assert not grows.truncated and base64.b64decode(grows.original) == big["grows"]
    assert re.fullmatch(
        rf"{topics.label_requests} record of \d+ bytes, over transport.max_record_bytes"
        rf" \({limit}\)",
        grows.error,
    )
    value = metrics.registry.get_sample_value
    assert value("streamal_samples_total", {"route": "dead_letter"}) == 2
    assert value("streamal_samples_total", {"route": "oracle"}) == len(ids) + 1


def refuse_dead_letters(settings: Settings) -> Callable[[], None]:
    """Make the dead-letter topic refuse every letter; the function that repairs it.

    Kafka: the topic's ``max.message.bytes`` under the letters (a broker set below
    ``transport.max_record_bytes``). The local log: the topic's partitions gone from the file.
    """
    topic = settings.topics.dead_letter
    if settings.transport.kind == "kafka":
        from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=settings.transport.kafka.bootstrap_servers)
        admin.create_topics([NewTopic(topic, 3, 1, topic_configs={"max.message.bytes": "1000"})])

        def repair() -> None:
            default = {"max.message.bytes": str(1 << 20)}
            admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=default)])
            admin.close()

        return repair
    with open_transport(settings) as transport:
        transport.ensure_topics(topic_specs(settings.topics))
    path = settings.transport.local.path
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM partitions WHERE topic=?", (topic,))

    def repair() -> None:
        with sqlite3.connect(path) as db:
            db.executemany(
                "INSERT INTO partitions VALUES (?, ?, 0)", [(topic, p) for p in range(3)]
            )

    return repair


@pytest.mark.parametrize("slow_refetch", [False, True], ids=["", "slow-refetch"])
def test_a_batch_that_keeps_failing_turns_healthz_and_the_metrics(
    cluster: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slow_refetch: bool
) -> None:
    """With ``slow_refetch`` the poll after each failed batch brings nothing, as a Kafka
    consumer's may while it fetches the rewound batch again: the run of failures goes on."""
    if slow_refetch:
        kind = transport_class(cluster)
        abort, poll, rewound = kind._abort_transaction, kind.poll, set()

        def abort_and_rewind(transport: Transport) -> None:
            abort(transport)
            rewound.add(transport)

        def poll_slowly_after_a_rewind(
            transport: Transport, max_records: int, timeout_s: float
        ) -> list[Envelope]:
            if transport in rewound:
                rewound.remove(transport)
                return []
            return poll(transport, max_records, timeout_s)

        monkeypatch.setattr(kind, "_abort_transaction", abort_and_rewind)
        monkeypatch.setattr(kind, "poll", poll_slowly_after_a_rewind)
    settings = serve_settings(cluster, tmp_path, budget=1.0, gate={"name": "fixed", "threshold": 0})
    settings = settings.model_copy(
        update={"serve": settings.serve.model_copy(update={"unhealthy_after_s": 1.0})}
    )
    repair = refuse_dead_letters(settings)
    with open_transport(settings) as producer:
        producer.ensure_topics(topic_specs(settings.topics))
        producer.produce(Record(settings.topics.samples, b"{" + b"x" * 2000, key=b"bad"))
    metrics = Metrics()
    value = metrics.registry.get_sample_value
    daemon = Daemon(settings, metrics=metrics)
    thread = threading.Thread(target=daemon.run)
    thread.start()
    try:
        wait_for(daemon.ready)
        assert daemon.healthy()
        wait_for(lambda: not daemon.healthy())
        assert value("streamal_batch_failures_total") >= 2
        assert value("streamal_batch_failing_seconds") >= 1.0
        assert value("streamal_samples_total", {"route": "dead_letter"}) == 0
        repair()
        ids = produce_samples(settings, 20, bad=False)
        wait_for(lambda: value("streamal_samples_total", {"route": "oracle"}) == len(ids))
        assert daemon.healthy() and value("streamal_batch_failing_seconds") == 0
        assert value("streamal_samples_total", {"route": "dead_letter"}) == 1
    finally:
        daemon.stop()
        thread.join(timeout=60)
