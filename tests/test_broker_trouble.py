"""Serve and train ride out broker trouble: a stall past the session timeout, no broker at
start, a broker that refuses the client's authentication."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streamal.config import KafkaTransportConfig, Settings
from streamal.errors import TransportError
from streamal.simulation.annotator import SimulatedAnnotator
from streamal.testing.kafka_broker import KafkaBroker
from streamal.training.labels import LabelStore
from streamal.transport import (
    Envelope,
    Record,
    TopicPartition,
    TopicSpec,
    Transport,
    next_offsets,
    open_transport,
)
from streamal.transport.kafka import KafkaTransport
from tests.conftest import settings_for, unique
from tests.helpers import drain, read_all, write_config
from tests.stream.test_daemon import CLASSES, outputs, produce_samples, routed_ids, serve_settings
from tests.training.test_trainer import produce_labeled, trainer_settings

ROOT = Path(__file__).parent.parent
SESSION_TIMEOUT_MS = 6000
STALL_S = 2.5 * SESSION_TIMEOUT_MS / 1000  # the group forgets both processes meanwhile

pytestmark = pytest.mark.kafka


@pytest.fixture
def pausable_broker(kafka_broker: KafkaBroker | None) -> Iterator[KafkaBroker]:
    """The session's broker if this session started it, else one of this test's own; running
    again (resumed) after the test, whatever happened."""
    if kafka_broker is not None:
        yield kafka_broker
        kafka_broker.resume()
        return
    with KafkaBroker() as broker:
        yield broker


def start(command: str, config: str, log: Path) -> subprocess.Popen[bytes]:
    """``streamal <command>`` with its log in ``log`` (read while it runs)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streamal", command, "-c", config],
            stdout=subprocess.DEVNULL, stderr=out, cwd=ROOT,
        )  # fmt: skip


def stop(process: subprocess.Popen[bytes], log: Path) -> tuple[int, str]:
    """SIGTERM ``process`` (if still running); its exit status and log once it exited."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    return process.returncode, log.read_text(errors="replace")


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


def labeled(settings: Settings) -> int:
    """Labels the trainer has stored so far."""
    if not settings.train.label_store.exists():
        return 0
    store = LabelStore(settings.train.label_store, settings.model.classes)
    try:
        return store.counts()["labeled"]
    finally:
        store.close()


class Annotator:
    """The simulated annotator, answered from the test's thread; after a transport failure
    (its transaction aborted: nothing answered twice) it connects again."""

    def __init__(self, settings: Settings, truth: dict[str, str]) -> None:
        self._annotator = SimulatedAnnotator(settings, truth, group=unique("annotate"))
        self._transport: Transport | None = None

    def answer(self) -> None:
        try:
            if self._transport is None:
                self._transport = self._annotator.connect()
            self._annotator.step(self._transport, time.monotonic(), 0.2)
        except TransportError:
            self.close()

    def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            with contextlib.suppress(TransportError):  # the broker aborts what it left open
                transport.close()


@pytest.mark.timeout(900)
def test_serve_and_train_ride_out_a_broker_stall_losing_and_repeating_nothing(
    pausable_broker: KafkaBroker, tmp_path: Path
) -> None:
    cluster = settings_for("kafka", tmp_path=tmp_path, bootstrap=pausable_broker.bootstrap)
    served = serve_settings(cluster, tmp_path, budget=1.0, gate={"name": "fixed", "threshold": 0})
    data = served.model_dump(mode="json")
    data["transport"]["kafka"]["session_timeout_ms"] = SESSION_TIMEOUT_MS
    data["train"] = trainer_settings(served, tmp_path).train.model_dump(mode="json") | {
        "min_new_labels": 300
    }
    data["model"]["fit"] = {"max_epochs": 5}
    settings = Settings(**data)
    config = write_config(settings, tmp_path / "c.yaml")
    ids = produce_samples(settings, 1500, bad=False)
    annotator = Annotator(settings, {f"s{i}": CLASSES[i % 3] for i in range(2500)})
    serve = start("serve", config, tmp_path / "serve.log")
    train = start("train", config, tmp_path / "train.log")

    def answering(condition: Callable[[], bool]) -> Callable[[], bool]:
        def check() -> bool:
            assert serve.poll() is None and train.poll() is None, "a process stopped"
            annotator.answer()
            return condition()

        return check

    def routed() -> int:
        with open_transport(settings, group=settings.serve.group) as probe:
            partitions = probe.partitions_for(settings.topics.samples)
            return sum(offset or 0 for offset in probe.committed(partitions).values())

    try:
        wait_until(answering(lambda: labeled(settings) >= 300), 240, "300 labels are stored")
        pausable_broker.pause()  # both are in the midst of their work
        try:
            time.sleep(STALL_S)  # the stall itself: longer than the session timeout
        finally:
            pausable_broker.resume()
        ids += produce_samples(settings, 1000, start=1500, bad=False)
        wait_until(answering(lambda: routed() == len(ids)), 360, "every sample is routed")
        requests = len(outputs(settings, 0)[settings.topics.label_requests])
        wait_until(answering(lambda: labeled(settings) >= requests), 360, "the labels are stored")
    finally:
        annotator.close()
        ended = [stop(serve, tmp_path / "serve.log"), stop(train, tmp_path / "train.log")]
    for code, log in ended:
        assert code == 0 and "Traceback" not in log, log[-3000:]
    assert f"stopped after {len(ids)} samples" in ended[0][1]  # each committed once

    seen = routed_ids(settings, outputs(settings, requests))  # and none routed twice
    assert set(seen.values()) == {1} and set(seen) <= set(ids)
    store = LabelStore(settings.train.label_store, settings.model.classes)
    assert store.counts() == {
        "requests": requests, "labeled": requests, "votes": requests, "pending": 0,
    }  # fmt: skip
    store.close()


@pytest.mark.skipif("STREAMAL_TEST_KAFKA" in os.environ, reason="needs a broker of its own")
def test_a_trainer_started_without_a_broker_retries_until_one_comes(tmp_path: Path) -> None:
    broker = KafkaBroker()  # its address is chosen; it starts later
    cluster = settings_for("kafka", tmp_path=tmp_path, bootstrap=broker.bootstrap)
    settings = trainer_settings(cluster, tmp_path)
    data = settings.model_dump(mode="json")
    data["transport"]["kafka"]["connect_timeout_ms"] = 300
    settings = Settings(**data)
    config = write_config(settings, tmp_path / "c.yaml")
    log = tmp_path / "train.log"
    train = start("train", config, log)

    def retries() -> list[str]:
        return [line for line in log.read_text().splitlines() if "cannot start consuming" in line]

    try:
        wait_until(lambda: len(retries()) >= 2, 120, "the trainer retried twice")
        assert f"cannot reach a broker at {broker.bootstrap}" in retries()[0]
        assert "retrying in 0.5s" in retries()[0] and "retrying in 1.0s" in retries()[1]
        with broker:
            produce_labeled(settings, 300)
            wait_until(lambda: labeled(settings) == 300, 180, "the labels are stored")
            assert train.poll() is None
            code, text = stop(train, log)
    finally:
        stop(train, log)  # if the test failed before
    assert code == 0 and "Traceback" not in text, text[-3000:]


def test_a_refused_sasl_handshake_is_reported_as_an_authentication_failure(
    kafka_bootstrap: str,
) -> None:
    config = KafkaTransportConfig(
        bootstrap_servers=[kafka_bootstrap], security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256", sasl_username="ops", sasl_password="hunter2",
        connect_timeout_ms=2000,
    )  # fmt: skip  # the broker's listener is plaintext: it refuses the SASL handshake
    transport = KafkaTransport(config, group=unique("g"))
    with pytest.raises(TransportError) as refused:
        transport.subscribe(["t"])
    message = str(refused.value)
    assert message.startswith(
        f"kafka: SASL SCRAM-SHA-256 authentication failed at {kafka_bootstrap}: "
    ), message
    assert "hunter2" not in message and "\n" not in message


def test_a_transaction_the_frozen_broker_never_answers_fails_and_its_records_come_again(
    pausable_broker: KafkaBroker,
) -> None:
    """kafka-python waits for ever for a transaction's commit, abort or committed offsets; the
    transport gives up after ``request_timeout_ms``, and its next poll rewinds first."""
    prefix = unique("frozen")
    source, sink = f"{prefix}-in", f"{prefix}-out"
    kafka = {
        "bootstrap_servers": [pausable_broker.bootstrap],
        "request_timeout_ms": 1000,
        "connect_timeout_ms": 1000,
    }
    settings = Settings(transport={"kind": "kafka", "kafka": kafka})
    with open_transport(settings) as producer:
        producer.ensure_topics({source: TopicSpec(partitions=1), sink: TopicSpec(partitions=1)})
        for i in range(2):
            producer.produce(Record(source, f"v{i}".encode(), key=b"k"))
    failed: list[BaseException] = []

    def commit(batch: list[Envelope]) -> None:
        try:
            transport.produce_and_commit([Record(sink, b"lost")], next_offsets(batch))
        except TransportError as error:
            failed.append(error)

    with open_transport(settings, group=f"{prefix}-g", transactional=True) as transport:
        transport.subscribe([source])
        first, second = drain(transport, 2)
        transport.produce_and_commit([Record(sink, b"kept")], next_offsets([first]))
        pausable_broker.pause()
        try:
            attempt = threading.Thread(target=commit, args=([second],))
            attempt.start()
            attempt.join(timeout=120)  # without the bound: until the broker comes back
            assert not attempt.is_alive() and len(failed) == 1, "the commit waited for ever"
        finally:
            pausable_broker.resume()
        again = drain(transport, 1, timeout_s=60)
        assert [e.value for e in again] == [b"v1"]  # from the committed offset, once
        transport.produce_and_commit([Record(sink, b"kept")], next_offsets(again))
        assert transport.committed([TopicPartition(source, 0)]) == {TopicPartition(source, 0): 2}
    assert [e.value for e in read_all(settings, sink)] == [b"kept", b"kept"]
