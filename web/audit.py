"""The audit trail: who changed what, append-only and hash-chained.

Every state-changing request to the dashboard (any POST, PUT, PATCH or DELETE:
limits, mode, start, stop, reset, E-stop, patients, sessions, accounts, logins
and failed logins) leaves one row, written once the view has acted: the
account that made it (never a typed name), its role, the client address, the
route, the concrete path, the HTTP status and the request's body with every
password removed. An anonymous stop names only its address. The ``user``
command's account changes leave rows too, naming the system user who ran it.

Rows live in ``access.db`` (web/accounts.py) and SQLite refuses to change or
delete them (triggers). Each row's ``hash`` is SHA-256 over the previous row's
hash and the row's own fields, so a row changed, removed or put in between is
found by :func:`verify` (``treadmill-safety audit verify``), which names the
first row at fault. The chain cannot tell that rows were cut off the end:
``verify`` prints the newest row's number and hash, and noting them (the
README says when) anchors the tail.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from flask import g

from web.accounts import access_db, immediate

GENESIS_HASH = "0" * 64
#: The fields a row's hash covers, in this order (the row's id first).
HASHED_FIELDS = ("id", "time", "actor", "role", "address", "action", "target", "outcome", "detail")
COLUMNS = HASHED_FIELDS + ("prev_hash", "hash")
#: The request body kept in a row, as JSON; longer ones are cut with a mark.
DETAIL_MAX_CHARS = 2000
#: Body keys whose values never reach the trail.
SECRET_MARKERS = ("password", "csrf")
DEFAULT_PAGE_ROWS = 200


def row_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the previous hash and the row's fields as canonical JSON."""
    # ASCII JSON: one spelling for every value, even text a client sent with lone surrogates.
    body = json.dumps([fields[k] for k in HASHED_FIELDS], ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(f"{prev_hash}\n{body}".encode("ascii")).hexdigest()


def iso_utc(wall: float) -> str:
    return datetime.fromtimestamp(wall, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def redact(value: Any) -> Any:
    """The body with every password (and token) value replaced, recursively."""
    if isinstance(value, dict):
        return {k: ("(removed)" if any(m in str(k).lower() for m in SECRET_MARKERS) else redact(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


@dataclass(frozen=True)
class Entry:
    """One row to append (the trail adds its id, time and hashes)."""

    actor: str | None
    role: str | None
    address: str
    action: str
    target: str
    outcome: int
    detail: Any = None


class AuditTrail:
    """The audit rows in one state directory."""

    def __init__(self, state_dir: str | Path):
        self.state_dir = Path(state_dir)

    def append(self, entry: Entry, wall: float | None = None) -> dict[str, Any]:
        """Append one row, chained to the newest; returns it. One transaction, so writers never fork the chain."""
        detail = json.dumps(redact(entry.detail), ensure_ascii=True, separators=(",", ":"), default=str)
        if len(detail) > DETAIL_MAX_CHARS:
            detail = detail[:DETAIL_MAX_CHARS] + "...(cut)"
        with access_db(self.state_dir) as conn, immediate(conn):
            last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
            row = {"id": (last[0] + 1) if last else 1, "time": iso_utc(time.time() if wall is None else wall),
                   "actor": entry.actor, "role": entry.role, "address": entry.address, "action": entry.action,
                   "target": entry.target, "outcome": int(entry.outcome), "detail": detail,
                   "prev_hash": last[1] if last else GENESIS_HASH}
            row["hash"] = row_hash(row["prev_hash"], row)
            conn.execute(f"INSERT INTO audit ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                         [row[c] for c in COLUMNS])
        return row

    def rows(self, *, since: str | None = None, until: str | None = None, user: str | None = None,
             limit: int = DEFAULT_PAGE_ROWS, before_id: int | None = None) -> list[dict[str, Any]]:
        """Rows, newest first: ``since`` <= time < ``until`` (ISO 8601 UTC), by one account, below an id."""
        where, args = [], []
        for clause, value in (("time >= ?", since), ("time < ?", until), ("actor = ? COLLATE NOCASE", user),
                              ("id < ?", before_id)):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = f"SELECT {', '.join(COLUMNS)} FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with access_db(self.state_dir) as conn:
            found = conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [dict(zip(COLUMNS, r)) for r in found]

    def verify(self) -> tuple[bool, int, str]:
        """Walk the chain: (intact, rows checked, message naming the first row at fault or the head)."""
        prev_hash, expected_id, count = GENESIS_HASH, 1, 0
        with access_db(self.state_dir) as conn:
            for values in conn.execute(f"SELECT {', '.join(COLUMNS)} FROM audit ORDER BY id"):
                row = dict(zip(COLUMNS, values))
                if row["id"] != expected_id:
                    return False, count, (f"row {expected_id}: missing (the next row is {row['id']}); "
                                          "rows were removed")
                if row["prev_hash"] != prev_hash:
                    return False, count, (f"row {row['id']}: its prev_hash does not match row {row['id'] - 1}'s "
                                          "hash; the row before it was changed or replaced")
                if row_hash(prev_hash, row) != row["hash"]:
                    return False, count, (f"row {row['id']}: its contents do not match its hash; "
                                          "the row was changed after it was written")
                prev_hash, expected_id, count = row["hash"], expected_id + 1, count + 1
        if count == 0:
            return True, 0, "the audit trail is empty"
        return True, count, f"{count} rows, chain intact; newest row {count}, hash {prev_hash}"


def note_actor(name: str | None, role: str | None) -> None:
    """Name the account a request acts as when its session does not (a login, a logout)."""
    g.audit_actor = (name, role)


def note_detail(detail: Any) -> None:
    """What the request's audit row says in ``detail``, instead of its body."""
    g.audit_detail = detail
