"""A stored model version as the record that announces it on the compacted ``models`` topic."""

from __future__ import annotations

from streamal.messages import ExploreBoost, ModelAnnouncement, encode
from streamal.model.store import Checkpoint
from streamal.transport import Record


def announcement(checkpoint: Checkpoint, boost: ExploreBoost | None = None) -> ModelAnnouncement:
    """The `ModelAnnouncement` of ``checkpoint``, with a drift's ``boost`` (never stored)."""
    return ModelAnnouncement(
        version=checkpoint.version,
        uri=checkpoint.uri,
        sha256=checkpoint.sha256,
        classes=checkpoint.classes,
        thresholds=checkpoint.thresholds,
        metrics=checkpoint.metrics,
        explore_boost=boost,
        created_at=checkpoint.created_at,
    )


def announcement_record(
    topic: str, checkpoint: Checkpoint, boost: ExploreBoost | None = None
) -> Record:
    """The record to produce on ``topic``: keyed by model name, so compaction keeps the newest."""
    return Record(topic, encode(announcement(checkpoint, boost)), key=checkpoint.name.encode())
