"""The messages on streamal's topics and their JSON encoding.

Every message is UTF-8 JSON with ``"v": 1``; the record key is the sample id (the model name on
``models``). Timestamps are ISO 8601 in UTC on output and accept epoch seconds on input.
"""

from __future__ import annotations

import base64
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    Strict,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from streamal.errors import MessageError
from streamal.validation import one_line

FLOAT32_MAX = float(np.finfo(np.float32).max)
INT64_MAX = 2**63 - 1  # what SQLite (the label store) and Kafka's int64 fields hold
CONTROL = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})  # controls, invisible formatting, line breaks
TOMBSTONE = "null value (tombstone)"


def _printable_id(value: str) -> str:
    if any(unicodedata.category(c) in CONTROL for c in value):
        raise PydanticCustomError("id_characters", "must not contain control characters")
    return value


def _float32(value: float) -> float:
    if abs(value) > FLOAT32_MAX:
        raise PydanticCustomError("finite_float32", "must be a finite float32 number")
    return value


SampleId = Annotated[
    str, StringConstraints(min_length=1, max_length=512), AfterValidator(_printable_id)
]
Probability = Annotated[float, Field(ge=0, le=1)]
MAX_ERROR_CHARS = 1000  # of a dead letter's reason
Feature = Annotated[float, Strict(), AfterValidator(_float32)]
"""A feature value: a JSON number (not a string or a boolean) finite in float32, the dtype the
model reads."""


def _as_utc(value: datetime) -> datetime:
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-05:00
        raise PydanticCustomError(
            "utc_range", "must fall within the years 1 to 9999 in UTC"
        ) from None


Timestamp = Annotated[datetime, AfterValidator(_as_utc)]


def now() -> datetime:
    """The current time in UTC, as messages carry it."""
    return datetime.now(UTC)


class Message(BaseModel):
    """Base of every message: version 1, frozen, unknown fields and NaN/inf rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    v: Literal[1] = 1


class Sample(Message):
    """An unlabeled sample on ``samples``: ``features``, a ``payload`` for a featurizer, or both."""

    id: SampleId
    features: list[Feature] | None = None
    payload: JsonValue = None
    meta: dict[str, JsonValue] | None = None
    ts: Timestamp | None = Field(None, description="event time, for end-to-end latency")

    @model_validator(mode="after")
    def _has_content(self) -> Sample:
        if self.features is None and self.payload is None:
            raise ValueError("a sample needs features or a payload")
        return self


class LabelProbability(BaseModel):
    """One of the model's top guesses."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    label: str
    p: Probability


RequestReason = Literal["uncertain", "audit", "explore", "retracted"]


class LabelRequest(Message):
    """A sample routed to human annotators on ``label-requests``, with its ``features`` and
    ``payload`` as it came: what the trainer learns from once it is labeled."""

    id: SampleId
    features: list[Feature] | None = None
    payload: JsonValue = None
    meta: dict[str, JsonValue] | None = None
    prediction: list[LabelProbability] = Field(min_length=1)
    utility: float
    reason: RequestReason
    model_version: int = Field(ge=0, le=INT64_MAX, description="0 before the first model")
    requested_at: Timestamp


class AutoLabel(Message):
    """A confident prediction published as a label on ``auto-labels``."""

    id: SampleId
    label: str
    confidence: Probability
    model_version: int = Field(ge=0, le=INT64_MAX)
    labeled_at: Timestamp


class Retraction(Message):
    """An auto-label withdrawn on ``auto-label-retractions`` (key: the sample id): audits asked
    since it was issued turned wrong. A consumer drops the auto-label ``label`` of ``id`` (or
    treats the sample as unlabeled); a human label of it may still come."""

    id: SampleId
    label: str
    model_version: int = Field(ge=0, le=INT64_MAX)
    labeled_at: Timestamp
    retracted_at: Timestamp


class OracleLabel(Message):
    """A human's answer on ``labels``; may come late, twice, or for an unknown id."""

    id: SampleId
    label: Annotated[str, StringConstraints(min_length=1)]
    annotator: str | None = None
    labeled_at: Timestamp


class ExploreBoost(BaseModel):
    """What replicas do after a drift: ask a share ``share`` of the budget at random for the
    next ``samples`` samples, and retract the auto-labels issued since ``drift_since`` (when
    given). ``id`` names the boost, so a replica that reads
    the same announcement again does not start it again; a replica ignores a boost that
    ``started_at`` before the replica itself started (it is history, not news to it).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    share: Probability
    samples: int = Field(ge=1, le=INT64_MAX)
    id: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\n]*$")]
    started_at: Timestamp
    drift_since: Timestamp | None = None
    """When the drift's new concept began to be served, as the trainer estimates it: replicas
    retract the auto-labels they issued since (None: no estimate)."""


class ModelAnnouncement(Message):
    """A new model version on the compacted ``models`` topic (key: the model name).

    ``thresholds`` belong to the model and are stored with it. ``explore_boost``, a drift's
    exploration boost, is an event: it travels in the announcements from the one that starts
    it on (a compacted topic may keep only the newest), never in the stored model, so a
    replica that starts later from the store does not rerun it.
    """

    version: int = Field(ge=1)
    uri: str
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    classes: list[str] = Field(min_length=2)
    thresholds: dict[str, float] = {}
    metrics: dict[str, float] = {}
    explore_boost: ExploreBoost | None = None
    created_at: Timestamp


class DeadLetter(Message):
    """A record that could not be processed, kept with the reason on ``dead-letter``.

    The original is cut when the whole letter would not fit in a record: ``truncated`` says so
    and ``original_bytes`` gives the size of the whole value.
    """

    original: str = Field(description="the original record value (its start if truncated), base64")
    truncated: bool = Field(False, description="only the start of the original is kept")
    original_bytes: int | None = Field(None, ge=0, description="size of the original value")
    error: Annotated[str, StringConstraints(pattern=r"^[^\n]*$")]
    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    failed_at: Timestamp

    @classmethod
    def of(
        cls,
        value: bytes | None,
        error: str,
        topic: str,
        partition: int,
        offset: int,
        max_bytes: int | None = None,
    ) -> DeadLetter:
        """Wrap a failed record (``None``, a tombstone, as empty); the error is cut to its first
        line and `MAX_ERROR_CHARS`, the original to what keeps ``encode(letter)`` within
        ``max_bytes``.

        >>> letter = DeadLetter.of(b"x" * 1000, "too big", "samples", 0, 7, max_bytes=300)
        >>> len(encode(letter)) <= 300, letter.truncated, letter.original_bytes
        (True, True, 1000)
        >>> DeadLetter.of(b"{", "bad", "samples", 0, 8, max_bytes=300).truncated
        False
        """
        if value is None and not error.startswith(TOMBSTONE):
            error = f"{TOMBSTONE}: {error}"
        value = value or b""
        first_line = error.splitlines()[0] if error else "unknown error"
        letter = cls(
            original="", truncated=True, original_bytes=len(value),
            error=first_line[:MAX_ERROR_CHARS], topic=topic, partition=partition, offset=offset,
            failed_at=now(),
        )  # fmt: skip
        room = None if max_bytes is None else max_bytes - len(encode(letter))
        whole = base64.b64encode(value).decode("ascii")
        if room is None or len(whole) <= room:
            return letter.model_copy(update={"original": whole, "truncated": False})
        kept = value[: max(room, 0) // 4 * 3]  # 3 bytes per 4 base64 characters
        return letter.model_copy(update={"original": base64.b64encode(kept).decode("ascii")})


MESSAGES: dict[str, type[Message]] = {
    "sample": Sample,
    "label-request": LabelRequest,
    "auto-label": AutoLabel,
    "retraction": Retraction,
    "oracle-label": OracleLabel,
    "model-announcement": ModelAnnouncement,
    "dead-letter": DeadLetter,
}

_NAMES = {model: name for name, model in MESSAGES.items()}

M = TypeVar("M", bound=Message)


def encode(message: Message) -> bytes:
    """UTF-8 JSON of ``message`` without null fields.

    >>> encode(OracleLabel(id="s1", label="cat", labeled_at=0))
    b'{"v":1,"id":"s1","label":"cat","labeled_at":"1970-01-01T00:00:00Z"}'
    """
    return message.model_dump_json(exclude_none=True).encode("utf-8")


def check_size(raw: bytes, max_bytes: int | None) -> None:
    """Refuse a record value over ``max_bytes`` (``None``: no limit).

    >>> check_size(b"12345", 4)
    Traceback (most recent call last):
    ...
    streamal.errors.MessageError: record too large: 5 bytes > 4
    """
    if max_bytes is not None and len(raw) > max_bytes:
        raise MessageError(f"record too large: {len(raw)} bytes > {max_bytes}")


def decode(model: type[M], raw: bytes | None, max_bytes: int | None = None) -> M:
    """Parse one record value into ``model``; a null value (tombstone) is a bad record.

    Raises
    ------
    MessageError
        With a one-line reason, e.g. ``features.2: must be a finite number (got 'NaN')``.

    >>> decode(OracleLabel, b'{"v": 1, "id": "s1", "labeled_at": 0}')
    Traceback (most recent call last):
    ...
    streamal.errors.MessageError: label: required field is missing
    >>> decode(LabelRequest, None)
    Traceback (most recent call last):
    ...
    streamal.errors.MessageError: null value (tombstone): not a label request
    """
    if raw is None:
        name = _NAMES[model].replace("-", " ")
        raise MessageError(f"{TOMBSTONE}: not {'an' if name[0] in 'aeiou' else 'a'} {name}")
    check_size(raw, max_bytes)
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise MessageError(one_line(error, model)) from None


@dataclass
class Decoded(Generic[M]):
    """A decoded batch: ``valid`` and ``invalid`` hold (index in the batch, message or reason)."""

    valid: list[tuple[int, M]] = field(default_factory=list)
    invalid: list[tuple[int, str]] = field(default_factory=list)


def decode_batch(
    model: type[M], raws: Sequence[bytes | None], max_bytes: int | None = None
) -> Decoded[M]:
    """Decode every record; a bad one is reported, never raised, so the batch goes on.

    >>> out = decode_batch(OracleLabel, [b'{"id":"a","label":"x","labeled_at":0}', b"{"])
    >>> [i for i, _ in out.valid], out.invalid
    ([0], [(1, 'invalid JSON: EOF while parsing an object at line 1 column 1')])
    """
    decoded: Decoded[M] = Decoded()
    for index, raw in enumerate(raws):
        try:
            decoded.valid.append((index, decode(model, raw, max_bytes)))
        except MessageError as error:
            decoded.invalid.append((index, str(error)))
    return decoded


def json_schemas() -> dict[str, Any]:
    """JSON Schema of every message, by name (as ``streamal schema`` prints them)."""
    return {name: model.model_json_schema() for name, model in MESSAGES.items()}
