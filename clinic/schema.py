"""The clinic record's schema: numbered SQL files in ``migrations/``, each applied once, in its own transaction.

``migrations/NNNN_name.sql`` are numbered from 0001 without a gap; the server records each
one it has applied in ``schema_version``. :func:`migrate` holds a transaction-scoped advisory
lock while it reads the version and applies the next file, so two replicators starting at
once apply each file exactly once, and a file that fails leaves nothing of itself behind.
A server newer than this code (a treadmill not yet updated) is refused, never written to.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
from psycopg import pq

from clinic.connect import ClinicError, describe

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
#: pg_advisory_xact_lock's key for "the schema is being read or changed" ("treadmil" in ASCII).
LOCK_KEY = 0x74726561646D696C
_SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    integer PRIMARY KEY CHECK (version >= 1),
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
)"""


def load_migrations(folder: Path = MIGRATIONS_DIR) -> list[tuple[int, str, str]]:
    """``[(version, name, sql), ...]`` from ``folder``, in order; ClinicError for a stray file or a gap."""
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            raise ClinicError(f"{path}: a migration is named NNNN_name.sql (four digits, lower-case name)")
        found.append((int(match.group(1)), match.group(2), path.read_text(encoding="utf-8")))
    for expected, (version, name, _sql) in enumerate(found, start=1):
        if version != expected:
            raise ClinicError(f"{folder}: migration {expected:04d} is missing before {version:04d}_{name}.sql "
                              "(they are numbered from 0001 without a gap)")
    if not found:
        raise ClinicError(f"{folder}: no migration files")
    return found


MIGRATIONS: list[tuple[int, str, str]] = load_migrations()
#: The schema version this code writes and reads.
LATEST: int = MIGRATIONS[-1][0]


def _read_version(conn: psycopg.Connection) -> int:
    if conn.execute("SELECT to_regclass('schema_version') IS NULL").fetchone()[0]:
        return 0
    return conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]


def current_version(conn: psycopg.Connection) -> int:
    """The server's schema version: the highest applied migration, 0 on a database without the schema."""
    with conn.transaction():
        return _read_version(conn)


def newer_server_message(server_version: int, latest: int = LATEST) -> str:
    """Why this code refuses a server whose schema is ahead of it (shared by migrate and ``clinic status``)."""
    return (f"the clinic record is at schema version {server_version}, newer than this code's {latest}: "
            "update this treadmill's software before it writes to the clinic record")


def migrate(conn: psycopg.Connection, target: int | None = None) -> list[int]:
    """Apply every pending migration up to ``target`` (default: the latest); return the versions applied.

    Each file runs in its own transaction, with its ``schema_version`` row, under the advisory
    lock: another process migrating at the same moment waits, then finds the work done. Raises
    ClinicError if the server is newer than this code, or naming the file that failed (none of
    that file is applied; the files before it stay applied).
    """
    migrations = MIGRATIONS  # read at call time: a test may stand in another list
    latest = migrations[-1][0]
    target = latest if target is None else target
    if not 0 <= target <= latest:
        raise ValueError(f"target {target}: this code knows schema versions 0 to {latest}")
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        raise ValueError("migrate needs a connection with no transaction open: each migration is its own")
    applied = []
    while True:
        with conn.transaction():
            # READ COMMITTED: once the lock is ours, the next statement sees what its last holder committed.
            conn.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            # Only when missing: PostgreSQL checks the right to create tables before it sees that one exists,
            # and a treadmill's role may only read and write rows (README "Clinic with several treadmills").
            if conn.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None:
                conn.execute(_SCHEMA_VERSION_TABLE)
            version = _read_version(conn)
            if version > latest:
                raise ClinicError(newer_server_message(version, latest))
            if version >= target:
                return applied
            number, name, sql = migrations[version]
            try:
                conn.execute(sql)
            except psycopg.Error as exc:
                raise ClinicError(f"migration {number:04d}_{name}.sql failed, none of it applied (the schema "
                                  f"stays at version {version}): {describe(exc)}") from exc
            conn.execute("INSERT INTO schema_version (version, name) VALUES (%s, %s)", (number, name))
        applied.append(number)
