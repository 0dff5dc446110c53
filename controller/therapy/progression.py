"""Session progression: the next suggested duration, the pain trend and today's count.

Pure functions over session summaries (see storage): no I/O and no clock of their own,
``now_wall`` is passed in. Calendar days are local dates (``tz=None``) or dates in ``tz``.
The regimen: retro-walking starts at about ``start_min`` minutes and builds step by step
to the patient's ``target_min``; if pain worsens, stop and review the program.

Rules of :func:`suggest_duration`, in this order (the first that applies decides):

1. No finished session yet (status completed, ended or interrupted): suggest the
   regimen start, ``min(start_min, target_min)``.
2. The *level* is the ``planned_min`` of the most recent "completed" session (one that
   reached its planned duration); with none completed yet it is the regimen start.
   Every hold below suggests the level.
3. Hold when :func:`pain_trend` says pain is worsening ("pain worsening: review the program").
4. Hold when the most recent finished session's pain after is above its pain before.
5. Hold when the most recent finished session was not completed (ended early or interrupted).
6. At or above the target: suggest the target (nothing to raise; not a hold).
7. Hold while fewer than 7 calendar days have passed since the first session of the
   present level: the earliest of the unbroken run of most recent completed sessions
   with that ``planned_min``. The reason says how many days remain.
8. Otherwise raise: ``min(target_min, level + weekly_step_min)``.

Every suggestion is kept within ``[min(start_min, target_min), target_min]`` and rounded to
the nearest 0.5 min; where rounding would pass the target, the target itself is suggested.
Only the duration is ever suggested: the controller never raises a speed on its own.
Bad input raises :class:`ProgressionError` naming the field and its allowed range.
"""

from __future__ import annotations

import itertools
import math
from datetime import date, datetime, tzinfo
from typing import Any

from controller.fields import Choice, FieldError, Num
from controller.storage.records import FINISHED_STATUSES, SessionStatus

#: Days a level is walked before the next step (the regimen grows once a week).
DAYS_PER_STEP = 7
PAIN_WORSENING = "pain worsening: review the program"

_TARGET = Num(1, 60, "min")
_START = Num(1, 30, "min")
_STEP = Num(0.5, 10, "min")
_PLANNED = Num(0.25, 60, "min")
_PAIN = Num(0, 10, integer=True)
_STATUS = Choice(tuple(status.value for status in SessionStatus))
#: Unix times up to the year 5138; fields.MAX_MAGNITUDE (1e9) is below today's clock.
_MAX_WALL = 1e11


class ProgressionError(ValueError):
    """Bad input to the progression rules; ``error`` names the field and the allowed range."""

    def __init__(self, error: FieldError):
        self.error = error
        super().__init__(str(error))


def _require(section: str, key: str, value: Any, spec: Any) -> Any:
    reason = spec.check(value)
    if reason is not None:
        raise ProgressionError(FieldError(section, key, value, reason))
    return spec.convert(value)


def _require_wall(section: str, key: str, value: Any) -> float:
    ok = (not isinstance(value, bool) and isinstance(value, (int, float))
          and math.isfinite(value) and 0 <= value <= _MAX_WALL)
    if not ok:
        raise ProgressionError(FieldError(section, key, value, "must be a unix time in seconds"))
    return float(value)


def _pain(section: str, key: str, value: Any) -> int | None:
    return None if value is None else _require(section, key, value, _PAIN)


def _checked(sessions: list[dict]) -> list[dict]:
    """The fields these rules use, checked, oldest first (storage order is not relied on)."""
    rows = []
    for s in sessions:
        if not isinstance(s, dict):
            raise ProgressionError(FieldError("session", "", s, "must be a session summary"))
        section = f"session {s.get('session_id', '?')}"
        status = _require(section, "status", s.get("status"), _STATUS)
        rows.append({
            "session_id": s.get("session_id"),
            "status": status,
            "started_wall": _require_wall(section, "started_wall", s.get("started_wall")),
            # Only a completed session's planned duration sets the level.
            "planned_min": (_require(section, "planned_min", s.get("planned_min"), _PLANNED)
                            if status == SessionStatus.COMPLETED else None),
            "pain_before": _pain(section, "pain_before", s.get("pain_before")),
            "pain_after": _pain(section, "pain_after", s.get("pain_after")),
        })
    rows.sort(key=lambda r: r["started_wall"])
    return rows


def _local_date(wall: float, tz: tzinfo | None) -> date:
    return datetime.fromtimestamp(wall, tz).date()


def _rising(scores: list[int]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(scores)) and scores[-1] > scores[0]


def _fmt(minutes: float) -> str:
    return f"{round(minutes, 2):g} min"


def pain_flag(pain_before: int, pain_after: int | None) -> bool:
    """True when pain after the session is higher than before it (no score after: False)."""
    before = _require("session", "pain_before", pain_before, _PAIN)
    after = _pain("session", "pain_after", pain_after)
    return after is not None and after > before


def pain_trend(sessions: list[dict]) -> dict:
    """Worsening when the last three before-scores, or the last three after-scores, rise."""
    rows = _checked(sessions)
    details = []
    for key, label in (("pain_before", "before-session"), ("pain_after", "after-session")):
        scores = [r[key] for r in rows if r[key] is not None][-3:]
        if len(scores) == 3 and _rising(scores):
            details.append(f"{label} pain " + " → ".join(str(p) for p in scores))
    if not details:
        return {"worsening": False, "message": None}
    return {"worsening": True, "message": f"{PAIN_WORSENING} ({'; '.join(details)})"}


def sessions_today(sessions: list[dict], now_wall: float, tz: tzinfo | None = None) -> int:
    """How many sessions (any status) started on the same calendar day as ``now_wall``."""
    today = _local_date(_require_wall("progression", "now_wall", now_wall), tz)
    return sum(1 for r in _checked(sessions) if _local_date(r["started_wall"], tz) == today)


def suggest_duration(sessions: list[dict], target_min: float, start_min: float,
                     weekly_step_min: float, now_wall: float, tz: tzinfo | None = None) -> dict:
    """The next session's suggested duration, with the rule that chose it (module docstring)."""
    target = _require("patient", "target_min", target_min, _TARGET)
    start = _require("sessions", "start_duration_min", start_min, _START)
    step = _require("sessions", "weekly_step_min", weekly_step_min, _STEP)
    today = _local_date(_require_wall("progression", "now_wall", now_wall), tz)
    rows = _checked(sessions)
    lowest = min(start, target)

    def bounded(minutes: float) -> float:
        return min(math.floor(max(minutes, lowest) * 2 + 0.5) / 2, target)

    def suggest(minutes: float, reason: str, held: bool) -> dict:
        return {"duration_min": bounded(minutes), "reason": reason, "held": held}

    finished = [r for r in rows if r["status"] in FINISHED_STATUSES]
    if not finished:
        return suggest(lowest, f"first session: the regimen starts at about {_fmt(lowest)} "
                               f"and builds step by step to {_fmt(target)}", False)
    completed = [r for r in finished if r["status"] == SessionStatus.COMPLETED]
    level = completed[-1]["planned_min"] if completed else lowest
    holding = f"holding at {_fmt(bounded(level))}"

    trend = pain_trend(rows)
    if trend["worsening"]:
        return suggest(level, f"{trend['message']}; {holding}", True)
    last = finished[-1]
    if last["pain_before"] is not None and pain_flag(last["pain_before"], last["pain_after"]):
        return suggest(level, f"pain rose during the last session ({last['pain_before']} → "
                              f"{last['pain_after']}); {holding}", True)
    if last["status"] != SessionStatus.COMPLETED:
        how = "was ended early" if last["status"] == SessionStatus.ENDED else "was interrupted"
        return suggest(level, f"the last session {how}; {holding} until one is completed", True)
    if level >= target:
        return suggest(target, f"target of {_fmt(target)} reached", False)

    run = completed[-1]
    for r in reversed(completed):
        if not math.isclose(r["planned_min"], level, abs_tol=1e-6):
            break
        run = r
    days = (today - _local_date(run["started_wall"], tz)).days
    if days < DAYS_PER_STEP:
        left = DAYS_PER_STEP - days
        return suggest(level, f"{holding} for {left} more day{'s' if left != 1 else ''} "
                              f"(one step a week)", True)
    raised = suggest(level + step, "", False)
    grew = raised["duration_min"] - level
    to_target = " (the target)" if raised["duration_min"] >= target else ""
    raised["reason"] = (f"up {_fmt(grew)} to {_fmt(raised['duration_min'])}{to_target}: "
                        f"{days} days at {_fmt(level)}, the last session completed, pain not rising")
    return raised
