"""The answers the bridge already turned into labels, in a SQLite file, so that an annotation
that reaches it twice (its webhook, then the reconciliation pass; or again after a restart)
becomes one label. An annotation changed since (a new ``updated_at``) is a new answer."""

from __future__ import annotations

from pathlib import Path

from streamal.errors import BridgeError
from streamal.sqlite import open_sqlite

SCHEMA = """
CREATE TABLE answers (
    project TEXT NOT NULL,
    annotation INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (project, annotation)
)
"""


class Ledger:
    """Annotations of ``project`` (any string naming it) already sent, at their version.

    >>> import tempfile
    >>> ledger = Ledger(Path(tempfile.mkdtemp()) / "state.sqlite", "http://ls#1")
    >>> ledger.sent(5, "2026-01-01T00:00:00Z")
    False
    >>> ledger.record(5, "2026-01-01T00:00:00Z")
    >>> ledger.sent(5, "2026-01-01T00:00:00Z"), ledger.sent(5, "2026-01-02T00:00:00Z")
    (True, False)
    """

    def __init__(self, path: Path, project: str) -> None:
        self._db, _ = open_sqlite(
            path, kind="streamal-label-studio-state", version="1", schema=SCHEMA, error=BridgeError
        )
        self._project = project

    def sent(self, annotation: int, updated_at: str) -> bool:
        """Whether this version of ``annotation`` was sent already."""
        row = self._db.execute(
            "SELECT updated_at FROM answers WHERE project = ? AND annotation = ?",
            (self._project, annotation),
        ).fetchone()
        return row is not None and row[0] == updated_at

    def record(self, annotation: int, updated_at: str) -> None:
        """Remember that this version of ``annotation`` was sent."""
        self._db.execute(
            "INSERT INTO answers VALUES (?, ?, ?) ON CONFLICT (project, annotation) "
            "DO UPDATE SET updated_at = excluded.updated_at",
            (self._project, annotation, updated_at),
        )

    def close(self) -> None:
        """Close the file."""
        self._db.close()
