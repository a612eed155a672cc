"""The trainer's durable labeled set: label requests joined with the annotators' answers by id.

A request is kept with what the model learns from: its ``features`` and its ``payload`` (a
payload-only sample, text or an image, trains as well as a feature vector).

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
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from streamal.errors import StreamalError
from streamal.messages import LabelRequest, OracleLabel, Sample
from streamal.sqlite import open_sqlite, write_transaction

FORMAT = "streamal-labels"
VERSION = "1"

SCHEMA = """
CREATE TABLE requests(id TEXT PRIMARY KEY, features TEXT, predicted TEXT NOT NULL,
    confidence REAL NOT NULL, reason TEXT NOT NULL, model_version INTEGER NOT NULL,
    requested_at REAL NOT NULL, seq INTEGER NOT NULL, payload TEXT);
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
class PendingDrift:
    """A drift the trainer found and has not announced yet."""

    id: str
    """Names its exploration boost: announced again after a crash, it starts once."""
    concept_start: int
    """The store point where the new concept's labels start."""
    evidence_start: int
    """The store point after which audits are evidence for the new concept's threshold."""
    since: float | None
    """When the new concept began to be served (epoch seconds), if known."""


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
    model_version: int  # the version that predicted it (0: untrained)


@dataclass(frozen=True)
class LabeledSet:
    """The samples (features and payload) and resolved labels of every labeled request, in
    arrival order, with the reason each was asked."""

    samples: list[Sample]
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
    """

    def __init__(
        self,
        path: Path,
        classes: list[str],
        duplicates: Literal["latest", "majority"] = "latest",
    ) -> None:
        self._path = path
        self._duplicates = duplicates
        self._db = _open(path, classes)
        self.identity = _identity(self._db)
        """Names this store among every store a trainer ever used (ids it gives, such as a
        drift's, stay unique when a trainer starts over on a fresh store)."""
        row = self._db.execute(
            "SELECT max(seq) FROM (SELECT seq FROM requests UNION ALL SELECT seq FROM votes)"
        ).fetchone()
        self._seq = int(row[0] or 0)

    @property
    def position(self) -> int:
        """The store's point now: ``labeled(since=position)`` later gives what came since."""
        return self._seq

    def close(self) -> None:
        """Close the file."""
        self._db.close()

    # -- writing --------------------------------------------------------------------------

    def add_request(self, request: LabelRequest) -> Joined | None:
        """Keep a request's features and payload (the caller checked that the model reads
        them); the pending vote that was waiting for it, if any, joins."""
        top = request.prediction[0]
        features = None if request.features is None else json.dumps(request.features)
        payload = None if request.payload is None else json.dumps(request.payload)
        with self._writing():
            self._seq += 1
            inserted = self._db.execute(
                "INSERT OR IGNORE INTO requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    request.id, features, top.label, top.p, request.reason,
                    request.model_version, request.requested_at.timestamp(), self._seq, payload,
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

    def record_drift(self, drift: PendingDrift) -> None:
        """Note a drift found and not announced yet: a trainer restarted before announcing it
        announces it (the labels that showed it are stored, so they are not seen again)."""
        with self._writing():
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('pending_drift', ?)",
                (json.dumps(asdict(drift)),),
            )

    def pending_drift(self) -> PendingDrift | None:
        """The drift `record_drift` noted, until `drift_announced`."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'pending_drift'").fetchone()
        return None if row is None else PendingDrift(**json.loads(row[0]))

    def drift_announced(self) -> None:
        """The pending drift is announced: forget it."""
        with self._writing():
            self._db.execute("DELETE FROM meta WHERE key = 'pending_drift'")

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
            "SELECT r.predicted, r.confidence, r.requested_at, v.labeled_at, r.reason, v.seq,"
            " r.model_version"
            " FROM requests r"
            " JOIN votes v ON v.id = r.id WHERE r.id=? ORDER BY v.seq LIMIT 1",
            (sample_id,),
        ).fetchone()
        if row is None:
            return None
        label = self.label_of(sample_id)
        assert label is not None
        delay = max(0.0, row[3] - row[2])
        return Joined(sample_id, label, row[0], row[1], delay, row[4], row[5], row[6])

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

    def sample(self, sample_id: str) -> Sample | None:
        """The sample of the request ``sample_id`` (None: no such request stored)."""
        row = self._db.execute(
            "SELECT id, features, payload FROM requests WHERE id=?", (sample_id,)
        ).fetchone()
        return None if row is None else _sample(*row)

    def labeled(self, since: int = 0) -> LabeledSet:
        """Every request with a label, with its resolved label; ``since`` keeps only those
        labeled after that point (see `Joined.seq`), e.g. the labels of a new concept."""
        rows = self._db.execute(
            f"SELECT r.id, r.features, r.payload, r.reason FROM requests r WHERE {HAS_LABEL}"
            " AND (SELECT max(v.seq) FROM votes v WHERE v.id = r.id) > ? ORDER BY r.seq",
            (since,),
        ).fetchall()
        samples = [_sample(*row[:3]) for row in rows]
        labels = [self.label_of(sample.id) or "" for sample in samples]
        return LabeledSet(samples, labels, [row[3] for row in rows])

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

    def audits(self, since: int, newest: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``newest`` audits answered after point ``since``, in the order they were asked:
        the confidence each was served with, and whether its resolved label agreed with the
        prediction then."""
        return self.answered("audit", since, newest)

    def answered(
        self, reason: str, since: int, newest: int, trained_only: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """As `audits`, for the requests asked for ``reason``; ``trained_only``: those a trained
        model served (not the cold start's, served by version 0)."""
        rows = self._db.execute(
            "SELECT r.id, r.predicted, r.confidence FROM requests r"
            " WHERE r.reason=? AND r.model_version >= ?"
            f" AND {HAS_LABEL} AND (SELECT max(v.seq) FROM votes v WHERE v.id = r.id) > ?"
            " ORDER BY r.seq DESC LIMIT ?",
            (reason, int(trained_only), since, newest),
        ).fetchall()[::-1]
        confidences = np.array([row[2] for row in rows], dtype=np.float64)
        correct = np.array([self.label_of(row[0]) == row[1] for row in rows], dtype=bool)
        return confidences, correct

    def asked_after(self, point: int, answers: int = 10, reach_back: int = 0) -> float | None:
        """When the earliest of the first ``answers`` answered after store ``point`` (and of
        the last ``reach_back`` answered up to it) was asked (epoch seconds; None: none
        answered after it yet): where a concept that starts at ``point`` began to be served,
        estimated early rather than late. Stragglers are left out: answers for samples asked
        before most of the ``answers`` answered ahead of those reached back to (they came late:
        a slow annotator, a labels partition read behind the others), of the old concept."""
        after = self._asked("seq > ? ORDER BY seq", point, answers)
        if not after:
            return None
        before = self._asked("seq <= ? ORDER BY seq DESC", point, reach_back + answers)
        split = max(0, len(before) - reach_back)
        old, mixed = before[:split], before[split:]
        floor = float(np.median(old)) if old else -np.inf
        return min((t for t in after + mixed if t >= floor), default=floor)

    def _asked(self, votes: str, point: int, count: int) -> list[float]:
        """When the ``count`` answers ``votes`` selects (from ``point``) were asked, in the
        order they were answered."""
        rows = self._db.execute(
            "SELECT r.requested_at FROM (SELECT id, seq FROM votes WHERE"
            f" {votes} LIMIT ?) v JOIN requests r ON v.id = r.id ORDER BY v.seq",
            (point, count),
        ).fetchall()
        return [float(row[0]) for row in rows]

    def recent_samples(self, count: int, reason: str) -> list[Sample]:
        """The newest ``count`` requests asked for ``reason``, labeled or not, as samples."""
        rows = self._db.execute(
            "SELECT id, features, payload FROM requests WHERE reason=? ORDER BY seq DESC LIMIT ?",
            (reason, count),
        ).fetchall()
        return [_sample(*row) for row in rows]

    def first_samples(self, count: int, reason: str, since: int) -> list[Sample]:
        """The first ``count`` requests asked for ``reason`` after point ``since``, labeled or
        not, as samples: a fixed set that only grows until it has ``count``."""
        rows = self._db.execute(
            "SELECT id, features, payload FROM requests WHERE reason=? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (reason, since, count),
        ).fetchall()
        return [_sample(*row) for row in rows]

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


def _sample(sample_id: str, features: str | None, payload: str | None) -> Sample:
    """A stored request as the sample the model reads (checked when it was stored).

    >>> _sample("a", "[1.0, 2.0]", None).features, _sample("b", None, '"hi"').payload
    ([1.0, 2.0], 'hi')
    """
    return Sample.model_construct(
        id=sample_id,
        features=None if features is None else json.loads(features),
        payload=None if payload is None else json.loads(payload),
        meta=None,
        ts=None,
    )


def _open(path: Path, classes: list[str]) -> sqlite3.Connection:
    """Open or create the store; refuse a foreign, corrupt or other-classes file untouched."""
    db, meta = open_sqlite(
        path, kind=FORMAT, version=VERSION, schema=SCHEMA, error=LabelStoreError,
        meta={"classes": json.dumps(classes)},
    )  # fmt: skip
    if json.loads(meta.get("classes", "[]")) != classes:
        db.close()
        raise LabelStoreError(f"{path}: made for classes {meta['classes']}, not {classes}")
    _keep_payloads(db, path)
    return db


def _identity(db: sqlite3.Connection) -> str:
    """The store's random name, given once (a store made before names were given gets its
    own now)."""
    query = "SELECT value FROM meta WHERE key = 'identity'"
    if (row := db.execute(query).fetchone()) is None:
        with write_transaction(db):  # another process may name it first: the first name stays
            db.execute("INSERT OR IGNORE INTO meta VALUES ('identity', ?)", (uuid.uuid4().hex[:8],))
        row = db.execute(query).fetchone()
    return str(row[0])


def _keep_payloads(db: sqlite3.Connection, path: Path) -> None:
    """Give a store made before payloads were kept its ``payload`` column (once)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(requests)")}
    if "payload" not in columns:
        try:
            with write_transaction(db):
                db.execute("ALTER TABLE requests ADD COLUMN payload TEXT")
        except sqlite3.OperationalError as reason:
            if "duplicate column" not in str(reason):  # another process added it meanwhile
                raise LabelStoreError(f"{path}: cannot add payloads ({reason})") from None
        log.info("%s: label requests now keep their payloads", path)
