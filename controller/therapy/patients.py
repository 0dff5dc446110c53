"""Patient profiles: what is kept about a patient, and the checks on it.

Pseudonymous by design: a clinic id, a display name, the therapist's notes and
the prescription. Nothing else about the person is stored. A prescription is
checked against the installer's ceilings and the sensors' reach when it is
saved, and again by the safety core when it is applied.
"""

from __future__ import annotations

import dataclasses
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


def cap_spec(cfg: Config, mode: str) -> Num:
    """The speed cap's one range in a walking mode: from [safety] min_speed_kmh to the mode's ceiling."""
    lo = cfg.safety.min_speed_kmh
    ceiling = cfg.ceilings.max_reverse_cap_kmh if mode == "reverse" else cfg.ceilings.max_forward_cap_kmh
    return Num(lo, max(lo, ceiling), "km/h")


def describe_fields(cfg: Config) -> dict[str, dict[str, Any]]:
    """The allowed values of each field, for forms and for the dashboard's own checks.

    The speed cap's range depends on the mode: ``speed_cap_kmh.by_mode`` gives each mode's own
    {"min", "max"}, so a form can show the one range of the mode chosen."""
    out: dict[str, dict[str, Any]] = {"patient_id": {"pattern": _ID.pattern, "max_len": 16}}
    for name, spec in specs(cfg).items():
        if isinstance(spec, Num):
            out[name] = {"min": spec.lo, "max": spec.hi, "unit": spec.unit, "integer": spec.integer}
        elif isinstance(spec, Choice):
            out[name] = {"choices": list(spec.options)}
        else:
            out[name] = {"min_len": spec.min_len, "max_len": spec.max_len}
    out["speed_cap_kmh"]["by_mode"] = {mode: {"min": cap_spec(cfg, mode).lo, "max": cap_spec(cfg, mode).hi}
                                       for mode in ("reverse", "forward")}
    return out


def check_patient_id(value: Any, errors: list[FieldError]) -> str | None:
    """A patient id as the therapist typed it, or None with an error."""
    if isinstance(value, str) and _ID.fullmatch(value):  # match() lets a trailing newline through
        return value
    errors.append(FieldError(SECTION, "patient_id", value, ID_RULE))
    return None


def check_patient(data: Any, cfg: Config) -> tuple[dict[str, Any] | None, list[FieldError]]:
    """A whole profile checked field by field, then as a prescription the sensors can guard.

    Every bad field is named at once: the speed cap against the range of the mode chosen (when the
    mode is valid), and the sensors' reach whenever the mode, the cap and both distances are fine,
    whatever else is refused."""
    errors: list[FieldError] = []
    if not isinstance(data, dict):
        return None, [FieldError(SECTION, "", data, "must be an object with " + ", ".join(FIELDS))]
    for key in data:
        if key not in FIELDS:
            errors.append(FieldError(SECTION, key, data[key], f"not a patient field; fields: {', '.join(FIELDS)}"))
    out: dict[str, Any] = {"patient_id": check_patient_id(data.get("patient_id"), errors)}
    all_specs = specs(cfg)
    mode = data.get("mode")
    if isinstance(mode, str) and all_specs["mode"].check(mode) is None:
        cap = cap_spec(cfg, mode)
        # One range, the mode's: "from 0.5 to 2 km/h in reverse mode" rather than the widest cap and then a ceiling.
        all_specs["speed_cap_kmh"] = cap if cap == all_specs["speed_cap_kmh"] else _InMode(cap, mode)
    for name, spec in all_specs.items():
        if name not in data:
            if name == "notes":
                out[name] = ""
                continue
            errors.append(FieldError(SECTION, name, "(missing)", "is required; it " + (spec.check(object()) or "")))
            out[name] = None
            continue
        out[name] = check_value(SECTION, name, data[name], spec, errors)
    if all(out[k] is not None for k in ("mode", "speed_cap_kmh", "base_stop_mm", "warn_margin_mm")):
        limits = prescription_limits(out, cfg)
        own_cap = f"{out['mode']}_cap_kmh"
        found = ceiling_errors(limits, cfg.ceilings, SECTION) + limits_reach_errors(limits, cfg.treadmill, cfg.safety,
                                                                                    cfg.sensors, SECTION)
        errors += [FieldError(SECTION, "speed_cap_kmh" if e.key == own_cap else e.key, e.value, e.message)
                   for e in found if not e.key.endswith("_cap_kmh") or e.key == own_cap]
    return (None, errors) if errors else (out, [])


@dataclasses.dataclass(frozen=True)
class _InMode:
    """The speed cap's range in one mode, worded with the mode (the form shows the mode's range)."""

    num: Num
    mode: str

    def check(self, value: Any) -> str | None:
        """None if valid, else the reason."""
        reason = self.num.check(value)
        return None if reason is None else f"{reason} in {self.mode} mode"

    def convert(self, value: Any) -> float:
        """The stored form."""
        return self.num.convert(value)


def prescription_limits(patient: dict[str, Any], cfg: Config) -> Limits:
    """A patient's safety limits: their cap in their mode, and no more in the other; their distances."""
    cap = float(patient["speed_cap_kmh"])
    reverse = cap if patient["mode"] == "reverse" else min(cap, cfg.ceilings.max_reverse_cap_kmh)
    forward = cap if patient["mode"] == "forward" else min(cap, cfg.ceilings.max_forward_cap_kmh)
    return Limits(reverse_cap_kmh=reverse, forward_cap_kmh=forward, base_stop_mm=float(patient["base_stop_mm"]),
                  warn_margin_mm=float(patient["warn_margin_mm"]))
