"""The bridge's tests run ``streamal bridge label-studio`` in-process: each test gets the
logging and the signal handlers it found back (the command sets both up, on pytest's captured
stderr and for a bridge that is gone after the test)."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def restored_process_state() -> Iterator[None]:
    root, kafka = logging.getLogger(), logging.getLogger("kafka")
    handlers, levels = root.handlers[:], (root.level, kafka.level)
    signals = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    root.handlers[:] = handlers
    root.setLevel(levels[0])
    kafka.setLevel(levels[1])
    for number, handler in signals.items():
        signal.signal(number, handler)
