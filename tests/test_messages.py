"""Messages: validation, JSON round trips, batch decoding that never raises, JSON Schemas."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from streamal.errors import MessageError
from streamal.messages import (
    MAX_ERROR_CHARS,
    MESSAGES,
    AutoLabel,
    DeadLetter,
    LabelRequest,
    ModelAnnouncement,
    OracleLabel,
    Retraction,
    Sample,
    decode,
    decode_batch,
    encode,
    json_schemas,
)

EXAMPLES = [
    Sample(id="s1", features=[0.1, 2.0], meta={"src": "cam-3"}, ts=1_700_000_000),
    Sample(id="s2", payload={"text": "hello"}),
    LabelRequest(
        id="s1", features=[0.1, 2.0],
        prediction=[{"label": "cat", "p": 0.55}, {"label": "dog", "p": 0.45}],
        utility=0.9, reason="uncertain", model_version=3, requested_at=datetime.now(UTC),
    ),
    AutoLabel(
        id="s3", label="cat", confidence=0.995, model_version=3, labeled_at=datetime.now(UTC)
    ),
    Retraction(
        id="s3", label="cat", model_version=3, labeled_at=datetime.now(UTC),
        retracted_at=datetime.now(UTC),
    ),
    OracleLabel(id="s1", label="dog", annotator="ann-7", labeled_at=datetime.now(UTC)),
    ModelAnnouncement(
        version=4, uri="file:///models/4.pt", sha256="a" * 64, classes=["cat", "dog"],
        thresholds={"budget": 0.3}, metrics={"accuracy": 0.91}, created_at=datetime.now(UTC),
    ),
    DeadLetter.of(b"\xff not json", "invalid JSON\nsecond line", "samples", 2, 17),
]  # fmt: skip


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(message) -> None:
    raw = encode(message)
    assert json.loads(raw)["v"] == 1
    assert decode(type(message), raw) == message


def test_timestamps_are_utc_and_accept_epoch_seconds() -> None:
    sample = decode(Sample, b'{"id": "a", "features": [1], "ts": 0}')
    assert sample.ts == datetime(1970, 1, 1, tzinfo=UTC)
    naive = decode(Sample, b'{"id": "a", "features": [1], "ts": "2026-01-02T03:04:05"}')
    assert naive.ts is not None and naive.ts.tzinfo == UTC


def test_dead_letter_keeps_the_original_bytes_and_one_line() -> None:
    letter = DeadLetter.of(b"\x00\x01raw", "bad\nworse", "samples", 0, 5)
    assert base64.b64decode(letter.original) == b"\x00\x01raw"
    assert letter.error == "bad"
    assert not letter.truncated and letter.original_bytes == 5


@pytest.mark.parametrize("max_bytes", [1400, 1401, 1402, 1403, 5000])
def test_dead_letter_cuts_its_original_to_fit_and_says_so(max_bytes: int) -> None:
    value = bytes(range(256)) * 20
    letter = DeadLetter.of(value, "x" * 5000, "samples", 3, 9, max_bytes=max_bytes)
    kept = base64.b64decode(letter.original)
    assert len(encode(letter)) <= max_bytes
    assert len(encode(letter)) > max_bytes - 5  # as much as fits, in whole base64 groups
    assert letter.truncated and value.startswith(kept) and letter.original_bytes == len(value)
    assert letter.error == "x" * MAX_ERROR_CHARS


def test_a_dead_letter_of_a_tombstone_keeps_an_empty_original() -> None:
    letter = DeadLetter.of(None, "no value", "samples", 0, 1, max_bytes=1000)
    assert letter.original == "" and letter.original_bytes == 0 and not letter.truncated


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "invalid JSON"),
        (b'{"features": [1.0]}', "id: required field is missing"),
        (b'{"id": "a"}', "a sample needs features or a payload"),
        (b'{"id": "a", "features": [1.0, NaN]}', "features.1: must be a finite number"),
        (b'{"id": "a", "features": [1.0, Infinity]}', "features.1: must be a finite number"),
        (b'{"id": "a", "features": ["x"]}', "features.0: must be a number (got 'x')"),
        (b'{"id": 5, "features": [1]}', "id: must be a string (got 5)"),
        (b'{"id": "a", "features": [1], "v": 2}', "v: must be one of: 1 (got 2)"),
        (b'{"id": "a", "features": [1], "colour": "red"}', "colour: unknown field"),
        (b'{"id": "", "features": [1]}', "id: must be 1 to 512 characters (got 0)"),
        (b'{"id": "' + b"x" * 10_000 + b'", "features": [1]}', "id: must be 1 to 512 characters"),
        (b'{"id": "a\\nb", "features": [1]}', "id: must not contain control characters"),
        (b'{"id": "\\u001b[2J", "features": [1]}', "id: must not contain control characters"),
        (b'{"id": "a\\u202eb", "features": [1]}', "id: must not contain control characters"),
        (b'{"id": "a", "features": [0, 1e308]}', "features.1: must be a finite float32 number"),
        (b'{"id": "a", "features": [-3.5e38]}', "features.0: must be a finite float32 number"),
        (b'{"id": "a", "features": ["1"]}', "features.0: must be a number (got '1')"),
        (b'{"id": "a", "features": [true]}', "features.0: must be a number (got True)"),
        (b'{"id": "a", "features": [1], "ts": "9999-12-31T23:59:59-05:00"}', "ts: must fall"),
        (b"\xff\xfe", "invalid JSON"),
        (None, "null value (tombstone): not a sample"),
    ],
)
def test_bad_samples_get_a_one_line_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(MessageError) as caught:
        decode(Sample, raw)
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


def test_features_in_float32_range_and_integers_are_numbers() -> None:
    big = decode(LabelRequest, encode(EXAMPLES[2]).replace(b"[0.1,2.0]", b"[3.4e38,-7]"))
    assert big.features == [3.4e38, -7.0]
    with pytest.raises(MessageError, match=r"features\.0: must be a finite float32 number"):
        decode(LabelRequest, encode(EXAMPLES[2]).replace(b"[0.1,2.0]", b"[1e39,-7]"))


def test_a_null_value_is_a_bad_record_and_its_dead_letter_says_so() -> None:
    decoded = decode_batch(OracleLabel, [None, b'{"id": "a", "label": "x", "labeled_at": 0}'])
    assert decoded.invalid == [(0, "null value (tombstone): not an oracle label")]
    assert [i for i, _ in decoded.valid] == [1]
    letter = DeadLetter.of(None, decoded.invalid[0][1], "labels", 1, 4)
    assert (letter.original, letter.error) == ("", "null value (tombstone): not an oracle label")
    assert DeadLetter.of(None, "unreadable", "labels", 1, 4).error == (
        "null value (tombstone): unreadable"
    )


def test_oversized_record_is_rejected_before_parsing() -> None:
    with pytest.raises(MessageError, match="record too large: 38 bytes > 32"):
        decode(Sample, b'{"id": "a", "features": [1, 2, 3, 4]} ', max_bytes=32)


def test_batch_decoding_reports_bad_records_and_keeps_the_good() -> None:
    raws = [
        b'{"id": "a", "features": [1, 2]}',
        b"garbage",
        b'{"id": "b", "features": [NaN]}',
        b'{"id": "c", "payload": {"text": "x"}}',
    ]
    decoded = decode_batch(Sample, raws)
    assert [(i, m.id) for i, m in decoded.valid] == [(0, "a"), (3, "c")]
    assert [i for i, _ in decoded.invalid] == [1, 2]
    assert all(reason for _, reason in decoded.invalid)


def test_label_request_reasons_are_checked() -> None:
    raw = encode(EXAMPLES[2]).replace(b'"uncertain"', b'"whim"')
    with pytest.raises(MessageError, match="reason: must be one of: uncertain, audit, explore"):
        decode(LabelRequest, raw)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"prediction": []}, "prediction: list should have at least 1 item"),
        ({"model_version": 10**20}, "model_version: must be >= 0 and <= 9223372036854775807"),
    ],
)
def test_label_requests_have_a_guess_and_a_version_a_store_can_hold(
    change: dict[str, object], reason: str
) -> None:
    raw = json.dumps(json.loads(encode(EXAMPLES[2])) | change).encode()
    with pytest.raises(MessageError, match=reason):
        decode(LabelRequest, raw)


def test_json_schemas_cover_every_message() -> None:
    schemas = json_schemas()
    assert set(schemas) == set(MESSAGES)
    assert schemas["sample"]["properties"]["v"]["const"] == 1
    assert "label" in schemas["oracle-label"]["required"]
