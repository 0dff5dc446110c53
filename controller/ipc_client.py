"""The client side of the controller's Unix-socket API (JSON lines), for every process that uses it.

The dashboard, the voice and the clinic replicator are clients of the controller's
socket; this is their one request/reply (``SocketClient.call``: one short connection
per request, so a crashed or restarted controller cannot wedge a client) and their
one line reader. It lives beside the server (ipc.py) and imports nothing else of
the controller.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
from typing import Any, Callable

#: Longest request line the controller takes (controller/ipc.py refuses longer ones).
MAX_LINE_BYTES = 16 * 1024
#: Longest status line read from a subscription (a status with long reasons is larger than a request).
MAX_STATUS_BYTES = 64 * 1024
#: Longest reply line read: a page of session samples (5000 rows) is far larger
#: than any request, which stays under MAX_LINE_BYTES.
MAX_REPLY_BYTES = 4 * 1024 * 1024


class ControllerOffline(Exception):
    """The controller's socket does not answer (not running, restarting, or too slow)."""


class ControllerError(Exception):
    """The controller refused a request: ``code`` is unauthorized, invalid, conflict, confirm, not_found, storage ...

    ``details`` holds the refusal's other keys (for ``confirm``: ``loosened``, each value the request loosens).
    """

    def __init__(self, code: str, message: str, errors: list[dict] | None = None,
                 details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.errors = errors or []
        self.details = dict(details or {})


def read_line(sock: socket.socket, buffer: bytearray, max_bytes: int = MAX_STATUS_BYTES) -> bytes:
    """One line from ``sock`` (leftovers stay in ``buffer``); a line over ``max_bytes`` is refused."""
    while b"\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ControllerOffline("the controller closed the connection")
        buffer += chunk
        if len(buffer) > max_bytes and b"\n" not in chunk:
            raise ControllerOffline(f"the controller sent an over-long line (over {max_bytes} bytes)")
    line, _, rest = bytes(buffer).partition(b"\n")
    if len(line) > max_bytes:
        raise ControllerOffline(f"the controller sent an over-long line (over {max_bytes} bytes)")
    buffer[:] = rest
    return line


class SocketClient:
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
        # UTF-8, not \u escapes: the longest notes (2000 characters of up to 4 bytes) stay within the limit.
        # A lone surrogate (JSON "\ud800") has no UTF-8 form: backslashreplace writes it back as that
        # same JSON escape, so the controller receives it as sent and refuses it, naming the field.
        text = json.dumps({"id": request_id, "method": method, "params": params or {}}, ensure_ascii=False)
        payload = text.encode("utf-8", "backslashreplace") + b"\n"
        if len(payload) > MAX_LINE_BYTES:
            raise ControllerError("too_long", f"request longer than {MAX_LINE_BYTES} bytes")
        sock = self._connect()
        try:
            sock.sendall(payload)
            buffer = bytearray()
            while True:
                reply = json.loads(read_line(sock, buffer, MAX_REPLY_BYTES))
                # One request per connection: a reply without an id (a line it could not read) is to it.
                if reply.get("id") in (request_id, None):
                    break
        except (OSError, ValueError) as exc:
            raise ControllerOffline(f"no answer from the controller: {exc}") from exc
        finally:
            sock.close()
        if not reply.get("ok"):
            err = reply.get("error") or {}
            if not isinstance(err, dict):
                err = {}
            details = {k: v for k, v in err.items() if k not in ("code", "message", "errors")}
            raise ControllerError(err.get("code", "bad_request"), err.get("message", "refused"), err.get("errors"),
                                  details)
        return reply.get("result")


#: The one request a subscriber sends.
SUBSCRIBE = b'{"id": 1, "method": "subscribe", "params": {}}\n'


class StatusSubscription:
    """The controller's status pushes on one connection, each handed to ``on_status`` on this object's thread.

    It connects, sends ``subscribe`` and reads the ``{"push": "status"}`` lines; a controller that closes
    the connection, refuses, sends garbage or goes quiet for ``timeout_s`` is reported once per connection
    to ``on_lost(reason)`` (also when it cannot be reached at all) and connected to again every ``retry_s``.
    The dashboard's StatusHub, the voice's StatusLink and the clinic replicator's StatusFeed are built on it:
    each decides what a status or a loss means to it. The controller never waits for a subscriber.
    """

    def __init__(self, socket_path: str, on_status: Callable[[dict[str, Any]], None],
                 on_lost: Callable[[str], None], *, timeout_s: float = 2.0, retry_s: float = 0.5,
                 name: str = "status-subscription"):
        self.socket_path = socket_path
        self.on_status, self.on_lost = on_status, on_lost
        self.timeout_s, self.retry_s = timeout_s, retry_s
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> "StatusSubscription":
        """Start the subscription thread."""
        self._thread.start()
        return self

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop the thread (a blocked read is cut short); idempotent."""
        self._stop.set()
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    @property
    def stopping(self) -> bool:
        """True once close() was called."""
        return self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._subscribe_once()
            except (OSError, ValueError, ControllerOffline) as exc:
                if not self._stop.is_set():
                    self.on_lost(str(exc))
            self._stop.wait(self.retry_s)

    def _subscribe_once(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock = sock
        try:
            sock.settimeout(self.timeout_s)
            sock.connect(self.socket_path)
            sock.sendall(SUBSCRIBE)
            buffer = bytearray()
            while not self._stop.is_set():
                line = read_line(sock, buffer)
                message = json.loads(line)
                if not isinstance(message, dict):
                    raise ControllerOffline(f"not a JSON object: {line[:80]!r}")
                if message.get("push") == "status" and isinstance(message.get("status"), dict):
                    self.on_status(message["status"])
                elif message.get("id") == 1 and not message.get("ok"):
                    raise ControllerOffline(f"subscription refused: {message.get('error')}")
        finally:
            self._sock = None
            sock.close()
