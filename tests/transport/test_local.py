"""What only the embedded SQLite log has to prove: file safety, liveness, fencing, compaction."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamal.config import LocalTransportConfig
from streamal.errors import FencedError, TransportError
from streamal.transport import Record, TopicPartition, TopicSpec, next_offsets
from streamal.transport.local import LocalTransport


def config(tmp_path: Path, **changes: object) -> LocalTransportConfig:
    return LocalTransportConfig(path=tmp_path / "log.sqlite", synchronous="normal", **changes)


def fill(path_config: LocalTransportConfig, topic: str, count: int, partitions: int = 2) -> None:
    with LocalTransport(path_config) as producer:
        producer.ensure_topics({topic: TopicSpec(partitions=partitions)})
        for i in range(count):
            producer.produce(Record(topic, str(i).encode(), key=f"k{i}".encode()))


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"this is a text file, not a database" * 100, "not a streamal-log file")],
)
def test_refuses_a_file_that_is_not_a_log_and_leaves_it_alone(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "log.sqlite"
    path.write_bytes(content)
    with pytest.raises(TransportError, match=reason):
        LocalTransport(config(tmp_path))
    assert path.read_bytes() == content


def test_refuses_a_foreign_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE invoices(id INTEGER)")
    before = path.read_bytes()
    with pytest.raises(TransportError, match="SQLite file with other tables"):
        LocalTransport(config(tmp_path))
    assert path.read_bytes() == before
    with sqlite3.connect(path) as db:
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["invoices"]


def test_refuses_a_log_of_another_format_version(tmp_path: Path) -> None:
    LocalTransport(config(tmp_path)).close()
    with sqlite3.connect(tmp_path / "log.sqlite") as db:
        db.execute("UPDATE meta SET value='99' WHERE key='version'")
    with pytest.raises(TransportError, match="streamal-log version 99"):
        LocalTransport(config(tmp_path))


def test_records_and_headers_survive_reopening(tmp_path: Path) -> None:
    with LocalTransport(config(tmp_path)) as producer:
        producer.produce(Record("t", b"v", key=b"k", headers=(("trace", b"\x00\x01"),)))
    with LocalTransport(config(tmp_path)) as reader:
        reader.subscribe(["t"])
        (envelope,) = reader.poll(10, 1.0)
    assert (envelope.key, envelope.value, envelope.headers) == (
        b"k",
        b"v",
        (("trace", b"\x00\x01"),),
    )
    assert envelope.timestamp_ms > 0


def test_a_log_made_before_null_values_keeps_its_records_and_takes_null_values(
    tmp_path: Path,
) -> None:
    fill(config(tmp_path), "t", 4, partitions=1)
    with sqlite3.connect(tmp_path / "log.sqlite") as db:  # the records table of older logs
        db.execute("ALTER TABLE records RENAME TO old")
        db.execute(
            "CREATE TABLE records(topic TEXT, partition INTEGER, offset INTEGER, key BLOB,"
            " value BLOB NOT NULL, headers TEXT, ts INTEGER NOT NULL,"
            " PRIMARY KEY(topic, partition, offset)) WITHOUT ROWID"
        )
        db.execute("INSERT INTO records SELECT * FROM old")
        db.execute("DROP TABLE old")
    with LocalTransport(config(tmp_path)) as transport:
        transport.produce(Record("t", None, key=b"gone"))
        transport.flush()
        transport.subscribe(["t"])
        got = transport.poll(10, 1.0)
    assert [(e.offset, e.key, e.value) for e in got] == [
        (0, b"k0", b"0"), (1, b"k1", b"1"), (2, b"k2", b"2"), (3, b"k3", b"3"), (4, b"gone", None)
    ]  # fmt: skip


def test_compacted_topic_keeps_the_newest_record_per_key(tmp_path: Path) -> None:
    with LocalTransport(config(tmp_path)) as producer:
        producer.ensure_topics({"models": TopicSpec(partitions=1, compacted=True)})
        for version in range(5):
            producer.produce(Record("models", str(version).encode(), key=b"default"))
            producer.flush()
        producer.produce(Record("models", b"x", key=b"other"))
    with LocalTransport(config(tmp_path)) as reader:
        reader.subscribe(["models"])
        got = reader.poll(10, 1.0)
    assert [(e.key, e.value, e.offset) for e in got] == [(b"default", b"4", 4), (b"other", b"x", 5)]


def test_partitions_of_a_dead_process_are_taken_over_at_once(tmp_path: Path) -> None:
    cfg = config(tmp_path, session_timeout_s=60)  # far longer than the test may wait
    fill(cfg, "t", 10)
    script = (
        "import os, sys\n"
        "from streamal.config import LocalTransportConfig\n"
        "from streamal.transport.local import LocalTransport\n"
        f"cfg = LocalTransportConfig.model_validate_json({cfg.model_dump_json()!r})\n"
        "t = LocalTransport(cfg, group='g')\n"
        "t.subscribe(['t'])\n"
        "assert len(t.poll(100, 5.0)) == 10\n"
        "os._exit(0)  # dies holding both partitions, committing nothing\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    with LocalTransport(cfg, group="g") as successor:
        successor.subscribe(["t"])
        started = time.monotonic()
        got = successor.poll(100, 5.0)
        assert len(got) == 10
        assert time.monotonic() - started < 5
        assert successor.assignment() == {TopicPartition("t", 0), TopicPartition("t", 1)}


def test_a_member_that_lost_its_partitions_cannot_commit(tmp_path: Path) -> None:
    cfg = config(tmp_path, session_timeout_s=0.5)
    fill(cfg, "in", 6)
    with LocalTransport(cfg, group="g") as stale, LocalTransport(cfg, group="g") as fresh:
        stale.subscribe(["in"])
        batch = stale.poll(100, 2.0)
        assert len(batch) == 6
        time.sleep(1.0)  # stale stops heartbeating; its session expires
        fresh.subscribe(["in"])
        assert len(fresh.poll(100, 2.0)) == 6  # fresh took over from the committed offsets
        with pytest.raises(FencedError, match="no longer owned"):
            stale.produce_and_commit([Record("out", b"dup")], next_offsets(batch))
        fresh.produce_and_commit([Record("out", b"once")], {TopicPartition("in", 0): 3})
    with LocalTransport(cfg) as reader:
        reader.subscribe(["out"])
        assert [e.value for e in reader.poll(10, 1.0)] == [b"once"]


def test_closed_transport_refuses_work(tmp_path: Path) -> None:
    transport = LocalTransport(config(tmp_path))
    transport.close()
    with pytest.raises(TransportError, match="closed"):
        transport.poll(1, 0.0)


def open_together(cfg: LocalTransportConfig, clients: int) -> list[BaseException]:
    """Open the log from ``clients`` threads released at the same instant; their errors."""
    import threading

    start = threading.Barrier(clients)
    errors: list[BaseException] = []

    def open_log() -> None:
        start.wait()
        try:
            LocalTransport(cfg).close()
        except BaseException as error:  # collected for the caller's assertion
            errors.append(error)

    threads = [threading.Thread(target=open_log) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_clients_opening_a_new_log_at_once_all_get_it(tmp_path: Path) -> None:
    for attempt in range(5):  # several fresh files: the race is in creating one
        assert open_together(config(tmp_path / str(attempt)), clients=6) == []
