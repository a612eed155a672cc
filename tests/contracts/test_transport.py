"""The transport contract, run against the embedded SQLite log and a real Kafka broker."""

from __future__ import annotations

import json
import multiprocessing
import time
from collections import Counter
from pathlib import Path

import pytest

from streamal.config import Settings
from streamal.errors import TransportError
from streamal.transport import Envelope, Record, TopicPartition, next_offsets, record_size
from tests.conftest import TransportFactory, unique
from tests.contracts import group_worker
from tests.helpers import drain, read_quiet


def read_committed(factory: TransportFactory, topic: str) -> list[Envelope]:
    """Everything a read_committed reader without a group sees on ``topic``."""
    reader = factory()
    try:
        return read_quiet(reader, topic, quiet_s=2.0)
    finally:
        reader.close()


def produce(
    factory: TransportFactory, topic: str, values: list[tuple[bytes, bytes | None]]
) -> None:
    producer = factory()
    for key, value in values:
        producer.produce(Record(topic, value, key=key))
    producer.flush()
    producer.close()


def test_order_within_a_partition(transport_factory: TransportFactory, topic_factory) -> None:
    topic = topic_factory()
    produce(transport_factory, topic, [(f"k{i % 3}".encode(), str(i).encode()) for i in range(90)])
    consumer = transport_factory(group=unique("g"))
    consumer.subscribe([topic])
    got = drain(consumer, 90)
    by_key: dict[bytes | None, list[int]] = {}
    by_partition: dict[int, list[int]] = {}
    for envelope in got:
        by_key.setdefault(envelope.key, []).append(int(envelope.value))
        by_partition.setdefault(envelope.partition, []).append(envelope.offset)
    assert {k: sorted(v) == v for k, v in by_key.items()} == {b"k0": True, b"k1": True, b"k2": True}
    assert all(offsets == sorted(offsets) for offsets in by_partition.values())
    assert {len({e.partition for e in got if e.key == k}) for k in by_key} == {1}


def test_a_null_value_round_trips_as_none(
    transport_factory: TransportFactory, topic_factory
) -> None:
    topic = topic_factory(partitions=1)
    produce(transport_factory, topic, [(b"a", b"1"), (b"gone", None), (b"b", b"")])
    consumer = transport_factory(group=unique("g"))
    consumer.subscribe([topic])
    got = drain(consumer, 3)
    assert [(e.key, e.value) for e in got] == [(b"a", b"1"), (b"gone", None), (b"b", b"")]


def test_commit_then_resume_after_restart(
    transport_factory: TransportFactory, topic_factory
) -> None:
    topic = topic_factory()
    produce(transport_factory, topic, [(f"k{i}".encode(), b"x") for i in range(40)])
    group = unique("g")
    first = transport_factory(group=group)
    first.subscribe([topic])
    got = drain(first, 40)
    done = got[:15]  # a prefix of each partition, since order within a partition holds
    first.commit(next_offsets(done))
    first.close()

    second = transport_factory(group=group)
    second.subscribe([topic])
    rest = drain(second, 25)
    assert {(e.partition, e.offset) for e in rest} == {(e.partition, e.offset) for e in got[15:]}
    committed = second.committed(next_offsets(done))
    assert committed == next_offsets(done)


def test_aborted_transaction_leaves_nothing(
    transport_factory: TransportFactory, topic_factory
) -> None:
    source, sink = topic_factory(), topic_factory()
    produce(transport_factory, source, [(f"k{i}".encode(), b"in") for i in range(12)])
    worker = transport_factory(group=unique("g"), transactional=True)
    worker.subscribe([source])
    batch = drain(worker, 12)
    partitions = [TopicPartition(source, p) for p in range(3)]

    with pytest.raises(RuntimeError, match="boom"), worker.transaction() as txn:
        for envelope in batch:
            txn.produce(Record(sink, b"out", key=envelope.key))
        txn.commit_offsets(next_offsets(batch))
        raise RuntimeError("boom")

    assert read_committed(transport_factory, sink) == []
    assert worker.committed(partitions) == dict.fromkeys(partitions)
    again = drain(worker, 12)  # the consumer rewound to the committed offsets
    assert sorted((e.partition, e.offset) for e in again) == sorted(
        (e.partition, e.offset) for e in batch
    )

    worker.produce_and_commit([Record(sink, b"out", key=e.key) for e in again], next_offsets(again))
    assert len(read_committed(transport_factory, sink)) == 12
    assert worker.committed(partitions) == {tp: o for tp, o in next_offsets(again).items()}


def test_a_record_over_the_limit_is_refused_and_one_at_the_limit_kept(
    cluster: Settings, transport_factory: TransportFactory, topic_factory
) -> None:
    limit = cluster.transport.max_record_bytes
    topic = topic_factory()
    fits = Record(topic, b"", key=b"k")
    fits = Record(topic, b"x" * (limit - record_size(fits)), key=b"k")
    over = Record(topic, fits.value + b"x", key=b"k")
    assert record_size(fits) == limit
    producer = transport_factory(group=unique("g"), transactional=True)
    with pytest.raises(TransportError, match=rf"over transport.max_record_bytes \({limit}\)"):
        producer.produce(over)
    with pytest.raises(TransportError, match="max_record_bytes"), producer.transaction() as txn:
        txn.produce(fits)
        txn.produce(over)
    producer.produce(fits)
    producer.flush()
    assert [e.value for e in read_committed(transport_factory, topic)] == [fits.value]


def test_poll_returns_within_its_timeout_on_an_empty_topic(
    transport_factory: TransportFactory, topic_factory
) -> None:
    consumer = transport_factory(group=unique("g"))
    consumer.subscribe([topic_factory()])
    consumer.poll(10, 1.0)  # the first poll may join the group
    for timeout in (0.0, 0.3):
        started = time.monotonic()
        assert consumer.poll(10, timeout) == []
        assert time.monotonic() - started < timeout + 2.0


def test_two_group_members_never_process_the_same_record(
    cluster: Settings, transport_factory: TransportFactory, topic_factory, tmp_path: Path
) -> None:
    source, sink = topic_factory(partitions=4), topic_factory()
    group = unique("g")
    context = multiprocessing.get_context("spawn")
    workers = []
    for name in ("a", "b"):
        settings = cluster
        if cluster.transport.kind == "kafka":  # one replica id each
            kafka = cluster.transport.kafka.model_copy(update={"replica_id": unique(name)})
            settings = cluster.model_copy(
                update={"transport": cluster.transport.model_copy(update={"kafka": kafka})}
            )
        report = str(tmp_path / f"{name}.json")
        process = context.Process(
            target=group_worker.run,
            args=(settings.model_dump_json(), group, (source, sink), report, 6.0),
        )
        process.start()
        workers.append((process, report))

    total, chunk, more = 0, 0, 20
    producer = transport_factory()
    deadline = time.monotonic() + 120
    while more:  # produce until both members polled (however long they take to start), then more
        for i in range(20):
            producer.produce(Record(source, b"x", key=f"{chunk}-{i}".encode()))
            total += 1
        producer.flush()
        time.sleep(0.1)
        chunk += 1
        if all(Path(f"{report}.started").exists() for _, report in workers):
            more -= 1
        assert time.monotonic() < deadline, "a member never polled a record"
    for process, _ in workers:
        process.join(timeout=120)
        assert process.exitcode == 0

    reports = [json.loads(Path(report).read_text()) for _, report in workers]
    polled = [{tuple(p) for p in r["polled"]} for r in reports]
    fenced = set().union(*({tuple(p) for p in r["fenced"]} for r in reports))
    assert all(polled), "both members should have had partitions"
    assert polled[0] & polled[1] <= fenced  # shared only where a rebalance fenced the batch
    outputs = Counter(tuple(json.loads(e.value)) for e in read_committed(transport_factory, sink))
    assert len(outputs) == total
    assert set(outputs.values()) == {1}
