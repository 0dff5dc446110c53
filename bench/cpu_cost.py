"""Controller CPU share, memory and wake-ups: 2 staggered sensors x 30 Hz, belt polled at 20 Hz.

The treadmill emulator runs in its own process (``treadmill-safety simulate-treadmill``
over a pty); the sensor register models must share the controller's process (they are
its I2C bus), so their cost is counted too: the tof-reader thread answers their register
traffic, and the models' clock thread ("sim-vl53l0x-clock") drives their GPIO1 interrupt
lines, which real sensors do for free. The figure is an upper bound. The belt runs at
2.0 km/h in RUNNING for the whole measurement. The decision thread's wake-ups are counted
by the loop itself (``ControlLoop.wakeups``).
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
from hardware.sim.vl53l0x import SimI2C, bind_gpio1, bind_xshut

TICKS = os.sysconf("SC_CLK_TCK")
#: Goals here, so that the controller fits a Pi Zero 2 W.
GOAL_CPU_PERCENT = 3.0
GOAL_RSS_MB = 80.0
#: Decision-thread wake-ups a second with the belt running (two sensors at 30 Hz and the belt at 20 Hz
#: are 80 inputs a second: the thread should wake for little else).
GOAL_WAKEUPS_PER_S = 80.0


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
                chip = bus.add_chip(distance_mm=1000 + s.mount_offset_mm)
                bind_xshut(factory, s.xshut_pin, chip)
                if s.interrupt_pin is not None:
                    bind_gpio1(factory, s.interrupt_pin, chip)
            ctl = Controller(cfg, i2c=bus, pin_factory=factory, port=port, smbus=bus.smbus(),
                             state_dir=state_dir).start()
            try:
                factory.pin(cfg.gpio.estop_pin).drive_low()
                assert wait_until(lambda: ctl.command(Command(CommandKind.RESET, "bench", True)).ok, 5.0)
                assert ctl.command(Command(CommandKind.START, "bench", True, 2.0)).ok
                time.sleep(3.0)  # let the ramp finish: the figure is for steady running
                cpu0, wall0, steps0, wakeups0 = thread_cpu_s(), time.monotonic(), ctl.loop.steps, ctl.loop.wakeups
                proc0 = time.process_time()
                time.sleep(duration_s)
                cpu1, wall1, steps1, wakeups1 = thread_cpu_s(), time.monotonic(), ctl.loop.steps, ctl.loop.wakeups
                proc1 = time.process_time()
                state = ctl.status["state"]
                rss = rss_mb()
                timing = ctl.tof.timing if ctl.tof is not None else {}
            finally:
                ctl.close()
                bus.close()
    finally:
        emu.terminate()
        emu.wait(5)
    wall = wall1 - wall0
    per_thread = {name: round(100 * (cpu1.get(name, 0) - cpu0.get(name, 0)) / wall, 2)
                  for name in cpu1 if cpu1.get(name, 0) - cpu0.get(name, 0) > 0}
    cpu = round(100 * (proc1 - proc0) / wall, 2)
    wakeups = round((wakeups1 - wakeups0) / wall, 1)
    return {"duration_s": round(wall, 1), "state_at_end": state,
            "goal": {"cpu_percent_of_one_core": GOAL_CPU_PERCENT, "rss_mb": GOAL_RSS_MB,
                     "decision_wakeups_per_s": GOAL_WAKEUPS_PER_S},
            "goal_met": cpu <= GOAL_CPU_PERCENT and rss <= GOAL_RSS_MB,
            "wakeups_goal_met": wakeups <= GOAL_WAKEUPS_PER_S,
            "cpu_percent_of_one_core": cpu,
            "cpu_percent_by_thread": per_thread, "rss_mb": round(rss, 1),
            "decision_steps_per_s": round((steps1 - steps0) / wall, 1),
            "decision_wakeups_per_s": wakeups,
            "sensors": {sid: {"interrupt": t.get("interrupt"), "rephases": t.get("rephases"),
                              "measured_period_s": t.get("measured_period_s")} for sid, t in timing.items()}}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    result = run(args.seconds)
    path = save("cpu_cost", result)
    print(f"controller over {result['duration_s']} s ({result['state_at_end']}): "
          f"{result['cpu_percent_of_one_core']}% of one core, RSS {result['rss_mb']} MB, "
          f"{result['decision_steps_per_s']} decisions/s, {result['decision_wakeups_per_s']} wake-ups/s "
          f"(goal <= {GOAL_WAKEUPS_PER_S:g}: {'met' if result['wakeups_goal_met'] else 'NOT MET'}); "
          f"by thread {result['cpu_percent_by_thread']}; goal "
          f"(<= {GOAL_CPU_PERCENT:g}% and <= {GOAL_RSS_MB:g} MB): {'met' if result['goal_met'] else 'NOT MET'} -> {path}")
    return result


if __name__ == "__main__":
    main()
