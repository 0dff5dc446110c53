"""Therapist settings (limits and mode) that survive a restart, written atomically."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path

from controller.config import Config, Limits, ceiling_errors, limits_reach_errors
from controller.fields import FieldError, check_table


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a file so a crash leaves either the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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
            errors += limits_reach_errors(limits, cfg.treadmill, cfg.sensors, "settings limits")
        if errors or limits is None:
            return cfg.limits, "reverse", errors
        return limits, mode, []
