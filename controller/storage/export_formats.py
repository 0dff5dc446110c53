"""CSV layouts of the session history, shared by the dashboard's downloads and ``export``.

One module so a spreadsheet opened from the dashboard and one from a backup
have the same columns. Wall times are written as ISO 8601 local time with the
offset. Text cells that a spreadsheet would run as a formula are prefixed with
an apostrophe.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

#: Columns of a patient's sessions table, in order: (CSV header, summary key).
SESSION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("session_id", "session_id"), ("patient_id", "patient_id"), ("status", "status"),
    ("started", "started_wall"), ("ended", "ended_wall"), ("planned_min", "planned_min"),
    ("mode", "mode"), ("duration_s", "duration_s"), ("distance_m", "distance_m"),
    ("mean_kmh", "mean_kmh"), ("max_kmh", "max_kmh"), ("warnings", "warnings"), ("trips", "trips"),
    ("closest_mm", "closest_mm"), ("pain_before", "pain_before"), ("pain_after", "pain_after"),
    ("pain_flag", "pain_flag"), ("end_reason", "end_reason"),
)
#: Columns of a session's timeline samples.
SAMPLE_COLUMNS = ("t_s", "gap_mm", "belt_kmh", "state", "warning")

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def iso_local(wall: float | None) -> str:
    """A unix time as ISO 8601 local time with its UTC offset (empty for None)."""
    if wall is None:
        return ""
    return datetime.fromtimestamp(wall).astimezone().isoformat(timespec="seconds")


def safe_cell(value: Any) -> Any:
    """A cell as written: None empty, bools 0/1, formula-like text neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return out.getvalue()


def sessions_csv(sessions: Iterable[Mapping[str, Any]]) -> str:
    """A patient's sessions, one row each, wall times as ISO 8601."""
    def row(s: Mapping[str, Any]) -> list[Any]:
        return [iso_local(s.get(key)) if key.endswith("_wall") else s.get(key) for _, key in SESSION_COLUMNS]
    return _csv([h for h, _ in SESSION_COLUMNS], (row(s) for s in sessions))


def samples_csv(rows: Iterable[Sequence[Any]]) -> str:
    """A session's timeline, one row per sample, columns as :data:`SAMPLE_COLUMNS`."""
    return _csv(SAMPLE_COLUMNS, rows)
