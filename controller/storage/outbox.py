"""The outbox: which rows of history.db the clinic record has not got yet.

On a treadmill that belongs to a clinic (config ``[clinic]``), the history writer's
connection carries TEMP triggers (they fire for that connection alone, and
only the writer writes): every insert or change of an event, a session, a
sample or a patient adds one outbox row naming the table and the row's key, in
the same transaction as the change. No write can reach history.db without its
outbox row, and none waits on the network.

The replicator reads the outbox in bounded batches (:func:`read_batch`), ships
the rows as they are *now* (several changes of one session go as one upsert; a
row deleted since goes as a delete), and acknowledges the batch
(:func:`acknowledge`), which deletes its outbox rows. A batch read again after
a crash or an outage is shipped again: the server's upserts are keyed by
(treadmill id, local id), so nothing is duplicated.

Copies of the clinic's own patients that the replicator brings back are written
:func:`quietly`: they are not shipped back to the server they came from.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from controller.storage import records

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tbl TEXT NOT NULL,
    ref TEXT NOT NULL,
    wall REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS clinic_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

#: The tables shipped, in the order a batch is applied.
TABLES = ("patients", "sessions", "samples", "events")
_NOW = "((julianday('now') - 2440587.5) * 86400.0)"
_QUIET = "NOT EXISTS (SELECT 1 FROM temp.clinic_quiet)"
_TRIGGERS = f"""
CREATE TEMP TABLE IF NOT EXISTS clinic_quiet (x INTEGER);
CREATE TEMP TRIGGER IF NOT EXISTS outbox_event AFTER INSERT ON main.events
    BEGIN INSERT INTO outbox (tbl, ref, wall) VALUES ('events', NEW.id, {_NOW}); END;
CREATE TEMP TRIGGER IF NOT EXISTS outbox_session_new AFTER INSERT ON main.sessions
    BEGIN INSERT INTO outbox (tbl, ref, wall) VALUES ('sessions', NEW.session_id, {_NOW}); END;
CREATE TEMP TRIGGER IF NOT EXISTS outbox_session_change AFTER UPDATE ON main.sessions
    BEGIN INSERT INTO outbox (tbl, ref, wall) VALUES ('sessions', NEW.session_id, {_NOW}); END;
CREATE TEMP TRIGGER IF NOT EXISTS outbox_session_gone AFTER DELETE ON main.sessions
    BEGIN INSERT INTO outbox (tbl, ref, wall) VALUES ('sessions', OLD.session_id, {_NOW}); END;
CREATE TEMP TRIGGER IF NOT EXISTS outbox_sample AFTER INSERT ON main.samples
    BEGIN INSERT INTO outbox (tbl, ref, wall) VALUES ('samples', NEW.session_id || ':' || NEW.seq, {_NOW}); END;
CREATE TEMP TRIGGER IF NOT EXISTS outbox_patient_new AFTER INSERT ON main.patients WHEN {_QUIET}
    BEGIN INSERT INTO outbox (tbl, ref, wall) VALUES ('patients', NEW.patient_id, {_NOW}); END;
CREATE TEMP TRIGGER IF NOT EXISTS outbox_patient_change AFTER UPDATE ON main.patients WHEN {_QUIET}
    BEGIN INSERT INTO outbox (tbl, ref, wall) VALUES ('patients', NEW.patient_id, {_NOW}); END;
"""

_EVENT_COLUMNS = ("id", "wall_time", "t_mono", "kind", "code", "message", "actor", "figures")
_SAMPLE_COLUMNS = ("session_id", "seq", "t_s", "gap_mm", "belt_kmh", "state", "warning", "stop_mm", "warn_mm")
_SESSION_COLUMNS = ("session_id", "patient_id", "status", "started_wall", "ended_wall", "planned_min", "mode",
                    "duration_s", "distance_m", "max_kmh", "warnings", "trips", "closest_mm", "pain_before",
                    "pain_after", "end_reason", "start_speed_kmh")


def add_triggers(conn: sqlite3.Connection) -> None:
    """Give the writer's connection the outbox triggers (TEMP: they go with the connection)."""
    conn.executescript(_TRIGGERS)


def quietly(conn: sqlite3.Connection, op: Any) -> Any:
    """``op(conn)`` with the patient triggers held: the clinic's own rows are not shipped back."""
    conn.execute("INSERT INTO temp.clinic_quiet VALUES (1)")
    try:
        return op(conn)
    finally:
        conn.execute("DELETE FROM temp.clinic_quiet")


def stats(conn: sqlite3.Connection) -> tuple[int, float | None]:
    """(rows waiting, wall time of the oldest): two index look-ups, not a count.

    Acknowledgements delete a prefix of the ids, so the waiting ids are contiguous."""
    first = conn.execute("SELECT id, wall FROM outbox ORDER BY id LIMIT 1").fetchone()
    if first is None:
        return 0, None
    last = conn.execute("SELECT max(id) FROM outbox").fetchone()[0]
    return int(last - first[0] + 1), float(first[1])


def _one(conn: sqlite3.Connection, sql: str, args: tuple, columns: tuple[str, ...]) -> dict[str, Any] | None:
    row = conn.execute(sql, args).fetchone()
    return None if row is None else dict(zip(columns, row))


def _current(conn: sqlite3.Connection, table: str, ref: str) -> dict[str, Any] | None:
    """The row as it is now, or None if it is gone."""
    if table == "events":
        row = _one(conn, f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events WHERE id = ?", (int(ref),), _EVENT_COLUMNS)
        if row is not None:
            row["figures"] = json.loads(row["figures"])
        return row
    if table == "sessions":
        return _one(conn, f"SELECT {', '.join(_SESSION_COLUMNS)} FROM sessions WHERE session_id = ?", (int(ref),),
                    _SESSION_COLUMNS)
    if table == "samples":
        session_id, seq = ref.split(":")
        return _one(conn, f"SELECT {', '.join(_SAMPLE_COLUMNS)} FROM samples WHERE session_id = ? AND seq = ?",
                    (int(session_id), int(seq)), _SAMPLE_COLUMNS)
    if table == "patients":
        return records.get_patient(conn, ref)
    raise ValueError(f"outbox row names table {table!r}, not one of {', '.join(TABLES)}")


def read_batch(conn: sqlite3.Connection, after: int, limit: int) -> dict[str, Any]:
    """Up to ``limit`` outbox rows after id ``after``, as the rows to ship now.

    ``{"items": [{"table", "key", "row"}], "last_id", "backlog", "oldest_wall"}``: one item per row
    changed (the newest state; ``row`` None: deleted since), in the order of :data:`TABLES`.
    A sample pruned before it was shipped is left out (the clinic keeps what it got).
    ``last_id`` is what :func:`acknowledge` takes once the items are on the server."""
    rows = conn.execute("SELECT id, tbl, ref FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                        (int(after), int(limit))).fetchall()
    seen: dict[tuple[str, str], None] = {}
    for _, table, ref in rows:
        seen[(table, ref)] = None
    items = []
    for table in TABLES:
        for t, ref in seen:
            if t != table:
                continue
            row = _current(conn, table, ref)
            if row is None and table in ("samples", "events"):
                continue
            items.append({"table": table, "key": ref, "row": row})
    backlog, oldest = stats(conn)
    return {"items": items, "last_id": rows[-1][0] if rows else int(after), "backlog": backlog,
            "oldest_wall": oldest}


def acknowledge(conn: sqlite3.Connection, upto: int) -> int:
    """Forget the outbox rows up to id ``upto`` (they are on the server); returns how many."""
    return conn.execute("DELETE FROM outbox WHERE id <= ?", (int(upto),)).rowcount


def get_meta(conn: sqlite3.Connection) -> dict[str, Any]:
    """The replicator's cursors into the clinic record, kept across restarts."""
    return {key: json.loads(value) for key, value in conn.execute("SELECT key, value FROM clinic_meta")}


def set_meta(conn: sqlite3.Connection, values: dict[str, Any]) -> None:
    """Store cursors (JSON values)."""
    conn.executemany("INSERT OR REPLACE INTO clinic_meta (key, value) VALUES (?, ?)",
                     [(k, json.dumps(v)) for k, v in values.items()])
