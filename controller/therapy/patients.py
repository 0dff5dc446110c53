"""Patient profiles: what is kept about a patient, and the checks on it.

Pseudonymous by design: a clinic id, a display name, the therapist's notes and
the prescription. Nothing else about the person is stored. A prescription is
checked against the installer's ceilings and the sensors' reach when it is
saved, and again by the safety core when it is applied.
"""

from __future__ import annotations

import re
from typing import Any

from controller.config import Config, Limits, ceiling_errors, limits_reach_errors
from controller.fields import Choice, FieldError, Num, Text, check_value

SECTION = "patient"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,15}$")
ID_RULE = "must be 1 to 16 letters, digits, _ or -, starting with a letter or digit (a clinic pseudonym)"
#: Longest therapist note kept with a profile.
NOTES_MAX = 2000
#: The fields a therapist sets; storage adds created_wall and updated_wall.
FIELDS = ("patient_id", "display_name", "notes", "mode", "speed_cap_kmh", "base_stop_mm", "warn_margin_mm",
          "target_min", "sessions_per_day")


def specs(cfg: Config) -> dict[str, Any]:
    """Each field's spec; the limits' ranges come from the installer's ceilings."""
    c, lo = cfg.ceilings, cfg.safety.min_speed_kmh
    return {
        "display_name": Text("a display name or initials, not the full name", max_len=40),
        "notes": Text("the therapist's notes", max_len=NOTES_MAX, min_len=0, multiline=True),
        "mode": Choice(("reverse", "forward")),
        "speed_cap_kmh": Num(lo, max(lo, c.max_reverse_cap_kmh, c.max_forward_cap_kmh), "km/h"),
        "base_stop_mm": Num(c.min_base_stop_mm, 600, "mm"),
        "warn_margin_mm": Num(c.min_warn_margin_mm, 500, "mm"),
        "target_min": Num(1, 60, "min"),
        "sessions_per_day": Num(1, 4, integer=True),
    }


def describe_fields(cfg: Config) -> dict[str, dict[str, Any]]:
    """The allowed values of each field, for forms and for the dashboard's own checks."""
    out: dict[str, dict[str, Any]] = {"patient_id": {"pattern": _ID.pattern, "max_len": 16}}
    for name, spec in specs(cfg).items():
        if isinstance(spec, Num):
            out[name] = {"min": spec.lo, "max": spec.hi, "unit": spec.unit, "integer": spec.integer}
        elif isinstance(spec, Choice):
            out[name] = {"choices": list(spec.options)}
        else:
            out[name] = {"min_len": spec.min_len, "max_len": spec.max_len}
    return out


def check_patient_id(value: Any, errors: list[FieldError]) -> str | None:
    """A patient id as the therapist typed it, or None with an error."""
    if isinstance(value, str) and _ID.fullmatch(value):  # match() lets a trailing newline through
        return value
    errors.append(FieldError(SECTION, "patient_id", value, ID_RULE))
    return None


def check_patient(data: Any, cfg: Config) -> tuple[dict[str, Any] | None, list[FieldError]]:
    """A whole profile checked field by field, then as a prescription the sensors can guard."""
    errors: list[FieldError] = []
    if not isinstance(data, dict):
        return None, [FieldError(SECTION, "", data, "must be an object with " + ", ".join(FIELDS))]
    for key in data:
        if key not in FIELDS:
            errors.append(FieldError(SECTION, key, data[key], f"not a patient field; fields: {', '.join(FIELDS)}"))
    out: dict[str, Any] = {"patient_id": check_patient_id(data.get("patient_id"), errors)}
    all_specs = specs(cfg)
    for name, spec in all_specs.items():
        if name not in data:
            if name == "notes":
                out[name] = ""
                continue
            errors.append(FieldError(SECTION, name, "(missing)", "is required; it " + (spec.check(object()) or "")))
            continue
        out[name] = check_value(SECTION, name, data[name], spec, errors)
    if errors:
        return None, errors
    if out["mode"] == "reverse" and out["speed_cap_kmh"] > cfg.ceilings.max_reverse_cap_kmh:
        errors.append(FieldError(SECTION, "speed_cap_kmh", out["speed_cap_kmh"],
                                 f"must be <= {cfg.ceilings.max_reverse_cap_kmh:g} in reverse mode "
                                 "([ceilings] max_reverse_cap_kmh)"))
    if out["mode"] == "forward" and out["speed_cap_kmh"] > cfg.ceilings.max_forward_cap_kmh:
        errors.append(FieldError(SECTION, "speed_cap_kmh", out["speed_cap_kmh"],
                                 f"must be <= {cfg.ceilings.max_forward_cap_kmh:g} in forward mode "
                                 "([ceilings] max_forward_cap_kmh)"))
    if not errors:
        limits = prescription_limits(out, cfg)
        own_cap = f"{out['mode']}_cap_kmh"
        found = ceiling_errors(limits, cfg.ceilings, SECTION) + limits_reach_errors(limits, cfg.treadmill, cfg.safety,
                                                                                    cfg.sensors, SECTION)
        errors += [FieldError(SECTION, "speed_cap_kmh" if e.key == own_cap else e.key, e.value, e.message)
                   for e in found if not e.key.endswith("_cap_kmh") or e.key == own_cap]
    return (None, errors) if errors else (out, [])


def prescription_limits(patient: dict[str, Any], cfg: Config) -> Limits:
    """A patient's safety limits: their cap in their mode, and no more in the other; their distances."""
    cap = float(patient["speed_cap_kmh"])
    reverse = cap if patient["mode"] == "reverse" else min(cap, cfg.ceilings.max_reverse_cap_kmh)
    forward = cap if patient["mode"] == "forward" else min(cap, cfg.ceilings.max_forward_cap_kmh)
    return Limits(reverse_cap_kmh=reverse, forward_cap_kmh=forward, base_stop_mm=float(patient["base_stop_mm"]),
                  warn_margin_mm=float(patient["warn_margin_mm"]))
