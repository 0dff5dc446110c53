"""The controller's API on a Unix socket: JSON lines, as Klipper's API socket.

Every request gets a reply, ``{"id", "ok": true, "result"}`` or ``{"id", "ok": false,
"error": {"code", "message", "errors"?}}``; subscribers also get ``{"push": "status",
"status"}`` at up to 20 Hz and on every state change. A malformed or oversized line
gets an error reply and the connection stays open. Nothing here can delay the
decision thread: it only hands the newest status to each client's writer, which
keeps the latest one and drops what a slow client did not take.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import socket
import stat
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from controller.ipc_client import MAX_LINE_BYTES  # the one limit, shared with the clients
from controller.storage import outbox, records
from controller.therapy import patients
from controller.config import Config, Limits
from controller.fields import Choice, Flag, Num, Text, check_value
from controller.loop import ControlLoop
from controller.safety import checks
from controller.safety.types import Command, CommandKind, EventKind
from controller.therapy.runner import SessionError, SessionRunner
from controller.storage.database import StorageError
from controller.storage.event_log import one_per_action
from controller.storage.store import HistoryStore

log = logging.getLogger(__name__)

#: Replies a client may leave unread before it is dropped (statuses are never queued up).
MAX_PENDING_REPLIES = 64
PUSH_INTERVAL_S = 0.05
#: More requests than this in one read is a flood, not a client: it is dropped.
MAX_REQUESTS_PER_CHUNK = 256
#: A connection that neither subscribed nor sent anything for this long is closed.
IDLE_TIMEOUT_S = 10.0
#: Connections accepted beyond max_clients may only stop: a full API never blocks an E-stop.
STOP_ONLY_EXTRA = 16
SEND_TIMEOUT_S = 2.0
EVENT_KINDS = tuple(kind.value for kind in EventKind)
#: The clinic replicator reports every cycle; after this long without a word it counts as away.
CLINIC_REPORT_STALE_S = 10.0


class RequestError(Exception):
    """A request the server refuses; becomes an error reply (``details``: extra keys of its error object)."""

    def __init__(self, code: str, message: str, errors: list[dict] | None = None,
                 details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.message, self.errors = code, message, errors or []
        self.details = dict(details or {})


def _limits_ranges() -> dict[str, dict[str, Any]]:
    return {f.name: {"min": f.metadata["spec"].lo, "max": f.metadata["spec"].hi, "unit": f.metadata["spec"].unit}
            for f in dataclasses.fields(Limits)}


class _Client:
    """One connection: a reader thread (requests) and a writer thread (replies, pushes)."""

    def __init__(self, server: "IpcServer", sock: socket.socket, number: int, stop_only: bool = False):
        self.server, self.sock, self.number = server, sock, number
        self.subscribed = False
        self.stop_only = stop_only
        self._cond = threading.Condition()
        self._replies: deque[bytes] = deque()
        self._status: bytes | None = None
        self._closed = False
        sock.settimeout(SEND_TIMEOUT_S)

    def start(self) -> None:
        threading.Thread(target=self._read_loop, name=f"ipc-client-{self.number}", daemon=True).start()
        threading.Thread(target=self._write_loop, name=f"ipc-writer-{self.number}", daemon=True).start()

    def reply(self, message: dict[str, Any]) -> None:
        """Queue a reply; a client that leaves too many unread is dropped."""
        data = json.dumps(message, default=str).encode() + b"\n"
        with self._cond:
            if len(self._replies) >= MAX_PENDING_REPLIES:
                self._closed = True
            self._replies.append(data)
            self._cond.notify()

    def push_status(self, data: bytes) -> None:
        """Offer the newest status; an older one not yet sent is dropped. Never blocks."""
        with self._cond:
            self._status = data
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _write_loop(self) -> None:
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._closed or self._replies or self._status)
                    if self._closed:
                        break
                    chunks = list(self._replies)
                    self._replies.clear()
                    if self._status is not None:
                        chunks.append(self._status)
                        self._status = None
                self.sock.sendall(b"".join(chunks))
        except OSError:
            pass  # a dead or stalled client: drop it
        finally:
            self.close()
            self.sock.close()
            self.server._forget(self)

    def _refuse_too_long(self) -> None:
        self.reply(self.server.error_reply(None, RequestError(
            "too_long", f"request longer than {MAX_LINE_BYTES} bytes: discarded")))

    def _read_loop(self) -> None:
        pending = b""  # an unfinished line (bounded by MAX_LINE_BYTES)
        discarding = False
        last_heard = time.monotonic()
        try:
            while not self._closed:
                try:
                    chunk = self.sock.recv(65536)
                except socket.timeout:
                    if not self.subscribed and time.monotonic() - last_heard > IDLE_TIMEOUT_S:
                        break
                    continue
                last_heard = time.monotonic()
                if not chunk:
                    break
                # One scan and one slice per line: a flood of bare newlines costs O(chunk), not O(chunk^2).
                lines = chunk.split(b"\n")
                lines[0] = pending + lines[0]
                pending = lines.pop()
                if discarding and lines:  # the first complete line is the tail of an over-long one
                    discarding = False
                    lines[0] = b""
                handled = 0
                for line in filter(None, lines):  # empty lines dropped in C, not one by one
                    if len(line) > MAX_LINE_BYTES:
                        self._refuse_too_long()
                    elif line.strip():
                        self.reply(self.server.handle(self, line))
                        handled += 1
                        if handled > MAX_REQUESTS_PER_CHUNK:
                            raise OSError("too many requests at once: client dropped")
                if len(pending) > MAX_LINE_BYTES:
                    if not discarding:
                        self._refuse_too_long()
                    discarding = True
                    pending = b""
        except OSError:
            pass
        finally:
            self.close()


class IpcServer:
    """Serves the loop's status, events and commands on a Unix socket (mode 0660)."""

    def __init__(self, loop: ControlLoop, history: HistoryStore, cfg: Config, socket_path: str | Path, *,
                 group: str = "", demo_actions: dict[str, Callable[[], str]] | None = None,
                 max_clients: int = 32, sessions: SessionRunner | None = None,
                 sensor_timing: Callable[[], dict[str, Any]] | None = None):
        self.loop, self.history, self.cfg = loop, history, cfg
        self.sessions = sessions
        #: Each sensor's read mode, measured period and phase (TofArray.timing), for the status.
        self.sensor_timing = sensor_timing or dict
        self.path = Path(socket_path)
        self.group = group
        self.demo_actions = demo_actions or {}
        self.max_clients = max_clients
        self._clients: set[_Client] = set()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._count = 0
        self._seq = 0
        self._last_push_t = 0.0
        self._last_key: tuple = ()
        self._latest: dict[str, Any] = {}
        #: The clinic replicator's last report (clinic_report), with the monotonic time it came.
        self._clinic_report: dict[str, Any] | None = None
        self._static = {"ceilings": dataclasses.asdict(cfg.ceilings), "units": cfg.display.units,
                        "demo": bool(self.demo_actions)}

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> "IpcServer":
        """Bind the socket (replacing a stale one), set its mode and group, start accepting."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if not stat.S_ISSOCK(self.path.lstat().st_mode):
                raise OSError(f"[web] ipc_socket = {str(self.path)!r}: exists and is not a socket")
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o660)
        if self.group:
            try:
                shutil.chown(self.path, group=self.group)
            except (LookupError, PermissionError) as exc:
                sock.close()
                raise OSError(f"[web] ipc_group = {self.group!r}: cannot give the socket to this group: {exc}") \
                    from exc
        sock.listen(64)
        sock.settimeout(0.5)
        self._sock = sock
        self.loop.add_status_listener(self._on_status)
        threading.Thread(target=self._accept_loop, name="ipc-accept", daemon=True).start()
        return self

    def close(self) -> None:
        """Stop accepting, drop every client, remove the socket. Idempotent."""
        self._stop.set()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.close()

    @property
    def client_count(self) -> int:
        """Connections open now."""
        with self._lock:
            return len(self._clients)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()  # type: ignore[union-attr]
            except socket.timeout:
                continue
            except OSError:
                break
            self._count += 1
            with self._lock:
                n = len(self._clients)
                stop_only = n >= self.max_clients
                refuse = n >= self.max_clients + STOP_ONLY_EXTRA
                client = _Client(self, conn, self._count, stop_only=stop_only)
                if not refuse:
                    self._clients.add(client)
            if refuse:
                try:
                    conn.sendall(json.dumps(self.error_reply(None, RequestError(
                        "busy", f"too many clients (limit {self.max_clients})"))).encode() + b"\n")
                finally:
                    conn.close()
                continue
            client.start()

    def _forget(self, client: _Client) -> None:
        with self._lock:
            self._clients.discard(client)

    # ---- status pushes (decision thread: must not block) -----------------------------

    def _on_status(self, status: dict[str, Any]) -> None:
        now = time.monotonic()
        key = (status["state"], status["warning"], status["relay_energized"], tuple(status["reasons"]))
        if key == self._last_key and now - self._last_push_t < PUSH_INTERVAL_S:
            return
        self._last_key, self._last_push_t = key, now
        self._seq += 1
        full = {**status, **self._static, **self._live(), "seq": self._seq, "t_wall": time.time()}
        self._latest = full
        with self._lock:
            subscribers = [c for c in self._clients if c.subscribed]
        if subscribers:
            data = json.dumps({"push": "status", "status": full}, default=str).encode() + b"\n"
            for client in subscribers:
                client.push_status(data)

    # ---- requests (client reader threads) --------------------------------------------

    @staticmethod
    def error_reply(request_id: Any, err: RequestError) -> dict[str, Any]:
        """The error form of a reply."""
        error: dict[str, Any] = {**getattr(err, "details", {}), "code": err.code, "message": err.message}
        if err.errors:
            error["errors"] = err.errors
        return {"id": request_id, "ok": False, "error": error}

    def handle(self, client: _Client, line: bytes) -> dict[str, Any]:
        """Answer one request line."""
        request_id = None
        try:
            try:
                request = json.loads(line)
            except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser goes
                raise RequestError("bad_request", f"not JSON: {exc}") from exc
            if not isinstance(request, dict):
                raise RequestError("bad_request", "a request is a JSON object with id, method and params")
            request_id = request.get("id")
            method, params = request.get("method"), request.get("params", {})
            if not isinstance(params, dict):
                raise RequestError("bad_request", "params must be a JSON object")
            if client.stop_only and not (method == "command" and params.get("command") in ("estop", "stop")):
                raise RequestError("busy", f"too many clients (limit {self.max_clients}): this connection "
                                   "may only send estop or stop")
            handlers = {"status": self._m_status, "subscribe": self._m_subscribe, "events": self._m_events,
                        "limits": self._m_limits, "command": self._m_command}
            if self.demo_actions:
                handlers["demo"] = self._m_demo
            if self.sessions is not None:
                handlers.update(self._session_methods())
            handler = handlers.get(method) if isinstance(method, str) else None
            if handler is None:
                raise RequestError("unknown_method", f"unknown method {method!r}; methods: {', '.join(handlers)}")
            return {"id": request_id, "ok": True, "result": handler(client, params)}
        except RequestError as err:
            return self.error_reply(request_id, err)
        except SessionError as err:
            return self.error_reply(request_id, RequestError(err.code, err.message,
                                                             [e.as_dict() for e in err.errors], err.details))
        except StorageError as err:
            return self.error_reply(request_id, RequestError("storage", f"storage unavailable: {err}"))
        except Exception as exc:  # noqa: BLE001 - a bad request must never kill the connection
            log.exception("IPC request failed")
            return self.error_reply(request_id, RequestError("internal", f"{type(exc).__name__}: {exc}"))

    def status(self) -> dict[str, Any]:
        """The newest full status (what subscribers get)."""
        return self._latest or {**self.loop.status, **self._static, **self._live(), "seq": 0, "t_wall": time.time()}

    def _live(self) -> dict[str, Any]:
        """Session and storage state: published attributes, cheap to read on the decision thread."""
        runner = self.sessions
        out = {"session": runner.snapshot if runner else None,
               "selected_patient": runner.selected_patient if runner else None,
               "storage": self.history.health(), "sensor_timing": self.sensor_timing()}
        if self.cfg.clinic.enabled:
            out["clinic"] = self._clinic_status()
        return out

    def _clinic_status(self) -> dict[str, Any]:
        """This treadmill in the clinic record: the replicator's last word, and a prescription waiting."""
        report = self._clinic_report
        pending = self.sessions.clinic_pending if self.sessions else None
        age = None if report is None else round(time.monotonic() - report["t_mono"], 1)
        # A replicator that has not reported for a while is as good as gone.
        connected = report is not None and report["connected"] and age is not None and age <= CLINIC_REPORT_STALE_S
        return {"treadmill_id": self.cfg.clinic.treadmill_id, "connected": connected,
                "message": "no word from the replicator" if report is None else
                (report["message"] if age <= CLINIC_REPORT_STALE_S else
                 f"no word from the replicator for {age:.0f} s"),
                "report_age_s": age, "shipped_wall": None if report is None else report["shipped_wall"],
                "pending_prescription": None if pending is None else
                {"patient_id": pending["patient_id"], "version": pending["version"]}}

    def _m_status(self, client: _Client, params: dict) -> dict[str, Any]:
        return self.status()

    def _m_subscribe(self, client: _Client, params: dict) -> dict[str, Any]:
        client.subscribed = True
        client.push_status(json.dumps({"push": "status", "status": self.status()}, default=str).encode() + b"\n")
        return {"subscribed": True, "interval_s": PUSH_INTERVAL_S}

    def _m_events(self, client: _Client, params: dict) -> list[dict[str, Any]]:
        errors: list = []
        limit = check_value("events", "limit", params.get("limit", 50), Num(1, 500, integer=True), errors)
        kind = params.get("kind")
        if kind is not None:
            check_value("events", "kind", kind, Choice(EVENT_KINDS), errors)
        if errors:
            raise RequestError("invalid", "; ".join(map(str, errors)), [e.as_dict() for e in errors])
        self.history.flush(1.0)
        if kind is not None:
            return self.history.recent(int(limit), kind)
        # A command and the state or limits change it made are one action, shown once (event_log.py);
        # twice the rows always leave at least ``limit`` once paired.
        return one_per_action(self.history.recent(2 * int(limit)))[:int(limit)]

    def _m_limits(self, client: _Client, params: dict) -> dict[str, Any]:
        core = self.loop.core
        return {"limits": dataclasses.asdict(core.limits), "ceilings": dataclasses.asdict(self.cfg.ceilings),
                "mode": core.mode.value, "units": self.cfg.display.units, "ranges": _limits_ranges(),
                # One range per limit: its own, within the installer's ceilings and the slowest speed.
                "effective": checks.limit_ranges(self.cfg)}

    def _m_command(self, client: _Client, params: dict) -> dict[str, Any]:
        names = [k.value for k in CommandKind]
        unknown = sorted(set(params) - {"command", "actor", "authorized", "value"})
        if unknown:
            raise RequestError("invalid", f"[command] {unknown[0]}: not a command field; "
                               "fields: command, actor, authorized, value")
        kind = params.get("command")
        if kind not in names:
            raise RequestError("invalid", f"[command] command = {kind!r}: must be one of {', '.join(names)}")
        actor = params.get("actor")
        if not isinstance(actor, str) or not 0 < len(actor.strip()) <= 80:
            raise RequestError("invalid", f"[command] actor = {actor!r}: must be the acting person's name, "
                               "1 to 80 characters")
        authorized = params.get("authorized", False)
        if not isinstance(authorized, bool):
            raise RequestError("invalid", f"[command] authorized = {authorized!r}: must be true or false")
        reply = self.loop.command(Command(CommandKind(kind), actor, authorized, params.get("value")))
        if not reply.ok:
            d = reply.as_dict()
            raise RequestError(reply.code, reply.message, d.get("errors"))
        return reply.as_dict()

    def _m_demo(self, client: _Client, params: dict) -> dict[str, Any]:
        action = params.get("action")
        if not isinstance(action, str) or action not in self.demo_actions:
            raise RequestError("invalid", f"[demo] action = {action!r:.60}: must be one of "
                               + ", ".join(sorted(self.demo_actions)))
        return {"message": self.demo_actions[action]()}

    # ---- patients and sessions ----------------------------------------------------------

    def _session_methods(self) -> dict[str, Callable[[_Client, dict], Any]]:
        runner = self.sessions
        assert runner is not None
        therapist = ("actor", "authorized")

        def fields(method: str, keys: tuple[str, ...], fn: Callable[[dict], Any]) -> Callable[[_Client, dict], Any]:
            """Refuse a field the method does not take, naming it and the ones it does."""
            def checked(client: _Client, params: dict) -> Any:
                unknown = sorted(set(params) - set(keys))
                if unknown:
                    raise RequestError("invalid", f"[{method}] {unknown[0]}: not a field of {method}; fields: "
                                       + (", ".join(keys) or "none"))
                return fn(params)
            return checked

        def forward(method: str, name: str, keys: tuple[str, ...]) -> Callable[[_Client, dict], Any]:
            return fields(method, keys + therapist, lambda params: runner.request(name, params))

        methods = {
            "patients": fields("patients", (), lambda params: self._patients()),
            "patient": fields("patient", ("patient_id",), lambda params: runner.patient_page(params.get("patient_id"))),
            "patient_save": forward("patient_save", "save", ("patient", "create")),
            "patient_delete": forward("patient_delete", "delete", ("patient_id",)),
            "patient_select": forward("patient_select", "select", ("patient_id", "confirm")),
            "session_start": forward("session_start", "start", ("patient_id", "planned_min", "pain_before",
                                                                 "speed_kmh", "confirm")),
            "session_pause": forward("session_pause", "pause", ()),
            "session_resume": forward("session_resume", "resume", ()),
            "session_end": forward("session_end", "end", ()),
            "session_pain": forward("session_pain", "pain", ("session_id", "pain_after")),
            "session": fields("session", ("session_id",), lambda params: runner.session_page(params.get("session_id"))),
            "session_samples": fields("session_samples", ("session_id", "offset", "limit"), self._session_samples),
        }
        if self.cfg.clinic.enabled:
            methods.update({
                "outbox_read": fields("outbox_read", ("after", "limit"), self._outbox_read),
                "outbox_ack": fields("outbox_ack", ("upto",), self._outbox_ack),
                "clinic_merge": forward("clinic_merge", "merge", ("patients", "sessions", "refused", "accepted",
                                                                   "cursor")),
                "clinic_cursor": forward("clinic_cursor", "cursor", ()),
                "clinic_report": fields("clinic_report", ("connected", "message", "shipped_wall"),
                                        self._clinic_report_in),
            })
        return methods

    # ---- the clinic record's replicator ------------------------------------------------------

    def _outbox_read(self, params: dict) -> dict[str, Any]:
        errors: list = []
        after = check_value("outbox_read", "after", params.get("after", 0), Num(0, 1e9, integer=True), errors)
        limit = check_value("outbox_read", "limit", params.get("limit", self.cfg.clinic.batch_rows),
                            Num(1, 5000, integer=True), errors)
        if errors:
            raise RequestError("invalid", "; ".join(map(str, errors)), [e.as_dict() for e in errors])
        return self.history.read(lambda conn: outbox.read_batch(conn, int(after), int(limit)))

    def _outbox_ack(self, params: dict) -> dict[str, Any]:
        errors: list = []
        upto = check_value("outbox_ack", "upto", params.get("upto"), Num(0, 1e9, integer=True), errors)
        if errors:
            raise RequestError("invalid", "; ".join(map(str, errors)), [e.as_dict() for e in errors])
        deleted = self.history.call(lambda conn: outbox.acknowledge(conn, int(upto)))
        backlog, oldest = self.history.outbox
        return {"acknowledged": deleted, "backlog": backlog, "oldest_wall": oldest}

    def _clinic_report_in(self, params: dict) -> dict[str, Any]:
        errors: list = []
        connected = check_value("clinic_report", "connected", params.get("connected"), Flag(), errors)
        message = check_value("clinic_report", "message", params.get("message", ""),
                              Text("one line", max_len=500, min_len=0), errors)
        shipped = params.get("shipped_wall")
        if shipped is not None:
            check_value("clinic_report", "shipped_wall", shipped, Num(0, 1e11, "s"), errors)
        if errors:
            raise RequestError("invalid", "; ".join(map(str, errors)), [e.as_dict() for e in errors])
        self._clinic_report = {"connected": connected, "message": message, "shipped_wall": shipped,
                               "t_mono": time.monotonic()}
        return {"ok": True}

    def _patients(self) -> dict[str, Any]:
        return {"patients": self.history.read(records.list_patients), "fields": patients.describe_fields(self.cfg)}

    def _session_samples(self, params: dict) -> dict[str, Any]:
        errors: list = []
        sid = check_value("session", "session_id", params.get("session_id"), Num(1, 1e9, integer=True), errors)
        offset = check_value("session", "offset", params.get("offset", 0), Num(0, 1e9, integer=True), errors)
        limit = check_value("session", "limit", params.get("limit", 5000), Num(1, 5000, integer=True), errors)
        if errors:
            raise RequestError("invalid", "; ".join(map(str, errors)), [e.as_dict() for e in errors])
        if self.history.read(lambda conn: records.get_session(conn, sid)) is None:
            raise RequestError("not_found", f"no session {sid}")
        rows, total = self.history.read(lambda conn: records.samples(conn, sid, offset, limit, limits=True))
        following = offset + len(rows)
        return {"columns": list(records.SAMPLE_LIMIT_COLUMNS), "rows": rows, "total": total,
                "next_offset": following if following < total else None}
