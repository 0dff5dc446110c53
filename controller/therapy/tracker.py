"""One session's bookkeeping on the status stream: walking time, summary figures, timeline.

Pure: no I/O, no threads, no clock of its own; the statuses' ``t_mono`` is its
time. Walking time counts while the controller drives the belt (RUNNING); the
closest approach counts while the belt is driven or at a trip, not while a
patient steps off a standing belt.
"""

from __future__ import annotations

from typing import Any

from controller.config import KMH_PER_MPS
from controller.safety.inputs import MOVING_MPS
from controller.safety.types import Event, EventKind

#: Within this of the plan a session counts as completed when the belt stands.
COMPLETE_SLACK_S = 1.0


class SessionTracker:
    """The bookkeeping of one session, fed statuses and events in order. No I/O, no clock."""

    def __init__(self, session_id: int, patient_id: str, planned_s: float, t0: float, *, end_warning_s: float,
                 sample_hz: float, started_wall: float):
        self.session_id, self.patient_id = session_id, patient_id
        self.planned_s, self.t0, self.started_wall = planned_s, t0, started_wall
        self.end_warning_s = end_warning_s
        self.sample_period = 1.0 / sample_hz
        self.elapsed_s = 0.0
        self.distance_m = 0.0
        self.max_kmh = 0.0
        self.closest_mm: float | None = None
        self.warnings = 0
        self.trips = 0
        self.chimed = False
        #: FINISH was asked for (at the plan or by the therapist): waiting for the belt to stand.
        self.finishing = False
        self.ended_by: str | None = None
        self.paused_reason: str | None = "starting"
        #: Who asked for the pause under way (the belt may still be slowing).
        self.pause_by: str | None = None
        self.last_target_mps = 0.0
        self.state = "READY"
        self._last_t: float | None = None
        self._next_sample_t = t0
        self._seq = 0
        #: (t_s, gap_mm, belt_kmh, state, warning, stop_mm, warn_mm): the distances in force at the sample.
        self.pending: list[tuple[float, float | None, float, str, int, float | None, float | None]] = []
        self.done = False

    @property
    def phase(self) -> str:
        """walking, paused or finishing."""
        if self.finishing:
            return "finishing"
        return "walking" if self.state == "RUNNING" else "paused"

    def feed(self, status: dict[str, Any]) -> list[str]:
        """One status; returns what the runner should do: "chime", "finish", "end"."""
        t = float(status["t_mono"])
        state = status["state"]
        belt_mps = float(status.get("belt_speed_mps") or 0.0)
        if self._last_t is not None and t > self._last_t:
            dt = t - self._last_t
            if self.state == "RUNNING":
                self.elapsed_s += dt
            self.distance_m += belt_mps * dt
        self._last_t = max(t, self._last_t or t)
        if state == "RUNNING":
            self.paused_reason = self.pause_by = None
            self.last_target_mps = float(status.get("target_mps") or self.last_target_mps)
        elif self.state == "RUNNING" or (state == "STOPPED" and self.state != "STOPPED"):
            if state == "STOPPED":
                self.paused_reason = "tripped: " + ", ".join(status.get("reasons") or {})
            else:
                self.paused_reason = f"paused by {self.pause_by}" if self.pause_by else "stopped"
        self.state = state
        self.max_kmh = max(self.max_kmh, belt_mps * KMH_PER_MPS)
        gap = status.get("gap_mm")
        if gap is not None and state in ("RUNNING", "STOPPING"):
            self.closest_mm = gap if self.closest_mm is None else min(self.closest_mm, gap)
        if t >= self._next_sample_t:
            stop, warn = status.get("stop_distance_mm"), status.get("warn_distance_mm")
            self.pending.append((round(t - self.t0, 3), None if gap is None else round(gap, 1),
                                 round(belt_mps * KMH_PER_MPS, 3), state, int(bool(status.get("warning"))),
                                 None if stop is None else round(float(stop), 1),
                                 None if warn is None else round(float(warn), 1)))
            self._next_sample_t = max(self._next_sample_t + self.sample_period, t)
        actions = []
        if not self.chimed and self.elapsed_s >= self.planned_s - self.end_warning_s:
            self.chimed = True
            actions.append("chime")
        if not self.finishing and self.elapsed_s >= self.planned_s:
            self.finishing = True
            actions.append("finish")
        if self.finishing and not self.done and state in ("READY", "STOPPED") and belt_mps < MOVING_MPS:
            self.done = True
            actions.append("end")
        return actions

    def on_event(self, event: Event) -> None:
        """A warning or a trip of the controller during the session."""
        if event.kind == EventKind.WARN:
            self.warnings += 1
        elif event.kind == EventKind.TRIP:
            self.trips += 1
            gap = event.figures.get("gap_mm")
            if gap is not None:
                self.closest_mm = gap if self.closest_mm is None else min(self.closest_mm, gap)

    def take_samples(self) -> tuple[int, list]:
        """The samples not yet handed to storage, with the sequence number of the first."""
        first, rows = self._seq, self.pending
        self._seq += len(rows)
        self.pending = []
        return first, rows

    def figures(self) -> dict[str, Any]:
        """The summary figures as they stand."""
        return {"duration_s": round(self.elapsed_s, 2), "distance_m": round(self.distance_m, 2),
                "max_kmh": round(self.max_kmh, 3), "warnings": self.warnings, "trips": self.trips,
                "closest_mm": None if self.closest_mm is None else round(self.closest_mm, 1)}

    @property
    def completed(self) -> bool:
        """Whether the planned walking time was reached."""
        return self.elapsed_s >= self.planned_s - COMPLETE_SLACK_S

    def snapshot(self) -> dict[str, Any]:
        """The session as the status shows it to everyone (no names, no notes)."""
        return {"session_id": self.session_id, "patient_id": self.patient_id, "phase": self.phase,
                "elapsed_s": round(self.elapsed_s, 1), "planned_s": self.planned_s,
                "remaining_s": round(max(0.0, self.planned_s - self.elapsed_s), 1),
                "end_warning": self.chimed, "paused_reason": self.paused_reason}
