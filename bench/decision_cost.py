"""Decision cost per step of the pure safety core (µs): sensor samples, belt readings, ticks.

A running belt at 2.0 km/h with two healthy sensors, fed in the proportions of the
real loop (2 sensors x 30 Hz, belt 20 Hz, tick 100 Hz). Pure CPU: no threads, no I/O.
"""

from __future__ import annotations

import time

from bench.common import percentiles, save
from controller.safety.types import Command, CommandKind
from controller.safety.core import SafetyCore
from sim.bench import EXAMPLE_CONFIG
from controller.config import load_config


def run(steps: int = 200_000) -> dict:
    cfg = load_config(EXAMPLE_CONFIG)
    offsets = {s.id: s.mount_offset_mm for s in cfg.sensors}
    core = SafetyCore(cfg, 0.0)
    t = 0.0
    core.on_estop(False, t)
    core.on_belt_speed(0.0, t)
    for sid in offsets:
        core.on_distance(sid, 1000 + offsets[sid], 11, t)
    core.on_command(Command(CommandKind.RESET, "bench", True), t)
    core.on_command(Command(CommandKind.START, "bench", True, 2.0), t)
    costs_ns: list[int] = []
    ids = list(offsets)
    clock = time.perf_counter_ns
    for i in range(steps):
        t += 0.001
        phase = i % 10
        if phase in (0, 5):
            sid = ids[(i // 5) % len(ids)]
            t0 = clock()
            core.on_distance(sid, 1000 + offsets[sid], 11, t)
        elif phase == 3:
            t0 = clock()
            core.on_belt_speed(core.commanded_mps, t)
        else:
            t0 = clock()
            core.on_tick(t)
        costs_ns.append(clock() - t0)
        if core.state.value == "STOPPED":
            raise RuntimeError(f"the bench run tripped: {core.reasons}")
    stats = percentiles([c / 1000.0 for c in costs_ns])
    return {"unit": "us", "steps": steps, **stats}


def main() -> dict:
    result = run()
    path = save("decision_cost", result)
    print(f"decision cost per step: median {result['median']:.1f} us, p99 {result['p99']:.1f} us, "
          f"max {result['max']:.1f} us over {result['n']} steps -> {path}")
    return result


if __name__ == "__main__":
    main()
