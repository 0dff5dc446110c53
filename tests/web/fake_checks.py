"""The fake controller's field checks, worded as the controller's: ``[section] key``, the allowed range."""

from __future__ import annotations

import math
import re
from typing import Any, Callable

PATIENT_FIELDS = ("patient_id", "display_name", "notes", "mode", "speed_cap_kmh", "base_stop_mm",
                  "warn_margin_mm", "target_min", "sessions_per_day")
PATIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}")


class Refusal(Exception):
    """An error reply: code, message, field errors."""

    def __init__(self, code: str, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.code, self.message, self.errors = code, message, errors or []


def is_number(value: Any) -> bool:
    """As controller.fields.is_number: finite, of sane magnitude, never bool."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return abs(value) <= 1e9 if isinstance(value, int) else math.isfinite(value) and abs(value) <= 1e9


def num_check(lo: float, hi: float, unit: str = "", integer: bool = False) -> Callable[[Any], str | None]:
    """A check of a number in [lo, hi] (a whole one if ``integer``): None, or the reason naming the range."""
    def check(value: Any) -> str | None:
        kind = "a whole number" if integer else "a number"
        reason = f"must be {kind} from {lo:g} to {hi:g}" + (f" {unit}" if unit else "")
        if not is_number(value) or (integer and not float(value).is_integer()) or not lo <= value <= hi:
            return reason
        return None
    return check


def text_check(min_len: int, max_len: int) -> Callable[[Any], str | None]:
    """A check of text of min_len..max_len characters without control characters."""
    def check(value: Any) -> str | None:
        if isinstance(value, str) and min_len <= len(value) <= max_len and not any(ord(c) < 32 for c in value):
            return None
        return f"must be text of {min_len} to {max_len} characters"
    return check


def field_error(section: str, key: str, value: Any, message: str) -> dict[str, Any]:
    """One field error as the controller words it (FieldError.as_dict)."""
    shown = value if isinstance(value, (str, int, float, bool)) or value is None else repr(value)
    return {"field": f"[{section}] {key}", "value": shown, "message": message}


def invalid(errors: list[dict[str, Any]]) -> Refusal:
    """An "invalid" refusal carrying the field errors."""
    return Refusal("invalid", "; ".join(f"{e['field']} = {e['value']!r}: {e['message']}" for e in errors), errors)


def check_patient(data: Any, fields: dict[str, dict[str, Any]], ceilings: dict[str, float]) -> dict[str, Any]:
    """A whole profile checked field by field, then its cap against the ceiling of its mode."""
    if not isinstance(data, dict):
        raise invalid([field_error("patient", "", data,
                                     "must be an object with " + ", ".join(PATIENT_FIELDS))])
    errors = [field_error("patient", k, v, "not a patient field") for k, v in data.items()
              if k not in PATIENT_FIELDS]
    checks: dict[str, Callable[[Any], str | None]] = {
        "patient_id": lambda v: None if isinstance(v, str) and PATIENT_ID.fullmatch(v)
        else "must be 1 to 16 letters, digits, _ or -, starting with a letter or digit",
        "display_name": text_check(1, 40), "notes": text_check(0, 2000),
        "mode": lambda v: None if v in ("reverse", "forward") else 'must be one of "reverse", "forward"',
    }
    for name in ("speed_cap_kmh", "base_stop_mm", "warn_margin_mm", "target_min", "sessions_per_day"):
        rule = fields[name]
        checks[name] = num_check(rule["min"], rule["max"], rule["unit"], rule["integer"])
    out: dict[str, Any] = {"notes": ""}
    for name in PATIENT_FIELDS:
        if name not in data:
            if name != "notes":
                errors.append(field_error("patient", name, "(missing)", "is required"))
            continue
        reason = checks[name](data[name])
        if reason:
            errors.append(field_error("patient", name, data[name], reason))
        else:
            out[name] = data[name]
    if not errors:
        ceiling = ceilings[f"max_{out['mode']}_cap_kmh"]
        if out["speed_cap_kmh"] > ceiling:
            errors.append(field_error("patient", "speed_cap_kmh", out["speed_cap_kmh"],
                                       f"must be <= {ceiling:g} in {out['mode']} mode "
                                       f"([ceilings] max_{out['mode']}_cap_kmh)"))
    if errors:
        raise invalid(errors)
    return out
