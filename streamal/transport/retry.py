"""Retrying transport work with backoff: how serve and train ride out a broker that is down,
stalled or rebalancing."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from streamal.errors import TransportError

log = logging.getLogger(__name__)

T = TypeVar("T")


class Backoff:
    """Waits that double from ``first_s`` up to ``max_s`` while something keeps failing.

    >>> backoff = Backoff(first_s=0.5, max_s=2.0)
    >>> [backoff.next() for _ in range(4)]
    [0.5, 1.0, 2.0, 2.0]
    >>> backoff.reset()
    >>> backoff.next()
    0.5
    """

    def __init__(self, first_s: float = 0.5, max_s: float = 30.0) -> None:
        self._first_s = first_s
        self._max_s = max_s
        self._next_s = first_s

    def next(self) -> float:
        """The wait before the next try."""
        wait, self._next_s = self._next_s, min(self._next_s * 2, self._max_s)
        return wait

    def reset(self) -> None:
        """It worked: the next failure waits ``first_s`` again."""
        self._next_s = self._first_s


def connect_with_retry(connect: Callable[[], T], stopping: threading.Event) -> T | None:
    """``connect()`` until it raises no `TransportError`, logging each failure and backing
    off; None if ``stopping`` is set first."""
    backoff = Backoff()
    while not stopping.is_set():
        try:
            return connect()
        except TransportError as error:
            wait = backoff.next()
            log.error("cannot start consuming (%s); retrying in %.1fs", error, wait)
            stopping.wait(wait)
    return None
