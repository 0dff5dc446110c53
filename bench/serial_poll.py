"""Belt poll rate at 4800 baud with byte-time emulation, against what the wire allows.

One poll is C1 (1 byte) out and D1 + 4 digits (5 bytes) back: 6 bytes of 10 bits
(8N1), so a half-duplex exchange limits polling to baud / 60 per second (80/s at 4800).
The driver is asked to poll as fast as it can (200 Hz) and at its configured 20 Hz.
"""

from __future__ import annotations

import argparse
import logging
import time

from bench.common import save
from hardware.belt import TrackMasterBelt
from hardware.sim.treadmill import TreadmillEmulator

BAUD = 4800
BITS_PER_POLL = 6 * 10


def rate(poll_hz: float, seconds: float) -> tuple[float, int]:
    """Readings per second delivered by the driver, and link faults seen."""
    readings: list[float] = []
    faults: list[str] = []
    with TreadmillEmulator("trackmaster", baudrate=BAUD, byte_time=True) as emu:
        belt = TrackMasterBelt(emu.port, dialect="trackmaster", baudrate=BAUD, poll_hz=poll_hz,
                               on_reading=lambda r: readings.append(r.t_mono),
                               on_fault=lambda f: faults.append(f.message))
        with belt:
            belt.open()
            belt.start()
            time.sleep(0.5)
            n0 = len(readings)
            t0 = time.monotonic()
            time.sleep(seconds)
            n1 = len(readings)
            t1 = time.monotonic()
    return (n1 - n0) / (t1 - t0), len(faults)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    limit = BAUD / BITS_PER_POLL
    max_rate, max_faults = rate(200.0, args.seconds)
    cfg_rate, cfg_faults = rate(20.0, args.seconds)
    result = {"baud": BAUD, "wire_limit_polls_per_s": limit,
              "max_polls_per_s": round(max_rate, 1), "fraction_of_limit": round(max_rate / limit, 3),
              "configured_20hz_polls_per_s": round(cfg_rate, 1), "link_faults": max_faults + cfg_faults,
              "goal": {"fraction_of_limit": 0.5}, "goal_met": max_rate >= 0.5 * limit and max_faults + cfg_faults == 0}
    path = save("serial_poll", result)
    print(f"belt polls at {BAUD} baud with byte timing: {max_rate:.1f}/s flat out "
          f"({100 * max_rate / limit:.0f}% of the wire's {limit:.0f}/s), {cfg_rate:.1f}/s at poll_hz=20; "
          f"link faults {result['link_faults']}; goal (at least half the wire's limit): "
          f"{'met' if result['goal_met'] else 'NOT MET'} -> {path}")
    return result


if __name__ == "__main__":
    main()
