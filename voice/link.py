"""The voice's one connection to the controller: the status subscription (JSON lines).

The voice only listens: it sends ``subscribe`` and nothing else, and reads the
``{"push": "status"}`` lines the controller sends at up to 20 Hz and at once on
every state change. A controller that stops, restarts or goes quiet for
``timeout_s`` is reconnected to every ``retry_s``; the controller never waits for
this client (controller/ipc.py keeps only the newest status for a slow reader).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from typing import Any, Callable

from controller.ipc_client import ControllerOffline, read_line

log = logging.getLogger(__name__)

#: The longest line read (controller statuses are a few kB).
MAX_LINE_BYTES = 64 * 1024
SUBSCRIBE = b'{"id": 1, "method": "subscribe", "params": {}}\n'


class LinkLost(Exception):
    """The controller closed the connection, refused the subscription or sent garbage."""


class StatusLink:
    """Hands each pushed status to ``on_status`` on its own thread; reports going on- and offline."""

    def __init__(self, socket_path: str, on_status: Callable[[dict[str, Any]], None], *,
                 on_online: Callable[[bool, str], None] | None = None, timeout_s: float = 2.0,
                 retry_s: float = 0.5):
        self.socket_path = socket_path
        self.on_status = on_status
        self.on_online = on_online or (lambda online, detail: None)
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.online = False
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "StatusLink":
        """Start the subscription thread."""
        self._thread = threading.Thread(target=self._run, name="voice-link", daemon=True)
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

    def _set_online(self, online: bool, detail: str) -> None:
        if online != self.online:
            self.online = online
            if online:
                log.info("voice: subscribed to the controller at %s", self.socket_path)
            else:
                log.warning("voice: lost the controller at %s: %s (reconnecting every %g s)", self.socket_path,
                            detail, self.retry_s)
            self.on_online(online, detail)

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                self._subscribe_once()
            except (OSError, ValueError, LinkLost) as exc:
                if not self._stop.is_set():
                    if first and not self.online:
                        log.warning("voice: controller not reachable at %s: %s (retrying every %g s)",
                                    self.socket_path, exc, self.retry_s)
                        first = False
                        self.on_online(False, str(exc))
                    self._set_online(False, str(exc))
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
                try:
                    line = read_line(sock, buffer, MAX_LINE_BYTES)
                except ControllerOffline as exc:
                    raise LinkLost(str(exc)) from exc
                message = json.loads(line)
                if not isinstance(message, dict):
                    raise LinkLost(f"not a JSON object: {line[:80]!r}")
                if message.get("push") == "status":
                    self._set_online(True, "")
                    self.on_status(message["status"])
                elif message.get("id") == 1 and not message.get("ok"):
                    raise LinkLost(f"subscription refused: {message.get('error')}")
        finally:
            self._sock = None
            sock.close()
