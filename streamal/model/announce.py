"""A stored model version as the record that announces it on the compacted ``models`` topic."""

from __future__ import annotations

from streamal.messages import ModelAnnouncement, encode
from streamal.model.store import Checkpoint
from streamal.transport import Record


def announcement(checkpoint: Checkpoint) -> ModelAnnouncement:
    """The `ModelAnnouncement` of ``checkpoint``."""
    return ModelAnnouncement(
        version=checkpoint.version,
        uri=checkpoint.uri,
        sha256=checkpoint.sha256,
        classes=checkpoint.classes,
        thresholds=checkpoint.thresholds,
        metrics=checkpoint.metrics,
        created_at=checkpoint.created_at,
    )


def announcement_record(topic: str, checkpoint: Checkpoint) -> Record:
    """The record to produce on ``topic``: keyed by model name, so compaction keeps the newest."""
    return Record(topic, encode(announcement(checkpoint)), key=checkpoint.name.encode())
