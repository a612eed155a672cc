"""One-line reasons for string constraints, and text from records shown safely."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from streamal.config import Settings
from streamal.validation import one_line, printable


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"train": {"group": ""}}, "train.group: must be at least 1 character (got 0)"),
        ({"model": {"name": "a b"}}, "model.name: must match ^[A-Za-z0-9._-]{1,100}$ (got 'a b')"),
        (
            {"model": {"name": ".."}},
            "model.name: must name a folder inside model.store, not '.' or '..' (got '..')",
        ),
        ({"model": {"classes": ["a", "a"], "store": "s3cret"}}, "model: classes must be distinct"),
    ],
)
def test_string_length_pattern_and_validator_errors_say_what_is_wrong(
    data: dict[str, object], reason: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**data)
    assert one_line(caught.value, Settings) == reason


def test_printable_escapes_what_would_steer_a_terminal_and_keeps_the_rest() -> None:
    shown = printable("a\r\x1b[2J\x7f\x9b\u202e\u2028\U000e0001 é 😀\t")
    assert shown.isprintable()
    assert shown == "a\\r\\u001b[2J\\u007f\\u009b\\u202e\\u2028\\udb40\\udc01 é 😀\\t"
