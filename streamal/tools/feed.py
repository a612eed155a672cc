"""``streamal feed``: validate JSON lines as samples and produce the valid ones.

Every non-blank line of the input must be one ``sample`` message (``streamal schema sample``).
Valid samples go to the samples topic keyed by their id, in input order, flushed every
``batch_size`` records and at the end. An invalid line is the user's input error: it is reported
with its line number and a one-line reason, never produced (not even to dead-letter), and the
lines after it are still fed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from streamal.cli.common import EXIT_FAILURE, EXIT_OK, add_config_option
from streamal.config import Settings, load_settings
from streamal.errors import ConfigError, MessageError
from streamal.messages import Sample, check_size, decode, encode
from streamal.tools import check_topic_name
from streamal.transport import Record, TopicSpec, open_transport, topic_specs

__all__ = ["FeedReport", "add_parser", "feed"]

BATCH_SIZE = 1000
LISTED_REJECTS = 20

Source = Iterable[str | bytes] | str | os.PathLike[str]


@dataclass(frozen=True, slots=True)
class FeedReport:
    """What ``feed`` did: samples produced, lines rejected, and the first rejects in detail.

    ``rejects`` holds ``(line number, reason)`` of the first ``listed`` rejected lines (line
    numbers count from 1, blank lines included); ``rejected`` counts them all.

    >>> report = FeedReport("samples", produced=3, rejected=2, rejects=((2, "id: required"),))
    >>> print("\\n".join(report.summary()))
    line 2: id: required
    ... and 1 more
    produced 3 samples to samples; rejected 2 lines
    """

    topic: str
    produced: int = 0
    rejected: int = 0
    rejects: tuple[tuple[int, str], ...] = ()

    def summary(self) -> list[str]:
        """The lines ``streamal feed`` prints on stderr: rejects, then the counts."""
        lines = [f"line {number}: {reason}" for number, reason in self.rejects]
        if self.rejected > len(self.rejects):
            lines.append(f"... and {self.rejected - len(self.rejects)} more")
        counts = f"produced {self.produced} sample{'s' * (self.produced != 1)} to {self.topic}"
        if self.rejected:
            counts += f"; rejected {self.rejected} line{'s' * (self.rejected != 1)}"
        lines.append(counts)
        return lines


def feed(
    settings: Settings,
    source: Source,
    *,
    topic: str | None = None,
    batch_size: int = BATCH_SIZE,
    listed: int = LISTED_REJECTS,
    progress: Callable[[int, FeedReport], None] | None = None,
) -> FeedReport:
    """Validate every line of ``source`` as a ``Sample`` and produce the valid ones (a sample
    over what serve takes, ``serve.max_record_bytes``, is rejected too).

    Parameters
    ----------
    source
        The lines themselves (``str`` or ``bytes``, an open file works), or a path to a JSONL
        file; ``"-"`` reads stdin.
    topic
        Where to produce; default ``settings.topics.samples``. streamal's topics (and this one)
        are created first if missing.
    batch_size
        Flush after this many produced samples (and once at the end).
    listed
        Keep the reasons of the first ``listed`` rejected lines in the report.
    progress
        Called after each flushed batch with the number of lines read and the report so far.

    Raises
    ------
    ConfigError
        The input file cannot be opened, or ``topic`` is not a valid topic name.
    TransportError
        Producing failed; the samples of the batches flushed before were produced.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
    topic = check_topic_name(topic or settings.topics.samples)
    limit = settings.serve.sample_limit(settings.transport.max_record_bytes)
    produced = rejected = number = 0
    rejects: list[tuple[int, str]] = []

    def report() -> FeedReport:
        return FeedReport(topic, produced, rejected, tuple(rejects))

    with ExitStack() as stack:
        lines = _lines(source, stack)  # a missing file fails before anything is created
        transport = stack.enter_context(open_transport(settings))
        specs = topic_specs(settings.topics)
        specs.setdefault(topic, TopicSpec())
        transport.ensure_topics(specs)
        pending = 0
        for number, line in enumerate(lines, start=1):
            raw = (line.encode("utf-8") if isinstance(line, str) else line).rstrip(b"\r\n")
            if not raw.strip():
                continue
            try:
                sample = decode(Sample, raw)
                value = encode(sample)
                check_size(value, limit)  # as serve will read it
            except MessageError as error:
                rejected += 1
                if len(rejects) < listed:
                    rejects.append((number, str(error)))
                continue
            transport.produce(Record(topic, value, key=sample.id.encode("utf-8")))
            pending += 1
            if pending >= batch_size:
                transport.flush()
                produced, pending = produced + pending, 0
                if progress is not None:
                    progress(number, report())
        transport.flush()
        produced += pending
    if progress is not None:
        progress(number, report())
    return report()


def _lines(source: Source, stack: ExitStack) -> Iterator[str | bytes]:
    if not isinstance(source, str | os.PathLike):
        return iter(cast(Iterable[str | bytes], source))
    if str(source) == "-":
        return iter(sys.stdin.buffer)
    path = Path(source)
    try:
        file: BinaryIO = stack.enter_context(path.open("rb"))
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    return iter(file)


class _Progress:
    """A one-line progress count on a terminal, rewritten in place; cleared at the end."""

    def __init__(self) -> None:
        self.shown = False

    def __call__(self, lines: int, report: FeedReport) -> None:
        sys.stderr.write(
            f"\rline {lines}: produced {report.produced}, rejected {report.rejected}\x1b[K"
        )
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    progress = _Progress() if sys.stderr.isatty() else None
    try:
        report = feed(settings, args.input, topic=args.topic, progress=progress)
    finally:
        if progress is not None:
            progress.clear()
    for line in report.summary():
        print(line, file=sys.stderr)
    return EXIT_FAILURE if report.rejected else EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamal feed`` on the top-level subparsers."""

    parser = subparsers.add_parser(
        "feed",
        help="validate samples from a JSONL file and produce them to the samples topic",
        description="Validate each line of a JSONL file as a sample message (see 'streamal "
        "schema sample') and produce the valid ones to the samples topic, keyed by id, in input "
        "order. Rejected lines are listed on stderr with their line number and reason and are "
        "not produced; blank lines are skipped.",
        epilog="Exit codes: 0 every sample produced, 1 some lines rejected (the valid ones were "
        "still produced) or a transport failure, 2 unreadable input or bad configuration.",
    )
    add_config_option(parser)
    parser.add_argument(
        "-i", "--input", metavar="FILE", required=True, help="JSONL file of samples; - for stdin"
    )
    parser.add_argument(
        "--topic", metavar="NAME", help="produce here instead of the configured samples topic"
    )
    parser.set_defaults(run=_run)
