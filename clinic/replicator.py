"""The replicator: ships this treadmill's history to the clinic record and brings the clinic's patients back.

``treadmill-safety replicate`` runs it as its own unprivileged process
(systemd/treadmill-replicator.service). It is a client of the controller's
socket, like the dashboard and the voice; the controller writes history.db
as ever and never waits on it, nor on the network.

Three threads:

- **status**: subscribes to the controller's status pushes and keeps the newest.
- **live**: upserts this treadmill's ``live_status`` row about once a second, and
  at once when the state, the warning or the trip count changes (the clinic
  overview reads it).
- **ship** (the main loop): in every cycle it

  1. reads a bounded batch of the outbox (``outbox_read``: at most
     ``[clinic] batch_rows`` rows), upserts it in one transaction keyed by
     (treadmill id, local id), and only then acknowledges it (``outbox_ack``).
     A batch shipped but not acknowledged (a crash, a lost answer) is shipped
     again and changes nothing: the upserts are idempotent, and a patient
     edit already taken is recognised by its content;
  2. ships the dashboard's audit rows (access.db, append-only) after the
     newest the server has of this treadmill;
  3. pulls the clinic's patients and other treadmills' sessions and hands them
     to the controller (``clinic_merge``), where the rule for prescriptions is
     the safety core's: tighter at once, looser only while the belt stands.

A server away means backoff (1 s, doubling, at most ``max_backoff_s``) and a
growing outbox in history.db: nothing is lost, and the backlog is in the
status (``storage.outbox``) and /metrics.

The patient conflict rule: the clinic record's row wins. Each accepted change
adds one to the row's version. A change made on a treadmill is taken only if
it was made on the version the server has; otherwise it is refused, the
treadmill's copy is replaced by the clinic's, and the refusal is an event on
that treadmill's dashboard.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

import psycopg
from psycopg.types.json import Jsonb

from clinic.connect import ClinicError, describe
from clinic.connect import connect as connect_clinic
from clinic.schema import migrate
from controller.config import Config
from controller.ipc_client import (MAX_LINE_BYTES, ControllerError, ControllerOffline, SocketClient,
                                   StatusSubscription)
from controller.storage.records import PATIENT_FIELDS

log = logging.getLogger(__name__)

#: Pull the clinic's patients and sessions this often.
PULL_EVERY_S = 2.0
#: The live-status row is written at least this often.
LIVE_EVERY_S = 1.0
#: A full pull of other treadmills' sessions (besides the incremental ones) this often.
FULL_PULL_EVERY_S = 3600.0
#: Sessions are pulled from a little before the last change seen: a row whose change number was taken
#: before another's but committed after it is still found.
PULL_OVERLAP = 1000
#: The controller hears from the replicator at least this often (and at once on a change).
REPORT_EVERY_S = 2.0
#: Requests to the controller stay under its line limit with room to spare.
MERGE_BYTES = MAX_LINE_BYTES - 2048

_SESSION_COLUMNS = ("patient_id", "status", "started_wall", "ended_wall", "planned_min", "mode", "duration_s",
                    "distance_m", "max_kmh", "warnings", "trips", "closest_mm", "pain_before", "pain_after",
                    "end_reason", "start_speed_kmh")
_SAMPLE_COLUMNS = ("t_s", "gap_mm", "belt_kmh", "state", "warning", "stop_mm", "warn_mm")
_EVENT_COLUMNS = ("wall_time", "t_mono", "kind", "code", "message", "actor", "figures")
_AUDIT_COLUMNS = ("time", "actor", "role", "address", "action", "target", "outcome", "detail", "prev_hash", "hash")
_PATIENT_ROW = PATIENT_FIELDS + ("created_wall", "updated_wall", "version", "updated_by")


class Backoff:
    """1 s, doubling to ``max_s``, each with up to 20 % jitter (replicators that lost the server together
    do not all come back at the same instant)."""

    def __init__(self, max_s: float, rng: random.Random | None = None):
        self.max_s = max_s
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The wait after one more failure."""
        self.failures += 1
        base = min(self.max_s, 2.0 ** (self.failures - 1))
        return base * (1.0 + 0.2 * self._rng.random()) if base < self.max_s else base

    def reset(self) -> None:
        self.failures = 0


class StatusFeed:
    """The controller's newest status, from its push stream (controller/ipc_client.py); reconnects on its own."""

    def __init__(self, socket_path: str, on_change: Callable[[], None]):
        self.on_change = on_change
        self.latest: dict[str, Any] | None = None
        self.received_mono = 0.0
        #: (wall time, reason codes) of the last trip seen: every status is looked at here, so a trip while
        #: the clinic record was away keeps its own time and reasons.
        self.last_trip: tuple[float, list[str]] | None = None
        self._trip_count: int | None = None
        self._key: tuple = ()
        self._subscription = StatusSubscription(socket_path, self._status, self._lost, timeout_s=5.0,
                                                retry_s=1.0, name="replicator-status")

    def start(self) -> "StatusFeed":
        self._subscription.start()
        return self

    def stop(self) -> None:
        self._subscription.close()

    def _status(self, status: dict[str, Any]) -> None:
        self.latest, self.received_mono = status, time.monotonic()
        self._note_trip(status)
        key = (status.get("state"), status.get("warning"), status.get("trip_count"),
               (status.get("session") or {}).get("phase"))
        if key != self._key:
            self._key = key
            self.on_change()

    def _lost(self, reason: str) -> None:
        self.latest = None
        self._trip_count = None  # a controller that comes back counts its trips from 0
        self._key = ()
        self.on_change()

    def _note_trip(self, status: dict[str, Any]) -> None:
        trips = status.get("trip_count")
        if not isinstance(trips, int):
            return
        # The first status seen is the baseline; a restarted controller counts from 0 again.
        if self._trip_count is not None and trips > self._trip_count:
            t_wall = status.get("t_wall")
            self.last_trip = (float(t_wall) if isinstance(t_wall, (int, float)) else time.time(),
                              list(status.get("reasons") or {}))
        self._trip_count = trips


class Replicator:
    """Ships one treadmill's outbox and audit rows to the clinic record, pulls the clinic's patients back."""

    def __init__(self, cfg: Config, *, socket_path: str | None = None, audit_db: str | Path | None = None,
                 connect: Callable[..., Any] | None = None, max_backoff_s: float = 30.0,
                 wall_clock: Callable[[], float] = time.time):
        if not cfg.clinic.enabled:
            raise ValueError("[clinic] treadmill_id is \"\": this treadmill belongs to no clinic record")
        self.cfg = cfg
        self.clinic = cfg.clinic
        self.treadmill_id = cfg.clinic.treadmill_id
        self.socket_path = socket_path or cfg.web.ipc_socket
        self.audit_db = Path(audit_db) if audit_db is not None else Path(cfg.web.state_dir) / "access.db"
        self._connect = connect or connect_clinic
        self.max_backoff_s = max_backoff_s
        self.wall_clock = wall_clock
        self.client = SocketClient(self.socket_path, timeout_s=5.0)
        self._stop = threading.Event()
        self._live_due = threading.Event()
        self.feed = StatusFeed(self.socket_path, self._live_due.set)
        self._threads: list[threading.Thread] = []
        #: What the ship loop has done (read by tests, the live row and the report).
        self.connected = False
        self.message = "starting"
        self.shipped_wall: float | None = None
        self._reported: tuple = ()
        self._reported_at = 0.0
        self._audit_seen: tuple = ()
        self._patient_versions: dict[str, tuple[int, float]] = {}
        self._sent_sessions: dict[tuple[str, int], int] = {}
        self._audit_after: int | None = None
        self._next_pull = 0.0
        self._next_full_pull = 0.0
        self._last_trip: tuple[float, list[str]] | None = None
        self._cursor: int | None = None

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> "Replicator":
        self.feed.start()
        for target, name in ((self._ship_loop, "replicator-ship"), (self._live_loop, "replicator-live")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._live_due.set()
        self.feed.stop()
        for thread in self._threads:
            thread.join(timeout_s)

    def __enter__(self) -> "Replicator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- the ship loop ------------------------------------------------------------------

    def _ship_loop(self) -> None:
        backoff = Backoff(self.max_backoff_s)
        conn = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = self._open()
                    backoff.reset()
                busy = self.cycle(conn)
                self._report()
                if not busy:
                    self._stop.wait(0.2)
            except (ControllerOffline, ControllerError) as exc:
                self.message = f"controller: {exc}"
                if conn is not None:
                    try:
                        conn.rollback()  # nothing half-shipped stays open on the server
                    except Exception:  # noqa: BLE001 - a broken connection is made anew
                        self._close(conn)
                        conn = None
                self._stop.wait(1.0)
            except Exception as exc:  # noqa: BLE001 - the server away, or any other database trouble
                if not isinstance(exc, (psycopg.Error, ClinicError)):
                    log.exception("replication cycle failed")
                self._close(conn)
                conn = None
                self.connected = False
                self.message = f"clinic record unreachable: {describe(exc)}"
                delay = backoff.next_delay()
                log.warning("%s; trying again in %.1f s", self.message, delay)
                self._report()
                self._stop.wait(delay)
        self._close(conn)

    def _open(self):
        conn = self._connect(self.clinic, application_name=f"treadmill-replicator {self.treadmill_id}")
        try:
            migrate(conn)
            conn.autocommit = False
            with conn.cursor() as cur:
                cur.execute("SELECT coalesce(max(local_id), 0) FROM audit WHERE treadmill_id = %s",
                            (self.treadmill_id,))
                self._audit_after = int(cur.fetchone()[0])
            self._audit_seen = ()
            conn.commit()
        except BaseException:
            self._close(conn)
            raise
        self.connected = True
        self.message = "shipping to the clinic record"
        log.info("connected to the clinic record as treadmill %s", self.treadmill_id)
        return conn

    @staticmethod
    def _close(conn) -> None:
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass

    def _report(self) -> None:
        """Tell the controller how replication goes: on a change, else every REPORT_EVERY_S (it counts a
        replicator silent for 10 s as away)."""
        report = (self.connected, self.message[:500], self.shipped_wall)
        now = time.monotonic()
        if report == self._reported and now - self._reported_at < REPORT_EVERY_S:
            return
        try:
            self.client.call("clinic_report", dict(zip(("connected", "message", "shipped_wall"), report)))
            self._reported, self._reported_at = report, now
        except (ControllerOffline, ControllerError):
            pass

    def cycle(self, conn) -> bool:
        """One round: a batch of the outbox, the audit rows, and a pull when due. True if more is waiting."""
        more = self.ship_batch(conn) if self._outbox_may_hold_rows() else False
        more = self.ship_audit(conn) or more
        now = time.monotonic()
        if now >= self._next_pull:
            self._next_pull = now + PULL_EVERY_S
            full = now >= self._next_full_pull
            if full:
                self._next_full_pull = now + FULL_PULL_EVERY_S
            self.pull(conn, full=full)
        return more

    def _outbox_may_hold_rows(self) -> bool:
        """False only when the controller's own newest status says its outbox is empty: an idle treadmill is
        not asked for an empty batch five times a second."""
        status = self.feed.latest
        if status is None:
            return True
        waiting = (status.get("storage") or {}).get("outbox")
        return not isinstance(waiting, int) or waiting > 0

    def ship_batch(self, conn) -> bool:
        """Ship one batch of the outbox, then acknowledge it. True if the outbox has more."""
        batch = self.client.call("outbox_read", {"after": 0, "limit": self.clinic.batch_rows})
        items = batch["items"]
        if not items and batch["last_id"] == 0:
            return False
        accepted: list[dict] = []
        refused: list[dict] = []
        tid = self.treadmill_id
        with conn.cursor() as cur:
            by_table: dict[str, list] = {}
            for item in items:
                by_table.setdefault(item["table"], []).append(item)
            for item in by_table.get("patients", []):
                if item["row"] is not None:
                    self._ship_patient(cur, item["row"], accepted, refused)
            sessions = by_table.get("sessions", [])
            gone = [(tid, int(i["key"])) for i in sessions if i["row"] is None]
            if gone:
                cur.executemany("DELETE FROM samples WHERE treadmill_id = %s AND session_local_id = %s", gone)
                cur.executemany("DELETE FROM sessions WHERE treadmill_id = %s AND local_id = %s", gone)
            rows = [(tid, i["row"]["session_id"], *(i["row"][c] for c in _SESSION_COLUMNS))
                    for i in sessions if i["row"] is not None]
            if rows:
                cols = ", ".join(_SESSION_COLUMNS)
                cur.executemany(
                    f"INSERT INTO sessions (treadmill_id, local_id, {cols}) VALUES (%s, %s, "
                    f"{', '.join(['%s'] * len(_SESSION_COLUMNS))}) ON CONFLICT (treadmill_id, local_id) DO UPDATE SET "
                    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _SESSION_COLUMNS)
                    + ", changed = nextval('record_changes'), received_at = clock_timestamp()", rows)
            rows = [(tid, i["row"]["session_id"], i["row"]["seq"], *(i["row"][c] for c in _SAMPLE_COLUMNS))
                    for i in by_table.get("samples", [])]
            if rows:
                cur.executemany(
                    f"INSERT INTO samples (treadmill_id, session_local_id, seq, {', '.join(_SAMPLE_COLUMNS)}) "
                    f"VALUES (%s, %s, %s, {', '.join(['%s'] * len(_SAMPLE_COLUMNS))}) "
                    "ON CONFLICT (treadmill_id, session_local_id, seq) DO NOTHING", rows)
            jsonb = Jsonb
            rows = [(tid, i["row"]["id"], *(jsonb(i["row"][c]) if c == "figures" else i["row"][c]
                                            for c in _EVENT_COLUMNS)) for i in by_table.get("events", [])]
            if rows:
                cur.executemany(
                    f"INSERT INTO events (treadmill_id, local_id, {', '.join(_EVENT_COLUMNS)}) "
                    f"VALUES (%s, %s, {', '.join(['%s'] * len(_EVENT_COLUMNS))}) "
                    "ON CONFLICT (treadmill_id, local_id) DO NOTHING", rows)
        conn.commit()
        ack = self.client.call("outbox_ack", {"upto": batch["last_id"]})
        self.shipped_wall = self.wall_clock()
        if accepted or refused:
            rows = accepted + [r["row"] for r in refused]
            try:
                self._merge(patients=rows,
                            refused=[{"patient_id": r["row"]["patient_id"], "message": r["message"]} for r in refused],
                            accepted=[{"patient_id": r["patient_id"], "version": r["version"]} for r in accepted])
            except (ControllerOffline, ControllerError):
                # Shipped and acknowledged, but this treadmill has not heard: the next pull sends these again.
                for row in rows:
                    self._patient_versions.pop(row["patient_id"], None)
                raise
        return ack["backlog"] > 0

    def _ship_patient(self, cur, local: dict, accepted: list, refused: list) -> None:
        """Create or change the clinic's profile under the rule: the server's row wins, by version."""
        pid, base = local["patient_id"], int(local["version"])
        cur.execute(f"SELECT {', '.join(_PATIENT_ROW)} FROM patients WHERE patient_id = %s FOR UPDATE", (pid,))
        found = cur.fetchone()
        server = None if found is None else dict(zip(_PATIENT_ROW, found))
        who = f"treadmill {self.treadmill_id}"
        fields = PATIENT_FIELDS
        if server is None:
            cur.execute(f"INSERT INTO patients ({', '.join(fields)}, created_wall, updated_wall, version, updated_by) "
                        f"VALUES ({', '.join(['%s'] * len(fields))}, %s, %s, 1, %s) "
                        f"RETURNING {', '.join(_PATIENT_ROW)}",
                        (*(local[k] for k in fields), local["created_wall"], local["updated_wall"], who))
            accepted.append(dict(zip(_PATIENT_ROW, cur.fetchone())))
        elif all(_same(server[k], local[k]) for k in fields):
            accepted.append(server)  # already there (this change shipped before, or the same change made twice)
        elif base == server["version"]:
            cur.execute(f"UPDATE patients SET {', '.join(f'{k} = %s' for k in fields[1:])}, updated_wall = %s, "
                        "version = version + 1, updated_by = %s, changed = nextval('record_changes') "
                        f"WHERE patient_id = %s RETURNING {', '.join(_PATIENT_ROW)}",
                        (*(local[k] for k in fields[1:]), local["updated_wall"], who, pid))
            accepted.append(dict(zip(_PATIENT_ROW, cur.fetchone())))
        else:
            why = (f"patient id {pid} is already in the clinic record (made by {server['updated_by']})"
                   if base == 0 else
                   f"it was made on version {base}, and the clinic record has version {server['version']} "
                   f"(changed by {server['updated_by']})")
            refused.append({"row": server, "message": why})
            log.warning("patient %s: a change made on this treadmill was refused: %s", pid, why)

    def ship_audit(self, conn) -> bool:
        """Ship the dashboard's audit rows the server lacks (after the newest it has). True if more wait."""
        if self._audit_after is None or not self.audit_db.is_file():
            return False
        # The dashboard appends to its trail in WAL mode: unchanged files, nothing new (a stat, not an open).
        signature = tuple((st.st_size, st.st_mtime_ns) for st in
                          (_stat(self.audit_db), _stat(self.audit_db.with_name(self.audit_db.name + "-wal"))))
        if signature == self._audit_seen:
            return False
        limit = self.clinic.batch_rows
        try:
            src = sqlite3.connect(self.audit_db.resolve().as_uri() + "?mode=ro", uri=True, timeout=1.0)
            try:
                rows = src.execute(f"SELECT id, {', '.join(_AUDIT_COLUMNS)} FROM audit WHERE id > ? ORDER BY id "
                                   "LIMIT ?", (self._audit_after, limit)).fetchall()
            finally:
                src.close()
        except sqlite3.Error as exc:
            log.warning("cannot read the audit trail %s: %s", self.audit_db, exc)
            return False
        if len(rows) < limit:
            self._audit_seen = signature  # read to its end: look again only once the files change
        if not rows:
            return False
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO audit (treadmill_id, local_id, {', '.join(_AUDIT_COLUMNS)}) VALUES "
                            f"(%s, {', '.join(['%s'] * (len(_AUDIT_COLUMNS) + 1))}) "
                            "ON CONFLICT (treadmill_id, local_id) DO NOTHING",
                            [(self.treadmill_id, *row) for row in rows])
        conn.commit()
        self._audit_after = rows[-1][0]
        return len(rows) == limit

    # ---- pulling the clinic's record ----------------------------------------------------------

    def pull(self, conn, full: bool = False) -> None:
        """Hand the controller the patients that changed and other treadmills' sessions it lacks."""
        cursor = 0 if full else self._session_cursor()  # asked of the controller before a transaction opens
        with conn.cursor() as cur:
            cur.execute(f"SELECT {', '.join(_PATIENT_ROW)} FROM patients ORDER BY patient_id")
            patients = [dict(zip(_PATIENT_ROW, r)) for r in cur.fetchall()]
            cur.execute(f"SELECT treadmill_id, local_id, {', '.join(_SESSION_COLUMNS)}, changed FROM sessions "
                        "WHERE treadmill_id <> %s AND changed > %s ORDER BY changed",
                        (self.treadmill_id, max(0, cursor - PULL_OVERLAP)))
            names = ("treadmill_id", "local_id", *_SESSION_COLUMNS, "changed")
            sessions = [dict(zip(names, r)) for r in cur.fetchall()]
        conn.commit()
        fresh = [p for p in patients
                 if self._patient_versions.get(p["patient_id"]) != (p["version"], p["updated_wall"])]
        new_sessions = [s for s in sessions
                        if self._sent_sessions.get((s["treadmill_id"], s["local_id"])) != s["changed"]]
        top = max([s["changed"] for s in sessions], default=0)
        self._merge(patients=fresh, sessions=new_sessions, cursor={"sessions": max(top, cursor)})

    def _session_cursor(self) -> int:
        if self._cursor is None:
            try:
                self._cursor = int(self.client.call("clinic_cursor", {"actor": "clinic replicator",
                                                                      "authorized": True}).get("sessions", 0))
            except (ControllerError, ValueError, TypeError):
                self._cursor = 0
        return self._cursor

    def _merge(self, *, patients: list[dict] = (), sessions: list[dict] = (), refused: list[dict] = (),
               accepted: list[dict] = (), cursor: dict | None = None) -> None:
        """``clinic_merge`` in requests that stay under the controller's line limit."""
        if not patients and not sessions and not refused and (cursor is None or cursor["sessions"] == self._cursor):
            return
        pending_p, pending_s = list(patients), list(sessions)
        first = True
        while first or pending_p or pending_s:
            first = False
            params: dict[str, Any] = {"patients": [], "sessions": [], "refused": list(refused),
                                      "accepted": list(accepted), "actor": "clinic replicator", "authorized": True}
            size = len(json.dumps(params, ensure_ascii=False).encode()) + 200
            for key, pending in (("patients", pending_p), ("sessions", pending_s)):
                while pending:
                    row = pending[0]
                    n = len(json.dumps(row, ensure_ascii=False).encode()) + 2
                    if size + n > MERGE_BYTES and (params["patients"] or params["sessions"]):
                        break
                    params[key].append(row)
                    pending.pop(0)
                    size += n
            last = not pending_p and not pending_s
            if last and cursor:
                params["cursor"] = cursor
            result = self.client.call("clinic_merge", params)
            refused, accepted = [], []
            for row in params["patients"]:
                self._patient_versions[row["patient_id"]] = (row["version"], row["updated_wall"])
            for s in params["sessions"]:
                self._sent_sessions[(s["treadmill_id"], s["local_id"])] = s["changed"]
            for pid in result.get("skipped", []):
                # Left as it was (an edit there waits to be shipped): not taken, so sent again after it.
                self._patient_versions.pop(pid, None)
            for item in result.get("not_kept", []):
                log.warning("%s is not kept on this treadmill: %s",
                            f"patient {item['patient_id']}" if "patient_id" in item else
                            f"a session of treadmill {item.get('treadmill_id')}", item["message"])
        if cursor:
            self._cursor = cursor["sessions"]

    # ---- the live-status row --------------------------------------------------------------------

    def _live_loop(self) -> None:
        backoff = Backoff(self.max_backoff_s)
        conn = None
        next_try = 0.0
        while not self._stop.is_set():
            self._live_due.wait(LIVE_EVERY_S)
            self._live_due.clear()
            if self._stop.is_set():
                break
            if time.monotonic() < next_try:
                continue
            try:
                if conn is None:
                    conn = self._connect(self.clinic, autocommit=True,
                                         application_name=f"treadmill-live {self.treadmill_id}")
                    self._last_trip = self._last_trip or self._stored_last_trip(conn)
                    backoff.reset()
                self.write_live(conn)
            except Exception as exc:  # noqa: BLE001 - the server away: the ship loop reports it
                self._close(conn)
                conn = None
                next_try = time.monotonic() + backoff.next_delay()
                log.debug("live status not written: %s", describe(exc))
        self._close(conn)

    def _stored_last_trip(self, conn) -> tuple[float, list[str]] | None:
        with conn.cursor() as cur:
            cur.execute("SELECT wall_time, code FROM events WHERE treadmill_id = %s AND kind = 'trip' "
                        "ORDER BY local_id DESC LIMIT 1", (self.treadmill_id,))
            row = cur.fetchone()
        return None if row is None else (float(row[0]), [row[1]])

    def live_row(self) -> dict[str, Any]:
        """This treadmill's live-status row from the newest status."""
        status = self.feed.latest
        fresh = status is not None and time.monotonic() - self.feed.received_mono <= 3.0
        row: dict[str, Any] = {"treadmill_id": self.treadmill_id, "dashboard_url": self.clinic.dashboard_url,
                               "controller_link": fresh, "replicated_wall": self.shipped_wall}
        if not fresh:
            return {**row, "state": "UNKNOWN", "warning": False, "reasons": [], "belt_kmh": 0.0}
        trips = status.get("trip_count")
        seen = self.feed.last_trip
        if seen is not None and (self._last_trip is None or seen[0] >= self._last_trip[0]):
            self._last_trip = seen
        session = status.get("session") or {}
        storage = status.get("storage") or {}
        oldest = storage.get("outbox_oldest_wall")
        return {**row, "state": status.get("state") or "UNKNOWN", "warning": bool(status.get("warning")),
                "reasons": list(status.get("reasons") or {}),
                "belt_kmh": round(float(status.get("belt_speed_mps") or 0.0) * 3.6, 2),
                "patient_id": session.get("patient_id") or status.get("selected_patient"),
                "session_id": session.get("session_id"), "session_phase": session.get("phase"),
                "session_elapsed_s": session.get("elapsed_s"), "session_planned_s": session.get("planned_s"),
                "trip_count": trips if isinstance(trips, int) else 0,
                "last_trip_wall": self._last_trip[0] if self._last_trip else None,
                "last_trip_reasons": self._last_trip[1] if self._last_trip else [],
                "outbox_backlog": int(storage.get("outbox") or 0),
                # Its age on this Pi's clock; write_live turns it into a time on the server's clock.
                "outbox_oldest_wall": (max(0.0, self.wall_clock() - float(oldest))
                                       if isinstance(oldest, (int, float)) else None)}

    def write_live(self, conn) -> None:
        """Upsert the live-status row (the server stamps updated_at)."""
        row = self.live_row()
        jsonb = Jsonb
        for key in ("reasons", "last_trip_reasons"):
            row[key] = jsonb(row.get(key) or [])
        columns = list(row)
        # The oldest waiting row's time on the server's clock: its age here, taken from the server's now.
        values = ["(extract(epoch FROM clock_timestamp()) - %s)" if c == "outbox_oldest_wall" else "%s"
                  for c in columns]
        with conn.cursor() as cur:
            cur.execute(f"INSERT INTO live_status ({', '.join(columns)}, updated_at) "
                        f"VALUES ({', '.join(values)}, clock_timestamp()) "
                        "ON CONFLICT (treadmill_id) DO UPDATE SET "
                        + ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[1:])
                        + ", updated_at = clock_timestamp()", [row[c] for c in columns])


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(float(a) - float(b)) < 1e-9
    return a == b


def _stat(path: Path):
    """os.stat, or a stand-in for a file not there (a WAL file comes and goes with checkpoints)."""
    try:
        return path.stat()
    except FileNotFoundError:
        return os.stat_result((0,) * 10)
