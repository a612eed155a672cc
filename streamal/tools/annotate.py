"""``streamal annotate``: a terminal labeling tool for a human annotator, on either transport.

It consumes ``label-requests`` in a consumer group of its own (``streamal-annotators`` unless
told otherwise; every annotator of a team joins the same group, so each request goes to one of
them), shows one request at a time (the sample's features or payload and meta, the model's top
guesses, why it was asked) and writes the answer as an ``OracleLabel`` on ``labels``.

Answers are never lost: an answer and the offset of its request commit in one transaction. The
latest answer is held back until the next one (or quitting) commits it, so ``u`` (undo) takes it
back without retracting anything already written. Quitting (``q``, end of input, Ctrl-C,
SIGTERM, SIGHUP) commits it; after a hard kill it is simply asked again at the next start.
Skipped requests are committed past like answers: they are not asked again in this group.
While the annotator thinks, the tool keeps polling so that its group membership stays alive.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import math
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import FrameType
from typing import Final, Literal, TextIO

from pydantic import JsonValue

from streamal.cli.common import EXIT_OK, add_config_option, positive_float
from streamal.config import Settings, load_settings
from streamal.deadletters import dead_letter
from streamal.errors import FencedError, MessageError, TransportError
from streamal.messages import LabelRequest, OracleLabel, decode, encode, now
from streamal.tools import check_topic_name
from streamal.transport import (
    Envelope,
    Record,
    TopicPartition,
    Transport,
    open_transport,
    topic_specs,
)
from streamal.validation import printable

__all__ = ["DEFAULT_GROUP", "AnnotateReport", "add_parser", "annotate", "parse_answer", "render"]

DEFAULT_GROUP = "streamal-annotators"
POLL_S = 0.2  # one poll while waiting for requests
KEEPALIVE_S = 1.0  # poll this often while the annotator thinks (keeps the group membership)
MAX_BUFFERED = 10_000  # requests fetched ahead at most
FEATURES_SHOWN = 12
PAYLOAD_LINES = 30
VALUE_CHARS = 2_000

REASONS = {
    "uncertain": "the model is unsure",
    "audit": "spot check of a confident prediction (keeps auto-labels honest)",
    "explore": "picked at random (exploration)",
}
HELP = """\
  type a label's name, or its number when the labels are numbered, then Enter
  s  skip this request (it is not asked again in this group)
  u  undo the last answer or skip and show that request again
  q  quit (every answer is saved; Ctrl-C and end of input quit too)
  ?  this help"""

Command = Literal["skip", "undo", "quit", "help"]
COMMANDS: Final[dict[str, Command]] = {
    "s": "skip", "skip": "skip", "u": "undo", "undo": "undo",
    "q": "quit", "quit": "quit", "exit": "quit", "?": "help", "h": "help", "help": "help",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class AnnotateReport:
    """What a session saved: labels written and requests skipped (both committed)."""

    annotator: str | None
    answered: int = 0
    skipped: int = 0

    def summary(self) -> str:
        """The line printed at the end of a session.

        >>> AnnotateReport("ada", answered=3, skipped=1).summary()
        'saved 3 labels as ada; skipped 1'
        """
        who = f" as {self.annotator}" if self.annotator else ""
        return (
            f"saved {self.answered} label{'s' * (self.answered != 1)}{who}; skipped {self.skipped}"
        )


@dataclass(frozen=True, slots=True)
class Label:
    """An answer: the class chosen."""

    name: str


def numbered(classes: Sequence[str]) -> bool:
    """Whether labels can be typed by number: only when no class name is itself a number.

    >>> numbered(["cat", "dog"]), numbered(["0", "1"]), numbered(["cat", "7"])
    (True, False, False)
    """
    return not any(name.strip().isdigit() for name in classes)


def parse_answer(text: str, classes: Sequence[str]) -> Label | Command:
    """Read one typed line: a class name, a class number (1..C), or a command.

    A class name typed exactly wins over everything, then the commands (``s``, ``u``, ``q``,
    ``?`` or their words), then numbers (unless a class name is a number, see ``numbered``),
    then a class name in another case when only one matches.

    Raises
    ------
    ValueError
        The text is none of these; the message says what is allowed.

    >>> classes = ["cat", "dog", "bird"]
    >>> parse_answer("dog", classes), parse_answer(" 3 ", classes), parse_answer("CAT", classes)
    (Label(name='dog'), Label(name='bird'), Label(name='cat'))
    >>> parse_answer("s", classes), parse_answer("undo", classes)
    ('skip', 'undo')
    >>> parse_answer("4", classes)
    Traceback (most recent call last):
    ...
    ValueError: '4' is not a label: type 1-3 or one of cat, dog, bird (? for help)
    >>> parse_answer("1", ["0", "1"])
    Label(name='1')
    """
    typed = text.strip()
    if typed in classes:
        return Label(typed)
    if typed.lower() in COMMANDS:
        return COMMANDS[typed.lower()]
    if numbered(classes) and typed.isdigit() and 1 <= int(typed) <= len(classes):
        return Label(classes[int(typed) - 1])
    folded = [name for name in classes if name.casefold() == typed.casefold()]
    if len(folded) == 1:
        return Label(folded[0])
    numbers = f"1-{len(classes)} or " if numbered(classes) else ""
    shown = typed if len(typed) <= 40 else typed[:40] + "..."
    raise ValueError(
        f"{shown!r} is not a label: type {numbers}one of {', '.join(classes)} (? for help)"
    )


def render(
    request: LabelRequest, classes: Sequence[str], *, at: datetime | None = None
) -> list[str]:
    """The lines that show ``request`` to the annotator; characters that are not printable
    (line breaks, terminal escape codes) are shown escaped, so a record cannot forge a line.

    >>> request = LabelRequest(
    ...     id="s17", features=[0.5, -1.25, 3.0], meta={"source": "web"}, utility=0.42,
    ...     prediction=[{"label": "cat", "p": 0.62}, {"label": "dog", "p": 0.3}],
    ...     reason="uncertain", model_version=3, requested_at=0)
    >>> print("\\n".join(render(request, ["cat", "dog", "bird"], at=request.requested_at)))
    id        s17
    why       uncertain: the model is unsure (utility 0.42), model v3, asked 0 s ago
    features  [0.5, -1.25, 3] (3 values)
    meta      source: "web"
    model     cat 62% · dog 30%
    labels    [1] cat  [2] dog  [3] bird
    """
    at = at or now()
    why = f"{request.reason}: {REASONS.get(request.reason, request.reason)}"
    asked = _ago((at - request.requested_at).total_seconds())
    lines = [
        f"id        {request.id}",
        f"why       {why} (utility {request.utility:.3g}), model v{request.model_version}, "
        f"asked {asked} ago",
    ]
    if request.features is not None:
        shown = ", ".join(f"{x:.4g}" for x in request.features[:FEATURES_SHOWN])
        more = ", ..." if len(request.features) > FEATURES_SHOWN else ""
        lines.append(f"features  [{shown}{more}] ({len(request.features)} values)")
    if request.payload is not None:
        text = _payload_lines(request.payload)
        lines.append(f"payload   {text[0]}")
        lines += [f"          {line}" for line in text[1:]]
    for n, (key, value) in enumerate((request.meta or {}).items()):
        shown = _cut(json.dumps(value, ensure_ascii=False), 200)
        lines.append(f"{'meta' if n == 0 else '':<10}{key}: {shown}")
    guesses = " · ".join(f"{g.label} {g.p:.0%}" for g in request.prediction)
    lines.append(f"model     {guesses or '(no guesses)'}")
    if numbered(classes):
        lines.append("labels    " + "  ".join(f"[{i}] {c}" for i, c in enumerate(classes, 1)))
    else:
        lines.append("labels    " + ", ".join(classes))
    return [printable(line) for line in lines]


def _payload_lines(payload: JsonValue) -> list[str]:
    text = (
        payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, indent=2)
    )
    lines = _cut(text, VALUE_CHARS).splitlines() or [""]
    if len(lines) > PAYLOAD_LINES:
        lines = [*lines[:PAYLOAD_LINES], f"... ({len(lines) - PAYLOAD_LINES} more lines)"]
    return lines


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _ago(seconds: float) -> str:
    """A short age.

    >>> _ago(12.3), _ago(300), _ago(7200), _ago(3 * 86400), _ago(-5)
    ('12 s', '5 min', '2 h', '3 d', '0 s')
    """
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{math.floor(seconds / size)} {unit}"
    return f"{math.floor(seconds)} s"


class _Timeout:
    """No line within the wait."""


TIMEOUT = _Timeout()


class _Lines:
    """Reads lines of ``source`` on demand in a daemon thread, so the caller can go on polling.

    At most one read is outstanding; ``get`` returns the line, ``None`` at end of input, or
    ``TIMEOUT``. A read still blocked when the session ends dies with the process.
    """

    def __init__(self, source: TextIO) -> None:
        self._source = source
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reading = False

    def get(self, timeout_s: float) -> str | _Timeout | None:
        if not self._reading:
            self._reading = True
            threading.Thread(target=self._read, name="annotate-input", daemon=True).start()
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            return TIMEOUT
        self._reading = False
        return line

    def _read(self) -> None:
        try:
            line = self._source.readline()
        except (OSError, ValueError):  # closed
            line = ""
        self._lines.put(line or None)


@dataclass(frozen=True, slots=True)
class _Answer:
    """A request answered (``label``) or skipped (``label=None``), not committed yet."""

    envelope: Envelope
    request: LabelRequest
    label: str | None


class _Quit(Exception):
    """The annotator asked to quit."""


class _Session:
    def __init__(
        self,
        settings: Settings,
        transport: Transport,
        lines: _Lines,
        out: TextIO,
        annotator: str | None,
        idle_timeout_s: float | None,
    ) -> None:
        self.settings = settings
        self.classes = list(settings.model.classes)
        self.transport = transport
        self.lines = lines
        self.out = out
        self.annotator = annotator
        self.idle_timeout_s = idle_timeout_s
        self.queue: deque[Envelope] = deque()
        self.next_offset: dict[TopicPartition, int] = {}  # per partition: fetched up to here
        self.owned: set[TopicPartition] = set()
        self.held: _Answer | None = None
        self.answered = self.skipped = 0
        self.trouble = False  # the last poll failed

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        """Ask until quit, end of input or idle; the held answer is saved on every way out."""
        try:
            while (envelope := self._next_request()) is not None:
                try:
                    request = decode(LabelRequest, envelope.value)
                except MessageError as error:
                    self._unreadable(envelope, str(error))
                    continue
                self._ask(envelope, request)
        except (_Quit, KeyboardInterrupt):
            pass
        except BaseException:
            if self.held is not None:  # best effort: the transport may be what failed
                try:
                    self._save(self.held)
                except Exception:
                    self.say("could not save the last answer; its request will be asked again")
            raise
        if self.held is not None:
            self._save(self.held)
            self.held = None

    def _next_request(self) -> Envelope | None:
        """The next request to show; ``None`` after ``idle_timeout_s`` without one."""
        started = time.monotonic()
        waiting = False
        while not self.queue:
            self._fetch(POLL_S)
            if self.queue:
                break
            if not waiting:
                self.say("waiting for label requests... (q or Ctrl-C quits)")
                waiting = True
            line = self.lines.get(POLL_S)
            if line is None:
                raise _Quit
            if isinstance(line, str):
                self._while_waiting(line)
            elif (
                self.idle_timeout_s is not None
                and time.monotonic() - started >= self.idle_timeout_s
            ):
                self.say(f"no label request for {self.idle_timeout_s:g} s, stopping")
                return None
        return self.queue.popleft()

    def _while_waiting(self, line: str) -> None:
        try:
            command = parse_answer(line, self.classes) if line.strip() else None
        except ValueError:
            command = None
        if command == "quit":
            raise _Quit
        if command == "undo":
            self._undo(None)
        elif command == "help":
            self.say(HELP)
        elif line.strip():
            self.say("nothing to label yet; u undoes the last answer, q quits")

    def _ask(self, envelope: Envelope, request: LabelRequest) -> None:
        self.say("")
        self.say(f"--- label request ({len(self.queue)} more fetched) " + "-" * 40)
        for shown in render(request, self.classes):
            self.say(shown)
        while True:
            self.out.write("label> ")
            self.out.flush()
            line = self._read_line()
            if line is None:
                self.say("")
                raise _Quit
            if not line.strip():
                continue
            try:
                answer = parse_answer(line, self.classes)
            except ValueError as error:
                self.say(str(error))
                continue
            if isinstance(answer, Label):
                self._answer(_Answer(envelope, request, answer.name))
                return
            if answer == "skip":
                self._answer(_Answer(envelope, request, None))
                return
            if answer == "undo":
                if self._undo(envelope):
                    return
            elif answer == "quit":
                raise _Quit  # this request stays unanswered: it is asked again next time
            else:
                self.say(HELP)

    def _read_line(self) -> str | None:
        """The next typed line (``None`` at end of input), polling while the annotator thinks."""
        while True:
            line = self.lines.get(KEEPALIVE_S)
            if not isinstance(line, _Timeout):
                return line
            if len(self.queue) < MAX_BUFFERED:
                self._fetch(0.0)  # keeps the group membership alive

    def _answer(self, answer: _Answer) -> None:
        """Hold ``answer`` back (so it can be undone) and save the one held before."""
        if self.held is not None:
            self._save(self.held)
        self.held = answer
        self.say(f"-> {'skipped' if answer.label is None else answer.label}")

    def _undo(self, current: Envelope | None) -> bool:
        """Take the held answer back and show its request again (``current`` after it)."""
        held = self.held
        if held is None:
            self.say("nothing to undo (earlier answers are already saved)")
            return False
        self.held = None
        if current is not None:
            self.queue.appendleft(current)
        self.queue.appendleft(held.envelope)
        what = "skip" if held.label is None else f"label {held.label!r}"
        self.say(f"undone: {what} for {printable(held.request.id)}")
        return True

    # -- the log --------------------------------------------------------------------------

    def _fetch(self, timeout_s: float) -> None:
        """Poll; forget requests of partitions this member lost, drop ones already fetched.

        A transport error here is reported once and retried at the next poll: the annotator
        may go on answering what is fetched, and saving reports errors of its own.
        """
        room = MAX_BUFFERED - len(self.queue)
        try:
            batch = self.transport.poll(max(1, min(room, 500)), timeout_s)
            owned = self.transport.assignment()
        except TransportError as error:
            if not self.trouble:
                self.say(f"(cannot read label requests now, retrying: {error})")
                self.trouble = True
            time.sleep(min(timeout_s, POLL_S))
            return
        self.trouble = False
        if lost := self.owned - owned:
            self.queue = deque(e for e in self.queue if e.tp not in lost)
            for tp in lost:
                self.next_offset.pop(tp, None)
        self.owned = owned
        for envelope in batch:
            if envelope.offset < self.next_offset.get(envelope.tp, 0):
                continue  # fetched again after a rewind: already queued, held or saved
            self.next_offset[envelope.tp] = envelope.offset + 1
            self.queue.append(envelope)

    def _save(self, answer: _Answer) -> None:
        """Write the label (none for a skip) and commit past its request, atomically."""
        records = []
        if answer.label is not None:
            label = OracleLabel(
                id=answer.request.id, label=answer.label, annotator=self.annotator,
                labeled_at=now(),
            )  # fmt: skip
            records.append(
                Record(self.settings.topics.labels, encode(label), key=answer.envelope.key)
            )
        offsets = {answer.envelope.tp: answer.envelope.offset + 1}
        try:
            self.transport.produce_and_commit(records, offsets)
        except FencedError:
            # The partition moved to another annotator: keep the answer anyway (the trainer
            # handles a second answer for the same id), the request may be asked there again.
            for record in records:
                self.transport.produce(record)
            self.transport.flush()
            shown = printable(answer.request.id)
            self.say(f"({shown} moved to another annotator; your answer is saved)")
        if answer.label is None:
            self.skipped += 1
        else:
            self.answered += 1

    def _unreadable(self, envelope: Envelope, reason: str) -> None:
        """Save the held answer, dead-letter the record and commit past it, together."""
        topic, limit = self.settings.topics.dead_letter, self.settings.transport.max_record_bytes
        records = [dead_letter(envelope, reason, topic, limit)]
        offsets = {envelope.tp: envelope.offset + 1}
        held, self.held = self.held, None
        if held is not None:
            self._save(held)
        self.transport.produce_and_commit(records, offsets)
        self.say(f"skipped an unreadable request at {envelope} (sent to dead-letter): {reason}")

    def say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()


def annotate(
    settings: Settings,
    *,
    input: TextIO | None = None,
    output: TextIO | None = None,
    annotator: str | None = None,
    group: str = DEFAULT_GROUP,
    idle_timeout_s: float | None = None,
) -> AnnotateReport:
    """Ask a human about label requests, one at a time, until they quit.

    Parameters
    ----------
    input, output
        Where answers are read from and requests shown (default stdin and stdout); one answer
        per line.
    annotator
        Written into each ``OracleLabel``; also names this member's Kafka transactional id
        (``<group>-<replica id or hostname>-<annotator>``), so annotators sharing a host never
        fence each other.
    group
        The consumer group: annotators sharing it share the requests; another group asks every
        request again (a second opinion).
    idle_timeout_s
        Stop after this long without a request to show (default: wait until quit).

    Returns
    -------
    AnnotateReport
        The labels saved and requests skipped.
    """
    lines = _Lines(sys.stdin if input is None else input)
    out = sys.stdout if output is None else output
    check_topic_name(group)
    kafka = settings.transport.kafka
    member = "-".join(
        part for part in (kafka.replica_id or socket.gethostname(), annotator) if part
    )
    member = "".join(c if c.isalnum() or c in "._-" else "_" for c in member)
    kafka = kafka.model_copy(update={"replica_id": member})
    settings = settings.model_copy(
        update={"transport": settings.transport.model_copy(update={"kafka": kafka})}
    )
    with open_transport(settings, group=group, transactional=True) as transport:
        transport.ensure_topics(topic_specs(settings.topics))
        transport.subscribe([settings.topics.label_requests])
        session = _Session(settings, transport, lines, out, annotator, idle_timeout_s)
        try:
            session.run()
        finally:
            report = AnnotateReport(annotator, session.answered, session.skipped)
            with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
                out.write(report.summary() + "\n")
                out.flush()
    return report


def default_annotator() -> str | None:
    """``$USER``, else the login name, else ``None``."""
    try:
        return os.environ.get("USER") or getpass.getuser() or None
    except (KeyError, OSError):  # no passwd entry (containers with an arbitrary uid)
        return None


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            with contextlib.suppress(ValueError):  # not the main thread
                previous[name] = signal.signal(getattr(signal, name), _interrupt)
    try:
        annotate(
            settings,
            annotator=args.annotator,
            group=args.group,
            idle_timeout_s=args.idle_timeout,
        )
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)
    return EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamal annotate`` on the top-level subparsers."""

    parser = subparsers.add_parser(
        "annotate",
        help="label requests in the terminal, as a human annotator",
        description="Show label requests one at a time (features or payload, meta, the model's "
        "top guesses and why it asked) and write each answer to the labels topic. Type a "
        "label's name or number; s skips, u undoes the last answer, q quits. Every answer is "
        "saved, on quit too; a restart goes on at the next unanswered request.",
    )
    add_config_option(parser)
    parser.add_argument(
        "--annotator",
        metavar="NAME",
        default=default_annotator(),
        help="your name, written into each label (default: $USER)",
    )
    parser.add_argument(
        "--group",
        metavar="NAME",
        default=DEFAULT_GROUP,
        help="consumer group; annotators sharing one share the requests, another group asks "
        f"each request again (default: {DEFAULT_GROUP})",
    )
    parser.add_argument(
        "--idle-timeout",
        metavar="S",
        type=positive_float,
        help="stop after S seconds without a request (default: wait until quit)",
    )
    parser.set_defaults(run=_run)
