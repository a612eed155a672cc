"""Helpers shared by tests: fresh topic names, a config file, reading a topic back, waiting."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import yaml

from streamal.config import Settings, TopicsConfig
from streamal.transport import Envelope, Transport, open_transport
from streamal.transport.kafka import KafkaTransport
from streamal.transport.local import LocalTransport


def transport_class(settings: Settings) -> type[Transport]:
    """The class of the transports ``settings`` open: where a test injects a fault."""
    return KafkaTransport if settings.transport.kind == "kafka" else LocalTransport


def with_fresh_topics(settings: Settings) -> Settings:
    """``settings`` with topic names of their own, so tests on a shared broker never meet."""
    prefix = f"x{uuid.uuid4().hex[:8]}"
    names = {field: f"{prefix}-{field}" for field in TopicsConfig.model_fields}
    return settings.model_copy(update={"topics": TopicsConfig(**names)})


def write_config(settings: Settings, path: Path) -> str:
    """``settings`` as a YAML config file at ``path``; its path as a string."""
    path.write_text(yaml.safe_dump(settings.model_dump(mode="json")), encoding="utf-8")
    return str(path)


def read_back(settings: Settings, topic: str, count: int, timeout_s: float = 20) -> list[Envelope]:
    """Every record of ``topic`` (a group-less reader from the beginning), once ``count`` came.

    After ``count`` records it polls briefly once more, so extra records would show too.
    """
    got: list[Envelope] = []
    deadline = time.monotonic() + timeout_s
    with open_transport(settings) as transport:
        transport.subscribe([topic])
        while len(got) < count and time.monotonic() < deadline:
            got += transport.poll(500, 0.5)
        got += transport.poll(500, 0.2)
    return got


def read_all(settings: Settings, topic: str, quiet_s: float = 1.0) -> list[Envelope]:
    """Every record of ``topic`` so far: reads until a poll of ``quiet_s`` brings nothing."""
    with open_transport(settings) as transport:
        return read_quiet(transport, topic, quiet_s)


def read_quiet(transport: Transport, topic: str, quiet_s: float) -> list[Envelope]:
    """Every record of ``topic`` that ``transport`` (a reader without a group) sees, until a
    poll of ``quiet_s`` brings nothing."""
    transport.subscribe([topic])
    got: list[Envelope] = []
    while batch := transport.poll(5000, quiet_s):
        got += batch
    return got


def drain(transport: Transport, count: int, timeout_s: float = 30.0) -> list[Envelope]:
    """Poll until ``count`` records came; fail after ``timeout_s`` or on more than ``count``."""
    got: list[Envelope] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        got.extend(transport.poll(100, 0.5))
    assert len(got) == count, f"expected {count} records, got {len(got)}"
    return got


def wait_for(
    condition: Callable[[], object], timeout_s: float = 60, interval_s: float = 0.1
) -> None:
    """Return once ``condition()`` is true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s}s"
        time.sleep(interval_s)
