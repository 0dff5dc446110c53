"""HIL: `treadmill-safety voice --config FILE`, the process systemd runs, beside the bench's controller.

Its [voice] device is an ALSA ``file`` device writing into a FIFO (a card at the lowest seam):
a trip on the bench reaches the FIFO as speech, the health file says so, and SIGTERM ends it.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sim.bench import EXAMPLE_CONFIG
from tests.hil.helpers import relay_opened_at, reset_when_healthy, wait_tripped
from tests.waiting import expect
from voice.health import read_health

REPO = Path(__file__).resolve().parents[2]


class FifoCard:
    """Everything written into one FIFO, as (monotonic time, bytes) chunks, across writers."""

    def __init__(self, path: Path):
        os.mkfifo(path)
        self.path = path
        self.chunks: list[tuple[float, bytes]] = []
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="fifo-card", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        while not self._stop.is_set():
            if poller.poll(50):
                chunk = os.read(self._fd, 65536)
                if chunk:
                    self.chunks.append((time.monotonic(), chunk))
                else:
                    self._stop.wait(0.002)  # no writer at the moment: the next aplay opens it again

    def sound_after(self, t: float) -> float | None:
        """When the first non-silent samples after ``t`` arrived."""
        return next((ct for ct, data in list(self.chunks) if ct >= t and data.strip(b"\0")), None)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        os.close(self._fd)


def test_the_voice_process_speaks_a_trip_on_its_configured_device_and_stops_on_sigterm(bench, tmp_path):
    short = Path(tempfile.mkdtemp(prefix="tv"))  # [voice] device is at most 64 characters
    card = FifoCard(short / "card")
    config = tmp_path / "config.toml"
    device = f"file:FILE={card.path},FORMAT=raw"
    assert len(device) <= 64
    config.write_text(EXAMPLE_CONFIG.read_text().replace('device = ""', f'device = "{device}"'))
    socket_path = tmp_path / "control.sock"
    bench.controller.serve_ipc(socket_path, group="")
    health = tmp_path / "health.json"
    proc = subprocess.Popen([sys.executable, "-m", "cli", "voice", "--config", str(config), "--ipc-socket",
                             str(socket_path), "--health-file", str(health), "--cache-dir", str(tmp_path / "cache")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        expect(lambda: (read_health(health) or {}).get("controller", {}).get("connected"), 30.0,
               "the voice rendered its prompts and subscribed")
        assert read_health(health)["device"] == {"ok": True, "detail": "opened"}
        assert reset_when_healthy(bench).ok
        t0 = time.monotonic()
        bench.press_estop()
        assert wait_tripped(bench)
        tripped = relay_opened_at(bench, t0)
        expect(lambda: card.sound_after(tripped), 2.0, "the trip prompt in the card")
        assert card.sound_after(tripped) - tripped < 0.5
        expect(lambda: (read_health(health).get("last_prompt") or {}).get("key") == "stopped_stand_still", 3.0,
               "the health file naming the last prompt")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10.0)
        assert proc.returncode == 0, err
        assert "voice: stopped_stand_still: player started" in err
        assert out == "", "the voice writes nothing on stdout (the demo's first lines are its own)"
    finally:
        bench.release_estop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        card.close()
        shutil.rmtree(short, ignore_errors=True)
