"""Controller CPU share and memory: 2 sensors x 30 Hz, belt polled at 20 Hz, tick 100 Hz.

The treadmill emulator runs in its own process (``treadmill-safety simulate-treadmill``
over a pty); the sensor register models must share the controller's process (they are
its I2C bus), so their cost lands in the tof-reader thread: the figure is an upper bound.
The belt runs at 2.0 km/h in RUNNING for the whole measurement.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from gpiozero.pins.mock import MockFactory, MockPWMPin

from bench.common import save
from controller.assembly import Controller
from controller.safety.types import Command, CommandKind
from sim.bench import sim_config, wait_until
from hardware.sim.vl53l0x import SimI2C, bind_xshut

TICKS = os.sysconf("SC_CLK_TCK")
#: Goals here, so that the controller fits a Pi Zero 2 W.
GOAL_CPU_PERCENT = 5.0
GOAL_RSS_MB = 80.0


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds (user + system) of each live thread of this process, by thread name."""
    out: dict[str, float] = {}
    for t in threading.enumerate():
        try:
            fields = Path(f"/proc/self/task/{t.native_id}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, TypeError):
            continue
        out[t.name] = out.get(t.name, 0.0) + (int(fields[11]) + int(fields[12])) / TICKS
    return out


def rss_mb() -> float:
    """Resident set size of this process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(duration_s: float) -> dict:
    emu = subprocess.Popen([sys.executable, "-m", "hardware.sim.treadmill_cli", "--dialect", "trackmaster"],
                           stdout=subprocess.PIPE, text=True)
    try:
        port = emu.stdout.readline().split("port:", 1)[1].strip()
        with tempfile.TemporaryDirectory() as state_dir:
            cfg = sim_config(state_dir)
            factory = MockFactory(pin_class=MockPWMPin)
            bus = SimI2C()
            for s in cfg.sensors:
                bind_xshut(factory, s.xshut_pin, bus.add_chip(distance_mm=1000 + s.mount_offset_mm))
            ctl = Controller(cfg, i2c=bus, pin_factory=factory, port=port, smbus=bus.smbus(),
                             state_dir=state_dir).start()
            try:
                factory.pin(cfg.gpio.estop_pin).drive_low()
                assert wait_until(lambda: ctl.command(Command(CommandKind.RESET, "bench", True)).ok, 5.0)
                assert ctl.command(Command(CommandKind.START, "bench", True, 2.0)).ok
                time.sleep(3.0)  # let the ramp finish: the figure is for steady running
                cpu0, wall0, steps0 = thread_cpu_s(), time.monotonic(), ctl.loop.steps
                proc0 = time.process_time()
                time.sleep(duration_s)
                cpu1, wall1, steps1 = thread_cpu_s(), time.monotonic(), ctl.loop.steps
                proc1 = time.process_time()
                state = ctl.status["state"]
                rss = rss_mb()
            finally:
                ctl.close()
    finally:
        emu.terminate()
        emu.wait(5)
    wall = wall1 - wall0
    per_thread = {name: round(100 * (cpu1.get(name, 0) - cpu0.get(name, 0)) / wall, 2)
                  for name in cpu1 if cpu1.get(name, 0) - cpu0.get(name, 0) > 0}
    cpu = round(100 * (proc1 - proc0) / wall, 2)
    return {"duration_s": round(wall, 1), "state_at_end": state,
            "goal": {"cpu_percent_of_one_core": GOAL_CPU_PERCENT, "rss_mb": GOAL_RSS_MB},
            "goal_met": cpu <= GOAL_CPU_PERCENT and rss <= GOAL_RSS_MB,
            "cpu_percent_of_one_core": cpu,
            "cpu_percent_by_thread": per_thread, "rss_mb": round(rss, 1),
            "decision_steps_per_s": round((steps1 - steps0) / wall, 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    result = run(args.seconds)
    path = save("cpu_cost", result)
    print(f"controller over {result['duration_s']} s ({result['state_at_end']}): "
          f"{result['cpu_percent_of_one_core']}% of one core, RSS {result['rss_mb']} MB, "
          f"{result['decision_steps_per_s']} decisions/s; by thread {result['cpu_percent_by_thread']}; goal "
          f"(<= {GOAL_CPU_PERCENT:g}% and <= {GOAL_RSS_MB:g} MB): {'met' if result['goal_met'] else 'NOT MET'} -> {path}")
    return result


if __name__ == "__main__":
    main()
