"""Helpers shared by tests: fresh topic names, a config file, reading a topic back."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import yaml

from streamal.config import Settings, TopicsConfig
from streamal.transport import Envelope, open_transport


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
    got: list[Envelope] = []
    with open_transport(settings) as transport:
        transport.subscribe([topic])
        while batch := transport.poll(5000, quiet_s):
            got += batch
    return got
