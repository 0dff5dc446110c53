"""The dashboard's side of the controller's Unix-socket API (JSON lines).

One short connection per request keeps a crashed or restarted controller from
wedging the dashboard; :class:`StatusHub` holds the single status subscription
that every SSE stream of this process shares.
"""

from __future__ import annotations

import itertools
import json
import logging
import socket
import threading
from typing import Any

log = logging.getLogger(__name__)

#: Longest line either side sends; the controller refuses longer requests.
MAX_LINE_BYTES = 64 * 1024


class ControllerOffline(Exception):
    """The controller's socket does not answer (not running, restarting, or too slow)."""


class ControllerError(Exception):
    """The controller refused a request: ``code`` is unauthorized, invalid, conflict or bad_request."""

    def __init__(self, code: str, message: str, errors: list[dict] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.errors = errors or []

    def as_dict(self) -> dict[str, Any]:
        """JSON body for the HTTP layer."""
        out: dict[str, Any] = {"ok": False, "code": self.code, "message": self.message}
        if self.errors:
            out["errors"] = self.errors
        return out


def _read_line(sock: socket.socket, buffer: bytearray) -> bytes:
    while b"\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ControllerOffline("the controller closed the connection")
        buffer += chunk
        if len(buffer) > MAX_LINE_BYTES and b"\n" not in buffer:
            raise ControllerOffline("the controller sent an over-long line")
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line


class IpcClient:
    """Request/reply over the controller's socket."""

    def __init__(self, socket_path: str, timeout_s: float = 2.0):
        self.socket_path = socket_path
        self.timeout_s = timeout_s
        self._ids = itertools.count(1)

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout_s)
        try:
            sock.connect(self.socket_path)
        except OSError as exc:
            sock.close()
            raise ControllerOffline(f"controller not reachable at {self.socket_path}: {exc.strerror or exc}") from exc
        return sock

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """One request on a fresh connection; returns ``result`` or raises."""
        request_id = next(self._ids)
        payload = json.dumps({"id": request_id, "method": method, "params": params or {}}).encode() + b"\n"
        sock = self._connect()
        try:
            sock.sendall(payload)
            buffer = bytearray()
            while True:
                reply = json.loads(_read_line(sock, buffer))
                if reply.get("id") == request_id:
                    break
        except (OSError, ValueError) as exc:
            raise ControllerOffline(f"no answer from the controller: {exc}") from exc
        finally:
            sock.close()
        if not reply.get("ok"):
            err = reply.get("error") or {}
            raise ControllerError(err.get("code", "bad_request"), err.get("message", "refused"), err.get("errors"))
        return reply.get("result")

    def status(self) -> dict[str, Any]:
        """The controller's latest status snapshot."""
        return self.call("status")

    def events(self, limit: int = 50, kind: str | None = None) -> list[dict[str, Any]]:
        """Recent events, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if kind:
            params["kind"] = kind
        return self.call("events", params)

    def limits(self) -> dict[str, Any]:
        """Present limits, the installer's ceilings, the mode and display units."""
        return self.call("limits")

    def command(self, command: str, actor: str, authorized: bool, value: Any = None) -> dict[str, Any]:
        """A command for the safety core; raises ControllerError when refused."""
        return self.call("command", {"command": command, "actor": actor, "authorized": authorized,
                                     "value": value})


class StatusHub:
    """One status subscription shared by every SSE stream; reconnects by itself."""

    def __init__(self, socket_path: str, timeout_s: float = 2.0, retry_s: float = 0.5):
        self.socket_path = socket_path
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self._cond = threading.Condition()
        self._latest: dict[str, Any] | None = None
        self._seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.offline = True

    def start(self) -> "StatusHub":
        """Start the subscription thread."""
        self._thread = threading.Thread(target=self._run, name="status-hub", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread; idempotent."""
        self._stop.set()
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(2.0)
        with self._cond:
            self._cond.notify_all()

    @property
    def latest(self) -> dict[str, Any] | None:
        """The newest status, or None while offline."""
        with self._cond:
            return None if self.offline else self._latest

    def wait_newer(self, seq: int, timeout_s: float) -> tuple[int, dict[str, Any] | None]:
        """Block until a status newer than ``seq`` arrives (or the timeout); returns (seq, status)."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq != seq or self._stop.is_set(), timeout_s)
            return self._seq, (None if self.offline else self._latest)

    def _publish(self, status: dict[str, Any] | None, offline: bool) -> None:
        with self._cond:
            self._latest = status
            self.offline = offline
            self._seq += 1
            self._cond.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._subscribe_once()
            except (OSError, ValueError, ControllerOffline) as exc:
                if not self.offline:
                    log.warning("status subscription lost: %s", exc)
                    self._publish(None, offline=True)
            self._stop.wait(self.retry_s)

    def _subscribe_once(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock = sock
        try:
            sock.settimeout(self.timeout_s)
            sock.connect(self.socket_path)
            sock.sendall(b'{"id": 1, "method": "subscribe", "params": {}}\n')
            buffer = bytearray()
            while not self._stop.is_set():
                msg = json.loads(_read_line(sock, buffer))
                if msg.get("push") == "status":
                    self._publish(msg["status"], offline=False)
                elif msg.get("id") == 1 and not msg.get("ok"):
                    raise ControllerOffline(f"subscription refused: {msg.get('error')}")
        finally:
            self._sock = None
            sock.close()

