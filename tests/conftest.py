"""Fixtures shared by the whole suite: a real Kafka broker and transport factories."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streamal.config import Settings
from streamal.testing.kafka_broker import BrokerError, KafkaBroker
from streamal.testing.label_studio import LabelStudio, LabelStudioError
from streamal.testing.label_studio import fetch as fetch_label_studio
from streamal.transport import TopicSpec, Transport, open_transport


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker | None]:
    """The broker started for this session; None if ``$STREAMAL_TEST_KAFKA`` names one.

    In CI (``CI=true``) a broker that cannot start fails the tests that need it; elsewhere they
    are skipped with the reason.
    """
    if os.environ.get("STREAMAL_TEST_KAFKA"):
        yield None
        return
    try:
        broker = KafkaBroker().start()
    except BrokerError as error:
        if os.environ.get("CI"):
            pytest.fail(f"the Kafka broker could not start in CI: {error}")
        pytest.skip(f"no Kafka broker: {error}")
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def label_studio() -> Iterator[LabelStudio]:
    """A real Label Studio server started for this session (installed on first use).

    A server that cannot start fails the tests that need it, never skips them.
    """
    try:
        fetch_label_studio()
        server = LabelStudio().start()
    except LabelStudioError as error:
        pytest.fail(f"Label Studio could not start: {error}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: KafkaBroker | None) -> str:
    """A real broker's address: ``$STREAMAL_TEST_KAFKA`` if set, else the session's broker."""
    return kafka_broker.bootstrap if kafka_broker else os.environ["STREAMAL_TEST_KAFKA"]


def settings_for(kind: str, *, tmp_path: Path, bootstrap: str | None = None) -> Settings:
    """Settings of a test cluster of ``kind`` (a log file in ``tmp_path``, or the broker)."""
    if kind == "local":
        local = {"path": str(tmp_path / "log.sqlite"), "partitions": 3, "synchronous": "normal"}
        return Settings(transport={"kind": "local", "local": local})
    kafka = {"bootstrap_servers": [bootstrap], "partitions": 3, "linger_ms": 0}
    return Settings(transport={"kind": "kafka", "kafka": kafka})


@pytest.fixture(params=["local", pytest.param("kafka", marks=pytest.mark.kafka)])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings pointing at a fresh cluster of each transport kind."""
    bootstrap = request.getfixturevalue("kafka_bootstrap") if request.param == "kafka" else None
    return settings_for(request.param, tmp_path=tmp_path, bootstrap=bootstrap)


TransportFactory = Callable[..., Transport]


@pytest.fixture
def transport_factory(cluster: Settings) -> Iterator[TransportFactory]:
    """Opens transports on ``cluster``; every one still open is closed after the test."""
    opened: list[Transport] = []

    def make(group: str | None = None, transactional: bool = False) -> Transport:
        transport = open_transport(cluster, group=group, transactional=transactional)
        opened.append(transport)
        return transport

    yield make
    for transport in opened:
        with contextlib.suppress(Exception):  # a test may have closed or broken it on purpose
            transport.close()


@pytest.fixture
def topic_factory(transport_factory: TransportFactory) -> Callable[..., str]:
    """Creates a fresh topic (3 partitions unless told) and returns its name."""
    admin = transport_factory()

    def make(partitions: int = 3) -> str:
        name = f"t-{uuid.uuid4().hex[:10]}"
        admin.ensure_topics({name: TopicSpec(partitions=partitions)})
        return name

    return make


def unique(prefix: str) -> str:
    """A fresh group or transactional id."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """In CI a skipped test is a failure, except the GPU tests on a machine without CUDA."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and "gpu" not in item.keywords:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where it must run: {report.longrepr}"
