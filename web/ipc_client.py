"""The dashboard's side of the controller's Unix-socket API (JSON lines).

One short connection per request keeps a crashed or restarted controller from
wedging the dashboard; :class:`StatusHub` holds the single status subscription
that every SSE stream of this process shares.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from controller.ipc_client import (MAX_LINE_BYTES, MAX_REPLY_BYTES, MAX_STATUS_BYTES,  # noqa: F401 - re-exported
                                   ControllerError, ControllerOffline, SocketClient, StatusSubscription)

log = logging.getLogger(__name__)


class IpcClient(SocketClient):
    """Request/reply over the controller's socket, one method per API call."""

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

    # --- patients and therapy sessions -------------------------------------------------------

    def patients(self) -> dict[str, Any]:
        """Every patient profile (sorted by id) and the allowed range of each field."""
        return self.call("patients")

    def patient(self, patient_id: str) -> dict[str, Any]:
        """One patient: profile, sessions (newest first), suggestion, pain trend and today's count."""
        return self.call("patient", {"patient_id": patient_id})

    def patient_save(self, patient: dict[str, Any], create: bool, actor: str, authorized: bool) -> dict[str, Any]:
        """Create (``create``) or replace a patient profile."""
        return self.call("patient_save", {"patient": patient, "create": create, "actor": actor,
                                          "authorized": authorized})

    def patient_delete(self, patient_id: str, actor: str, authorized: bool) -> dict[str, Any]:
        """Delete a patient with its sessions and samples."""
        return self.call("patient_delete", {"patient_id": patient_id, "actor": actor, "authorized": authorized})

    def patient_select(self, patient_id: str, actor: str, authorized: bool, confirm: Any = None) -> dict[str, Any]:
        """Apply a patient's prescription (mode and limits) through the safety core.

        Looser limits or another mode are refused (code ``confirm``, ``details["loosened"]``) unless
        ``confirm`` is true; None sends no confirm at all.
        """
        params: dict[str, Any] = {"patient_id": patient_id, "actor": actor, "authorized": authorized}
        if confirm is not None:
            params["confirm"] = confirm
        return self.call("patient_select", params)

    def session_start(self, patient_id: str, planned_min: float, pain_before: int, speed_kmh: float | None,
                      actor: str, authorized: bool, confirm: Any = None) -> dict[str, Any]:
        """Start a therapy session (applies the patient's prescription first, as patient_select; starts the belt)."""
        params: dict[str, Any] = {"patient_id": patient_id, "planned_min": planned_min,
                                  "pain_before": pain_before, "actor": actor, "authorized": authorized}
        if speed_kmh is not None:
            params["speed_kmh"] = speed_kmh
        if confirm is not None:
            params["confirm"] = confirm
        return self.call("session_start", params)

    def session_pause(self, actor: str, authorized: bool) -> dict[str, Any]:
        """Pause the active session (the belt stops; the timer holds)."""
        return self.call("session_pause", {"actor": actor, "authorized": authorized})

    def session_resume(self, actor: str, authorized: bool) -> dict[str, Any]:
        """Resume the paused session."""
        return self.call("session_resume", {"actor": actor, "authorized": authorized})

    def session_end(self, actor: str, authorized: bool) -> dict[str, Any]:
        """End the active session early."""
        return self.call("session_end", {"actor": actor, "authorized": authorized})

    def session_pain(self, session_id: int, pain_after: int, actor: str, authorized: bool) -> dict[str, Any]:
        """Record the pain after an ended session (once)."""
        return self.call("session_pain", {"session_id": session_id, "pain_after": pain_after, "actor": actor,
                                          "authorized": authorized})

    def session(self, session_id: int) -> dict[str, Any]:
        """One session's summary and its warn and trip events (oldest first)."""
        return self.call("session", {"session_id": session_id})

    def session_samples(self, session_id: int, offset: int = 0, limit: int = 5000) -> dict[str, Any]:
        """One page of a session's timeline: columns, rows, total and next_offset (None at the end)."""
        return self.call("session_samples", {"session_id": session_id, "offset": offset, "limit": limit})


class StatusHub:
    """One status subscription shared by every SSE stream; reconnects by itself (controller/ipc_client.py)."""

    def __init__(self, socket_path: str, timeout_s: float = 2.0, retry_s: float = 0.5):
        self.socket_path = socket_path
        self._cond = threading.Condition()
        self._latest: dict[str, Any] | None = None
        self._seq = 0
        self.offline = True
        self._subscription = StatusSubscription(socket_path, lambda status: self._publish(status, offline=False),
                                                self._lost, timeout_s=timeout_s, retry_s=retry_s,
                                                name="status-hub")

    def start(self) -> "StatusHub":
        """Start the subscription thread."""
        self._subscription.start()
        return self

    def close(self) -> None:
        """Stop the thread; idempotent."""
        self._subscription.close()
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
            self._cond.wait_for(lambda: self._seq != seq or self._subscription.stopping, timeout_s)
            return self._seq, (None if self.offline else self._latest)

    def _publish(self, status: dict[str, Any] | None, offline: bool) -> None:
        with self._cond:
            self._latest = status
            self.offline = offline
            self._seq += 1
            self._cond.notify_all()

    def _lost(self, reason: str) -> None:
        if not self.offline:
            log.warning("status subscription lost: %s", reason)
            self._publish(None, offline=True)
