"""The embedded transport: a durable, partitioned log in one SQLite file (WAL mode).

Several processes on one machine share the file. A consumer group spreads the partitions of its
topics over its live members: each member owns a partition exclusively (a row in ``owners``),
renews its membership while it polls, and loses its partitions when it closes, when its process
is gone, or after ``session_timeout_s`` of silence. Records and consumed offsets are written in
one SQLite transaction, and offsets are only accepted from the partition's owner, so a member
that lost a partition cannot commit over its successor.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from streamal.config import MAX_RECORD_BYTES, LocalTransportConfig
from streamal.errors import FencedError, TransportError
from streamal.sqlite import open_sqlite, write_transaction
from streamal.transport.base import (
    Envelope,
    Headers,
    Record,
    TopicPartition,
    TopicSpec,
    Transaction,
    Transport,
    check_size,
)

log = logging.getLogger(__name__)

FORMAT = "streamal-log"
VERSION = "1"
HOST = socket.gethostname()

RECORDS = """records(topic TEXT, partition INTEGER, offset INTEGER, key BLOB, value BLOB,
    headers TEXT, ts INTEGER NOT NULL, PRIMARY KEY(topic, partition, offset)) WITHOUT ROWID"""
SCHEMA = f"""
CREATE TABLE topics(name TEXT PRIMARY KEY, partitions INTEGER NOT NULL, compacted INTEGER NOT NULL);
CREATE TABLE partitions(topic TEXT, partition INTEGER, next_offset INTEGER NOT NULL,
    PRIMARY KEY(topic, partition)) WITHOUT ROWID;
CREATE TABLE {RECORDS};
CREATE TABLE offsets(grp TEXT, topic TEXT, partition INTEGER, offset INTEGER NOT NULL,
    PRIMARY KEY(grp, topic, partition)) WITHOUT ROWID;
CREATE TABLE members(grp TEXT, member TEXT, host TEXT NOT NULL, pid INTEGER NOT NULL,
    topics TEXT NOT NULL, heartbeat REAL NOT NULL, PRIMARY KEY(grp, member)) WITHOUT ROWID;
CREATE TABLE owners(grp TEXT, topic TEXT, partition INTEGER, member TEXT NOT NULL,
    PRIMARY KEY(grp, topic, partition)) WITHOUT ROWID;
"""


@dataclass
class _LocalTransaction(Transaction):
    max_record_bytes: int
    records: list[Record] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)

    def produce(self, record: Record) -> None:
        check_size(record, self.max_record_bytes)
        self.records.append(record)

    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.offsets.update(offsets)


class LocalTransport(Transport):
    """A client of the SQLite log at ``config.path``; ``group=None`` reads every partition.

    It refuses records over ``max_record_bytes`` as Kafka would, so that both transports keep
    one contract.
    """

    def __init__(
        self,
        config: LocalTransportConfig,
        *,
        group: str | None = None,
        auto_offset_reset: str = "earliest",
        max_record_bytes: int = MAX_RECORD_BYTES,
    ) -> None:
        self._config = config
        self._max_record_bytes = max_record_bytes
        self._group = group
        self._reset = auto_offset_reset
        self._member = uuid.uuid4().hex
        self._db, _ = open_sqlite(
            config.path, kind=FORMAT, version=VERSION, schema=SCHEMA, error=TransportError,
            synchronous=config.synchronous,
        )  # fmt: skip
        self._allow_null_values()
        self._topics: list[str] = []
        self._topic_info: dict[str, tuple[int, bool]] = {}
        self._positions: dict[TopicPartition, int] = {}
        self._pending: list[Record] = []
        self._txn: _LocalTransaction | None = None
        self._round_robin = 0
        self._next_rebalance = 0.0
        self._closed = False

    def _allow_null_values(self) -> None:
        """Let a log made before null values (tombstones) were kept hold them: its ``records``
        table had ``value NOT NULL``; it is copied once into the current schema."""
        if not self._value_not_null():
            return
        with self._write():
            if self._value_not_null():  # another client may have converted it meanwhile
                self._db.execute(f"CREATE TABLE new_{RECORDS}")
                self._db.execute("INSERT INTO new_records SELECT * FROM records")
                self._db.execute("DROP TABLE records")
                self._db.execute("ALTER TABLE new_records RENAME TO records")
                log.info("%s: records may now hold null values", self._config.path)

    def _value_not_null(self) -> bool:
        columns = self._db.execute("PRAGMA table_info(records)").fetchall()
        return any(name == "value" and not_null for _, name, _, not_null, _, _ in columns)

    # -- topics ---------------------------------------------------------------------------

    def ensure_topics(self, specs: Mapping[str, TopicSpec]) -> None:
        with self._write():
            for name, spec in specs.items():
                self._create_topic(name, spec)

    def partitions_for(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for p in range(self._partition_count(topic))]

    def _partition_count(self, topic: str) -> int:
        return self._topic(topic)[0]

    def _topic(self, topic: str) -> tuple[int, bool]:
        """(partitions, compacted) of ``topic``, created with the defaults if it is missing."""
        if topic not in self._topic_info:
            query = "SELECT partitions, compacted FROM topics WHERE name=?"
            row = self._db.execute(query, (topic,)).fetchone()
            if row is None:
                with self._write():
                    self._create_topic(topic, TopicSpec())
                row = self._db.execute(query, (topic,)).fetchone()
            self._topic_info[topic] = (int(row[0]), bool(row[1]))
        return self._topic_info[topic]

    def _create_topic(self, name: str, spec: TopicSpec) -> None:
        partitions = spec.partitions or self._config.partitions
        created = self._db.execute(
            "INSERT OR IGNORE INTO topics VALUES (?, ?, ?)", (name, partitions, int(spec.compacted))
        ).rowcount
        if created:
            self._db.executemany(
                "INSERT INTO partitions VALUES (?, ?, 0)", [(name, p) for p in range(partitions)]
            )
            log.info("created topic %s with %d partitions", name, partitions)

    # -- consuming ------------------------------------------------------------------------

    def subscribe(self, topics: Sequence[str]) -> None:
        self._check_open()
        self._topics = list(topics)
        for topic in self._topics:
            self._partition_count(topic)
        self._positions.clear()
        self._next_rebalance = 0.0
        if self._group is None:
            for topic in self._topics:
                for tp in self.partitions_for(topic):
                    self._positions[tp] = self._start_offset(tp, None)

    def assignment(self) -> set[TopicPartition]:
        return set(self._positions)

    def poll(self, max_records: int, timeout_s: float) -> list[Envelope]:
        self._check_open()
        deadline = time.monotonic() + timeout_s
        delay = 0.002
        while True:
            if self._group is not None and time.monotonic() >= self._next_rebalance:
                self._rebalance()
            batch = self._fetch(max_records)
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0:
                return batch
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.05)

    def _fetch(self, max_records: int) -> list[Envelope]:
        owned = sorted(self._positions)
        if not owned:
            return []
        start = self._round_robin % len(owned)
        self._round_robin += 1
        batch: list[Envelope] = []
        for tp in owned[start:] + owned[:start]:
            if len(batch) >= max_records:
                break
            rows = self._db.execute(
                "SELECT offset, key, value, headers, ts FROM records"
                " WHERE topic=? AND partition=? AND offset>=? ORDER BY offset LIMIT ?",
                (tp.topic, tp.partition, self._positions[tp], max_records - len(batch)),
            ).fetchall()
            for offset, key, value, headers, ts in rows:
                batch.append(
                    Envelope(tp.topic, tp.partition, offset, key, value, _headers(headers), ts)
                )
            if rows:
                self._positions[tp] = rows[-1][0] + 1
        return batch

    def _start_offset(self, tp: TopicPartition, committed: int | None) -> int:
        if committed is not None:
            return committed
        if self._reset == "earliest":
            return 0
        row = self._db.execute(
            "SELECT next_offset FROM partitions WHERE topic=? AND partition=?", tp
        ).fetchone()
        return int(row[0])

    def _rebalance(self) -> None:
        """Renew membership, drop dead members, release and claim partitions toward a fair share."""
        now = time.time()
        timeout = self._config.session_timeout_s
        with self._write():
            self._db.execute(
                "INSERT OR REPLACE INTO members VALUES (?, ?, ?, ?, ?, ?)",
                (self._group, self._member, HOST, os.getpid(), json.dumps(self._topics), now),
            )
            members = self._db.execute(
                "SELECT member, host, pid, topics, heartbeat FROM members WHERE grp=?",
                (self._group,),
            ).fetchall()
            live: list[tuple[str, list[str]]] = []
            for member, host, pid, topics, heartbeat in members:
                gone = heartbeat < now - timeout or (host == HOST and not _alive(pid))
                if gone and member != self._member:
                    self._db.execute(
                        "DELETE FROM members WHERE grp=? AND member=?", (self._group, member)
                    )
                    self._db.execute(
                        "DELETE FROM owners WHERE grp=? AND member=?", (self._group, member)
                    )
                else:
                    live.append((member, json.loads(topics)))
            target = self._fair_share(sorted(live))
            owners = dict(
                (TopicPartition(t, p), m)
                for t, p, m in self._db.execute(
                    "SELECT topic, partition, member FROM owners WHERE grp=?", (self._group,)
                )
            )
            for tp, member in owners.items():
                if member == self._member and tp not in target:
                    self._db.execute(
                        "DELETE FROM owners WHERE grp=? AND topic=? AND partition=?",
                        (self._group, *tp),
                    )
            claimable = [tp for tp in target if owners.get(tp, self._member) == self._member]
            self._db.executemany(
                "INSERT OR IGNORE INTO owners VALUES (?, ?, ?, ?)",
                [(self._group, *tp, self._member) for tp in claimable],
            )
        self._assign(set(claimable))
        interval = min(1.0, timeout / 5)
        self._next_rebalance = time.monotonic() + (interval if claimable else min(interval, 0.2))

    def _fair_share(self, live: list[tuple[str, list[str]]]) -> set[TopicPartition]:
        share: set[TopicPartition] = set()
        for topic in self._topics:
            subscribers = [member for member, topics in live if topic in topics]
            mine = subscribers.index(self._member)
            share.update(
                tp for tp in self.partitions_for(topic) if tp.partition % len(subscribers) == mine
            )
        return share

    def _assign(self, owned: set[TopicPartition]) -> None:
        for tp in set(self._positions) - owned:
            del self._positions[tp]
        new = owned - set(self._positions)
        if new:
            committed = self.committed(new)
            for tp in new:
                self._positions[tp] = self._start_offset(tp, committed[tp])
            log.info("assigned %s", ", ".join(str(tp) for tp in sorted(new)))

    def committed(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        found: dict[TopicPartition, int | None] = {}
        for tp in partitions:
            row = self._db.execute(
                "SELECT offset FROM offsets WHERE grp=? AND topic=? AND partition=?",
                (self._group, *tp),
            ).fetchone()
            found[tp] = None if row is None else int(row[0])
        return found

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._check_open()
        with self._write():
            self._commit_offsets(offsets)

    def _commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not offsets:
            return
        if self._group is None:
            raise TransportError("cannot commit offsets without a consumer group")
        for tp, offset in offsets.items():
            owner = self._db.execute(
                "SELECT member FROM owners WHERE grp=? AND topic=? AND partition=?",
                (self._group, *tp),
            ).fetchone()
            if owner is None or owner[0] != self._member:
                raise FencedError(f"{tp} is no longer owned by this consumer of {self._group}")
            self._db.execute(
                "INSERT OR REPLACE INTO offsets VALUES (?, ?, ?, ?)", (self._group, *tp, offset)
            )

    # -- producing ------------------------------------------------------------------------

    def produce(self, record: Record) -> None:
        self._check_open()
        check_size(record, self._max_record_bytes)
        self._pending.append(record)

    def flush(self, timeout_s: float | None = None) -> None:
        if not self._pending:
            return
        self._write_records(self._pending, {})
        self._pending = []

    def _write_records(
        self, records: Sequence[Record], offsets: Mapping[TopicPartition, int]
    ) -> None:
        """Append ``records`` and commit ``offsets`` in one SQLite transaction."""
        by_partition: dict[TopicPartition, list[Record]] = {}
        for record in records:  # resolves (and creates) topics before the write lock is taken
            tp = TopicPartition(record.topic, self._partition_of(record))
            by_partition.setdefault(tp, []).append(record)
        now_ms = time.time_ns() // 1_000_000
        with self._write():
            self._commit_offsets(offsets)
            for tp, batch in by_partition.items():
                row = self._db.execute(
                    "UPDATE partitions SET next_offset = next_offset + ?"
                    " WHERE topic=? AND partition=? RETURNING next_offset - ?",
                    (len(batch), *tp, len(batch)),
                ).fetchone()
                if row is None:  # deleted from the file behind this client's back
                    raise TransportError(f"{self._config.path}: partition {tp} is gone")
                first = row[0]
                self._db.executemany(
                    "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (*tp, first + i, r.key, r.value, _stored_headers(r.headers), now_ms)
                        for i, r in enumerate(batch)
                    ],
                )
                if self._topic(tp.topic)[1]:
                    self._compact(tp, batch, first)

    def _compact(self, tp: TopicPartition, batch: list[Record], first: int) -> None:
        """Keep only the newest record of each key on a compacted topic."""
        latest = {r.key: first + i for i, r in enumerate(batch) if r.key is not None}
        self._db.executemany(
            "DELETE FROM records WHERE topic=? AND partition=? AND key=? AND offset<?",
            [(*tp, key, offset) for key, offset in latest.items()],
        )

    def _partition_of(self, record: Record) -> int:
        count = self._partition_count(record.topic)
        if record.key is None:
            self._round_robin += 1
            return self._round_robin % count
        return zlib.crc32(record.key) % count

    # -- transactions ---------------------------------------------------------------------

    def _begin(self) -> Transaction:
        self._check_open()
        if self._txn is not None:
            raise TransportError("a transaction is already open")
        self._txn = _LocalTransaction(self._max_record_bytes)
        return self._txn

    def _commit_transaction(self) -> None:
        txn, self._txn = self._txn, None
        assert txn is not None
        self._write_records(txn.records, txn.offsets)

    def _abort_transaction(self) -> None:
        self._txn = None
        if self._group is not None and self._positions:
            committed = self.committed(self._positions)
            for tp, offset in committed.items():
                self._positions[tp] = self._start_offset(tp, offset)

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
            if self._group is not None:
                with self._write():
                    self._db.execute(
                        "DELETE FROM owners WHERE grp=? AND member=?", (self._group, self._member)
                    )
                    self._db.execute(
                        "DELETE FROM members WHERE grp=? AND member=?", (self._group, self._member)
                    )
        finally:
            self._closed = True
            self._db.close()

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError("transport is closed")

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction; a locked or broken file is a `TransportError`."""
        try:
            with write_transaction(self._db):
                yield
        except sqlite3.OperationalError as error:
            raise TransportError(f"{self._config.path}: {error}") from None


def _stored_headers(headers: Headers) -> str | None:
    return json.dumps([[key, value.hex()] for key, value in headers]) if headers else None


def _headers(stored: str | None) -> Headers:
    if not stored:
        return ()
    return tuple((key, bytes.fromhex(value)) for key, value in json.loads(stored))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
