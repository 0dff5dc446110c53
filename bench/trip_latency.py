"""Trip latency in the HIL harness: real drivers on simulated hardware, N trips.

Each trip: the patient stands 70 mm outside the stop distance with the relay
energized (READY), then steps 10 mm inside it. Measured:
  sample->relay   from the in-zone sample becoming available (its read time) to the relay pin low;
  crossing->relay from the patient crossing the stop line to the relay pin low (includes
                  the wait for the next sensor sample, up to one period).
The path measured (reader thread -> queue -> decision -> relay) is the same one a
moving belt takes; READY keeps each cycle short enough for thousands of trips.
"""

from __future__ import annotations

import argparse
import logging
import time

from bench.common import percentiles, save
from controller.safety_types import CommandKind
from controller.simulation import SimBench, wait_until


def _trip_once(bench: SimBench, stop_mm: float) -> tuple[float, float]:
    bench.patient.set_gap(stop_mm + 70)
    deadline = time.monotonic() + 5.0
    while not bench.command(CommandKind.RESET, actor="bench").ok:
        if time.monotonic() > deadline:
            raise RuntimeError(f"reset refused: {bench.controller.status.get('reasons')}")
        time.sleep(0.01)
    n_hist = len(bench.relay_history)
    wait_until(lambda: bench.relay_energized, 1.0)
    crossed_t = time.monotonic()
    bench.patient.set_gap(stop_mm - 10)
    if not wait_until(lambda: any(not e for _, e in bench.relay_history[n_hist:]), 2.0):
        raise RuntimeError("no trip")
    opened_t = next(t for t, e in bench.relay_history[n_hist:] if not e)
    bench.controller.events.flush()
    trip = bench.controller.events.recent(1, kind="trip")[0]
    return opened_t - trip["figures"]["input_t_mono"], opened_t - crossed_t


def measure(bench: SimBench, trips: int) -> dict:
    """Run ``trips`` trips on a started bench; latencies in ms."""
    stop_mm = bench.cfg.limits.base_stop_mm
    sample, crossing = [], []
    for _ in range(trips):
        s, c = _trip_once(bench, stop_mm)
        sample.append(s * 1000)
        crossing.append(c * 1000)
    return {"unit": "ms", "trips": trips, "sample_to_relay": percentiles(sample),
            "crossing_to_relay": percentiles(crossing),
            "sensor_period_ms": bench.cfg.sensor_period_s * 1000}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trips", type=int, default=1000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    with SimBench(start_gap_mm=600) as bench:
        result = measure(bench, args.trips)
    path = save("trip_latency", result)
    s, c = result["sample_to_relay"], result["crossing_to_relay"]
    print(f"trip latency over {result['trips']} trips: sample->relay median {s['median']:.2f} ms, "
          f"p99 {s['p99']:.2f} ms, max {s['max']:.2f} ms; crossing->relay median {c['median']:.1f} ms, "
          f"p99 {c['p99']:.1f} ms, max {c['max']:.1f} ms (sensor period {result['sensor_period_ms']:.0f} ms) "
          f"-> {path}")
    return result


if __name__ == "__main__":
    main()
