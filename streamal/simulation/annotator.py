"""A simulated annotator: answers label requests from known ground truth, after a delay.

It consumes ``label-requests`` in its own group like a human's tool would and writes
``OracleLabel`` answers to ``labels``; an answer and the offsets of the requests it answers
commit together, so a restart neither skips nor repeats an answer. A failed commit (the
broker away, the group rebalanced) rewinds to the committed requests, which come again.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Mapping

from streamal.config import Settings
from streamal.errors import TransportError
from streamal.messages import LabelRequest, OracleLabel, decode, encode, now
from streamal.transport import Envelope, Record, Transport, next_offsets, open_transport
from streamal.transport.retry import Backoff, connect_with_retry

log = logging.getLogger(__name__)


class SimulatedAnnotator:
    """Answers every request whose id is in ``truth``; ``noise`` flips that share of answers."""

    def __init__(
        self,
        settings: Settings,
        truth: Mapping[str, str],
        *,
        delay_s: float = 0.0,
        noise: float = 0.0,
        seed: int = 0,
        group: str = "streamal-simulated-annotator",
    ) -> None:
        self._settings = settings
        self._truth = truth
        self._delay_s = delay_s
        self._noise = noise
        self._random = random.Random(seed)
        self._group = group
        self._stop = threading.Event()
        self._waiting: deque[tuple[float, list[Envelope]]] = deque()  # (due, requests)
        self.answered = 0

    def stop(self) -> None:
        """Stop after the answers that are due."""
        self._stop.set()

    def run(self) -> None:
        """Answer until `stop`, riding out transport failures with backoff."""
        transport = connect_with_retry(self.connect, self._stop)
        if transport is None:
            return
        backoff = Backoff()
        with transport:
            while not self._stop.is_set():
                try:
                    self.step(transport, time.monotonic(), 0.1)
                    backoff.reset()
                except TransportError as error:
                    wait = backoff.next()
                    log.warning("annotator: %s; retrying in %.1fs", error, wait)
                    self._stop.wait(wait)

    def connect(self) -> Transport:
        """A transactional transport in the annotator's group, subscribed to the requests."""
        transport = open_transport(self._settings, group=self._group, transactional=True)
        transport.subscribe([self._settings.topics.label_requests])
        return transport

    def step(self, transport: Transport, now: float, timeout_s: float = 0.0) -> int:
        """Read the requests one poll brings (due ``delay_s`` after ``now``) and answer every
        request due by ``now``; the requests read."""
        batch = transport.poll(500, timeout_s)
        if batch:
            self._waiting.append((now + self._delay_s, batch))
        while self._waiting and self._waiting[0][0] <= now:
            due = self._waiting[0][1]
            answers = self._answers(due)
            try:
                transport.produce_and_commit(answers, next_offsets(due))
            except TransportError:
                self._waiting.clear()  # rewound: every uncommitted request comes again
                raise
            self._waiting.popleft()
            self.answered += len(answers)
        return len(batch)

    def _answers(self, batch: list[Envelope]) -> list[Record]:
        classes = self._settings.model.classes
        answers = []
        for envelope in batch:
            request = decode(LabelRequest, envelope.value)
            label = self._truth.get(request.id)
            if label is None:
                continue
            if self._noise and self._random.random() < self._noise:
                label = self._random.choice([c for c in classes if c != label])
            answer = OracleLabel(
                id=request.id, label=label, annotator="simulated", labeled_at=now()
            )
            answers.append(Record(self._settings.topics.labels, encode(answer), key=envelope.key))
        return answers
