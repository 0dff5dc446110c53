"""systemd's notify protocol over the ``NOTIFY_SOCKET`` datagram socket (stdlib only).

The protocol is one datagram of ``KEY=value`` lines; the stdlib socket does it in
a few lines, so no library is pulled in (the PyPI ``sdnotify`` package has not
been maintained since 2017). Sends never block: the watchdog ping comes from
the decision thread itself, only while the loop is healthy, so a hung loop stops
the pings and systemd restarts the controller.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


class Notifier:
    """Talks to systemd; without NOTIFY_SOCKET (not under systemd) every call does nothing."""

    def __init__(self, socket_path: str | None = None, watchdog_usec: str | None = None,
                 clock=time.monotonic):
        path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET", "")
        usec = watchdog_usec if watchdog_usec is not None else os.environ.get("WATCHDOG_USEC", "")
        # An abstract socket is written with a leading "@".
        self.address = ("\0" + path[1:]) if path.startswith("@") else path
        self.enabled = bool(path)
        #: systemd asks for pings at least every WATCHDOG_USEC; ping at twice that rate.
        self.watchdog_interval_s = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else None
        self._clock = clock
        self._last_ping = float("-inf")
        self._last_status = ""
        self._sock: socket.socket | None = None
        if self.enabled:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)

    def send(self, message: str) -> bool:
        """Send one datagram; False (and nothing raised) if systemd did not take it."""
        if self._sock is None:
            return False
        try:
            self._sock.sendto(message.encode(), self.address)
            return True
        except OSError as exc:  # EAGAIN, ECONNREFUSED: never block or crash the caller
            log.debug("notify %r not sent: %s", message, exc)
            return False

    def ready(self, status: str) -> bool:
        """READY=1: only after the hardware self-check passed."""
        self._last_status = status
        return self.send(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        """STATUS=: the human-readable state shown by ``systemctl status``; sent on change only."""
        if status != self._last_status:
            self._last_status = status
            self.send(f"STATUS={status}")

    def healthy_tick(self, status: str) -> None:
        """Called by the decision thread on each healthy tick: WATCHDOG=1 at the asked rate, STATUS= on change."""
        self.status(status)
        if self.watchdog_interval_s is None:
            return
        now = self._clock()
        if now - self._last_ping >= self.watchdog_interval_s:
            self._last_ping = now
            self.send("WATCHDOG=1")

    def stopping(self) -> None:
        """STOPPING=1 on shutdown."""
        self.send("STOPPING=1\nSTATUS=stopping: relay open")

    def close(self) -> None:
        """Close the socket; idempotent."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
