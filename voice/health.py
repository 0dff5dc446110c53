"""The voice's health file: what `treadmill-safety doctor` shows on its voice line.

A small JSON file the service rewrites whenever something changes (atomically,
0644, on its own thread so a slow file system never delays a prompt). Under
systemd it lives in the unit's RuntimeDirectory, so it exists exactly while the
service runs. Its keys:

    updated_wall, pid, language, voice
    engine      {"ok", "detail"}   espeak-ng rendered every prompt, or why not
    device      {"ok", "detail"}   the ALSA device played (ok None: not tried yet)
    controller  {"connected", "detail"}
    spoken, failed, dropped        prompt counts since the start
    last_prompt {"key", "wall", "latency_ms"} or null
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from controller.files import atomic_write_text

log = logging.getLogger(__name__)

#: systemd/treadmill-voice.service's RuntimeDirectory.
DEFAULT_HEALTH_FILE = Path("/run/treadmill-voice/health.json")


class Health:
    """The service's health, written to ``path`` by a thread of its own whenever it changes."""

    def __init__(self, path: Path | None, **initial: Any):
        self.path = path
        self._cond = threading.Condition()
        self._state: dict[str, Any] = {"engine": {"ok": None, "detail": "not rendered yet"},
                                        "device": {"ok": None, "detail": "not tried yet"},
                                        "controller": {"connected": False, "detail": "not connected yet"},
                                        "spoken": 0, "failed": 0, "dropped": 0, "last_prompt": None, **initial}
        self._dirty = True
        self._closed = False
        self._failing = False
        self._thread: threading.Thread | None = None

    def start(self) -> "Health":
        """Start the writer thread (nothing is written without a path)."""
        if self.path is not None:
            self._thread = threading.Thread(target=self._run, name="voice-health", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Write the last state, then stop. Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(2.0)

    def update(self, **parts: Any) -> None:
        """Replace these keys; the file follows."""
        with self._cond:
            self._state.update(parts)
            self._dirty = True
            self._cond.notify_all()

    def count(self, key: str) -> None:
        """One more of ``key`` (spoken, failed, dropped)."""
        with self._cond:
            self._state[key] = self._state.get(key, 0) + 1
            self._dirty = True
            self._cond.notify_all()

    def snapshot(self) -> dict[str, Any]:
        """The state as it would be written now."""
        with self._cond:
            return json.loads(json.dumps(self._state))

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._dirty or self._closed)
                closed, dirty = self._closed, self._dirty
                self._dirty = False
                text = json.dumps({**self._state, "updated_wall": time.time()}, indent=1, sort_keys=True)
            if dirty:
                self._write(text)
            if closed:
                return

    def _write(self, text: str) -> None:
        assert self.path is not None
        try:
            atomic_write_text(self.path, text + "\n", mode=0o644)
        except OSError as exc:
            if not self._failing:
                log.warning("voice: cannot write the health file %s: %s (doctor will not see the voice's state)",
                            self.path, exc)
            self._failing = True
            return
        self._failing = False


def read_health(path: Path) -> dict[str, Any] | None:
    """The health the service last wrote, or None when there is no file (the service is not running)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return {"unreadable": f"{path}: {exc}"}
    return data if isinstance(data, dict) else {"unreadable": f"{path}: not a JSON object"}
