"""A consumer-group member run in its own process by the transport contract tests.

It copies each polled record's position to ``out_topic`` in one atomic produce + commit, and
writes what it polled (and which batches were fenced) to a JSON file for the test to check;
``<report>.started`` appears once it polled a first record.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from streamal.config import Settings
from streamal.errors import FencedError
from streamal.transport import Record, next_offsets, open_transport


def run(
    settings_json: str, group: str, topics: tuple[str, str], report: str, idle_s: float
) -> None:
    """Copy ``topics[0]`` to ``topics[1]`` until idle for ``idle_s`` after a first record."""
    settings = Settings.model_validate_json(settings_json)
    in_topic, out_topic = topics
    polled: list[list[int]] = []
    fenced: list[list[int]] = []
    with open_transport(settings, group=group, transactional=True) as transport:
        transport.subscribe([in_topic])
        last_record = time.monotonic()
        started = False
        while time.monotonic() - last_record < (idle_s if started else 60):
            batch = transport.poll(50, 0.2)
            if not batch:
                continue
            if not started:
                Path(f"{report}.started").touch()
            started, last_record = True, time.monotonic()
            positions = [[e.partition, e.offset] for e in batch]
            polled.extend(positions)
            records = [
                Record(out_topic, json.dumps(p).encode(), key=e.key)
                for p, e in zip(positions, batch, strict=True)
            ]
            try:
                transport.produce_and_commit(records, next_offsets(batch))
            except FencedError:
                fenced.extend(positions)
    Path(report).write_text(json.dumps({"polled": polled, "fenced": fenced}))
