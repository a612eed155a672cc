"""A thread that follows one topic (every partition, no group) and hands each poll to `read`."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod

from streamal.config import Settings
from streamal.errors import StreamalError
from streamal.transport import Transport, open_transport

log = logging.getLogger(__name__)


class TopicFollower(ABC):
    """Follows ``topic`` in a thread of its own (`start` .. `stop`), reconnecting after a
    failure; `read` also serves a caller that polls in its own thread (the simulation)."""

    def __init__(self, settings: Settings, topic: str, name: str) -> None:
        self._settings = settings
        self._topic = topic
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Follow the topic until `stop`."""
        self._thread.start()

    def stop(self) -> None:
        """Stop following and wait for the thread."""
        stop_together([self])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with open_transport(self._settings) as transport:
                    transport.subscribe([self._topic])
                    while not self._stop.is_set():
                        self.read(transport, 0.5)
            except StreamalError as error:
                log.warning("following %s failed, retrying: %s", self._topic, error)
                self._stop.wait(2.0)

    @abstractmethod
    def read(self, transport: Transport, timeout_s: float) -> int:
        """Consider what one poll of ``transport`` (subscribed to the topic) brings; the
        records read."""


def stop_together(followers: list[TopicFollower]) -> None:
    """Stop ``followers`` and wait for them: each waits out its current poll at once, not in
    turn."""
    for follower in followers:
        follower._stop.set()
    for follower in followers:
        if follower._thread.is_alive():
            follower._thread.join(timeout=30)
