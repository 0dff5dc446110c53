"""The history database: its schema, how it is opened, and which SQLite errors are faults.

``history.db`` (SQLite, WAL) holds the event log and the therapy records. Only the
history store's writer thread writes it; readers open it read-only.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from controller.storage import outbox
from controller.storage.records import SCHEMA as RECORDS_SCHEMA
from controller.storage.records import migrate as migrate_records

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    wall_time REAL NOT NULL,
    t_mono REAL NOT NULL,
    kind TEXT NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    actor TEXT NOT NULL,
    figures TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_kind ON events(kind);
CREATE INDEX IF NOT EXISTS events_wall ON events(wall_time);
""" + RECORDS_SCHEMA + outbox.SCHEMA

#: SQLite result codes that mean "the database cannot be written now", not "this write is wrong".
_FAULT_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY,
                          sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB,
                          sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_PERM, sqlite3.SQLITE_NOLFS})
#: Faults after which the writer's connection stays usable (primary codes, plus plain READONLY);
#: after any other, e.g. a database file moved away (READONLY_DBMOVED) or an I/O error, it is reopened.
KEEP_CONNECTION_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL})


class StorageError(Exception):
    """The history database cannot be written or read now; the message names the path and the cause."""


def is_storage_fault(exc: BaseException) -> bool:
    """True for a database that cannot be used now (locked, full, read-only, I/O), False for a wrong write."""
    if not isinstance(exc, sqlite3.DatabaseError) or isinstance(
            exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.DataError, sqlite3.NotSupportedError)):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return isinstance(exc, sqlite3.OperationalError)
    return (code & 0xFF) in _FAULT_CODES


def connect(path: Path, *, clinic: bool = False) -> sqlite3.Connection:
    """Open the database in WAL mode with a 1 s busy timeout, foreign keys on, and the schema created.

    ``clinic``: the treadmill belongs to a clinic record, and this is the writer's connection: every
    change it makes is noted in the outbox (outbox.py)."""
    conn = sqlite3.connect(path, timeout=1.0, check_same_thread=False, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.executescript(_SCHEMA)
        migrate_records(conn)
        if clinic:
            outbox.add_triggers(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def open_readonly(path: Path) -> sqlite3.Connection:
    """A fresh read-only connection; StorageError if the database is missing or cannot be opened."""
    path = Path(path)
    if not path.is_file():
        raise StorageError(f"cannot read {path}: no such database")
    try:
        return sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=1.0, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read {path}: {exc}") from exc
