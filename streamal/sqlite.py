"""Open the SQLite files streamal keeps (the embedded log, the label store) safely.

A new file gets its schema and a ``meta`` table naming its format and version in one
transaction. An existing file of another format, of another version, or that is not SQLite at
all is refused with a one-line reason and left untouched.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from streamal.errors import StreamalError

OPEN_TIMEOUT_S = 60.0


def open_sqlite(
    path: Path,
    *,
    kind: str,
    version: str,
    schema: str,
    error: type[StreamalError],
    meta: Mapping[str, str] | None = None,
    synchronous: str = "full",
) -> tuple[sqlite3.Connection, dict[str, str]]:
    """The connection (autocommit, WAL; usable from one thread at a time, any thread) and the
    file's ``meta`` table.

    Parameters
    ----------
    kind
        The format's name, e.g. ``streamal-log``; also the noun of the error messages.
    schema
        ``CREATE`` statements separated by ``;`` (the ``meta`` table is added).
    meta
        More ``meta`` entries written when the file is created.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + OPEN_TIMEOUT_S
    while True:  # another process may be creating or converting the file right now
        db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        try:
            return _prepare(db, path, kind, version, schema, error, meta or {}, synchronous)
        except sqlite3.OperationalError as reason:
            db.close()
            if "locked" not in str(reason) or time.monotonic() > deadline:
                raise error(f"{path}: cannot open ({reason})") from None
            time.sleep(0.05)


def _prepare(
    db: sqlite3.Connection,
    path: Path,
    kind: str,
    version: str,
    schema: str,
    error: type[StreamalError],
    meta: Mapping[str, str],
    synchronous: str,
) -> tuple[sqlite3.Connection, dict[str, str]]:
    """Check (or create) the file's format on a fresh connection; see `open_sqlite`."""
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "meta" not in tables:
            db.close()  # someone else's database: not even the journal mode is changed
            raise error(f"{path}: not a {kind} file (a SQLite file with other tables)")
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        db.execute("BEGIN IMMEDIATE")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            db.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            for statement in filter(str.strip, schema.split(";")):
                db.execute(statement)
            entries = {"format": kind, "version": version, **meta}
            db.executemany("INSERT INTO meta VALUES (?, ?)", entries.items())
            tables.add("meta")
        found = (
            dict(db.execute("SELECT key, value FROM meta").fetchall()) if "meta" in tables else {}
        )
        db.execute("COMMIT")
    except sqlite3.OperationalError:
        raise  # locked: the caller tries again
    except sqlite3.DatabaseError as reason:
        db.close()
        raise error(f"{path}: not a {kind} file ({reason})") from None
    problem = None
    if found.get("format") != kind:
        problem = f"not a {kind} file (a SQLite file with other tables)"
    elif found.get("version") != version:
        problem = f"{kind} version {found.get('version')}, this streamal reads {version}"
    if problem:
        db.close()
        raise error(f"{path}: {problem}")
    return db, found


@contextmanager
def write_transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction; BEGIN IMMEDIATE takes the file's write lock up front, so
    several processes sharing the file never deadlock upgrading a read lock."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite ends it itself on some errors, e.g. a full disk
            db.execute("ROLLBACK")
        raise
