"""Storage off the safety path: the history database (SQLite, WAL) and therapist settings.

One writer thread owns ``history.db``: the decision thread only puts events on a
queue, and session and patient writes reach the same thread. A locked, full or
read-only disk holds records in memory (bounded) and retries them; it is logged
and shown in ``health()``, and never reaches the loop.
"""

from __future__ import annotations

import functools
import json
import logging
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from controller.storage import outbox
from controller.storage.database import KEEP_CONNECTION_CODES, StorageError, connect, is_storage_fault, open_readonly
from controller.safety.types import ALERT_EVENT_KINDS, Event

log = logging.getLogger(__name__)

_EVENT_KEYS = ("id", "wall_time", "t_mono", "kind", "code", "message", "actor", "figures")

def _insert_event(e: Event, wall: float, conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO events (wall_time, t_mono, kind, code, message, actor, figures) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (wall, e.t_mono, e.kind, e.code, e.message, e.actor, json.dumps(dict(e.figures), default=str)))


class _Record:
    """A write that must land (retried on storage faults); droppable ones go first when memory runs short."""

    __slots__ = ("op", "droppable", "label", "dropped", "failed")

    def __init__(self, op: Callable[[sqlite3.Connection], Any], droppable: bool, label: str):
        self.op, self.droppable, self.label = op, droppable, label
        self.dropped = self.failed = False


class _Call:
    """A write whose caller waits for the outcome; never retried."""

    __slots__ = ("op", "done", "lock", "started", "cancelled", "result", "exc")

    def __init__(self, op: Callable[[sqlite3.Connection], Any]):
        self.op = op
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.started = self.cancelled = False
        self.result: Any = None
        self.exc: BaseException | None = None

    def begin(self) -> bool:
        """Claim the call for running; False if its caller has given up on it."""
        with self.lock:
            self.started = not self.cancelled
            return self.started

    def settle(self, result: Any = None, exc: BaseException | None = None) -> None:
        self.result, self.exc = result, exc
        self.done.set()


class _Task:
    """A non-database job for the writer thread (settings file)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], Any]):
        self.fn = fn


_STOP = object()


class HistoryStore:
    """The only writer of ``history.db``: events, patients, sessions, samples. ``put``/``record`` never block."""

    def __init__(self, state_dir: str | Path, *, connect: Callable[[Path], sqlite3.Connection] = connect,
                 wall_clock: Callable[[], float] = time.time, mono_clock: Callable[[], float] = time.monotonic,
                 retry_s: float = 2.0, max_backlog: int = 36000, clinic: bool = False):
        self.path = Path(state_dir) / "history.db"
        #: The treadmill belongs to a clinic record: the writer notes every change in the outbox.
        self.clinic = clinic
        self._connect = functools.partial(connect, clinic=True) if clinic else connect
        # Wall time of an event = now - (monotonic now - event's monotonic time).
        self._wall_clock = wall_clock
        self._mono_clock = mono_clock
        self.retry_s = retry_s
        self.max_backlog = max_backlog
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._writer: threading.Thread | None = None  # kept after close, for ``running``
        self._conn: sqlite3.Connection | None = None
        self._pending: list[Any] = []  # writer thread only
        self._held = 0                 # records in _pending
        self._fault: str | None = "history store not started"
        self._retry_at = 0.0
        self._drop_logged = False
        self.written = 0
        #: Transactions committed: the figure behind the write rate (each is one WAL append).
        self.commits = 0
        self.write_errors = 0
        self.dropped = 0
        self.last_error = ""
        #: (outbox rows waiting for the clinic record, wall time of the oldest): after each commit.
        self.outbox: tuple[int, float | None] = (0, None)

    # --- callers' side -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread; it opens the database (a failure is logged and retried, never raised)."""
        if self._thread is not None:
            return
        self._fault = None
        # The schema now, so that a reader in another thread never finds the file without its
        # tables; if the disk refuses, the writer reports it and retries as ever.
        try:
            conn = self._connect(self.path)
            try:
                if self.clinic:
                    self.outbox = outbox.stats(conn)
            finally:
                conn.close()
        except (sqlite3.Error, OSError):
            pass
        self._thread = self._writer = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        """True while the writer thread is alive (after close, until its last write attempt ends)."""
        return self._writer is not None and self._writer.is_alive()

    def close(self, timeout_s: float = 2.0) -> None:
        """Write what can be written, then stop, waiting at most ``timeout_s``. Idempotent."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._q.put(_STOP)
        self._wake.set()
        thread.join(timeout_s)
        if thread.is_alive():
            log.error("history writer did not stop within %.1f s; %d records may be lost", timeout_s,
                      self.health()["backlog"])

    def flush(self, timeout_s: float = 2.0) -> bool:
        """True once everything queued before this call is committed; False on timeout (a failing database)."""
        if self._thread is None:
            return self.health()["backlog"] == 0
        done = threading.Event()
        self._q.put(done)
        return done.wait(timeout_s)

    def put(self, event: Event) -> None:
        """Queue an event (the decision thread); its wall time is derived from its monotonic time now."""
        wall = self._wall_clock() - (self._mono_clock() - event.t_mono)
        self._q.put((event, _Record(functools.partial(_insert_event, event, wall), False,
                                    f"event {event.kind} {event.code}")))

    def put_task(self, fn: Callable[[], Any]) -> None:
        """Run ``fn()`` on the writer thread, off the safety path (settings saves); an OSError is logged."""
        self._q.put(_Task(fn))

    def record(self, op: Callable[[sqlite3.Connection], Any], *, droppable: bool = False) -> None:
        """Queue ``op(conn)`` for the writer's transaction; retried until written. Never blocks."""
        self._q.put(_Record(op, droppable, getattr(op, "__name__", "record")))

    def call(self, op: Callable[[sqlite3.Connection], Any], timeout_s: float = 2.0) -> Any:
        """Run ``op(conn)`` in the writer's transaction and return its result.

        StorageError if the database cannot be written or the call times out; op's own
        exceptions are re-raised with only op's changes rolled back.
        """
        if self._thread is None:
            raise StorageError(f"cannot write to {self.path}: the history store is not running")
        item = _Call(op)
        self._q.put(item)
        self._wake.set()
        if not item.done.wait(timeout_s):
            with item.lock:
                if not item.started:
                    item.cancelled = True
                    raise StorageError(f"cannot write to {self.path}: no answer within {timeout_s:g} s "
                                       f"({self._fault or 'writer busy'})")
            # Already running: its transaction is about to end one way or the other.
            if not item.done.wait(timeout_s):
                raise StorageError(f"cannot write to {self.path}: the write did not finish within "
                                   f"{2 * timeout_s:g} s and may still land")
        if item.exc is not None:
            raise item.exc
        return item.result

    def read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """``fn(conn)`` on a fresh read-only connection in the caller's thread; StorageError if unreadable."""
        conn = open_readonly(self.path)
        try:
            return fn(conn)
        except sqlite3.Error as exc:
            if is_storage_fault(exc):
                raise StorageError(f"cannot read {self.path}: {exc}") from exc
            raise
        finally:
            conn.close()

    def recent(self, limit: int | None = 50, kind: str | None = None, *, since_wall: float | None = None,
               until_wall: float | None = None, kinds: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Events newest first, at most ``limit`` (None: all), optionally of some kinds and in [since, until]."""
        if not self.path.exists():
            return []
        where: list[str] = []
        args: list[Any] = []
        if kind:
            where.append("kind = ?")
            args.append(kind)
        if kinds is not None:
            kinds = list(kinds)
            where.append(f"kind IN ({', '.join('?' * len(kinds))})")
            args += kinds
        if since_wall is not None:
            where.append("wall_time >= ?")
            args.append(since_wall)
        if until_wall is not None:
            where.append("wall_time <= ?")
            args.append(until_wall)
        sql = f"SELECT {', '.join(_EVENT_KEYS)} FROM events"
        sql += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?"
        rows = self.read(lambda conn: conn.execute(sql, (*args, -1 if limit is None else limit)).fetchall())
        out = [dict(zip(_EVENT_KEYS, r)) for r in rows]
        for row in out:
            row["figures"] = json.loads(row["figures"])
        return out

    def health(self) -> dict[str, Any]:
        """{"ok", "message", "backlog", "dropped", "write_errors"}, and for a clinic's treadmill "outbox" (rows
        the clinic record has not got yet) and "outbox_oldest_wall"; attribute reads only, safe from any thread."""
        fault, dropped = self._fault, self.dropped
        backlog = self._held + self._q.qsize()
        if fault is not None:
            message = f"{fault}; {backlog} records held in memory, {dropped} dropped"
        elif dropped:
            message = f"history is written to {self.path}; {dropped} records were dropped while it could not be"
        else:
            message = f"history is written to {self.path}"
        out = {"ok": fault is None, "message": message, "backlog": backlog, "dropped": dropped,
               "write_errors": self.write_errors}
        if self.clinic:
            out["outbox"], out["outbox_oldest_wall"] = self.outbox
        return out

    # --- writer thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                stopping, attempt = self._gather()
                if attempt or stopping:
                    self._write_pending()
            except Exception:  # a bug here must not end the only writer
                log.exception("history writer error")
                self._note_fault(f"cannot write to {self.path}: internal error")
        self._finish()

    def _gather(self) -> tuple[bool, bool]:
        """Wait for work; returns (stop asked, write now). While failing, only a call, stop or retry time wakes it."""
        got_call = stopping = False
        if self._fault is None:
            item = self._q.get()
        else:
            self._wake.wait(max(0.0, self._retry_at - time.monotonic()))
            self._wake.clear()
            item = self._next()
        while item is not None:
            if item is _STOP:
                stopping = True
            elif isinstance(item, _Task):
                try:
                    item.fn()
                except OSError as exc:
                    self._note_error(f"cannot write settings: {exc}")
                except Exception as exc:  # a failing job must not cost the records drained with it
                    self._note_error(f"background write failed: {type(exc).__name__}: {exc}")
            elif isinstance(item, tuple):  # an event: logged once, when it arrives
                _log_event(item[0])
                self._add(item[1])
            elif isinstance(item, _Record):
                self._add(item)
            else:  # _Call or a flush marker
                got_call = got_call or isinstance(item, _Call)
                self._pending.append(item)
            item = self._next()
        self._limit_backlog()
        retry_due = self._fault is None or time.monotonic() >= self._retry_at
        return stopping, got_call or retry_due

    def _next(self) -> Any:
        try:
            return self._q.get_nowait()
        except queue.Empty:
            return None

    def _add(self, rec: _Record) -> None:
        self._pending.append(rec)
        self._held += 1

    def _limit_backlog(self) -> None:
        """Over max_backlog: drop the oldest droppable records, then the oldest of any kind."""
        excess = self._held - self.max_backlog
        if excess <= 0:
            return
        for droppable_only in (True, False):
            for item in self._pending:
                if excess == 0:
                    break
                if isinstance(item, _Record) and not item.dropped and (item.droppable or not droppable_only):
                    item.dropped = True
                    excess -= 1
        lost = self._held - self.max_backlog
        self._pending = [it for it in self._pending if not (isinstance(it, _Record) and it.dropped)]
        self._held = self.max_backlog
        self.dropped += lost
        if not self._drop_logged:
            self._drop_logged = True
            log.error("history backlog over %d records: dropping the oldest (timeline samples first) "
                      "until %s can be written", self.max_backlog, self.path)

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = self._connect(self.path)
        return self._conn

    def _write_pending(self) -> None:
        """Write every pending item in one transaction, each in its own savepoint."""
        pending = self._pending
        if not any(isinstance(it, (_Record, _Call)) for it in pending):
            self._settle_flushes()
            return
        try:
            conn = self._open()
        except (OSError, sqlite3.Error) as exc:
            self._storage_failed(f"cannot open {self.path}: {exc}")
            return
        done: list[tuple[_Record | _Call, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for item in pending:
                if isinstance(item, _Record) or (isinstance(item, _Call) and item.begin()):
                    done.append(self._run_item(conn, item))
            conn.execute("COMMIT")
            self.commits += 1
        except Exception as exc:  # a storage fault (or a bug): nothing of this batch is written
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            cause = f"cannot write to {self.path}: {exc}"
            for call, _, own_exc in done:
                if isinstance(call, _Call) and own_exc is not None:
                    call.settle(exc=own_exc)
            code = getattr(exc, "sqlite_errorcode", None) if is_storage_fault(exc) else None
            if code is None or not (code == sqlite3.SQLITE_READONLY or (code & 0xFF) in KEEP_CONNECTION_CODES):
                self._drop_connection()
            self._storage_failed(cause)
            return
        if self.clinic:
            # After the commit, outside its error handling: a failure here must not make a written batch
            # look unwritten (it would be written again).
            try:
                self.outbox = outbox.stats(conn)
            except sqlite3.Error as exc:
                log.warning("cannot count the outbox of %s: %s", self.path, exc)
        written = 0
        for item, result, own_exc in done:
            if isinstance(item, _Call):
                item.settle(result, own_exc)
            written += own_exc is None
        self.written += written
        self._pending = [it for it in pending if isinstance(it, threading.Event)]
        self._held = 0
        self._settle_flushes()
        if self._fault is not None:
            log.warning("writing to %s again (%d records dropped in all)", self.path, self.dropped)
        self._fault = None
        self._drop_logged = False

    def _run_item(self, conn: sqlite3.Connection, item: Any) -> tuple[Any, Any, BaseException | None]:
        conn.execute("SAVEPOINT item")
        try:
            result = item.op(conn)
        except Exception as exc:
            if is_storage_fault(exc):
                raise
            conn.execute("ROLLBACK TO item")
            conn.execute("RELEASE item")
            if isinstance(item, _Record) and not item.failed:
                item.failed = True
                self._note_error(f"history record dropped ({item.label}): {type(exc).__name__}: {exc}")
            return item, None, exc
        conn.execute("RELEASE item")
        return item, result, None

    def _storage_failed(self, cause: str) -> None:
        """A fault: fail the waiting calls at once, keep the records (minus ones that are wrong) for a retry."""
        calls = [it for it in self._pending if isinstance(it, _Call)]
        self._pending = [it for it in self._pending
                         if not isinstance(it, _Call) and not (isinstance(it, _Record) and it.failed)]
        self._held = sum(isinstance(it, _Record) for it in self._pending)
        self._note_fault(cause)  # health shows the fault before any caller hears of it
        error = StorageError(cause)
        for call in calls:
            if not call.done.is_set():
                call.settle(exc=error)

    def _note_fault(self, cause: str) -> None:
        self.write_errors += 1
        self.last_error = cause
        if cause != self._fault:
            log.error("%s; history records are held in memory and retried every %g s", cause, self.retry_s)
        self._fault = cause
        self._retry_at = time.monotonic() + self.retry_s

    def _note_error(self, message: str) -> None:
        self.write_errors += 1
        self.last_error = message
        log.error("%s", message)

    def _settle_flushes(self) -> None:
        keep = []
        for item in self._pending:
            if isinstance(item, threading.Event):
                item.set()
            else:
                keep.append(item)
        self._pending = keep

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def _finish(self) -> None:
        """After the last attempt: fail what still waits, report what is lost, close the database."""
        late = []
        while (item := self._next()) is not None:
            late.append(item)
        for item in self._pending + late:
            if isinstance(item, _Call) and not item.done.is_set():
                item.settle(exc=StorageError(f"cannot write to {self.path}: the history store is closed"))
        if self._held:
            log.error("%d history records were not written to %s before stopping: %s", self._held, self.path,
                      self._fault)
        self._drop_connection()


def _log_event(e: Event) -> None:
    level = logging.WARNING if e.kind in ALERT_EVENT_KINDS else logging.INFO
    who = f" [{e.actor}]" if e.actor else ""
    log.log(level, "%s %s%s: %s", e.kind, e.code, who, e.message)
