"""Logging: plain text for people, one JSON object per line for log pipelines."""

from __future__ import annotations

import json
import logging
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict


class LogConfig(BaseModel):
    """How a streamal process logs (to stderr)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message"}`` per record, plus the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class KafkaOneLine(logging.Filter):
    """kafka-python's errors in one line, the exception at its end instead of a traceback:
    it logs every dropped socket with one (a broker restart, a client closing at shutdown),
    then reconnects by itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("kafka.") and record.exc_info and record.exc_info[1]:
            record.msg, record.args = f"{record.getMessage()} ({record.exc_info[1]!r})", None
            record.exc_info = record.exc_text = None
        return True


def configure(config: LogConfig) -> None:
    """Send streamal's logs to stderr at ``config.level``; quiet the chatty libraries (their
    tracebacks only at ``DEBUG``)."""
    handler = logging.StreamHandler()
    if config.level != "DEBUG":
        handler.addFilter(KafkaOneLine())
    if config.format == "json":
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.level)
    logging.getLogger("kafka").setLevel(max(logging.WARNING, root.level))
