"""Apache Kafka through kafka-python: a consumer group with manual commits (read_committed)
and an idempotent producer, transactional when given a ``transactional_id``.

Consumed offsets join the producer's transaction with ``send_offsets_to_transaction`` and the
consumer's group metadata (KIP-447), so a replica that lost its partitions in a rebalance cannot
commit over the new owner: the broker fences it and the transaction aborts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, OffsetAndMetadata
from kafka import TopicPartition as KafkaTopicPartition
from kafka.errors import (
    IllegalSaslStateError,
    KafkaError,
    KafkaTimeoutError,
    SaslAuthenticationFailedError,
    TopicAlreadyExistsError,
    UnsupportedSaslMechanismError,
)

from streamal.config import MAX_RECORD_BYTES, KafkaTransportConfig
from streamal.errors import FencedError, TransportError
from streamal.transport.base import (
    Envelope,
    Record,
    TopicPartition,
    TopicSpec,
    Transaction,
    Transport,
    check_size,
)

log = logging.getLogger(__name__)

_FENCING_ERRORS = (
    "ProducerFencedError",
    "CommitFailedError",
    "IllegalGenerationError",
    "UnknownMemberIdError",
    "FencedInstanceIdError",
    "RebalanceInProgressError",
)
_AUTHENTICATION_ERRORS = (
    IllegalSaslStateError,  # e.g. SASL against a listener without it
    SaslAuthenticationFailedError,
    UnsupportedSaslMechanismError,
)


class _AuthenticationFailures(logging.Handler):
    """Notes when kafka-python logs a failed authentication: it raises only "Unable to
    bootstrap" for a broker that refused the client, and logs the reason."""

    def __init__(self) -> None:
        super().__init__()
        self.last: tuple[float, str] | None = None  # (monotonic time, error name)

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, _AUTHENTICATION_ERRORS):
                self.last = (time.monotonic(), type(arg).__name__)

    def since(self, started: float) -> str | None:
        """The name of the last authentication error logged after ``started``."""
        last = self.last
        return last[1] if last is not None and last[0] >= started else None


_authentication_failures = _AuthenticationFailures()
logging.getLogger("kafka").addHandler(_authentication_failures)


def client_settings(config: KafkaTransportConfig) -> dict[str, Any]:
    """kafka-python settings shared by consumer, producer and admin client.

    ``api_version`` is left unset on purpose: kafka-python then negotiates protocol versions
    with the broker, where a fixed old value would use requests that Kafka 4 removed.
    """
    settings: dict[str, Any] = {
        "bootstrap_servers": config.bootstrap_servers,
        "client_id": config.client_id,
        "security_protocol": config.security_protocol,
        "request_timeout_ms": config.request_timeout_ms,
        "bootstrap_timeout_ms": config.connect_timeout_ms,
    }
    if config.sasl_mechanism:
        settings["sasl_mechanism"] = config.sasl_mechanism
        settings["sasl_plain_username"] = config.sasl_username
        if config.sasl_password is not None:
            settings["sasl_plain_password"] = config.sasl_password.get_secret_value()
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        value = getattr(config, name)
        if value is not None:
            settings[name] = str(value)
    if config.ssl_password is not None:
        settings["ssl_password"] = config.ssl_password.get_secret_value()
    return settings


def heartbeat_interval_ms(session_timeout_ms: int) -> int:
    """The consumer's heartbeat: kafka-python's 3 s, or a third of the session where that is
    shorter (Kafka's advice), so one late heartbeat does not end the session and start a
    rebalance.

    >>> heartbeat_interval_ms(45_000), heartbeat_interval_ms(6_000)
    (3000, 2000)
    """
    return min(3000, session_timeout_ms // 3)


class _KafkaTransaction(Transaction):
    def __init__(self, transport: KafkaTransport) -> None:
        self._transport = transport
        self.offsets: dict[TopicPartition, int] = {}

    def produce(self, record: Record) -> None:
        self._transport._send(record)

    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.offsets.update(offsets)


class KafkaTransport(Transport):
    """A Kafka client; ``group=None`` reads every partition without committing.

    Records over ``max_record_bytes`` (the producer's ``max_request_size``) are refused before
    they are sent.
    """

    def __init__(
        self,
        config: KafkaTransportConfig,
        *,
        group: str | None = None,
        transactional_id: str | None = None,
        auto_offset_reset: str = "earliest",
        max_record_bytes: int = MAX_RECORD_BYTES,
    ) -> None:
        self._config = config
        self._max_record_bytes = max_record_bytes
        self._settings = client_settings(config)
        self._wait_ms = config.request_timeout_ms  # the longest a call waits for the broker
        self._group = group
        self._transactional_id = transactional_id
        self._reset = auto_offset_reset
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None
        self._sent: list[Any] = []  # kafka-python FutureRecordMetadata
        self._txn: _KafkaTransaction | None = None
        self._implicit_txn = False
        self._rejoin = False  # the group forgot this member: join again as a new one
        self._rewind_owed = False  # an abort's rewind that has not happened yet

    # -- topics ---------------------------------------------------------------------------

    def ensure_topics(self, specs: Mapping[str, TopicSpec]) -> None:
        if not self._config.create_topics or not specs:
            return
        with self._errors("creating topics"):
            admin = KafkaAdminClient(**self._settings)
            try:
                existing = set(admin.list_topics())
                missing = {
                    name: {
                        "num_partitions": spec.partitions or self._config.partitions,
                        "replication_factor": self._config.replication_factor,
                        "configs": {"cleanup.policy": "compact"} if spec.compacted else {},
                    }
                    for name, spec in specs.items()
                    if name not in existing
                }
                if missing:
                    try:
                        admin.create_topics(missing, wait_for_metadata=True)
                        log.info("created topics %s", ", ".join(sorted(missing)))
                    except TopicAlreadyExistsError:
                        pass  # another replica created them first
            finally:
                admin.close()

    def partitions_for(self, topic: str) -> list[TopicPartition]:
        """Every partition of ``topic``; waits a little for a topic just created to show."""
        consumer = self._consumer_client()
        deadline = time.monotonic() + self._config.request_timeout_ms / 1000
        while not (found := consumer.partitions_for_topic(topic)):
            if time.monotonic() > deadline:
                raise TransportError(f"topic {topic} does not exist")
            time.sleep(0.2)
        return [TopicPartition(topic, p) for p in sorted(found)]

    # -- consuming ------------------------------------------------------------------------

    def _consumer_client(self) -> KafkaConsumer:
        if self._consumer is None:
            with self._errors("connecting the consumer"):
                self._consumer = KafkaConsumer(
                    group_id=self._group,
                    enable_auto_commit=False,
                    isolation_level="read_committed",
                    auto_offset_reset=self._reset,
                    session_timeout_ms=self._config.session_timeout_ms,
                    heartbeat_interval_ms=heartbeat_interval_ms(self._config.session_timeout_ms),
                    **self._settings,
                )
        return self._consumer

    def subscribe(self, topics: Sequence[str]) -> None:
        self.ensure_topics({topic: TopicSpec() for topic in topics})
        if self._transactional_id:
            # fence a predecessor with our transactional id and abort what it left open now:
            # its pending offsets would otherwise hold our committed-offset fetch until its
            # transaction times out
            self._producer_client()
        consumer = self._consumer_client()
        with self._errors("subscribing"):
            if self._group is None:
                partitions = [
                    KafkaTopicPartition(*tp) for t in topics for tp in self.partitions_for(t)
                ]
                consumer.assign(partitions)
                for tp in partitions:  # fix the start now, as the local transport does
                    consumer.position(tp, timeout_ms=self._config.request_timeout_ms)
            else:  # known to the consumer's metadata first, or the first assignment misses them
                for topic in topics:
                    self.partitions_for(topic)
                consumer.subscribe(list(topics))

    def assignment(self) -> set[TopicPartition]:
        return {
            TopicPartition(tp.topic, tp.partition) for tp in self._consumer_client().assignment()
        }

    def poll(self, max_records: int, timeout_s: float) -> list[Envelope]:
        self._settle_rewind()
        with self._errors("polling"):
            fetched = self._consumer_client().poll(
                timeout_ms=int(timeout_s * 1000), max_records=max_records
            )
        return [
            Envelope(
                tp.topic,
                tp.partition,
                r.offset,
                r.key,
                r.value,
                tuple((k, v) for k, v in (r.headers or ())),
                r.timestamp,
            )
            for tp, records in fetched.items()
            for r in records
        ]

    def committed(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        consumer = self._consumer_client()
        with self._errors("reading committed offsets"):
            return {
                tp: consumer.committed(KafkaTopicPartition(*tp), timeout_ms=self._wait_ms)
                for tp in partitions
            }

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        with self._errors("committing offsets"):
            self._consumer_client().commit(_kafka_offsets(offsets))

    def _rewind(self) -> None:
        """Seek every assigned partition back to its committed offset (or the reset policy)."""
        consumer = self._consumer_client()
        assigned = list(consumer.assignment())
        if not assigned:
            return
        for tp in assigned:
            offset = consumer.committed(tp, timeout_ms=self._wait_ms)
            if offset is not None:
                consumer.seek(tp, offset)
            elif self._reset == "earliest":
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek_to_end(tp)

    # -- producing ------------------------------------------------------------------------

    def _producer_client(self) -> KafkaProducer:
        if self._producer is None:
            with self._errors("connecting the producer"):
                producer = KafkaProducer(
                    acks="all",
                    enable_idempotence=True,
                    transactional_id=self._transactional_id,
                    transaction_timeout_ms=self._config.transaction_timeout_ms,
                    linger_ms=self._config.linger_ms,
                    max_request_size=self._max_record_bytes,
                    max_block_ms=self._wait_ms,
                    **self._settings,
                )
                if self._transactional_id:
                    try:  # a producer whose transactions failed to start is not kept
                        producer.init_transactions()
                    except KafkaError:
                        _close_broken(producer)
                        raise
                self._producer = producer
        return self._producer

    def _send(self, record: Record) -> None:
        check_size(record, self._max_record_bytes)
        with self._errors("producing"):
            self._sent.append(
                self._producer_client().send(
                    record.topic, value=record.value, key=record.key, headers=list(record.headers)
                )
            )

    def produce(self, record: Record) -> None:
        if self._txn is not None:
            raise TransportError("produce inside a transaction goes through the transaction")
        if self._transactional_id and not self._implicit_txn:
            self._producer_client().begin_transaction()
            self._implicit_txn = True
        self._send(record)

    def flush(self, timeout_s: float | None = None) -> None:
        if self._producer is None:
            return
        with self._errors("flushing"):
            self._producer.flush(timeout=timeout_s)
            self._check_sent()
            if self._implicit_txn:
                self._await(self._producer._transaction_manager.begin_commit(), self._producer)
                self._implicit_txn = False

    def _check_sent(self) -> None:
        """Fail loudly if any record of this batch was not written."""
        sent, self._sent = self._sent, []
        for future in sent:
            future.get(timeout=0)

    # -- transactions ---------------------------------------------------------------------

    def _begin(self) -> Transaction:
        if not self._transactional_id:
            raise TransportError("transactions need a transactional_id")
        if self._txn is not None:
            raise TransportError("a transaction is already open")
        self.flush()
        with self._errors("beginning a transaction"):
            self._producer_client().begin_transaction()
        self._txn = _KafkaTransaction(self)
        return self._txn

    def _commit_transaction(self) -> None:
        txn = self._txn
        assert txn is not None and self._producer is not None
        with self._errors("committing a transaction"):
            try:
                producer = self._producer
                manager = producer._transaction_manager
                if txn.offsets:
                    offsets = _kafka_offsets(txn.offsets)
                    metadata = self._consumer_client().group_metadata()
                    self._await(manager.send_offsets_to_transaction(offsets, metadata), producer)
                # the commit flushes the transaction's records; it fails if any send failed
                self._await(manager.begin_commit(), producer)
            except KafkaError as error:
                self._rejoin = "UnknownMemberId" in str(error)
                raise
            self._check_sent()
        self._txn = None

    def _abort_transaction(self) -> None:
        self._txn = None
        self._sent = []
        # the records polled since the last commit come again, whatever happens below
        self._rewind_owed = self._consumer is not None and self._group is not None
        try:
            self._abort_produced()
        finally:
            self._settle_rewind()

    def _settle_rewind(self) -> None:
        """Rewind to the committed offsets if an abort still owes it: a rewind that failed
        (the broker did not answer) is tried again before the next poll, which would otherwise
        go on after the aborted records."""
        if not self._rewind_owed:
            return
        assert self._consumer is not None
        with self._errors("rewinding to committed offsets"):
            if self._rejoin:
                self._join_again(self._consumer)
            else:
                self._rewind()
        self._rewind_owed = False

    def _abort_produced(self) -> None:
        """Abort the producer's transaction, or replace a producer that failed fatally."""
        producer = self._producer
        if producer is None:
            return
        try:
            self._await(producer._transaction_manager.begin_abort(), producer)
        except KafkaError as error:
            log.warning("abort failed (%s); the producer will be recreated", error)
            self._producer = None
            _close_broken(producer)
            if self._transactional_id:  # its successor fences it and aborts its transaction now,
                self._producer_client()  # whose pending offsets would hold the rewind

    def _await(self, result: Any, producer: KafkaProducer) -> None:
        """Wait for ``producer``'s transactional request (a ``TransactionalRequestResult``) at
        most ``request_timeout_ms``; raise its error, or KafkaTimeoutError.

        kafka-python's own ``commit_transaction``, ``abort_transaction`` and
        ``send_offsets_to_transaction`` wait for ever (the Java client bounds them since
        KAFKA-7763): a batch that never completed while the producer bumped its epoch held a
        serve replica in its commit for good. A timed-out commit aborts, and a timed-out abort
        replaces the producer, whose successor fences it.
        """
        producer._sender.wakeup()
        if not result.wait(timeout_ms=self._wait_ms):
            raise KafkaTimeoutError(f"no answer from the transaction in {self._wait_ms} ms")

    def _join_again(self, consumer: KafkaConsumer) -> None:
        """Leave and subscribe anew: the next poll joins as a new member, from the committed
        offsets. The consumer would otherwise keep a membership the broker no longer knows
        (seen when its heartbeats stalled) and every commit would fail the same way."""
        self._rejoin = False
        topics = sorted(consumer.subscription() or ())
        log.warning("the group no longer knows this member; joining again")
        consumer.unsubscribe()
        consumer.subscribe(topics)

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn kafka-python's errors into TransportError (FencedError when we were fenced)."""
        started = time.monotonic()
        try:
            yield
        except KafkaError as error:
            name = type(error).__name__
            if name == "NoBrokersAvailable" or "Unable to bootstrap" in str(error):
                servers = ",".join(self._config.bootstrap_servers)
                if refused := _authentication_failures.since(started):
                    mechanism = self._config.sasl_mechanism or "(no mechanism)"
                    raise TransportError(
                        f"kafka: SASL {mechanism} authentication failed at {servers}: "
                        f"{refused} ({doing})"
                    ) from error
                raise TransportError(
                    f"kafka: cannot reach a broker at {servers} ({doing})"
                ) from error
            kind = FencedError if name in _FENCING_ERRORS else TransportError
            raise kind(f"kafka: {doing} failed: {name}: {error}") from error

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        try:
            if self._producer is not None:
                self.flush()
        finally:
            if self._producer is not None:
                self._producer.close(timeout=10)
                self._producer = None
            if self._consumer is not None:
                self._consumer.close(autocommit=False)
                self._consumer = None


def _close_broken(producer: KafkaProducer) -> None:
    """Close a producer whose transaction failed fatally, dropping what it still holds.

    kafka-python's ``close`` flushes first, and the batches of such a transaction may never
    complete (seen while it bumps its epoch after a refused send): ``close`` then raises and
    leaves the producer's I/O thread running. Force-closing that thread first fails the batches,
    as ``close`` itself does once a flush is over; they belong to an aborted transaction anyway.
    """
    producer._sender.force_close()
    try:
        producer.close(timeout=5)
    except KafkaError as error:
        log.warning("the failed producer did not close cleanly: %s", error)


def _kafka_offsets(offsets: Mapping[TopicPartition, int]) -> dict[KafkaTopicPartition, Any]:
    return {
        KafkaTopicPartition(*tp): OffsetAndMetadata(offset, "", -1)
        for tp, offset in offsets.items()
    }
