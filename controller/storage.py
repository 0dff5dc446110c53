"""Storage off the safety path: the event log (SQLite, WAL) and therapist settings.

The decision thread only puts events on a queue; a writer thread owns the
database. A slow, full or read-only disk is logged and never reaches the loop.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import queue
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from controller.config import Config, Limits, ceiling_errors, limits_reach_errors
from controller.fields import FieldError, check_table
from controller.safety_types import Event

log = logging.getLogger(__name__)

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
"""
_STOP = object()


def connect(path: Path) -> sqlite3.Connection:
    """Open the database in WAL mode with a short busy timeout."""
    conn = sqlite3.connect(path, timeout=1.0, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(_SCHEMA)
    return conn


class EventLog:
    """Queue-fed writer of events into ``events.db``; ``put`` never blocks."""

    def __init__(self, state_dir: str | Path, *, wall_clock=time.time, mono_clock=time.monotonic):
        self.path = Path(state_dir) / "events.db"
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # Wall time of an event = now - (monotonic now - event's monotonic time).
        self._wall_clock = wall_clock
        self._mono_clock = mono_clock
        self.written = 0
        self.write_errors = 0
        self.last_error = ""

    def start(self) -> None:
        """Open the database and start the writer thread."""
        self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
        self._thread.start()

    def put(self, event: Event) -> None:
        """Queue an event (called from the decision thread)."""
        self._q.put(event)

    def put_task(self, task) -> None:
        """Queue a write (e.g. settings) to run on the writer thread, off the safety path."""
        self._q.put(task)

    def close(self, timeout_s: float = 2.0) -> None:
        """Write what is queued, then stop. Idempotent."""
        if self._thread is not None:
            self._q.put(_STOP)
            self._thread.join(timeout_s)
            self._thread = None

    def flush(self, timeout_s: float = 2.0) -> bool:
        """Wait until everything queued so far is written (tests, shutdown)."""
        done = threading.Event()
        self._q.put(done)
        return done.wait(timeout_s)

    def _run(self) -> None:
        conn = None
        try:
            conn = connect(self.path)
        except sqlite3.Error as exc:
            self._error(f"cannot open {self.path}: {exc}")
        while True:
            item = self._q.get()
            if item is _STOP:
                break
            if isinstance(item, threading.Event):
                item.set()
                continue
            if callable(item):
                try:
                    item()
                except OSError as exc:
                    self._error(f"cannot write settings: {exc}")
                continue
            self._log(item)
            if conn is not None:
                try:
                    self._insert(conn, item)
                except sqlite3.Error as exc:
                    self._error(f"cannot write event to {self.path}: {exc}")
        if conn is not None:
            conn.close()

    def _insert(self, conn: sqlite3.Connection, e: Event) -> None:
        wall = self._wall_clock() - (self._mono_clock() - e.t_mono)
        conn.execute("INSERT INTO events (wall_time, t_mono, kind, code, message, actor, figures) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (wall, e.t_mono, e.kind, e.code, e.message, e.actor, json.dumps(dict(e.figures), default=str)))
        self.written += 1

    @staticmethod
    def _log(e: Event) -> None:
        level = logging.WARNING if e.kind in ("trip", "refused", "fault") else logging.INFO
        who = f" [{e.actor}]" if e.actor else ""
        log.log(level, "%s %s%s: %s", e.kind, e.code, who, e.message)

    def _error(self, message: str) -> None:
        self.write_errors += 1
        self.last_error = message
        log.error("%s", message)

    def recent(self, limit: int = 50, kind: str | None = None) -> list[dict[str, Any]]:
        """The newest events, newest first (a separate read connection)."""
        if not self.path.exists():
            return []
        # Read-only: the writer thread owns the schema; a reader needs no pragma or script.
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=1.0)
        try:
            sql = "SELECT id, wall_time, t_mono, kind, code, message, actor, figures FROM events"
            args: tuple = ()
            if kind:
                sql += " WHERE kind = ?"
                args = (kind,)
            rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        finally:
            conn.close()
        keys = ("id", "wall_time", "t_mono", "kind", "code", "message", "actor", "figures")
        out = [dict(zip(keys, r)) for r in rows]
        for row in out:
            row["figures"] = json.loads(row["figures"])
        return out


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a file so a crash leaves either the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class SettingsStore:
    """Therapist settings (limits, mode) that survive a restart, in ``settings.json``."""

    def __init__(self, state_dir: str | Path):
        self.path = Path(state_dir) / "settings.json"

    def save(self, limits: Limits, mode: str) -> None:
        """Write atomically."""
        atomic_write_text(self.path, json.dumps({"limits": dataclasses.asdict(limits), "mode": mode}, indent=2))

    def load(self, cfg: Config) -> tuple[Limits, str, list[FieldError]]:
        """Saved settings re-checked against today's config; on any error, the config's defaults."""
        if not self.path.exists():
            return cfg.limits, "reverse", []
        errors: list[FieldError] = []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return cfg.limits, "reverse", [FieldError("settings", "", str(self.path), f"unreadable: {exc}")]
        limits = check_table(Limits, "settings limits", data.get("limits", {}) if isinstance(data, dict) else None,
                             errors)
        mode = data.get("mode") if isinstance(data, dict) else None
        if mode not in ("reverse", "forward"):
            errors.append(FieldError("settings", "mode", mode, 'must be "reverse" or "forward"'))
        if limits is not None:
            errors += ceiling_errors(limits, cfg.ceilings, "settings limits")
            errors += limits_reach_errors(limits, cfg.treadmill, cfg.sensors, "settings limits")
        if errors or limits is None:
            return cfg.limits, "reverse", errors
        return limits, mode, []
