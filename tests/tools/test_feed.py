"""``streamal feed``: valid samples produced in order keyed by id, rejects reported, exit codes."""

from __future__ import annotations

import argparse
import io
import json
import re
import sqlite3
from pathlib import Path

import pytest

from streamal import cli
from streamal.config import Settings
from streamal.errors import ConfigError, MessageError
from streamal.messages import Sample, decode
from streamal.tools.feed import FeedReport, add_parser, feed
from tests.conftest import settings_for
from tests.helpers import read_back, with_fresh_topics, write_config


def main(argv: list[str]) -> int:
    """``streamal feed ARGV``, as the command line runs it."""
    return cli.main(["feed", *argv])


GOOD = [
    '{"id": "a", "features": [1, 2.5]}',
    '{"id": "c", "payload": {"text": "hi"}}',
    '{"id": "f", "features": [3], "meta": {"src": "x"}, "ts": 0}',
    '{"id": "h", "features": [0.5], "payload": [1, 2]}',
]
LINES = [
    GOOD[0],  # 1
    '{"id": "b", "features": [1, NaN]}',  # 2 NaN feature
    "",  # 3 blank: skipped, still counted
    GOOD[1],  # 4 payload only
    '{"features": [0]}',  # 5 missing id
    '{"id": "d", "features": [0]',  # 6 invalid JSON
    "   ",  # 7 blank
    '{"id": "e"}',  # 8 neither features nor payload
    GOOD[2],  # 9
    '{"id": "g", "features": [1], "colour": "red"}',  # 10 unknown field
    GOOD[3],  # 11
]
REJECTED = [2, 5, 6, 8, 10]


def reason(line: str) -> str:
    try:
        decode(Sample, line.encode())
    except MessageError as error:
        return str(error)
    raise AssertionError(f"{line} is valid")


@pytest.fixture
def settings(cluster: Settings) -> Settings:
    return with_fresh_topics(cluster)


@pytest.fixture
def local(tmp_path: Path) -> Settings:
    return with_fresh_topics(settings_for("local", tmp_path=tmp_path))


def test_feeds_the_valid_samples_in_order_keyed_by_id_and_lists_the_rejects(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "samples.jsonl"
    data.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    config = write_config(settings, tmp_path / "streamal.yaml")

    assert main(["--config", config, "--input", str(data)]) == 1

    err = capsys.readouterr().err.splitlines()
    assert err == [
        *(f"line {n}: {reason(LINES[n - 1])}" for n in REJECTED),
        f"produced 4 samples to {settings.topics.samples}; rejected 5 lines",
    ]
    assert err[0].startswith("line 2: features.1: must be a finite number")
    records = read_back(settings, settings.topics.samples, len(GOOD))
    assert sorted(r.key for r in records if r.key) == [b"a", b"c", b"f", b"h"]
    expected = {json.loads(line)["id"]: decode(Sample, line.encode()) for line in GOOD}
    for record in records:
        assert record.key is not None
        assert decode(Sample, record.value) == expected[record.key.decode()]
    position = {json.loads(line)["id"]: n for n, line in enumerate(GOOD)}
    for partition in {r.partition for r in records}:  # input order is kept within a partition
        mine = sorted((r for r in records if r.partition == partition), key=lambda r: r.offset)
        positions = [position[r.key.decode()] for r in mine if r.key]
        assert positions == sorted(positions)


def test_every_line_valid_exits_0_on_a_one_partition_topic_in_exact_order(
    settings: Settings, tmp_path: Path, topic_factory, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = topic_factory(partitions=1)
    data = tmp_path / "good.jsonl"
    ids = [f"s{i}" for i in range(7)]
    data.write_text("".join(f'{{"id": "{i}", "features": [{n}]}}\n' for n, i in enumerate(ids)))
    config = write_config(settings, tmp_path / "streamal.yaml")

    assert main(["-c", config, "-i", str(data), "--topic", topic]) == 0

    assert capsys.readouterr().err == f"produced 7 samples to {topic}\n"
    records = read_back(settings, topic, len(ids))
    assert [r.key for r in records] == [i.encode() for i in ids]
    assert [r.offset for r in records] == list(range(7))
    assert read_back(settings, settings.topics.samples, 0, timeout_s=0) == []


def test_the_report_keeps_the_first_rejects_and_counts_them_all(local: Settings) -> None:
    lines = (
        ['{"id": "ok", "features": [1]}'] + ['{"id": "x"}'] * 25 + [b'{"id": "z", "payload": 1}']
    )
    progress: list[tuple[int, int]] = []

    report = feed(
        local, lines, batch_size=1, listed=3, progress=lambda n, r: progress.append((n, r.produced))
    )

    why = reason('{"id": "x"}')
    assert report == FeedReport(
        local.topics.samples, produced=2, rejected=25, rejects=((2, why), (3, why), (4, why))
    )
    assert report.summary()[-2:] == [
        "... and 22 more",
        f"produced 2 samples to {local.topics.samples}; rejected 25 lines",
    ]
    assert progress[0] == (1, 1)  # flushed after every batch of one
    assert progress[-1] == (27, 2)


def test_a_sample_over_what_serve_takes_is_rejected_not_fatal(settings: Settings) -> None:
    limit = settings.serve.sample_limit(settings.transport.max_record_bytes)
    grows = '{"id": "g", "features": [%s1]}' % ("1e5," * (limit // 6))  # 100000.0 when encoded
    lines = [GOOD[0], '{"id": "big", "features": [%s1]}' % ("1," * limit), grows, GOOD[1]]

    report = feed(settings, lines)

    assert (report.produced, report.rejected) == (2, 2)
    assert [n for n, _ in report.rejects] == [2, 3]
    too_large = rf"record too large: \d+ bytes > {limit}"
    assert all(re.fullmatch(too_large, why) for _, why in report.rejects)
    assert {e.key for e in read_back(settings, settings.topics.samples, 2)} == {b"a", b"c"}


def test_the_cli_lists_20_rejects_then_how_many_more(
    local: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text("{\n" * 23 + '{"id": "ok", "payload": "text"}\n')

    assert main(["-c", write_config(local, tmp_path / "c.yaml"), "-i", str(data)]) == 1

    err = capsys.readouterr().err.splitlines()
    assert len(err) == 22
    assert err[19].startswith("line 20: invalid JSON")
    assert err[20:] == [
        "... and 3 more",
        f"produced 1 sample to {local.topics.samples}; rejected 23 lines",
    ]


def test_dash_reads_stdin(local: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b'{"id": "in", "features": [1]}\n\n'), encoding="utf-8")
    monkeypatch.setattr("sys.stdin", stdin)

    assert main(["-c", write_config(local, tmp_path / "c.yaml"), "-i", "-"]) == 0

    assert [r.key for r in read_back(local, local.topics.samples, 1)] == [b"in"]


def test_feed_creates_streamals_topics_and_the_override(local: Settings) -> None:
    feed(local, ['{"id": "a", "features": [1]}'], topic="extra")
    with sqlite3.connect(local.transport.local.path) as db:
        names = {row[0] for row in db.execute("SELECT name FROM topics")}
    assert names == {*local.topics.model_dump().values(), "extra"}


def test_a_missing_input_exits_2_and_creates_nothing(
    local: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"

    assert main(["-c", write_config(local, tmp_path / "c.yaml"), "-i", str(missing)]) == 2

    assert capsys.readouterr().err == f"error: cannot read {missing}: No such file or directory\n"
    assert not local.transport.local.path.exists()


def test_a_bad_config_or_topic_exits_2(
    local: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("transport:\n  kind: zmq\n")
    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "a", "features": [1]}\n')

    assert main(["-c", str(bad), "-i", str(data)]) == 2
    assert capsys.readouterr().err.startswith("config error: transport.kind: must be one of")

    config = write_config(local, tmp_path / "c.yaml")
    assert main(["-c", config, "-i", str(data), "--topic", "no spaces"]) == 2
    assert "invalid topic name 'no spaces'" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        feed(local, [], topic="a/b")


def test_add_parser_registers_feed_with_the_shared_config_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser(prog="streamal")
    add_parser(parser.add_subparsers(dest="command"))

    args = parser.parse_args(["feed", "-i", "x.jsonl"])

    assert (args.command, args.input, args.config, args.topic) == ("feed", "x.jsonl", None, None)
    assert callable(args.run)
    with pytest.raises(SystemExit):
        parser.parse_args(["feed"])  # --input is required
    with pytest.raises(SystemExit):
        parser.parse_args(["feed", "--help"])
    assert "(default: $STREAMAL_CONFIG;" in capsys.readouterr().out


def test_features_beyond_float32_strings_booleans_and_ids_with_control_characters_are_rejected(
    local: Settings,
) -> None:
    lines = [
        '{"id": "a", "features": [0, 1e308]}',
        '{"id": "b", "features": ["1", true]}',
        '{"id": "c\\u001b[2J", "features": [1]}',
        '{"id": "d", "features": [3, -4.5e37]}',
    ]
    report = feed(local, lines)
    assert report.rejects == (
        (1, "features.1: must be a finite float32 number (got 1e+308)"),
        (2, "features.0: must be a number (got '1') (+1 more)"),
        (3, r"id: must not contain control characters (got 'c\x1b[2J')"),
    )
    [record] = read_back(local, local.topics.samples, 1)
    assert record.key == b"d"
