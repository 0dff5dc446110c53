"""Pure rules about applying a prescription: what it loosens, and the speed a session starts at.

Choosing a patient (or starting their session) applies their prescription. A
prescription that loosens any of the machine's present limits (a cap up, a
stop distance or warn margin down) or changes the walking mode is applied only
once the therapist confirms it, each such value named (:func:`loosened`).
Tighter or equal limits apply at once.

A session starts at the speed the therapist gives, or else at
:func:`default_start_speed`: the patient's last session's start speed, never
their cap unless the therapist says so.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from controller.config import LIMIT_TIGHTER_SIGN, Limits
from controller.fields import FieldError

#: How each limit is named to the therapist: field → (label, unit, digits shown).
LIMIT_NAMES: dict[str, tuple[str, str, int]] = {
    "reverse_cap_kmh": ("Reverse cap", "km/h", 1),
    "forward_cap_kmh": ("Forward cap", "km/h", 1),
    "base_stop_mm": ("Stop distance", "mm", 0),
    "warn_margin_mm": ("Warn margin", "mm", 0),
}

#: Why a session starts at the speed :func:`default_start_speed` gives.
REASON_LAST = "last session's speed"
REASON_LAST_CAPPED = "last session's speed, limited to the patient's cap"
REASON_SLOWEST = "slowest speed"


def loosened(new: Limits, old: Limits, new_mode: str, old_mode: str) -> list[dict[str, Any]]:
    """Each value a prescription (``new``, ``new_mode``) loosens against the present ones, in a fixed order.

    A limit is looser when a cap goes up or a distance goes down; a change of mode is
    always named (the safety core, too, treats it like a looser limit). Each item is
    ``{"field", "label", "old", "new", "unit"}``; an empty list means it applies at once.
    """
    out: list[dict[str, Any]] = []
    if new_mode != old_mode:
        out.append({"field": "mode", "label": "Mode", "old": old_mode, "new": new_mode, "unit": ""})
    for key, sign in LIMIT_TIGHTER_SIGN.items():
        before, after = float(getattr(old, key)), float(getattr(new, key))
        if sign * (after - before) < 0:
            label, unit, _ = LIMIT_NAMES[key]
            out.append({"field": key, "label": label, "old": before, "new": after, "unit": unit})
    return out


def _shown(value: Any, field: str) -> str:
    if field not in LIMIT_NAMES:
        return str(value)
    return f"{float(value):.{LIMIT_NAMES[field][2]}f}"


def describe_loosened(items: Iterable[Mapping[str, Any]]) -> str:
    """Plain words: ``"reverse cap 2.0 → 2.2 km/h; warn margin 200 → 150 mm"``."""
    parts = []
    for item in items:
        unit = f" {item['unit']}" if item.get("unit") else ""
        parts.append(f"{str(item['label']).lower()} {_shown(item['old'], item['field'])} → "
                     f"{_shown(item['new'], item['field'])}{unit}")
    return "; ".join(parts)


def confirm_message(patient_id: str, items: Iterable[Mapping[str, Any]]) -> str:
    """The refusal that asks the therapist to confirm a looser prescription."""
    return (f"patient {patient_id}'s prescription loosens the present limits: {describe_loosened(items)}; "
            "confirm to apply it")


def floor_tenth(kmh: float) -> float:
    """A speed rounded down to 0.1 km/h (a float's own error forgiven: 0.7 stays 0.7)."""
    return math.floor(float(kmh) * 10.0 + 1e-6) / 10.0


def last_session_speed(sessions: Iterable[Mapping[str, Any]], mode: str) -> float | None:
    """The patient's last speed in ``mode``: the newest such session's start speed; for a session recorded
    before start speeds were (``start_speed_kmh`` null), its mean walking speed rounded down to 0.1 km/h.
    A session with neither (it never walked) is passed over. ``sessions`` newest first."""
    for s in sessions:
        if s.get("mode") != mode:
            continue
        start = s.get("start_speed_kmh")
        if start is not None:
            return float(start)
        mean = s.get("mean_kmh") or 0.0
        if mean > 0:
            return floor_tenth(mean)
    return None


def default_start_speed(sessions: Iterable[Mapping[str, Any]], mode: str, cap_kmh: float,
                        min_kmh: float) -> tuple[float, str]:
    """The speed a session starts at when the therapist gives none, and why.

    The last session's speed in the patient's mode (:func:`last_session_speed`), else the
    slowest speed (``[safety] min_speed_kmh``); always within [min speed, the patient's cap].
    """
    last = last_session_speed(sessions, mode)
    if last is None:
        return round(min(float(cap_kmh), float(min_kmh)), 2), REASON_SLOWEST
    speed = max(float(min_kmh), min(last, float(cap_kmh)))
    return round(speed, 2), REASON_LAST_CAPPED if last > cap_kmh else REASON_LAST


def check_confirm(params: Mapping[str, Any], errors: list[FieldError]) -> bool:
    """The request's ``confirm`` (default false); anything but true or false is named in ``errors``."""
    confirm = params.get("confirm", False)
    if not isinstance(confirm, bool):
        errors.append(FieldError("session", "confirm", confirm, "must be true or false"))
        return False
    return confirm
