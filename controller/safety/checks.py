"""The pure argument checks of the safety core's commands: each takes what it needs, none a core.

A check appends a :class:`FieldError` naming the field and its allowed range, and returns
None, or returns the checked value. Nothing is changed by a check.
"""

from __future__ import annotations

from typing import Any

from controller.config import KMH_PER_MPS, LIMIT_TIGHTER_SIGN, Config, Limits, ceiling_errors, limits_reach_errors
from controller.fields import FieldError, Num, check_table, is_number
from controller.safety.types import Mode


def check_speed(value: Any, mode: Mode, limits: Limits, min_speed_kmh: float,
                errors: list[FieldError]) -> float | None:
    """A requested speed in km/h → m/s, within [min speed, cap of the mode]."""
    cap_kmh = limits.cap_kmh(mode.value)
    if is_number(value) and value > cap_kmh:
        errors.append(FieldError("command", "speed_kmh", value,
                                 f"is above the {mode.value} cap {cap_kmh:g} km/h; "
                                 f"allowed {min_speed_kmh:g} to {cap_kmh:g} km/h"))
        return None
    reason = Num(min_speed_kmh, max(min_speed_kmh, cap_kmh), "km/h").check(value)
    if reason:
        errors.append(FieldError("command", "speed_kmh", value, reason))
        return None
    return float(value) / KMH_PER_MPS


def check_mode(value: Any, section: str, errors: list[FieldError]) -> Mode | None:
    """A walking mode by name."""
    try:
        return Mode(value)
    except ValueError:
        errors.append(FieldError(section, "mode", value, 'must be "reverse" or "forward"'))
        return None


def check_limits(value: Any, base: Limits, cfg: Config, errors: list[FieldError]) -> Limits | None:
    """A (partial) limits table over ``base``, checked against ranges, ceilings and sensor reach."""
    if isinstance(value, dict) and not value:
        errors.append(FieldError("limits", "", value, "no limit given"))
        return None
    new = check_table(Limits, "limits", value, errors, base=base)
    if new is None:
        return None
    more = ceiling_errors(new, cfg.ceilings) + limits_reach_errors(new, cfg.treadmill, cfg.safety, cfg.sensors)
    floor = cfg.safety.min_speed_kmh
    more += [FieldError("limits", key, getattr(new, key), f"must be at least [safety] min_speed_kmh = {floor:g}")
             for key in ("reverse_cap_kmh", "forward_cap_kmh") if getattr(new, key) < floor]
    if more:
        errors += more
        return None
    return new


def check_prescription(value: Any, base: Limits, cfg: Config,
                       errors: list[FieldError]) -> tuple[Mode, Limits, str] | None:
    """A patient's {"mode", "limits", "patient_id"}, each part checked like its own command."""
    if not isinstance(value, dict) or set(value) != {"mode", "limits", "patient_id"}:
        errors.append(FieldError("prescription", "", value, 'must be an object with "mode", "limits" '
                                 'and "patient_id"'))
        return None
    patient = value["patient_id"]
    if not isinstance(patient, str) or not 0 < len(patient) <= 16:
        errors.append(FieldError("prescription", "patient_id", patient, "must be a patient id, 1 to 16 characters"))
    mode = check_mode(value["mode"], "prescription", errors)
    new = check_limits(value["limits"], base, cfg, errors)
    if errors or mode is None or new is None:
        return None
    return mode, new, patient


def loosens(new: Limits, old: Limits) -> bool:
    """True if any limit of ``new`` is looser than in ``old`` (a higher cap, a shorter distance)."""
    return any(sign * (getattr(new, key) - getattr(old, key)) < 0 for key, sign in LIMIT_TIGHTER_SIGN.items())
