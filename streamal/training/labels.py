"""The trainer's durable labeled set: label requests joined with the annotators' answers by id.

Everything lives in one SQLite file. A label may come before its request (kept pending until
the request arrives, or dropped after a TTL), long after it, or more than once: each answer is a
vote keyed by its position in the ``labels`` topic, so replaying the topic after a crash never
counts an answer twice, and the duplicates policy picks the label (the latest, or the majority).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from streamal.errors import MessageError, StreamalError
from streamal.messages import FLOAT32_MAX, LabelRequest, OracleLabel
from streamal.sqlite import open_sqlite, write_transaction

FORMAT = "streamal-labels"
VERSION = "1"

SCHEMA = """
CREATE TABLE requests(id TEXT PRIMARY KEY, features TEXT, predicted TEXT NOT NULL,
    confidence REAL NOT NULL, reason TEXT NOT NULL, model_version INTEGER NOT NULL,
    requested_at REAL NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE votes(source TEXT PRIMARY KEY, id TEXT NOT NULL, label TEXT NOT NULL,
    annotator TEXT, labeled_at REAL NOT NULL, received_at REAL NOT NULL, seq INTEGER NOT NULL);
CREATE INDEX votes_by_id ON votes(id);
CREATE INDEX requests_by_seq ON requests(seq);
"""

HAS_LABEL = "EXISTS (SELECT 1 FROM votes v WHERE v.id = r.id)"

log = logging.getLogger(__name__)


class LabelStoreError(StreamalError):
    """The label store file is corrupt, belongs to something else, or cannot be written."""


@dataclass(frozen=True)
class Joined:
    """A label that met its request for the first time: what the answered accuracy needs."""

    id: str
    label: str
    predicted: str
    confidence: float
    delay_s: float
    reason: str  # why it was asked: only ``explore`` and ``audit`` labels are unbiased samples
    seq: int  # the answer's point in the store: ``labeled(since=seq - 1)`` starts with it


@dataclass(frozen=True)
class LabeledSet:
    """Features and resolved labels of every labeled request, in arrival order."""

    ids: list[str]
    features: np.ndarray
    labels: list[str]
    reasons: list[str]


class LabelStore:
    """The labeled set of one model, kept in ``path``.

    Parameters
    ----------
    classes
        The model's classes; a store made for other classes is refused.
    duplicates
        ``latest`` keeps the newest answer of an id; ``majority`` the most frequent (ties go
        to the newest).
    n_features
        The model's input width: a request of another width is refused, and a stored one
        (kept before requests were checked) is skipped when read. ``None`` (a reader that does
        not know the model) takes the width of the first stored request.
    """

    def __init__(
        self,
        path: Path,
        classes: list[str],
        duplicates: Literal["latest", "majority"] = "latest",
        n_features: int | None = None,
    ) -> None:
        self._path = path
        self._duplicates = duplicates
        self._width = n_features
        self._db = _open(path, classes)
        row = self._db.execute(
            "SELECT max(seq) FROM (SELECT seq FROM requests UNION ALL SELECT seq FROM votes)"
        ).fetchone()
        self._seq = int(row[0] or 0)

    def close(self) -> None:
        """Close the file."""
        self._db.close()

    # -- writing --------------------------------------------------------------------------

    def add_request(self, request: LabelRequest) -> Joined | None:
        """Keep a request's features; the pending vote that was waiting for it, if any, joins.

        Raises `MessageError` for features the model cannot read (another width, a value
        beyond float32).
        """
        if request.features is None or not request.prediction:
            return None
        if (problem := _misfit(request.features, self._width)) is not None:
            raise MessageError(problem)
        top = request.prediction[0]
        with self._writing():
            self._seq += 1
            inserted = self._db.execute(
                "INSERT OR IGNORE INTO requests VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    request.id, json.dumps(request.features), top.label, top.p, request.reason,
                    request.model_version, request.requested_at.timestamp(), self._seq,
                ),
            ).rowcount  # fmt: skip
        return self._joined(request.id) if inserted else None

    def add_label(self, label: OracleLabel, source: str) -> Joined | None:
        """Record one answer (``source``: its topic position); the join if it is the first."""
        with self._writing():
            self._seq += 1
            first = self._db.execute("SELECT 1 FROM votes WHERE id=?", (label.id,)).fetchone()
            inserted = self._db.execute(
                "INSERT OR IGNORE INTO votes VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    source, label.id, label.label, label.annotator,
                    label.labeled_at.timestamp(), time.time(), self._seq,
                ),
            ).rowcount  # fmt: skip
        return self._joined(label.id) if inserted and first is None else None

    def drop_expired(self, ttl_s: float) -> int:
        """Forget votes that waited longer than ``ttl_s`` for a request; how many."""
        with self._writing():
            return int(
                self._db.execute(
                    "DELETE FROM votes WHERE received_at < ?"
                    " AND id NOT IN (SELECT id FROM requests)",
                    (time.time() - ttl_s,),
                ).rowcount
            )

    def record_round(self, concept_start: int) -> None:
        """Note that a round used every label so far, of the concept starting at
        ``concept_start``: a restarted trainer goes on from there (see `last_round`)."""
        entries = {"trained_through": str(self._seq), "concept_start": str(concept_start)}
        with self._writing():
            self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", entries.items())

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A write transaction; a failed write (a full disk, say) raises `LabelStoreError`."""
        try:
            with write_transaction(self._db):
                yield
        except sqlite3.Error as reason:
            raise LabelStoreError(f"{self._path}: cannot write ({reason})") from None

    def _joined(self, sample_id: str) -> Joined | None:
        row = self._db.execute(
            "SELECT r.predicted, r.confidence, r.requested_at, v.labeled_at, r.reason, v.seq"
            " FROM requests r"
            " JOIN votes v ON v.id = r.id WHERE r.id=? ORDER BY v.seq LIMIT 1",
            (sample_id,),
        ).fetchone()
        if row is None:
            return None
        label = self.label_of(sample_id)
        assert label is not None
        return Joined(sample_id, label, row[0], row[1], max(0.0, row[3] - row[2]), row[4], row[5])

    # -- reading --------------------------------------------------------------------------

    def label_of(self, sample_id: str) -> str | None:
        """The resolved label of ``sample_id`` under the duplicates policy."""
        if self._duplicates == "latest":
            order = "ORDER BY labeled_at DESC, seq DESC LIMIT 1"
            row = self._db.execute(f"SELECT label FROM votes WHERE id=? {order}", (sample_id,))
        else:
            row = self._db.execute(
                "SELECT label FROM votes WHERE id=? GROUP BY label"
                " ORDER BY count(*) DESC, max(seq) DESC LIMIT 1",
                (sample_id,),
            )
        found = row.fetchone()
        return None if found is None else str(found[0])

    def labeled(self, since: int = 0) -> LabeledSet:
        """Every request with a label, with its resolved label; ``since`` keeps only those
        labeled after that point (see `Joined.seq`), e.g. the labels of a new concept."""
        rows = self._db.execute(
            f"SELECT r.id, r.features, r.reason FROM requests r WHERE {HAS_LABEL}"
            " AND (SELECT max(v.seq) FROM votes v WHERE v.id = r.id) > ? ORDER BY r.seq",
            (since,),
        ).fetchall()
        features, kept = self._matrix(rows)
        ids = [rows[i][0] for i in kept]
        labels = [self.label_of(i) or "" for i in ids]
        return LabeledSet(ids, features, labels, [rows[i][2] for i in kept])

    def last_round(self) -> tuple[int, int]:
        """The labels no round has used yet (requests whose first answer met them since: a
        trainer may have stopped before its round), and the current concept's start point,
        as of the last `record_round`."""
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        trained = int(meta.get("trained_through", "0"))
        untrained = self._db.execute(
            "SELECT count(*) FROM requests r"
            " WHERE max(r.seq, (SELECT min(v.seq) FROM votes v WHERE v.id = r.id)) > ?",
            (trained,),
        )
        return int(untrained.fetchone()[0]), int(meta.get("concept_start", "0"))

    def recent_features(self, count: int, reason: str) -> np.ndarray:
        """Features of the newest ``count`` requests asked for ``reason``, labeled or not."""
        rows = self._db.execute(
            "SELECT id, features FROM requests WHERE reason=? ORDER BY seq DESC LIMIT ?",
            (reason, count),
        ).fetchall()
        return self._matrix(rows)[0]

    def _matrix(self, rows: list[tuple[Any, ...]]) -> tuple[np.ndarray, list[int]]:
        """The features (JSON, second column) of ``rows`` as a float32 matrix, and the
        indices of the rows it holds: a row the model cannot read is skipped with a log line."""
        vectors = [json.loads(row[1]) for row in rows]
        width = self._width or (len(vectors[0]) if vectors else 0)
        problems = [_misfit(vector, width) for vector in vectors]
        kept = [i for i, problem in enumerate(problems) if problem is None]
        if skipped := [i for i, problem in enumerate(problems) if problem is not None]:
            log.warning(
                "skipped %d stored requests the model cannot read, e.g. %r: %s",
                len(skipped), rows[skipped[0]][0], problems[skipped[0]],
            )  # fmt: skip
        features = np.array([vectors[i] for i in kept], dtype=np.float32)
        return features.reshape(len(kept), width), kept

    def counts(self) -> dict[str, int]:
        """Requests, labeled requests, votes, and votes waiting for their request."""
        one = self._db.execute
        return {
            "requests": one("SELECT count(*) FROM requests").fetchone()[0],
            "labeled": one(f"SELECT count(*) FROM requests r WHERE {HAS_LABEL}").fetchone()[0],
            "votes": one("SELECT count(*) FROM votes").fetchone()[0],
            "pending": one(
                "SELECT count(DISTINCT id) FROM votes WHERE id NOT IN (SELECT id FROM requests)"
            ).fetchone()[0],
        }


def _misfit(features: list[float], width: int | None) -> str | None:
    """Why the model cannot read ``features`` (``width`` values, each a finite float32).

    >>> _misfit([1.0, 2.0], 2), _misfit([1.0], 2), _misfit([1.0, 1e39], 2)
    (None, 'features: expected 2 values (got 1)', 'features.1: beyond float32 (got 1e+39)')
    """
    if width is not None and len(features) != width:
        return f"features: expected {width} values (got {len(features)})"
    for index, value in enumerate(features):
        if not abs(value) <= FLOAT32_MAX:  # also NaN
            return f"features.{index}: beyond float32 (got {value!r})"
    return None


def _open(path: Path, classes: list[str]) -> sqlite3.Connection:
    """Open or create the store; refuse a foreign, corrupt or other-classes file untouched."""
    db, meta = open_sqlite(
        path, kind=FORMAT, version=VERSION, schema=SCHEMA, error=LabelStoreError,
        meta={"classes": json.dumps(classes)},
    )  # fmt: skip
    if json.loads(meta.get("classes", "[]")) != classes:
        db.close()
        raise LabelStoreError(f"{path}: made for classes {meta['classes']}, not {classes}")
    return db
