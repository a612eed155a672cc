"""``streamal tail``: records as JSON lines with positions, --max, from the beginning or the end."""

from __future__ import annotations

import argparse
import io
import json
import select
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streamal import cli
from streamal.config import Settings
from streamal.tools.tail import Tailer, add_parser, envelope_json, tail
from streamal.transport import Envelope, Record, Transport, open_transport
from tests.conftest import TransportFactory, settings_for
from tests.helpers import read_back, with_fresh_topics, write_config


def main(argv: list[str]) -> int:
    """``streamal tail ARGV``, as the command line runs it."""
    return cli.main(["tail", *argv])


ROOT = Path(__file__).parent.parent.parent


def produce(transport: Transport, topic: str, values: list[bytes], key: str = "k") -> None:
    for n, value in enumerate(values):
        transport.produce(Record(topic, value, key=f"{key}{n}".encode()))
    transport.flush()


def printed(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_from_the_beginning_prints_each_record_with_its_position_and_parsed_value(
    cluster: Settings, transport_factory: TransportFactory, topic_factory
) -> None:
    topic = topic_factory()
    producer = transport_factory()
    producer.produce(Record(topic, b'{"id": "s1", "features": [1.5]}', key=b"s1"))
    producer.produce(Record(topic, b"\x00\x01 not json", key=None))
    producer.produce(Record(topic, b'"text"', key=b"s3", headers=(("trace", b"t-1"),)))
    producer.flush()
    stored = {(e.partition, e.offset): e for e in read_back(cluster, topic, 3)}
    out = io.StringIO()

    assert tail(cluster, topic, from_beginning=True, max_records=3, idle_timeout_s=30, out=out) == 3

    lines = printed(out)
    assert len(lines) == 3
    for line in lines:
        record = stored[line["partition"], line["offset"]]
        assert line["topic"] == topic
        assert line["key"] == (record.key.decode() if record.key else None)
        assert line["timestamp"].endswith("Z")
        when = datetime.fromisoformat(line["timestamp"])
        assert abs(when.timestamp() * 1000 - record.timestamp_ms) < 1
        assert abs(when - datetime.now(UTC)).total_seconds() < 120
    by_key = {line["key"]: line for line in lines}
    assert by_key["s1"]["value"] == {"id": "s1", "features": [1.5]}
    assert by_key[None]["value_base64"] == "AAEgbm90IGpzb24="
    assert "value" not in by_key[None]
    assert by_key["s3"]["value"] == "text"
    assert by_key["s3"]["headers"] == [{"key": "trace", "value": "t-1"}]
    assert "headers" not in by_key["s1"]
    assert list(by_key["s1"]) == ["topic", "partition", "offset", "key", "timestamp", "value"]


def test_without_from_beginning_only_records_produced_after_the_start_are_printed(
    cluster: Settings, transport_factory: TransportFactory, topic_factory
) -> None:
    topic = topic_factory()
    producer = transport_factory()
    produce(producer, topic, [json.dumps({"old": n}).encode() for n in range(6)], key="old")
    new = [{"new": n} for n in range(6)]
    out = io.StringIO()

    def ready() -> None:  # start positions are fixed by now
        produce(producer, topic, [json.dumps(v).encode() for v in new], key="new")

    count = tail(cluster, topic, max_records=len(new), idle_timeout_s=30, out=out, ready=ready)

    assert count == len(new)
    assert sorted((line["value"] for line in printed(out)), key=lambda v: v["new"]) == new


def test_max_stops_after_n_records_and_commits_nothing(
    cluster: Settings, transport_factory: TransportFactory, topic_factory
) -> None:
    topic = topic_factory(partitions=1)
    produce(transport_factory(), topic, [str(n).encode() for n in range(5)])
    out = io.StringIO()

    started = time.monotonic()
    assert tail(cluster, topic, from_beginning=True, max_records=2, idle_timeout_s=30, out=out) == 2

    assert time.monotonic() - started < 25  # stopped at --max, not at the idle timeout
    assert [(line["offset"], line["value"]) for line in printed(out)] == [(0, 0), (1, 1)]
    with Tailer(cluster, [topic], from_beginning=True) as tailer:  # no group: nothing committed
        assert len(list(tailer.records(max_records=5, idle_timeout_s=30))) == 5


def test_a_null_value_prints_as_null_and_unprintable_text_is_escaped_on_a_utf8_terminal(
    cluster: Settings, transport_factory: TransportFactory, topic_factory
) -> None:
    topic = topic_factory(partitions=1)
    forged = {"id": "s1\u009b2J\u202e\u2028é", "note": "\x7f\x1b[31m"}
    producer = transport_factory()
    producer.produce(Record(topic, None, key=b"gone"))
    producer.produce(Record(topic, json.dumps(forged).encode(), key=b"s1"))
    producer.flush()
    terminal = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")

    tail(cluster, topic, max_records=2, from_beginning=True, idle_timeout_s=30, out=terminal)

    terminal.flush()
    text = terminal.buffer.getvalue().decode("utf-8")  # type: ignore[attr-defined]
    lines = text.splitlines()  # splits at U+2028 and other line breaks too
    assert [json.loads(line)["value"] for line in lines] == [None, forged]
    assert all(line.isprintable() for line in lines) and "é" in text


def test_values_that_are_not_strict_json_are_shown_base64() -> None:
    def shown(value: bytes, key: bytes | None = b"k") -> dict:
        return envelope_json(Envelope("t", 1, 9, key, value, (), 1_700_000_000_123))

    assert shown(b'{"a": [1, null]}')["value"] == {"a": [1, None]}
    assert shown(b"12")["value"] == 12
    assert shown(b"")["value_base64"] == ""
    assert shown(b"NaN")["value_base64"] == "TmFO"
    assert shown(b'{"x": 1e400}')["value_base64"] == "eyJ4IjogMWU0MDB9"
    assert shown(b'"\xff"')["value_base64"] == "Iv8i"
    assert shown(b"[" * 100_000)["value_base64"].startswith("W1tb")
    assert shown(b"1", key=None)["key"] is None
    assert shown(b"1", key=b"\xfe")["key_base64"] == "/g=="
    assert shown(b"1")["timestamp"] == "2023-11-14T22:13:20.123Z"
    assert envelope_json(Envelope("t", 0, 0, None, b"1", (), -1))["timestamp"] is None


@pytest.fixture
def local(tmp_path: Path) -> Settings:
    return with_fresh_topics(settings_for("local", tmp_path=tmp_path))


def test_the_cli_prints_json_lines_from_several_topics_and_stops_when_idle(
    local: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(local, tmp_path / "c.yaml")
    with open_transport(local) as producer:
        produce(producer, local.topics.samples, [b'{"id": "a"}'])
        produce(producer, local.topics.labels, [b'{"id": "b"}'])

    assert main(["-c", config, "--from-beginning", "--idle-timeout", "0.3"]) == 0
    assert [line["value"] for line in map(json.loads, capsys.readouterr().out.splitlines())] == [
        {"id": "a"}
    ]  # the default topic is the configured samples topic

    argv = ["-c", config, "-t", local.topics.samples, "-t", local.topics.labels]
    assert main([*argv, "--from-beginning", "-n", "2"]) == 0
    out, err = capsys.readouterr()
    assert sorted(json.loads(line)["topic"] for line in out.splitlines()) == sorted(
        [local.topics.samples, local.topics.labels]
    )
    assert err == ""

    started = time.monotonic()
    assert main([*argv, "--idle-timeout", "0.3"]) == 0  # from the end: nothing new comes
    assert 0.3 <= time.monotonic() - started < 10
    assert capsys.readouterr().out == ""


def test_bad_options_are_usage_errors(
    local: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(local, tmp_path / "c.yaml")
    for bad in (["--max", "0"], ["--idle-timeout", "-1"], ["--idle-timeout", "nan"]):
        with pytest.raises(SystemExit) as exit_:
            main(["-c", config, *bad])
        assert exit_.value.code == 2
    capsys.readouterr()
    assert main(["-c", config, "-t", "a b"]) == 2
    assert (
        capsys.readouterr().err
        == "error: invalid topic name 'a b': use 1-249 of A-Z a-z 0-9 . _ -\n"
    )


def test_add_parser_registers_tail(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="streamal")
    add_parser(parser.add_subparsers(dest="command"))

    args = parser.parse_args(["tail", "-t", "x", "-n", "3", "--from-beginning"])

    assert (args.topic, args.max, args.from_beginning, args.idle_timeout) == (["x"], 3, True, None)
    assert callable(args.run)
    with pytest.raises(SystemExit):
        parser.parse_args(["tail", "--help"])
    assert "(default: $STREAMAL_CONFIG;" in capsys.readouterr().out


def _start_tail(settings: Settings, config: str) -> subprocess.Popen[bytes]:
    """``streamal tail`` following from the beginning; returns once it printed one record."""
    with open_transport(settings) as producer:
        produce(producer, settings.topics.samples, [b'{"id": "first"}'])
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamal", "tail", "-c", config, "--from-beginning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    assert ready, "tail printed nothing"
    assert json.loads(proc.stdout.readline())["value"] == {"id": "first"}
    return proc


def test_sigterm_and_a_closed_pipe_end_tail_quietly_with_0(local: Settings, tmp_path: Path) -> None:
    config = write_config(local, tmp_path / "c.yaml")

    proc = _start_tail(local, config)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert proc.stderr is not None and proc.stderr.read() == b""

    proc = _start_tail(local, config)  # now like `streamal tail | head -1`
    assert proc.stdout is not None
    proc.stdout.close()
    with open_transport(local) as producer:
        produce(producer, local.topics.samples, [b'{"id": "second"}'])
    assert proc.wait(timeout=30) == 0
    assert proc.stderr is not None and proc.stderr.read() == b""
