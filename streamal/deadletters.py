"""Dead letters: a record that could not be processed, produced on ``dead-letter`` with why."""

from __future__ import annotations

from streamal.messages import DeadLetter, encode
from streamal.transport import Envelope, Record, record_size

MAX_KEY_BYTES = 2048  # a sample id of 512 characters in UTF-8


def dead_letter(envelope: Envelope, reason: str, topic: str, max_record_bytes: int) -> Record:
    """The record that keeps ``envelope`` on ``topic`` with ``reason``, within
    ``max_record_bytes`` by construction: the original is cut to fit (marked ``truncated``), and
    a key over `MAX_KEY_BYTES` is left off (the letter then goes to any partition).

    >>> big = Envelope("samples", 0, 7, b"k", b"x" * 2_000_000, (), 0)
    >>> record = dead_letter(big, "record too large", "dead-letter", 1 << 20)
    >>> record_size(record) <= 1 << 20, record.key
    (True, b'k')
    """
    key = envelope.key if envelope.key is None or len(envelope.key) <= MAX_KEY_BYTES else None
    room = max_record_bytes - record_size(Record(topic, b"", key=key))
    letter = DeadLetter.of(
        envelope.value, reason, envelope.topic, envelope.partition, envelope.offset, room
    )
    return Record(topic, encode(letter), key=key)
