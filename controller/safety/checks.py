"""The pure argument checks of the safety core's commands: each takes what it needs, none a core.

A check appends a :class:`FieldError` naming the field and its allowed range, and returns
None, or returns the checked value. Nothing is changed by a check.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from controller.config import KMH_PER_MPS, LIMIT_TIGHTER_SIGN, Config, Limits, limits_reach_errors
from controller.fields import FieldError, Num, check_value, is_number, spec_of
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


def limit_specs(cfg: Config) -> dict[str, Num]:
    """Each limit's one allowed range: its own range within the installer's ceilings ([ceilings]
    max_<limit> / min_<limit>) and, for a cap, from [safety] min_speed_kmh. What the dashboard shows
    and what :func:`check_limits` words."""
    out = {}
    for f in dataclasses.fields(Limits):
        spec = spec_of(f)
        lo = max(spec.lo, getattr(cfg.ceilings, f"min_{f.name}", spec.lo))
        hi = min(spec.hi, getattr(cfg.ceilings, f"max_{f.name}", spec.hi))
        if f.name.endswith("_cap_kmh"):
            lo = max(lo, cfg.safety.min_speed_kmh)
        out[f.name] = Num(lo, max(lo, hi), spec.unit, spec.integer)
    return out


def limit_ranges(cfg: Config) -> dict[str, dict[str, Any]]:
    """:func:`limit_specs` as JSON: {limit: {"min", "max", "unit"}}."""
    return {name: {"min": spec.lo, "max": spec.hi, "unit": spec.unit} for name, spec in limit_specs(cfg).items()}


def check_limits(value: Any, base: Limits, cfg: Config, errors: list[FieldError]) -> Limits | None:
    """A (partial) limits table over ``base``, checked against ranges, ceilings and sensor reach.

    Every bad limit is named at once: each given value against its one allowed range
    (:func:`limit_specs`), and the sensors' reach for each cap whose own value and both distances are
    fine, even while another limit is refused."""
    if isinstance(value, dict) and not value:
        errors.append(FieldError("limits", "", value, "no limit given"))
        return None
    if not isinstance(value, dict):
        errors.append(FieldError("limits", "", value, "must be a table of options"))
        return None
    specs = limit_specs(cfg)
    before = len(errors)
    for key in value:
        if key not in specs:
            errors.append(FieldError("limits", key, value[key], f"option '{key}' is not valid in section [limits]; "
                                     f"valid options: {', '.join(specs)}"))
    values, bad = {}, set()
    for name, spec in specs.items():
        # A limit not given keeps the base's value, which must still lie within today's ranges.
        checked = check_value("limits", name, value[name] if name in value else getattr(base, name), spec, errors)
        if checked is None:
            bad.add(name)
        values[name] = checked
    if not bad & {"base_stop_mm", "warn_margin_mm"}:
        candidate = Limits(**{k: (getattr(base, k) if k in bad else v) for k, v in values.items()})
        errors += [e for e in limits_reach_errors(candidate, cfg.treadmill, cfg.safety, cfg.sensors)
                   if e.key not in bad]
    if len(errors) > before:
        return None
    return Limits(**values)


def check_prescription(value: Any, base: Limits, cfg: Config,
                       errors: list[FieldError]) -> tuple[Mode, Limits, str] | None:
    """A patient's {"mode", "limits", "patient_id"} (and "confirmed", true when the therapist confirmed
    looser values: it is recorded, it grants nothing), each part checked like its own command."""
    if not isinstance(value, dict) or not {"mode", "limits", "patient_id"} <= set(value) \
            or not set(value) <= {"mode", "limits", "patient_id", "confirmed"}:
        errors.append(FieldError("prescription", "", value, 'must be an object with "mode", "limits" '
                                 'and "patient_id" (and "confirmed")'))
        return None
    if not isinstance(value.get("confirmed", False), bool):
        errors.append(FieldError("prescription", "confirmed", value["confirmed"], "must be true or false"))
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
