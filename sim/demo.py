"""``make demo``: the whole controller on simulated hardware, with a patient who drifts back.

Real drivers on simulated parts (see sim/bench.py). A therapist
resets and starts the belt at the reverse cap; the patient then stops walking
and is carried towards the rear edge. The controller warns, slows, and trips;
the demo prints a status line at 5 Hz, then the event timeline, and exits.
The voice runs beside it as a client of the controller's socket, as on the Pi
(``spawn_voice``): its prompts play on the default ALSA device; on a machine
without sound it logs that once and the demo goes on.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from controller.config import KMH_PER_MPS
from controller.safety.types import EventKind
from sim.bench import EXAMPLE_CONFIG, SimBench, wait_until

STATUS_PERIOD_S = 0.2


def _status_line(bench: SimBench, t0: float) -> str:
    st = bench.controller.status
    gap = st.get("gap_mm")
    gap_text = f"{gap:5.0f} mm" if gap is not None else "   -- mm"
    return (f"t={time.monotonic() - t0:5.1f}s  {st.get('state', '?'):8s}  "
            f"belt {bench.emulator.belt_speed_mps * KMH_PER_MPS:4.2f} km/h  "
            f"gap {gap_text}  stop at {st.get('stop_distance_mm', 0):4.0f} mm  "
            f"warn at {st.get('warn_distance_mm', 0):4.0f} mm  "
            f"relay {'closed' if bench.relay_energized else 'OPEN'}")


def spawn_voice(socket_path: str | Path, directory: Path, stderr=None) -> subprocess.Popen:
    """``treadmill-safety voice`` on the demo's socket with the example config's [voice] (the default ALSA
    device), its health file and rendered prompts in ``directory``; a machine without sound only logs."""
    return subprocess.Popen([sys.executable, "-m", "cli.main", "voice", "--config", str(EXAMPLE_CONFIG),
                             "--ipc-socket", str(socket_path), "--health-file", str(directory / "voice-health.json"),
                             "--cache-dir", str(directory / "voice-cache")], stdout=subprocess.DEVNULL, stderr=stderr)


def voice_health(directory: Path) -> dict:
    """What the demo's voice last wrote about itself ({} before it has)."""
    try:
        return json.loads((directory / "voice-health.json").read_text())
    except (OSError, ValueError):
        return {}


def run_demo(args: argparse.Namespace) -> int:
    """Run the scripted scenario; exit 0 if the patient never reached the edge."""
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    speed_kmh = args.speed_kmh
    with tempfile.TemporaryDirectory(prefix="treadmill-demo-voice-") as tmp, \
            SimBench(start_gap_mm=1000.0, ipc_socket=Path(tmp) / "control.sock") as bench:
        voice = spawn_voice(Path(tmp) / "control.sock", Path(tmp))
        try:
            return _scenario(bench, speed_kmh, Path(tmp))
        finally:
            voice.terminate()
            voice.wait(5.0)


def _scenario(bench: SimBench, speed_kmh: float, tmp: Path) -> int:
    """Reset, start, let the patient drift to the trip; print the timeline and what the voice said."""
    # The voice renders its prompts (about a second), then subscribes: it hears the whole scenario.
    wait_until(lambda: voice_health(tmp).get("controller", {}).get("connected"), 20.0, poll_s=0.1)
    print(f"simulated treadmill on {bench.emulator.port}; two VL53L0X models at "
          + ", ".join(f"0x{s.i2c_address:02x}" for s in bench.cfg.sensors)
          + "; GPIO on gpiozero's MockFactory")
    print(f"therapist: reset, then start at {speed_kmh:g} km/h (reverse cap "
          f"{bench.cfg.limits.reverse_cap_kmh:g} km/h)")
    t0 = time.monotonic()
    bench.reset_and_start(speed_kmh)
    print(_status_line(bench, t0))
    print("patient stops stepping back: the belt carries them towards the rear edge")
    bench.patient.set_drift(speed_kmh / KMH_PER_MPS)
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        print(_status_line(bench, t0), flush=True)
        if bench.controller.status.get("state") == "STOPPED" and bench.emulator.belt_speed_mps == 0.0:
            break
        time.sleep(STATUS_PERIOD_S)
    wait_until(lambda: bench.emulator.belt_speed_mps == 0.0, 3.0)
    bench.controller.history.flush()
    events = list(reversed(bench.controller.history.recent(100)))
    print("\ntimeline:")
    t_first = events[0]["t_mono"] if events else 0.0
    for e in events:
        who = f" [{e['actor']}]" if e["actor"] else ""
        print(f"  +{e['t_mono'] - t_first:6.2f}s {e['kind']:8s} {e['code']:14s}{who} {e['message']}")
    trips = [e for e in events if e["kind"] == EventKind.TRIP]
    if trips:
        f = trips[-1]["figures"]
        print(f"\ntrip figures: gap {f['gap_mm']} mm <= stop distance {f['stop_distance_mm']} mm = "
              f"base {f['base_stop_mm']:g} + reaction {f['reaction_term_mm']} + braking {f['braking_term_mm']}")
    wait_until(lambda: (voice_health(tmp).get("last_prompt") or {}).get("key") == "stopped_stand_still", 3.0,
               poll_s=0.1)
    health = voice_health(tmp)
    device = health.get("device") or {}
    print(f"voice: {health.get('spoken', 0)} prompt(s) spoken, {health.get('failed', 0)} not"
          + (f" ({device.get('detail')})" if device.get("ok") is False else "")
          + (f"; last: {health['last_prompt']['key']}, {health['last_prompt']['latency_ms']:g} ms after its "
             "event" if health.get("last_prompt") else ""))
    print(f"closest approach to the edge: {bench.patient.min_gap_mm:.0f} mm "
          f"(base stop distance {bench.cfg.limits.base_stop_mm:g} mm); "
          + ("PATIENT FELL" if bench.patient.fallen else "the patient never reached the edge"))
    return 1 if bench.patient.fallen or not trips else 0
