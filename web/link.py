"""The app's connection to the controller: an IpcClient, the shared StatusHub, the stream count.

One :class:`ControllerLink` per app (``app.extensions["controller_link"]``), so
two apps in one process (tests) never share a hub or a stream counter.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from flask import Flask, current_app

from web.ipc_client import IpcClient, StatusHub

EXTENSION_KEY = "controller_link"


class ControllerLink:
    """IPC client, status hub and the bounded count of open SSE streams of one app."""

    def __init__(self, socket_path: str, max_streams: int, timeout_s: float = 2.0):
        self.client = IpcClient(socket_path, timeout_s=timeout_s)
        self.hub = StatusHub(socket_path, timeout_s=timeout_s)
        self.max_streams = max_streams
        self._lock = threading.Lock()
        self._streams = 0
        self._started = False
        self._closed = False
        self._last_command_wall = 0.0

    def init_app(self, app: Flask) -> None:
        """Attach to ``app``."""
        app.extensions[EXTENSION_KEY] = self

    def start(self) -> None:
        """Start the status subscription once (idempotent; never after close)."""
        with self._lock:
            if self._started or self._closed:
                return
            self._started = True
        self.hub.start()

    def close(self) -> None:
        """Stop the status subscription; idempotent."""
        with self._lock:
            self._closed = True
            started = self._started
        if started:
            self.hub.close()

    def note_command(self) -> None:
        """Remember that a command was just answered: older pushed statuses no longer tell the truth."""
        self._last_command_wall = time.time()

    def pushed_status(self) -> dict[str, Any] | None:
        """The hub's newest status if it is live and newer than our last command; else None.

        Serving reads from the one subscription keeps a room full of polling
        tablets from opening a controller connection per request.
        """
        self.start()
        latest = self.hub.latest
        if latest is None:
            return None
        t_wall = latest.get("t_wall")
        if not isinstance(t_wall, (int, float)) or t_wall < self._last_command_wall:
            return None
        return latest

    @property
    def closed(self) -> bool:
        """True once close() has run: open streams end."""
        return self._closed

    @property
    def open_streams(self) -> int:
        """How many SSE streams are open now."""
        with self._lock:
            return self._streams

    def acquire_stream(self) -> bool:
        """Count one more open stream; False when the limit is reached."""
        with self._lock:
            if self._streams >= self.max_streams:
                return False
            self._streams += 1
            return True

    def stream_releaser(self) -> "_Release":
        """A callable that gives back one stream slot, at most once."""
        return _Release(self)

    def _release(self) -> None:
        with self._lock:
            self._streams -= 1


class _Release:
    """Gives a stream slot back once, however often the server calls close()."""

    def __init__(self, link: ControllerLink):
        self._link = link
        self._lock = threading.Lock()
        self._done = False

    def __call__(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        self._link._release()


def get_link() -> ControllerLink:
    """The current app's ControllerLink."""
    return current_app.extensions[EXTENSION_KEY]
