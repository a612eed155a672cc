"""What a serving replica learns from the answers to its own audits.

The trainer chooses the auto-label threshold from every label; a replica also follows the
``labels`` topic itself, for two things only it can tell at once: whether the audits it asked
since its inputs shifted support the precision target again, and whether audit answers are
overdue (its evidence is no longer current). `AuditLedger` remembers the audits this replica
asked (what it predicted, how confident it was, when, and during which pause) until their
answer comes; `LabelFollower` reads the answers, in a thread of its own in ``serve``.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

from streamal.config import Settings
from streamal.errors import MessageError
from streamal.messages import OracleLabel, decode
from streamal.stream.follow import TopicFollower
from streamal.transport import Transport

log = logging.getLogger(__name__)

FORGET_AFTER = 3  # an audit unanswered this many times the allowed delay is taken as lost
MAX_OUTSTANDING = 100_000


@dataclass(frozen=True)
class Audit:
    """One audit asked: the label predicted, the confidence, when (on the replica's clock), the
    auto-label gate's pause count then, and whether it was auto-labeling then."""

    predicted: str
    confidence: float
    asked_at: float
    epoch: int
    while_auto_labeling: bool = True


@dataclass(frozen=True)
class Outcome:
    """An audit answered: whether the prediction was right."""

    audit: Audit
    correct: bool


class AuditLedger:
    """The audits asked and not answered yet, oldest first.

    >>> ledger = AuditLedger()
    >>> ledger.record("s1", Audit("cat", 0.99, asked_at=0.0, epoch=0))
    >>> ledger.overdue(now=5.0, max_delay_s=10.0), ledger.overdue(now=15.0, max_delay_s=10.0)
    (0, 1)
    >>> ledger.answer("s1", "dog").correct, ledger.answer("s1", "dog")
    (False, None)
    """

    def __init__(self) -> None:
        self._open: OrderedDict[str, Audit] = OrderedDict()
        self.lost = 0

    def __len__(self) -> int:
        return len(self._open)

    def record(self, sample_id: str, audit: Audit) -> None:
        """Remember an audit asked (the oldest is forgotten past `MAX_OUTSTANDING`)."""
        self._open[sample_id] = audit
        self._open.move_to_end(sample_id)
        if len(self._open) > MAX_OUTSTANDING:
            self._open.popitem(last=False)
            self.lost += 1

    def answer(self, sample_id: str, label: str) -> Outcome | None:
        """The outcome of an audit of this replica's, answered ``label`` (None: not one)."""
        audit = self._open.pop(sample_id, None)
        return None if audit is None else Outcome(audit, audit.predicted == label)

    def overdue(self, now: float, max_delay_s: float) -> int:
        """How many audits are unanswered after ``max_delay_s``; those unanswered after
        `FORGET_AFTER` times that are forgotten (counted in ``lost``)."""
        while self._open:
            oldest = next(iter(self._open.values()))
            if now - oldest.asked_at <= FORGET_AFTER * max_delay_s:
                break
            self._open.popitem(last=False)
            self.lost += 1
        late = 0
        for audit in self._open.values():
            if now - audit.asked_at <= max_delay_s:
                break
            late += 1
        return late


class LabelFollower(TopicFollower):
    """Reads the answers on ``labels`` in a thread of its own (`start`), or in the caller's
    (`read`); `take` hands over those read since the last call."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, settings.topics.labels, "label-follower")
        self._answers: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def take(self) -> list[tuple[str, str]]:
        """The (sample id, label) answers read since the last call."""
        with self._lock:
            answers, self._answers = self._answers, []
            return answers

    def read(self, transport: Transport, timeout_s: float) -> int:
        """Keep the answers one poll of ``transport`` (subscribed to ``labels``) brings; the
        records read. A malformed one is skipped here: the trainer dead-letters it."""
        batch = transport.poll(1000, timeout_s)
        answers = []
        for envelope in batch:
            try:
                label = decode(OracleLabel, envelope.value)
            except MessageError:
                continue
            answers.append((label.id, label.label))
        with self._lock:
            self._answers += answers
        return len(batch)
