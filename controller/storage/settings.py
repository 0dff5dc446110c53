"""Therapist settings (limits and mode) that survive a restart, written atomically."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from controller.config import Config, Limits, ceiling_errors, limits_reach_errors
from controller.fields import FieldError, check_table
from controller.files import atomic_write_text


class SettingsStore:
    """Therapist settings (limits, mode) that survive a restart, in ``settings.json``."""

    def __init__(self, state_dir: str | Path):
        self.path = Path(state_dir) / "settings.json"

    def save(self, limits: Limits, mode: str) -> None:
        """Write atomically."""
        atomic_write_text(self.path, json.dumps({"limits": dataclasses.asdict(limits), "mode": mode}, indent=2))

    def load(self, cfg: Config) -> tuple[Limits, str, list[FieldError]]:
        """Saved settings re-checked against today's config; on any error, the config's defaults."""
        if not self.path.exists():
            return cfg.limits, "reverse", []
        errors: list[FieldError] = []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return cfg.limits, "reverse", [FieldError("settings", "", str(self.path), f"unreadable: {exc}")]
        limits = check_table(Limits, "settings limits", data.get("limits", {}) if isinstance(data, dict) else None,
                             errors)
        mode = data.get("mode") if isinstance(data, dict) else None
        if mode not in ("reverse", "forward"):
            errors.append(FieldError("settings", "mode", mode, 'must be "reverse" or "forward"'))
        if limits is not None:
            errors += ceiling_errors(limits, cfg.ceilings, "settings limits")
            errors += limits_reach_errors(limits, cfg.treadmill, cfg.safety, cfg.sensors, "settings limits")
        if errors or limits is None:
            return cfg.limits, "reverse", errors
        return limits, mode, []
