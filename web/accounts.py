"""Accounts: one per person, a role each, passwords hashed with scrypt (werkzeug).

They live in ``<web state_dir>/access.db`` (SQLite, WAL), beside the audit
trail (web/audit.py), owned by the dashboard's user and mode 0600. Both the
dashboard and the ``treadmill-safety user`` command open it; SQLite's locking
keeps them apart.

There is no default account and no default password: until an installer runs
``treadmill-safety user add NAME --role admin`` nobody can log in, and the
dashboard can only stop the belt.

Roles: ``therapist`` (patients, sessions, limits, start, reset) and ``admin``
(all of that, plus accounts and the audit trail).
"""

from __future__ import annotations

import secrets
import sqlite3
import time
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from werkzeug.security import check_password_hash, generate_password_hash

from web.state import PRIVATE_MODE, ensure_state_dir, tighten_mode

ACCESS_DB = "access.db"
ROLES = ("therapist", "admin")
NAME_MAX_CHARS = 40
PASSWORD_MIN_CHARS = 8
PASSWORD_MAX_CHARS = 1024
#: werkzeug's scrypt (n=2**15, r=8, p=1): about 60 ms a check on a Pi-class core, on purpose.
PASSWORD_METHOD = "scrypt"
#: 1: accounts and the audit trail; 2: logins (each statement is idempotent, so a newer version
#: applies the whole schema again in one transaction).
SCHEMA_VERSION = 2
#: Ended and expired logins are deleted after this long (the longest a login lasts is 12 h).
LOGIN_ROWS_KEPT_S = 2 * 24 * 3600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT NOT NULL PRIMARY KEY COLLATE NOCASE,
    role TEXT NOT NULL CHECK (role IN ('therapist', 'admin')),
    password_hash TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    -- Raised when the password changes or the account is disabled: older logins end.
    auth_epoch INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    last_login REAL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    actor TEXT,
    role TEXT,
    address TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome INTEGER NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS audit_time ON audit(time);
CREATE INDEX IF NOT EXISTS audit_actor ON audit(actor);
-- One row per login: a logout ends it here, so a copy of its cookie is no good afterwards.
CREATE TABLE IF NOT EXISTS logins (
    id TEXT NOT NULL PRIMARY KEY,
    account TEXT NOT NULL COLLATE NOCASE,
    started REAL NOT NULL,
    ended REAL
);
-- Append-only: SQLite itself refuses to change or remove a row of the trail.
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
"""


class AccountError(ValueError):
    """A refused account change: ``field`` names what is wrong, ``status`` the HTTP status it maps to."""

    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Account:
    """One account as stored (never its hash outside this module)."""

    name: str
    role: str
    enabled: bool
    auth_epoch: int
    created: float
    updated: float
    last_login: float | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def public(self) -> dict[str, Any]:
        """What the API shows of an account."""
        return {"name": self.name, "role": self.role, "enabled": self.enabled, "created": self.created,
                "updated": self.updated, "last_login": self.last_login}


def access_db_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / ACCESS_DB


def open_access_db(state_dir: str | Path) -> sqlite3.Connection:
    """Open (creating when missing, mode 0600) the accounts and audit database, schema in place."""
    directory = ensure_state_dir(state_dir)
    path = directory / ACCESS_DB
    if not path.exists():
        # Created 0600 before SQLite writes a byte: password hashes are never readable by others.
        path.touch(mode=PRIVATE_MODE, exist_ok=True)
    tighten_mode(path)
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        # Every commit reaches the disk: an audit row a power cut could lose is no record.
        conn.execute("PRAGMA synchronous=FULL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{path}: schema version {version} is newer than this program's "
                               f"({SCHEMA_VERSION}); install the newer release")
        if version < SCHEMA_VERSION:
            # One transaction (executescript would commit on its own): the schema comes whole or not at all.
            with immediate(conn):
                for statement in _statements(_SCHEMA):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        conn.close()
        raise
    return conn


def _statements(script: str) -> list[str]:
    """The script's statements, split where sqlite3.complete_statement says one ends."""
    out, current = [], ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    return out


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, begun at once (so concurrent writers queue), rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def access_db(state_dir: str | Path) -> Iterator[sqlite3.Connection]:
    """A connection for one operation, closed afterwards (each thread and process its own)."""
    conn = open_access_db(state_dir)
    try:
        yield conn
    finally:
        conn.close()


def clean_name(raw: object) -> str:
    """An account name: stripped, 1..40 characters, none of them control or format characters."""
    if not isinstance(raw, str):
        raise AccountError("name", f"1 to {NAME_MAX_CHARS} printable characters (got {type(raw).__name__})")
    # One spelling of each letter (NFC): "Élodie" typed two ways is one name.
    name = unicodedata.normalize("NFC", raw).strip()
    if not 1 <= len(name) <= NAME_MAX_CHARS:
        raise AccountError("name", f"1 to {NAME_MAX_CHARS} printable characters (got {len(name)})")
    # Names go into the audit trail, the event log and onto pages: no newlines, no bidi overrides.
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise AccountError("name", f"1 to {NAME_MAX_CHARS} printable characters (no control characters)")
    if "/" in name:  # the name is a path segment of /api/users/<name>
        raise AccountError("name", f"1 to {NAME_MAX_CHARS} printable characters other than /")
    return name


def check_role(raw: object) -> str:
    if raw not in ROLES:
        raise AccountError("role", f"one of {', '.join(ROLES)} (got {raw!r})")
    return str(raw)


def check_new_password(raw: object, field: str = "password") -> str:
    if not isinstance(raw, str) or not PASSWORD_MIN_CHARS <= len(raw) <= PASSWORD_MAX_CHARS:
        got = len(raw) if isinstance(raw, str) else type(raw).__name__
        raise AccountError(field, f"{PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters (got {got})")
    return raw


def _hash(password: str) -> str:
    return generate_password_hash(password, method=PASSWORD_METHOD)


#: Checked against when a name is unknown, so a wrong name costs the same time as a wrong password.
_DUMMY_HASH = _hash("no account has this password")

_COLUMNS = "name, role, enabled, auth_epoch, created, updated, last_login"


def _account(row: tuple) -> Account:
    name, role, enabled, epoch, created, updated, last_login = row
    return Account(name, role, bool(enabled), epoch, created, updated, last_login)


class AccountStore:
    """The accounts in one state directory. Every method opens its own short connection."""

    def __init__(self, state_dir: str | Path):
        self.state_dir = Path(state_dir)

    def get(self, name: str) -> Account | None:
        """The account called ``name`` (case-insensitive), or None."""
        with access_db(self.state_dir) as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM accounts WHERE name = ?", (name,)).fetchone()
        return _account(row) if row else None

    def list(self) -> list[Account]:
        """Every account, by name."""
        with access_db(self.state_dir) as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM accounts ORDER BY name").fetchall()
        return [_account(r) for r in rows]

    def count(self) -> int:
        with access_db(self.state_dir) as conn:
            return conn.execute("SELECT count(*) FROM accounts").fetchone()[0]

    def add(self, name: object, role: object, password: object) -> Account:
        """Create an account; refuses a taken name (in any case) with 409."""
        name, role, password = clean_name(name), check_role(role), check_new_password(password)
        password_hash = _hash(password)
        now = time.time()
        with access_db(self.state_dir) as conn, immediate(conn):
            # SQLite's NOCASE folds ASCII letters only: "élodie" would not collide with "Élodie".
            folded = name.casefold()
            if any(other.casefold() == folded for (other,) in conn.execute("SELECT name FROM accounts")):
                raise AccountError("name", f"an account named {name!r} exists already", 409)
            try:
                conn.execute("INSERT INTO accounts (name, role, password_hash, created, updated) "
                             "VALUES (?, ?, ?, ?, ?)", (name, role, password_hash, now, now))
            except sqlite3.IntegrityError:
                raise AccountError("name", f"an account named {name!r} exists already", 409) from None
        account = self.get(name)
        assert account is not None
        return account

    def verify(self, name: str, password: str) -> Account | None:
        """The enabled account if ``password`` is its password; None otherwise (same cost either way)."""
        with access_db(self.state_dir) as conn:
            row = conn.execute(f"SELECT {_COLUMNS}, password_hash FROM accounts WHERE name = ?",
                               (name,)).fetchone()
        stored = row[-1] if row else _DUMMY_HASH
        matches = check_password_hash(stored, password)
        if row is None or not matches or not row[2]:
            return None
        return _account(row[:-1])

    def start_login(self, name: str) -> str:
        """Record a login of the account; returns its id (the session carries it). Old rows are let go."""
        login_id, now = secrets.token_urlsafe(24), time.time()
        with access_db(self.state_dir) as conn, immediate(conn):
            conn.execute("UPDATE accounts SET last_login = ? WHERE name = ?", (now, name))
            conn.execute("DELETE FROM logins WHERE started < ?", (now - LOGIN_ROWS_KEPT_S,))
            conn.execute("INSERT INTO logins (id, account, started) VALUES (?, ?, ?)", (login_id, name, now))
        return login_id

    def login_open(self, login_id: object, name: str) -> bool:
        """Whether the login is the account's and has not ended (logged out)."""
        if not isinstance(login_id, str):
            return False
        with access_db(self.state_dir) as conn:
            row = conn.execute("SELECT 1 FROM logins WHERE id = ? AND account = ? AND ended IS NULL",
                               (login_id, name)).fetchone()
        return row is not None

    def end_login(self, login_id: object) -> None:
        """A logout: the login's cookie is no good from now on, wherever a copy of it is."""
        if isinstance(login_id, str):
            with access_db(self.state_dir) as conn:
                conn.execute("UPDATE logins SET ended = ? WHERE id = ? AND ended IS NULL", (time.time(), login_id))

    def set_password(self, name: str, password: object) -> Account:
        """A new password; every login of the account made before it ends."""
        return self.change(name, password=password)

    def change(self, name: str, *, role: object = None, enabled: object = None,
               password: object = None) -> Account:
        """Change any of role, enabled and password at once, or nothing if one is refused.

        A new password or disabling ends the account's logins at their next request. The last
        enabled admin can be neither demoted nor disabled: nobody could manage accounts then.
        """
        role = None if role is None else check_role(role)
        if enabled is not None and not isinstance(enabled, bool):
            raise AccountError("enabled", f"true or false (got {enabled!r})")
        password_hash = None if password is None else _hash(check_new_password(password))
        with access_db(self.state_dir) as conn, immediate(conn):
            row = conn.execute(f"SELECT {_COLUMNS} FROM accounts WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise AccountError("name", f"no account named {name!r}", 404)
            current = _account(row)
            still_admin = (role or current.role) == "admin" and (current.enabled if enabled is None else enabled)
            if current.role == "admin" and current.enabled and not still_admin:
                others = conn.execute("SELECT count(*) FROM accounts WHERE role = 'admin' AND enabled = 1 "
                                      "AND name != ?", (current.name,)).fetchone()[0]
                if others == 0:
                    raise AccountError("role" if role not in (None, "admin") else "enabled",
                                       f"{current.name!r} is the last enabled admin; make another admin first",
                                       409)
            ends_logins = password_hash is not None or enabled is False
            conn.execute("UPDATE accounts SET role = ?, enabled = ?, password_hash = coalesce(?, password_hash), "
                         "auth_epoch = auth_epoch + ?, updated = ? WHERE name = ?",
                         (role or current.role, int(current.enabled if enabled is None else enabled),
                          password_hash, int(ends_logins), time.time(), current.name))
        return self._existing(name)

    def _existing(self, name: str) -> Account:
        account = self.get(name)
        if account is None:
            raise AccountError("name", f"no account named {name!r}", 404)
        return account
