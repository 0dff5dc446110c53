"""What to say, decided from the controller's status pushes alone.

Pure: no I/O, no threads, no clock of its own; each cue carries the ``t_mono``
of the status that caused it. What it reads of a status: ``state``,
``warning_causes`` and ``session`` (controller/therapy/tracker.py's snapshot:
session_id, phase walking/paused/finishing, elapsed_s, planned_s, remaining_s).

- a trip (any state to STOPPED, or ``trip_count`` up while STOPPED: the controller keeps only
  the newest status for a client, so a READY between two trips may never reach it):
  "stopped: stand still";
- the warn zone entered while the belt is driven: "step back", once per episode
  (an episode lasts while ``warning_causes`` holds "warn_zone"; the core's own
  hysteresis ends it);
- a session appearing: "session starting"; its remaining walking time crossing
  one minute and thirty seconds; pausing and resuming;
- the session's end: "slowing down" when its ramp-down begins, "stopping" when
  the controlled stop follows, then "session complete" when the session closes
  having reached its plan (the tracker's own rule), "session ended" otherwise.

The first status seen only sets the scene (a voice that restarts mid-session
does not announce its start again), except the warn zone, which is now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controller.therapy.tracker import COMPLETE_SLACK_S

#: (remaining walking time in s, prompt): said when the session's remaining time crosses it.
REMAINING_PROMPTS: tuple[tuple[float, str], ...] = ((60.0, "one_minute_left"), (30.0, "thirty_seconds_left"))
#: A crossing seen later than this (the voice was cut off from the controller) is not announced.
ANNOUNCE_LATE_S = 3.0


@dataclass(frozen=True)
class Cue:
    """A prompt to say, and when (status t_mono) the event that calls for it happened."""

    key: str
    t_event: float


class Prompter:
    """Turns the status stream into prompts; fed statuses in order. No I/O, no clock."""

    def __init__(self, remaining_prompts: tuple[tuple[float, str], ...] = REMAINING_PROMPTS,
                 complete_slack_s: float = COMPLETE_SLACK_S, reverse_faces_edge: bool = True):
        #: Walking backwards, the patient faces the edge on a belt that carries them towards it ([treadmill]
        #: reverse_mode_carries): away from the edge is "step back" then, and "step forward" otherwise.
        self.reverse_faces_edge = reverse_faces_edge
        self.remaining_prompts = tuple(sorted(remaining_prompts, reverse=True))
        self.complete_slack_s = complete_slack_s
        self._seen = False
        self._state: str | None = None
        self._trip_count: int | None = None
        self._session: dict[str, Any] | None = None
        self._warn_said = False
        #: Of the present session: thresholds already passed, whether it has walked, "stopping" said.
        self._passed: set[float] = set()
        self._walked = False
        self._stopping_said = False

    @property
    def state(self) -> str | None:
        """The controller's state in the last status fed (None before the first)."""
        return self._state

    def feed(self, status: dict[str, Any]) -> list[Cue]:
        """One status; the prompts it calls for, most urgent first."""
        t = float(status.get("t_mono") or 0.0)
        state = status.get("state")
        keys: list[str] = []
        trip_count = status.get("trip_count")
        more_trips = isinstance(trip_count, int) and isinstance(self._trip_count, int) and trip_count > self._trip_count
        if self._seen and state == "STOPPED" and (self._state not in (None, "STOPPED") or more_trips):
            keys.append("stopped_stand_still")
        self._trip_count = trip_count
        if self._warn(status, state):
            faces_edge = status.get("mode") != "forward" and self.reverse_faces_edge
            keys.append("step_back" if faces_edge else "step_forward")
        keys += self._session_keys(status.get("session"), state)
        self._state = state
        self._seen = True
        return [Cue(key, t) for key in keys]

    # ---- the warn zone ----------------------------------------------------------------

    def _warn(self, status: dict[str, Any], state: str | None) -> bool:
        if "warn_zone" not in (status.get("warning_causes") or ()):
            self._warn_said = False  # the episode is over: the next one is said again
            return False
        if self._warn_said or state != "RUNNING":
            return False
        self._warn_said = True
        return True

    # ---- the session --------------------------------------------------------------------

    def _session_keys(self, session: dict[str, Any] | None, state: str | None) -> list[str]:
        prev, seen = self._session, self._seen
        self._session = session
        keys: list[str] = []
        if prev is not None and (session is None or session.get("session_id") != prev.get("session_id")):
            keys.append("session_complete" if self._completed(prev) else "session_ended")
        if session is None:
            if seen and prev is None and self._state == "RUNNING" and state == "STOPPING":
                keys.append("stopping")  # a belt run without a session, stopped under control
            return keys
        phase = session.get("phase")
        if prev is None or session.get("session_id") != prev.get("session_id"):
            self._begin(session)
            if seen:
                keys.append("session_starting")
            return keys
        before = prev.get("phase")
        if phase == "finishing":
            if before != "finishing" and state == "RUNNING":
                keys.append("slowing_down")
            if state == "STOPPING" and not self._stopping_said:
                self._stopping_said = True
                keys.append("stopping")
        elif phase == "paused" and before == "walking" and state != "STOPPED":
            keys.append("session_paused")  # a trip has its own prompt
        elif phase == "walking":
            if before == "paused" and self._walked:
                keys.append("session_resumed")
            self._walked = True
            keys += self._remaining(float(session.get("remaining_s") or 0.0))
        return keys

    def _begin(self, session: dict[str, Any]) -> None:
        """A new session (or the one under way when the voice starts): thresholds already behind it are passed."""
        remaining = float(session.get("remaining_s") or 0.0)
        self._passed = {s for s, _ in self.remaining_prompts if remaining <= s}
        self._walked = session.get("phase") == "walking"
        self._stopping_said = False

    def _remaining(self, remaining_s: float) -> list[str]:
        crossed = [(s, key) for s, key in self.remaining_prompts if s not in self._passed and remaining_s <= s]
        self._passed.update(s for s, _ in crossed)
        if not crossed:
            return []
        s, key = crossed[-1]  # several at once (a gap in the stream): only the latest is still true
        return [key] if s - remaining_s <= ANNOUNCE_LATE_S else []

    def _completed(self, session: dict[str, Any]) -> bool:
        """The session reached its plan (as controller/therapy/tracker.py's ``completed`` judges it)."""
        return float(session.get("elapsed_s") or 0.0) >= float(session.get("planned_s") or 0.0) - self.complete_slack_s
