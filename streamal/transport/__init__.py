"""Transports: one small interface (``Transport``), an embedded SQLite log and Kafka."""

from __future__ import annotations

import socket

from streamal.config import Settings, TopicsConfig
from streamal.transport.base import (
    Envelope,
    Record,
    TopicPartition,
    TopicSpec,
    Transaction,
    Transport,
    next_offsets,
    record_size,
)

__all__ = [
    "Envelope",
    "Record",
    "TopicPartition",
    "TopicSpec",
    "Transaction",
    "Transport",
    "next_offsets",
    "open_transport",
    "record_size",
    "topic_specs",
]


def open_transport(
    settings: Settings, *, group: str | None = None, transactional: bool = False
) -> Transport:
    """A transport of the configured kind.

    Parameters
    ----------
    group
        The consumer group; ``None`` reads every partition and commits nothing.
    transactional
        Kafka only: give the producer the transactional id ``<group>-<replica_id>`` (the replica
        id defaults to the hostname) so that ``transaction()`` works. The local transport is
        always transactional.
    """
    config = settings.transport
    if config.kind == "local":
        from streamal.transport.local import LocalTransport

        return LocalTransport(
            config.local,
            group=group,
            auto_offset_reset=config.auto_offset_reset,
            max_record_bytes=config.max_record_bytes,
        )
    from streamal.transport.kafka import KafkaTransport

    transactional_id = None
    if transactional:
        transactional_id = f"{group}-{config.kafka.replica_id or socket.gethostname()}"
    return KafkaTransport(
        config.kafka,
        group=group,
        transactional_id=transactional_id,
        auto_offset_reset=config.auto_offset_reset,
        max_record_bytes=config.max_record_bytes,
    )


def topic_specs(topics: TopicsConfig) -> dict[str, TopicSpec]:
    """How streamal's topics are created: ``models`` compacted, the rest plain."""
    specs = {name: TopicSpec() for name in topics.model_dump().values()}
    specs[topics.models] = TopicSpec(partitions=1, compacted=True)
    return specs
