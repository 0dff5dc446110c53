"""Checks on the therapy-history request bodies: patient profiles, session start, pain.

The rules that the SPEC fixes (id pattern, text lengths, mode, target minutes,
sessions per day, pain 0..10, planned 0.25..60 min) are checked here without
asking the controller. The prescription's limits depend on the installer's
ceilings, so their ranges come from the controller's ``patients`` reply
("fields"), asked only once everything else is right. The controller checks
every value again; its own field errors come back as 400.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

from web.validation import choice_error, field_error, integer_error, invalid, number_error, text_error

MODES = ("reverse", "forward")
#: Every field of a profile the therapist sets (storage adds created_wall and updated_wall).
PATIENT_FIELDS = ("patient_id", "display_name", "notes", "mode", "speed_cap_kmh", "base_stop_mm",
                  "warn_margin_mm", "target_min", "sessions_per_day")
#: Limits whose range the installer's ceilings decide: asked of the controller.
CONTROLLER_RANGED = ("speed_cap_kmh", "base_stop_mm", "warn_margin_mm")
PATIENT_ID_MAX_CHARS = 16
PATIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}")
PATIENT_ID_RULE = (f"patient_id: must be 1 to {PATIENT_ID_MAX_CHARS} letters, digits, _ or -, "
                   "starting with a letter or digit")
DISPLAY_NAME_MAX_CHARS = 40
NOTES_MAX_CHARS = 2000
TARGET_MIN_RANGE = (1.0, 60.0)
SESSIONS_PER_DAY_RANGE = (1, 4)
PLANNED_MIN_RANGE = (0.25, 60.0)
PAIN_RANGE = (0, 10)
#: SQLite rowids are signed 64-bit.
SESSION_ID_MAX = 2 ** 63 - 1

FieldErr = dict[str, Any]


def patient_id_error(value: Any, field: str = "patient_id") -> FieldErr | None:
    """None for a well-formed clinic pseudonym; else the field error with the rule."""
    if isinstance(value, str) and PATIENT_ID.fullmatch(value):
        return None
    return field_error(field, value, PATIENT_ID_RULE.replace("patient_id", field, 1))


def check_patient_id(value: str) -> str:
    """A patient id from the URL, or a 400 naming patient_id."""
    error = patient_id_error(value)
    if error:
        raise invalid([error])
    return value


def check_session_id(value: int) -> int:
    """A session id from the URL (a positive SQLite rowid), or a 400 naming session_id."""
    if not 1 <= value <= SESSION_ID_MAX:
        raise invalid([field_error("session_id", value,
                                   f"session_id: must be a whole number from 1 to {SESSION_ID_MAX}")])
    return value


def _is_number(value: Any) -> bool:
    """A finite int or float, never bool (an int of any size is finite: math.isfinite() overflows on some)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)


def _limit_type_error(field: str, value: Any, unit: str) -> FieldErr | None:
    """Only the type of a limit: its range is the installer's ceilings, which the controller knows."""
    if _is_number(value):
        return None
    got = "a non-finite number" if isinstance(value, float) else type(value).__name__
    return field_error(field, value, f"{field}: must be a number in {unit} (within the installer's ceilings); "
                                     f"got {got}")


#: The SPEC's own rules, one check per field.
_STATIC_CHECKS: dict[str, Callable[[Any], FieldErr | None]] = {
    "patient_id": patient_id_error,
    "display_name": lambda v: text_error("display_name", v, 1, DISPLAY_NAME_MAX_CHARS),
    "notes": lambda v: text_error("notes", v, 0, NOTES_MAX_CHARS, single_line=False),
    "mode": lambda v: choice_error("mode", v, MODES),
    "speed_cap_kmh": lambda v: _limit_type_error("speed_cap_kmh", v, "km/h"),
    "base_stop_mm": lambda v: _limit_type_error("base_stop_mm", v, "mm"),
    "warn_margin_mm": lambda v: _limit_type_error("warn_margin_mm", v, "mm"),
    "target_min": lambda v: number_error("target_min", v, *TARGET_MIN_RANGE, "min"),
    "sessions_per_day": lambda v: integer_error("sessions_per_day", v, *SESSIONS_PER_DAY_RANGE),
}


def static_patient_errors(body: dict[str, Any]) -> list[FieldErr]:
    """Every field of a profile body that breaks the SPEC's fixed rules (the body's keys are known ones)."""
    errors = []
    for name in PATIENT_FIELDS:
        if name in body:
            error = _STATIC_CHECKS[name](body[name])
            if error:
                errors.append(error)
    return errors


def ranged_patient_errors(body: dict[str, Any], fields: Any) -> list[FieldErr]:
    """The prescription limits checked against the ranges the controller gave in ``fields``.

    A range the controller did not give (or gave in a form not understood) is
    left to the controller's own check.
    """
    if not isinstance(fields, dict):
        return []
    errors = []
    for name in CONTROLLER_RANGED:
        allowed = fields.get(name)
        if name not in body or not isinstance(allowed, dict):
            continue
        lo, hi = allowed.get("min"), allowed.get("max")
        if not (_is_number(lo) and _is_number(hi)):
            continue
        error = number_error(name, body[name], float(lo), float(hi), str(allowed.get("unit") or ""))
        if error:
            errors.append(error)
    return errors


def session_start_errors(body: dict[str, Any]) -> list[FieldErr]:
    """The fields present in a session start body: patient id, planned minutes, pain before, start speed."""
    checks: dict[str, Callable[[Any], FieldErr | None]] = {
        "patient_id": patient_id_error,
        "planned_min": lambda v: number_error("planned_min", v, *PLANNED_MIN_RANGE, "min"),
        "pain_before": lambda v: pain_error("pain_before", v),
        "speed_kmh": _start_speed_error,
    }
    errors = [checks[name](body[name]) for name in checks if name in body]
    return [e for e in errors if e]


def _start_speed_error(value: Any) -> FieldErr | None:
    """A start speed is optional (null: the controller chooses); its cap is the patient's, known to the controller."""
    if value is None or (_is_number(value) and value > 0):
        return None
    return field_error("speed_kmh", value, "speed_kmh: must be a number above 0 km/h, at most the patient's "
                                           "speed cap (or left out)")


def pain_error(field: str, value: Any) -> FieldErr | None:
    """Pain on the 0..10 scale, a whole number."""
    return integer_error(field, value, *PAIN_RANGE, note="0 = no pain, 10 = worst imaginable")
