"""The transport contract every implementation keeps (Kafka and the embedded log alike).

A transport is one client of a log of topics split into partitions:

- ``poll`` returns at most ``max_records`` envelopes within ``timeout_s``, in offset order within
  each partition, only from partitions this consumer owns in its group; it never blocks longer.
- ``produce`` buffers a record; ``flush`` makes everything produced so far durable and visible.
  A record whose `record_size` exceeds the transport's ``max_record_bytes`` is refused at once
  with a ``TransportError`` (Kafka's producer and broker would refuse it too).
- ``transaction()`` groups produced records and consumed offsets: on a clean exit both are
  committed atomically; on an exception neither is, and the consumer rewinds to its committed
  offsets so the same records are polled again.
- Offsets are Kafka's: the committed offset of a partition is the next one to read.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import NamedTuple, Self

from streamal.errors import TransportError

Headers = tuple[tuple[str, bytes], ...]

RECORD_OVERHEAD = 100  # Kafka's batch header (61 bytes) and a record's fields and varints
HEADER_OVERHEAD = 10  # the varints of one header


class TopicPartition(NamedTuple):
    """A partition of a topic."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]"


@dataclass(frozen=True, slots=True)
class Envelope:
    """A consumed record with its position in the log; ``value`` is ``None`` for a null value
    (a tombstone)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int

    @property
    def tp(self) -> TopicPartition:
        """The partition this record came from."""
        return TopicPartition(self.topic, self.partition)

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}] {self.offset}"


@dataclass(frozen=True, slots=True)
class Record:
    """A record to produce; records with the same key go to the same partition. A ``None``
    value is a null value (a tombstone: on a compacted topic it deletes its key)."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    headers: Headers = ()


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """How to create a topic that is missing; ``partitions=None`` takes the transport's default."""

    partitions: int | None = None
    compacted: bool = False


def record_size(record: Record) -> int:
    """The bytes ``record`` takes as a Kafka record batch of its own, rounded up.

    It bounds what Kafka's producer compares with ``max_request_size`` and the broker with
    ``message.max.bytes``, so a record within a limit by this count is within theirs.

    >>> record_size(Record("t", b"x" * 1000, key=b"k1", headers=(("h", b"v"),)))
    1114
    """
    headers = sum(HEADER_OVERHEAD + len(k.encode()) + len(v) for k, v in record.headers)
    return RECORD_OVERHEAD + len(record.key or b"") + len(record.value or b"") + headers


def check_size(record: Record, max_bytes: int) -> None:
    """Refuse ``record`` if it is larger than ``max_bytes`` (see `record_size`).

    Raises
    ------
    TransportError
        Naming the topic, the size and the limit.
    """
    if (size := record_size(record)) > max_bytes:
        raise TransportError(
            f"record for {record.topic} is {size} bytes, over transport.max_record_bytes"
            f" ({max_bytes})"
        )


def next_offsets(envelopes: Iterable[Envelope]) -> dict[TopicPartition, int]:
    """The offsets to commit after ``envelopes``: one past the last record of each partition.

    >>> e = [Envelope("s", 0, 7, None, b"", (), 0), Envelope("s", 0, 8, None, b"", (), 0)]
    >>> next_offsets(e)
    {TopicPartition(topic='s', partition=0): 9}
    """
    offsets: dict[TopicPartition, int] = {}
    for envelope in envelopes:
        tp = envelope.tp
        offsets[tp] = max(offsets.get(tp, 0), envelope.offset + 1)
    return offsets


class Transaction(ABC):
    """What may happen inside ``Transport.transaction()``."""

    @abstractmethod
    def produce(self, record: Record) -> None:
        """Add ``record`` to the transaction."""

    @abstractmethod
    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit these consumed offsets with the transaction."""


class Transport(ABC):
    """One client of the log: consumer (in a group or not) and producer at once."""

    @abstractmethod
    def ensure_topics(self, specs: Mapping[str, TopicSpec]) -> None:
        """Create the topics in ``specs`` that do not exist yet."""

    @abstractmethod
    def subscribe(self, topics: Sequence[str]) -> None:
        """Consume ``topics``; in a group, partitions are shared among its members.

        Without a group every partition is read, from start positions fixed before this
        returns (the reset policy), so a record produced afterwards is never skipped.
        """

    @abstractmethod
    def poll(self, max_records: int, timeout_s: float) -> list[Envelope]:
        """Up to ``max_records`` records, returning within ``timeout_s`` (empty if none came)."""

    @abstractmethod
    def produce(self, record: Record) -> None:
        """Buffer ``record``; ``flush`` makes it durable and visible."""

    @abstractmethod
    def flush(self, timeout_s: float | None = None) -> None:
        """Make every produced record durable and visible, or raise ``TransportError``."""

    @abstractmethod
    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit consumed offsets for this group, outside any transaction."""

    @abstractmethod
    def committed(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        """This group's committed offsets (``None`` where nothing is committed)."""

    @abstractmethod
    def assignment(self) -> set[TopicPartition]:
        """The partitions this consumer owns now."""

    @abstractmethod
    def partitions_for(self, topic: str) -> list[TopicPartition]:
        """Every partition of ``topic``."""

    @abstractmethod
    def _begin(self) -> Transaction:
        """Start a transaction."""

    @abstractmethod
    def _commit_transaction(self) -> None:
        """Commit the open transaction atomically."""

    @abstractmethod
    def _abort_transaction(self) -> None:
        """Drop the open transaction and rewind consumption to the committed offsets."""

    @abstractmethod
    def close(self) -> None:
        """Release partitions and connections; produced but unflushed records are flushed."""

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Produce records and commit offsets atomically; an exception inside aborts both."""
        txn = self._begin()
        try:
            yield txn
            self._commit_transaction()
        except BaseException:
            self._abort_transaction()
            raise

    def produce_and_commit(
        self, records: Sequence[Record], offsets: Mapping[TopicPartition, int]
    ) -> None:
        """Produce ``records`` and commit ``offsets`` in one atomic step."""
        with self.transaction() as txn:
            for record in records:
                txn.produce(record)
            txn.commit_offsets(offsets)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
