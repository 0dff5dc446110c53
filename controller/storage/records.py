"""The SQL of therapy records: patient profiles, session summaries and session timelines.

Each function takes a sqlite3 connection first and runs inside the history
store's writer transaction (``HistoryStore.call``/``record``) or on a read-only
connection (``HistoryStore.read``). Values are validated by the caller; these
functions only store and fetch them.
"""

from __future__ import annotations

import enum
import sqlite3
from typing import Any, Iterable, Sequence

from controller.safety.types import State

#: Tables of the therapy records; ``database.connect`` creates them with the events table.
SCHEMA = """
CREATE TABLE IF NOT EXISTS patients (
    patient_id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    notes TEXT NOT NULL,
    mode TEXT NOT NULL,
    speed_cap_kmh REAL NOT NULL,
    base_stop_mm REAL NOT NULL,
    warn_margin_mm REAL NOT NULL,
    target_min REAL NOT NULL,
    sessions_per_day INTEGER NOT NULL,
    created_wall REAL NOT NULL,
    updated_wall REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    session_id INTEGER PRIMARY KEY AUTOINCREMENT,
    patient_id TEXT NOT NULL REFERENCES patients(patient_id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    started_wall REAL NOT NULL,
    ended_wall REAL,
    planned_min REAL NOT NULL,
    mode TEXT NOT NULL,
    duration_s REAL NOT NULL DEFAULT 0,
    distance_m REAL NOT NULL DEFAULT 0,
    max_kmh REAL NOT NULL DEFAULT 0,
    warnings INTEGER NOT NULL DEFAULT 0,
    trips INTEGER NOT NULL DEFAULT 0,
    closest_mm REAL,
    pain_before INTEGER NOT NULL,
    pain_after INTEGER,
    end_reason TEXT,
    start_speed_kmh REAL
);
CREATE INDEX IF NOT EXISTS sessions_patient ON sessions(patient_id, started_wall);
CREATE TABLE IF NOT EXISTS samples (
    session_id INTEGER NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    t_s REAL NOT NULL,
    gap_mm REAL,
    belt_kmh REAL NOT NULL,
    state INTEGER NOT NULL,
    warning INTEGER NOT NULL,
    stop_mm REAL,
    warn_mm REAL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS clinic_sessions (
    treadmill_id TEXT NOT NULL,
    local_id INTEGER NOT NULL,
    patient_id TEXT NOT NULL,
    status TEXT NOT NULL,
    started_wall REAL NOT NULL,
    ended_wall REAL,
    planned_min REAL NOT NULL,
    mode TEXT NOT NULL,
    duration_s REAL NOT NULL,
    distance_m REAL NOT NULL,
    max_kmh REAL NOT NULL,
    warnings INTEGER NOT NULL,
    trips INTEGER NOT NULL,
    closest_mm REAL,
    pain_before INTEGER NOT NULL,
    pain_after INTEGER,
    end_reason TEXT,
    start_speed_kmh REAL,
    changed INTEGER NOT NULL,
    PRIMARY KEY (treadmill_id, local_id)
);
CREATE INDEX IF NOT EXISTS clinic_sessions_patient ON clinic_sessions(patient_id, started_wall);
"""

#: Columns added to a table after its first release: (table, column, declaration). A database made
#: before them gets them, empty (NULL), when it is opened (``migrate``).
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("samples", "stop_mm", "REAL"),
    ("samples", "warn_mm", "REAL"),
    ("sessions", "start_speed_kmh", "REAL"),
    # The clinic record's version this profile is based on (0: never on the clinic's server).
    ("patients", "version", "INTEGER NOT NULL DEFAULT 0"),
)
#: A sample row with the stop and warn distances in force when it was taken (NULL in older rows).
SAMPLE_LIMIT_COLUMNS = ("t_s", "gap_mm", "belt_kmh", "state", "warning", "stop_mm", "warn_mm")

#: Profile fields the therapist sets, in column order.
PATIENT_FIELDS = ("patient_id", "display_name", "notes", "mode", "speed_cap_kmh", "base_stop_mm",
                  "warn_margin_mm", "target_min", "sessions_per_day")
_PATIENT_COLUMNS = PATIENT_FIELDS + ("created_wall", "updated_wall", "version")
#: Columns of another treadmill's session summary kept for the patient's whole clinic history.
CLINIC_SESSION_COLUMNS = ("treadmill_id", "local_id", "patient_id", "status", "started_wall", "ended_wall",
                          "planned_min", "mode", "duration_s", "distance_m", "max_kmh", "warnings", "trips",
                          "closest_mm", "pain_before", "pain_after", "end_reason", "start_speed_kmh", "changed")

#: Keys of a session summary, in the order of the spec and the CSV.
class SessionStatus(enum.StrEnum):
    """A session's ``status`` column: open while active, then how it ended."""

    ACTIVE = "active"
    COMPLETED = "completed"
    ENDED = "ended"
    INTERRUPTED = "interrupted"


#: The statuses of a session that is over.
FINISHED_STATUSES = (SessionStatus.COMPLETED, SessionStatus.ENDED, SessionStatus.INTERRUPTED)

SUMMARY_KEYS = ("session_id", "patient_id", "status", "started_wall", "ended_wall", "planned_min", "mode",
                "duration_s", "distance_m", "mean_kmh", "max_kmh", "warnings", "trips", "closest_mm",
                "pain_before", "pain_after", "pain_flag", "end_reason", "start_speed_kmh")
_SESSION_COLUMNS = tuple(k for k in SUMMARY_KEYS if k not in ("mean_kmh", "pain_flag"))
#: Session columns a running or ended session may change.
UPDATABLE_SESSION_FIELDS = frozenset({"status", "ended_wall", "duration_s", "distance_m", "max_kmh", "warnings",
                                      "trips", "closest_mm", "pain_after", "end_reason"})

#: Controller states as stored in a sample (one byte each instead of the name).
STATE_NAMES: tuple[str, ...] = (State.STOPPED.value, State.READY.value, State.RUNNING.value, State.STOPPING.value)
STATE_CODES = {name: code for code, name in enumerate(STATE_NAMES)}

CRASH_REASON = "controller restarted after a crash"


def migrate(conn: sqlite3.Connection) -> None:
    """Add the columns of ``ADDED_COLUMNS`` that a database made before them lacks."""
    for table, column, declaration in ADDED_COLUMNS:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def _patient_values(p: dict[str, Any]) -> list[Any]:
    missing = [k for k in PATIENT_FIELDS if k not in p]
    if missing:
        raise ValueError(f"patient record lacks {', '.join(missing)}")
    return [p[k] for k in PATIENT_FIELDS]


def insert_patient(conn: sqlite3.Connection, p: dict[str, Any], wall: float) -> dict[str, Any]:
    """Store a new profile; sqlite3.IntegrityError if its patient_id exists."""
    columns = _PATIENT_COLUMNS[:-1]
    conn.execute(f"INSERT INTO patients ({', '.join(columns)}) "
                 f"VALUES ({', '.join('?' * len(columns))})", [*_patient_values(p), wall, wall])
    return get_patient(conn, p["patient_id"])


def update_patient(conn: sqlite3.Connection, p: dict[str, Any], wall: float) -> dict[str, Any]:
    """Replace a profile's fields (not its id or creation time); LookupError if unknown."""
    values = _patient_values(p)
    assignments = ", ".join(f"{k} = ?" for k in PATIENT_FIELDS[1:])
    cur = conn.execute(f"UPDATE patients SET {assignments}, updated_wall = ? WHERE patient_id = ?",
                       [*values[1:], wall, values[0]])
    if cur.rowcount == 0:
        raise LookupError(f"no patient {p['patient_id']!r}")
    return get_patient(conn, p["patient_id"])


def delete_patient(conn: sqlite3.Connection, patient_id: str) -> None:
    """Delete a profile with its sessions and samples; LookupError if unknown."""
    if conn.execute("DELETE FROM patients WHERE patient_id = ?", (patient_id,)).rowcount == 0:
        raise LookupError(f"no patient {patient_id!r}")


def get_patient(conn: sqlite3.Connection, patient_id: str) -> dict[str, Any] | None:
    """One profile, or None."""
    row = conn.execute(f"SELECT {', '.join(_PATIENT_COLUMNS)} FROM patients WHERE patient_id = ?",
                       (patient_id,)).fetchone()
    return None if row is None else dict(zip(_PATIENT_COLUMNS, row))


def list_patients(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """All profiles, sorted by patient_id."""
    rows = conn.execute(f"SELECT {', '.join(_PATIENT_COLUMNS)} FROM patients ORDER BY patient_id").fetchall()
    return [dict(zip(_PATIENT_COLUMNS, r)) for r in rows]


def insert_session(conn: sqlite3.Connection, patient_id: str, started_wall: float, planned_min: float, mode: str,
                   pain_before: int, start_speed_kmh: float | None = None) -> int:
    """Open an "active" session with zero figures; returns its session_id."""
    cur = conn.execute("INSERT INTO sessions (patient_id, status, started_wall, planned_min, mode, pain_before, "
                       "start_speed_kmh) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (patient_id, SessionStatus.ACTIVE, started_wall, planned_min, mode, pain_before,
                        start_speed_kmh))
    return int(cur.lastrowid)


def update_session(conn: sqlite3.Connection, session_id: int, **fields: Any) -> None:
    """Change a session's status, end or figures; ValueError for an unknown field, LookupError if unknown."""
    unknown = sorted(set(fields) - UPDATABLE_SESSION_FIELDS)
    if unknown:
        raise ValueError(f"session fields {', '.join(unknown)} cannot be updated; "
                         f"allowed: {', '.join(sorted(UPDATABLE_SESSION_FIELDS))}")
    if not fields:
        return
    names = sorted(fields)
    cur = conn.execute(f"UPDATE sessions SET {', '.join(f'{k} = ?' for k in names)} WHERE session_id = ?",
                       [*(fields[k] for k in names), session_id])
    if cur.rowcount == 0:
        raise LookupError(f"no session {session_id}")


def delete_session(conn: sqlite3.Connection, session_id: int) -> None:
    """Delete a session with its samples (one that never got going); LookupError if unknown."""
    if conn.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,)).rowcount == 0:
        raise LookupError(f"no session {session_id}")


def insert_samples(conn: sqlite3.Connection, session_id: int, first_seq: int,
                   rows: Iterable[Sequence[Any]]) -> None:
    """Append timeline rows (t_s, gap_mm, belt_kmh, state_name, warning[, stop_mm, warn_mm]), numbered
    from first_seq; the stop and warn distances in force are optional (NULL when left out)."""
    coded = []
    for i, row in enumerate(rows):
        if len(row) not in (5, 7):
            raise ValueError(f"a sample has 5 or 7 values ({', '.join(SAMPLE_LIMIT_COLUMNS)}), not {len(row)}")
        t_s, gap_mm, belt_kmh, state, warning = row[:5]
        stop_mm, warn_mm = row[5:] if len(row) == 7 else (None, None)
        if state not in STATE_CODES:
            raise ValueError(f"sample state {state!r} is not one of {', '.join(STATE_NAMES)}")
        coded.append((session_id, first_seq + i, t_s, gap_mm, belt_kmh, STATE_CODES[state], int(bool(warning)),
                      stop_mm, warn_mm))
    conn.executemany("INSERT INTO samples (session_id, seq, t_s, gap_mm, belt_kmh, state, warning, stop_mm, "
                     "warn_mm) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", coded)


def _summary(row: Sequence[Any]) -> dict[str, Any]:
    s = dict(zip(_SESSION_COLUMNS, row))
    s["mean_kmh"] = s["distance_m"] / s["duration_s"] * 3.6 if s["duration_s"] > 0 else 0.0
    s["pain_flag"] = s["pain_after"] is not None and s["pain_after"] > s["pain_before"]
    return {k: s[k] for k in SUMMARY_KEYS}


_SELECT_SESSIONS = f"SELECT {', '.join(_SESSION_COLUMNS)} FROM sessions"


def get_session(conn: sqlite3.Connection, session_id: int) -> dict[str, Any] | None:
    """One session summary (with mean_kmh and pain_flag), or None."""
    row = conn.execute(_SELECT_SESSIONS + " WHERE session_id = ?", (session_id,)).fetchone()
    return None if row is None else _summary(row)


def list_sessions(conn: sqlite3.Connection, patient_id: str) -> list[dict[str, Any]]:
    """A patient's session summaries, newest first."""
    rows = conn.execute(_SELECT_SESSIONS + " WHERE patient_id = ? ORDER BY started_wall DESC, session_id DESC",
                        (patient_id,)).fetchall()
    return [_summary(r) for r in rows]


def all_sessions(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every session of every patient, oldest first (exports)."""
    return [_summary(r) for r in conn.execute(_SELECT_SESSIONS + " ORDER BY session_id").fetchall()]


def samples(conn: sqlite3.Connection, session_id: int, offset: int = 0,
            limit: int | None = None, *, limits: bool = False) -> tuple[list[list[Any]], int]:
    """A page of a session's timeline as [t_s, gap_mm, belt_kmh, state_name, warning] rows (with limits,
    also stop_mm and warn_mm: ``SAMPLE_LIMIT_COLUMNS``), and the total count."""
    total = conn.execute("SELECT COUNT(*) FROM samples WHERE session_id = ?", (session_id,)).fetchone()[0]
    rows = conn.execute("SELECT t_s, gap_mm, belt_kmh, state, warning, stop_mm, warn_mm FROM samples "
                        "WHERE session_id = ? ORDER BY seq LIMIT ? OFFSET ?",
                        (session_id, -1 if limit is None else limit, offset)).fetchall()
    if limits:
        return [[t_s, gap, kmh, STATE_NAMES[state], warning, stop, warn]
                for t_s, gap, kmh, state, warning, stop, warn in rows], total
    return [[t_s, gap, kmh, STATE_NAMES[state], warning] for t_s, gap, kmh, state, warning, _, _ in rows], total


def recover_interrupted(conn: sqlite3.Connection) -> list[int]:
    """Mark sessions left "active" by a crash as "interrupted", ended at their last sample; returns their ids."""
    active = conn.execute("SELECT session_id, started_wall, duration_s FROM sessions WHERE status = ? "
                          "ORDER BY session_id", (SessionStatus.ACTIVE,)).fetchall()
    for session_id, started_wall, duration_s in active:
        last = conn.execute("SELECT t_s FROM samples WHERE session_id = ? ORDER BY seq DESC LIMIT 1",
                            (session_id,)).fetchone()
        ended_wall = started_wall + (last[0] if last is not None else duration_s)
        update_session(conn, session_id, status=SessionStatus.INTERRUPTED, ended_wall=ended_wall, end_reason=CRASH_REASON)
    return [row[0] for row in active]


def prune_samples(conn: sqlite3.Connection, before_wall: float) -> int:
    """Delete the timelines of sessions started before before_wall (summaries stay); returns rows deleted."""
    return conn.execute("DELETE FROM samples WHERE session_id IN "
                        "(SELECT session_id FROM sessions WHERE started_wall < ?)", (before_wall,)).rowcount


# ---- the clinic record's copies (a treadmill that belongs to a clinic: config [clinic]) -----------------


def store_clinic_patient(conn: sqlite3.Connection, p: dict[str, Any]) -> str:
    """Put the clinic record's profile in place of this treadmill's copy (its version and times too).

    Returns "added", "updated" or "same". Run inside :func:`quietly`, so that the copy is not
    shipped back to the server it came from."""
    values = [*_patient_values(p), float(p["created_wall"]), float(p["updated_wall"]), int(p["version"])]
    old = get_patient(conn, p["patient_id"])
    if old is None:
        conn.execute(f"INSERT INTO patients ({', '.join(_PATIENT_COLUMNS)}) "
                     f"VALUES ({', '.join('?' * len(_PATIENT_COLUMNS))})", values)
        return "added"
    if [old[k] for k in _PATIENT_COLUMNS] == values:
        return "same"
    conn.execute(f"UPDATE patients SET {', '.join(f'{k} = ?' for k in _PATIENT_COLUMNS[1:])} "
                 "WHERE patient_id = ?", [*values[1:], values[0]])
    return "updated"


def store_clinic_session(conn: sqlite3.Connection, s: dict[str, Any]) -> None:
    """Keep (or replace) another treadmill's session summary."""
    conn.execute(f"INSERT OR REPLACE INTO clinic_sessions ({', '.join(CLINIC_SESSION_COLUMNS)}) "
                 f"VALUES ({', '.join('?' * len(CLINIC_SESSION_COLUMNS))})", [s[k] for k in CLINIC_SESSION_COLUMNS])


def list_clinic_sessions(conn: sqlite3.Connection, patient_id: str) -> list[dict[str, Any]]:
    """The patient's sessions on the clinic's other treadmills, as summaries, newest first.

    Each has the keys of :data:`SUMMARY_KEYS` (``session_id`` None: it is another treadmill's)
    and ``treadmill_id``."""
    columns = [c for c in _SESSION_COLUMNS if c != "session_id"]
    rows = conn.execute(f"SELECT treadmill_id, {', '.join(columns)} FROM clinic_sessions WHERE patient_id = ? "
                        "ORDER BY started_wall DESC", (patient_id,)).fetchall()
    out = []
    for row in rows:
        summary = _summary((None, *row[1:]))
        summary["treadmill_id"] = row[0]
        out.append(summary)
    return out


def clinic_history(conn: sqlite3.Connection, patient_id: str, treadmill_id: str) -> list[dict[str, Any]]:
    """The patient's sessions on this treadmill and on the clinic's others, newest first (progression)."""
    own = list_sessions(conn, patient_id)
    for s in own:
        s["treadmill_id"] = treadmill_id
    both = own + list_clinic_sessions(conn, patient_id)
    both.sort(key=lambda s: s["started_wall"], reverse=True)
    return both
