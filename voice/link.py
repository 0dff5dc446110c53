"""The voice's one connection to the controller: the status subscription (JSON lines).

The voice only listens: it sends ``subscribe`` and nothing else, and reads the
``{"push": "status"}`` lines the controller sends at up to 20 Hz and at once on
every state change. A controller that stops, restarts or goes quiet for
``timeout_s`` is reconnected to every ``retry_s``; the controller never waits for
this client (controller/ipc.py keeps only the newest status for a slow reader).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from controller.ipc_client import StatusSubscription

log = logging.getLogger(__name__)


class StatusLink:
    """Hands each pushed status to ``on_status`` on its own thread; reports going on- and offline."""

    def __init__(self, socket_path: str, on_status: Callable[[dict[str, Any]], None], *,
                 on_online: Callable[[bool, str], None] | None = None, timeout_s: float = 2.0,
                 retry_s: float = 0.5):
        self.socket_path = socket_path
        self.on_status = on_status
        self.on_online = on_online or (lambda online, detail: None)
        self.retry_s = retry_s
        self.online = False
        self._first = True
        self._subscription = StatusSubscription(socket_path, self._status, self._lost, timeout_s=timeout_s,
                                                retry_s=retry_s, name="voice-link")

    def start(self) -> "StatusLink":
        """Start the subscription thread."""
        self._subscription.start()
        return self

    def close(self) -> None:
        """Stop the thread; idempotent."""
        self._subscription.close()

    def _set_online(self, online: bool, detail: str) -> None:
        if online != self.online:
            self.online = online
            if online:
                log.info("voice: subscribed to the controller at %s", self.socket_path)
            else:
                log.warning("voice: lost the controller at %s: %s (reconnecting every %g s)", self.socket_path,
                            detail, self.retry_s)
            self.on_online(online, detail)

    def _status(self, status: dict[str, Any]) -> None:
        self._set_online(True, "")
        self.on_status(status)

    def _lost(self, reason: str) -> None:
        if self._first and not self.online:
            log.warning("voice: controller not reachable at %s: %s (retrying every %g s)", self.socket_path,
                        reason, self.retry_s)
            self._first = False
            self.on_online(False, reason)
        self._set_online(False, reason)
