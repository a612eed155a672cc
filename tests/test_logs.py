"""Logging: libraries' network errors in one line, streamal's own tracebacks kept."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from streamal.logs import LogConfig, configure


@pytest.fixture(autouse=True)
def restored_logging() -> Iterator[None]:
    root, kafka = logging.getLogger(), logging.getLogger("kafka")
    handlers, levels = root.handlers[:], (root.level, kafka.level)
    yield
    root.handlers[:] = handlers
    root.setLevel(levels[0])
    kafka.setLevel(levels[1])


def log_errors() -> None:
    """An error with an exception from kafka-python's socket code, then one from streamal."""
    for name in ("kafka.net.transport", "streamal.stream.daemon"):
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError:
            logging.getLogger(name).exception("%s: Error receiving network data", "conn-1")


def test_a_kafka_socket_error_is_one_line_and_streamal_keeps_its_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure(LogConfig(level="INFO"))
    log_errors()
    kafka, *streamal = capsys.readouterr().err.splitlines()
    assert kafka.endswith(
        "kafka.net.transport: conn-1: Error receiving network data"
        " (ConnectionResetError(104, 'Connection reset by peer'))"
    )
    assert streamal[1] == "Traceback (most recent call last):"  # streamal's own bugs show


def test_json_logs_carry_no_kafka_traceback_either(capsys: pytest.CaptureFixture[str]) -> None:
    configure(LogConfig(level="WARNING", format="json"))
    log_errors()
    kafka, streamal = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert "exception" not in kafka and "ConnectionResetError(104" in kafka["message"]
    assert "Traceback" in streamal["exception"]


def test_at_debug_kafka_tracebacks_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    configure(LogConfig(level="DEBUG"))
    log_errors()
    assert capsys.readouterr().err.count("Traceback (most recent call last):") == 2
