"""The floor under the controller's CPU figure: threads that only wake, at the controller's rates.

Five threads wait on a queue with a timeout, at the rates the controller's threads wake in
``bench.cpu_cost`` (decision 80/s, sensor reader 60/s, the models' GPIO1 clock 60/s, the belt
link's 10 ms read slices 100/s, the session runner 20/s), and do nothing else. Their CPU share
is what the wake-ups alone cost on this machine.
"""

from __future__ import annotations

import argparse
import os
import queue
import threading
import time
from pathlib import Path

from bench.common import save

RATES_PER_S = {"decision": 80, "tof-reader": 60, "sim-vl53l0x-clock": 60, "belt-link": 100, "sessions": 20}
TICKS = os.sysconf("SC_CLK_TCK")


def _process_cpu_s() -> float:
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _waker(rate_per_s: float, stop: threading.Event) -> None:
    q: queue.SimpleQueue = queue.SimpleQueue()
    period_s = 1.0 / rate_per_s
    next_t = time.monotonic()
    while not stop.is_set():
        next_t += period_s
        try:
            q.get(timeout=max(0.0, next_t - time.monotonic()))
        except queue.Empty:
            pass


def run(seconds: float) -> dict:
    stop = threading.Event()
    threads = [threading.Thread(target=_waker, args=(rate, stop), name=f"waker-{name}", daemon=True)
               for name, rate in RATES_PER_S.items()]
    for t in threads:
        t.start()
    stop.wait(1.0)  # settle
    cpu0, wall0 = _process_cpu_s(), time.monotonic()
    stop.wait(seconds)
    cpu1, wall1 = _process_cpu_s(), time.monotonic()
    stop.set()
    for t in threads:
        t.join(1.0)
    return {"wakeups_per_s": sum(RATES_PER_S.values()), "rates_per_s": RATES_PER_S,
            "seconds": round(wall1 - wall0, 1),
            "cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 2)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    result = run(parser.parse_args(argv).seconds)
    path = save("wake_floor", result)
    print(f"{result['wakeups_per_s']} empty wake-ups/s: {result['cpu_percent_of_one_core']}% of one core -> {path}")
    return result


if __name__ == "__main__":
    main()
