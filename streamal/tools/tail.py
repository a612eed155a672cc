"""``streamal tail``: print the records of topics as JSON lines, one object per record.

It reads without a consumer group, so it never moves anybody's committed offsets. By default it
starts at the end of every partition (only records produced from now on) and follows until
interrupted; ``from_beginning`` reads everything kept in the log first.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from types import FrameType, TracebackType
from typing import Any, Self, TextIO

from streamal.cli.common import EXIT_OK, add_config_option, positive_float, positive_int
from streamal.config import Settings, load_settings
from streamal.tools import check_topic_name
from streamal.transport import Envelope, open_transport
from streamal.validation import printable

__all__ = ["Tailer", "add_parser", "envelope_json", "tail"]

POLL_S = 0.5
MAX_POLL_RECORDS = 500


def envelope_json(envelope: Envelope) -> dict[str, Any]:
    """One record as ``tail`` prints it: position, key, time, then the value and headers.

    The value is the parsed JSON when it is JSON (strictly: UTF-8, no NaN or infinity),
    ``null`` for a null value (a tombstone), else ``value_base64``; the key is a string,
    ``null``, or ``key_base64``; headers appear only when there are some, as a list of
    ``{"key", "value"}`` (or ``value_base64``).

    >>> e = Envelope("samples", 2, 41, b"s1", b'{"id":"s1"}', (("trace", b"\\xff"),), 0)
    >>> print(json.dumps(envelope_json(e)))  # doctest: +NORMALIZE_WHITESPACE
    {"topic": "samples", "partition": 2, "offset": 41, "key": "s1",
     "timestamp": "1970-01-01T00:00:00.000Z", "value": {"id": "s1"},
     "headers": [{"key": "trace", "value_base64": "/w=="}]}
    >>> envelope_json(Envelope("t", 0, 0, None, b"NaN", (), -1))["value_base64"]
    'TmFO'
    """
    out: dict[str, Any] = {
        "topic": envelope.topic,
        "partition": envelope.partition,
        "offset": envelope.offset,
    }
    _put_text(out, "key", envelope.key)
    out["timestamp"] = _iso(envelope.timestamp_ms)
    if envelope.value is None:  # a null value (tombstone)
        out["value"] = None
    else:
        try:
            out["value"] = _strict_json(envelope.value)
        except (UnicodeDecodeError, ValueError, RecursionError):
            out["value_base64"] = _b64(envelope.value)
    if envelope.headers:
        out["headers"] = [_put_text({"key": k}, "value", v) for k, v in envelope.headers]
    return out


def _put_text(out: dict[str, Any], name: str, raw: bytes | None) -> dict[str, Any]:
    try:
        out[name] = None if raw is None else raw.decode("utf-8")
    except UnicodeDecodeError:
        out[f"{name}_base64"] = _b64(raw or b"")
    return out


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _iso(timestamp_ms: int) -> str | None:
    if timestamp_ms < 0:  # Kafka: no timestamp
        return None
    when = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text}")
    return value


def _no_constant(text: str) -> Any:
    raise ValueError(f"not JSON: {text}")


def _strict_json(raw: bytes) -> Any:
    return json.loads(raw.decode("utf-8"), parse_float=_finite, parse_constant=_no_constant)


class Tailer:
    """A group-less reader of ``topics`` whose start positions are fixed once it is built.

    Records produced after the constructor returns are read even without ``from_beginning``;
    ones produced before it are read only with it.
    """

    def __init__(self, settings: Settings, topics: Sequence[str], *, from_beginning: bool) -> None:
        reset = "earliest" if from_beginning else "latest"
        transport_config = settings.transport.model_copy(update={"auto_offset_reset": reset})
        settings = settings.model_copy(update={"transport": transport_config})
        self.topics = [check_topic_name(topic) for topic in topics]
        self._transport = open_transport(settings, group=None)
        try:
            self._transport.subscribe(self.topics)
        except BaseException:
            self._transport.close()
            raise

    def records(
        self, *, max_records: int | None = None, idle_timeout_s: float | None = None
    ) -> Iterator[Envelope]:
        """The records as they come, in offset order within each partition.

        Stops after ``max_records`` records, or after ``idle_timeout_s`` seconds without one;
        without either it follows forever.
        """
        seen = 0
        last = time.monotonic()
        while max_records is None or seen < max_records:
            wait = POLL_S
            if idle_timeout_s is not None:
                wait = min(wait, max(0.0, last + idle_timeout_s - time.monotonic()))
            limit = MAX_POLL_RECORDS if max_records is None else max_records - seen
            batch = self._transport.poll(min(limit, MAX_POLL_RECORDS), wait)
            if batch:
                last = time.monotonic()
            elif idle_timeout_s is not None and time.monotonic() - last >= idle_timeout_s:
                return
            for envelope in batch:
                seen += 1
                yield envelope

    def close(self) -> None:
        """Close the transport; nothing is committed (there is no group)."""
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def tail(
    settings: Settings,
    topics: str | Sequence[str],
    *,
    max_records: int | None = None,
    from_beginning: bool = False,
    idle_timeout_s: float | None = None,
    out: TextIO | None = None,
    ready: Callable[[], None] | None = None,
) -> int:
    """Print the records of ``topics`` to ``out`` (stdout) as JSON lines; the number printed.

    Each line is ``envelope_json(record)``, flushed at once so pipes see it; characters that
    are not printable are escaped, on a UTF-8 terminal too. ``ready`` is called
    once the start positions are fixed. A closed pipe raises ``BrokenPipeError``.
    """
    out = sys.stdout if out is None else out
    ascii_only = (getattr(out, "encoding", None) or "ascii").lower().replace("-", "") != "utf8"
    printed = 0
    with Tailer(
        settings, [topics] if isinstance(topics, str) else topics, from_beginning=from_beginning
    ) as tailer:
        if ready is not None:
            ready()
        for envelope in tailer.records(max_records=max_records, idle_timeout_s=idle_timeout_s):
            line = json.dumps(envelope_json(envelope), ensure_ascii=ascii_only)
            out.write(printable(line) + "\n")
            out.flush()
            printed += 1
    return printed


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    topics = args.topic or [settings.topics.samples]

    def announce() -> None:
        if sys.stderr.isatty():
            where = "the beginning" if args.from_beginning else "the end"
            print(f"tailing {', '.join(topics)} from {where}; Ctrl-C stops", file=sys.stderr)

    try:
        previous = signal.signal(signal.SIGTERM, _interrupt)
    except ValueError:  # not the main thread
        previous = None
    try:
        tail(
            settings,
            topics,
            max_records=args.max,
            from_beginning=args.from_beginning,
            idle_timeout_s=args.idle_timeout,
            ready=announce,
        )
    except KeyboardInterrupt:
        pass  # Ctrl-C or SIGTERM: the way to stop following
    except BrokenPipeError:  # the reader left (| head): quiet, and no error at exit either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamal tail`` on the top-level subparsers."""

    parser = subparsers.add_parser(
        "tail",
        help="print the records of a topic as JSON lines",
        description="Print each record of the topics as one JSON object per line: topic, "
        "partition, offset, key, timestamp (ISO 8601 UTC), value (parsed JSON, or value_base64 "
        "when the value is not JSON) and headers if any. Reads without a consumer group, so no "
        "committed offset moves. Starts at the end (new records only) and follows until "
        "Ctrl-C, unless told otherwise.",
    )
    add_config_option(parser)
    parser.add_argument(
        "-t",
        "--topic",
        metavar="NAME",
        action="append",
        help="topic to read; repeat for several (default: the configured samples topic)",
    )
    parser.add_argument("-n", "--max", metavar="N", type=positive_int, help="stop after N records")
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="read every record kept in the log first, not only new ones",
    )
    parser.add_argument(
        "--idle-timeout",
        metavar="S",
        type=positive_float,
        help="stop after S seconds without a record (default: follow until interrupted)",
    )
    parser.set_defaults(run=_run)
