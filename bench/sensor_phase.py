"""Sensor phase: where two VL53L0X results fall against each other, in phase and staggered.

The two sensors of systemd/config.example.toml (33 ms budget, GPIO1 interrupt wires) run the real
Adafruit driver and ``hardware.tof.TofArray`` over the register model (hardware/sim/vl53l0x.py),
for N seconds (default 10) in each case:

  in_phase        ``TofArray(stagger=False)``: started together, kept in phase;
  staggered       ``TofArray(stagger=True)``: started half a period apart, kept there;
  staggered_drift staggered, with the second chip's clock off (period_scale 1.02 by default),
                  so phase control must re-phase it again and again.

Measured over the N seconds after a settling time, from the model's own result times (the
chips' history; the reader's edge stamps, late by the host's scheduling, are given beside as
"delivered"):

  offset          for each result of the second sensor, how long after the first sensor's latest
                  earlier result, in periods, folded into one period centred on the offsets'
                  circular mean (so in phase reads near 0 rather than as 0 and 1): median, p5, p95;
  union_gap       the longest time between consecutive results of either sensor, in periods: the
                  worst wait for a fresh sample of the patient (0.5 staggered, 1.0 in phase, at best);
  single_gap      the longest time between consecutive results of one sensor, in periods (a re-phase
                  drops the measurement under way, so this grows with re-phasing);
  rephases_per_min  restarts by phase control, both sensors, per minute of the window;
  emitter_overlap share of the first sensor's emitter time during which the second's fires too
                  (``hardware.sim.vl53l0x.overlap_fraction`` over ``SimVL53L0X.emitter_windows()``).

What the model assumes, and what this does NOT measure:
  - Back-to-back continuous mode: each measurement fills the whole period, results come one
    period apart on the chip's own clock (``period_scale`` stretches it).
  - The emitter window is only the final range step (the one the distance comes from), taken to
    end at the result time; at a 33 ms budget it is a part of the period, the rest being overhead
    and the pre-range step, in which the real emitter fires too but the model draws no window. So
    emitter_overlap understates the time both emitters are on.
  - Writing the back-to-back start while already ranging restarts the period: the measurement
    under way is dropped and the next result comes one period after the write. Re-phasing relies on
    this; it is the model's assumption, not verified on a real chip.
  - Optical interference between the real chips (one sensor's 940 nm pulses seen by the other's
    SPADs, which can bias or spoil a range) is not modelled and not measured here: emitter_overlap is
    only the timing share from which that risk follows. It must be measured on the rig.
  - A host stall longer than a period makes the model skip the results it missed (it keeps only
    the latest), which shows here as a gap; the drift case's gaps are mostly re-phases.
"""

from __future__ import annotations

import argparse
import cmath
import itertools
import logging
import math
import statistics
import threading
import time
from collections.abc import Sequence

from gpiozero.pins.mock import MockFactory, MockPWMPin

from bench.common import save
from controller.config import load_config
from hardware import RangeReading, SensorFault
from hardware.sim.vl53l0x import SimI2C, SimVL53L0X, bind_gpio1, bind_xshut, overlap_fraction
from hardware.tof import TofArray, TofSpec
from sim.bench import EXAMPLE_CONFIG

#: Results of the first part of a run are left out: bring-up, the reader's first clearing, and the
#: first re-phase of the drift case.
SETTLE_S = 0.4
DEFAULT_SECONDS = 10.0
DEFAULT_DRIFT = 0.02
#: Fields of each case in the result (the test checks they are all there).
CASE_FIELDS = ("stagger", "period_scales", "period_ms", "final_range_ms", "results", "offset",
               "union_gap", "single_gap", "rephases", "rephases_per_min", "emitter_overlap", "faults",
               "delivered")
STAT_FIELDS = ("median", "p5", "p95")


def _pct(values: Sequence[float], share: float) -> float:
    # Nearest-rank percentile, as bench.common.percentiles.
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def offsets_in_periods(first: Sequence[float], second: Sequence[float], period_s: float) -> list[float]:
    """For each time in ``second``, how long after the latest earlier time in ``first``, in periods,
    folded into one period centred on their circular mean."""
    raw: list[float] = []
    i = 0
    for t in second:
        while i + 1 < len(first) and first[i + 1] <= t:
            i += 1
        if first and first[i] <= t:
            raw.append(((t - first[i]) / period_s) % 1.0)
    if not raw:
        return []
    mean = sum(cmath.exp(2j * math.pi * x) for x in raw)
    centre = (cmath.phase(mean) / (2 * math.pi)) % 1.0 if abs(mean) > 1e-9 else 0.5
    # Keep a centre near 0 as 0 (in phase reads -0.5..0.5), else fold into centre-0.5..centre+0.5.
    if centre > 0.75:
        centre -= 1.0
    return [x - round(x - centre) for x in raw]


def _offset_stats(offsets: Sequence[float]) -> dict[str, float | int | None]:
    if not offsets:
        return {"n": 0, **dict.fromkeys(STAT_FIELDS)}
    return {"n": len(offsets), "median": statistics.median(offsets), "p5": _pct(offsets, 0.05),
            "p95": _pct(offsets, 0.95)}


def _max_gap(stamps: Sequence[float], period_s: float) -> float | None:
    gaps = [b - a for a, b in itertools.pairwise(sorted(stamps))]
    return max(gaps) / period_s if gaps else None


def _timing_figures(first: list[float], second: list[float], period_s: float) -> dict:
    return {"offset": _offset_stats(offsets_in_periods(first, second, period_s)),
            "union_gap": _max_gap(first + second, period_s),
            "single_gap": max((g for g in (_max_gap(first, period_s), _max_gap(second, period_s))
                               if g is not None), default=None)}


def run_case(name: str, *, stagger: bool, seconds: float, period_scales: Sequence[float] = (1.0, 1.0),
             settle_s: float = SETTLE_S) -> dict:
    """Run the example config's sensors for ``settle_s + seconds`` and measure the last ``seconds``."""
    cfg = load_config(EXAMPLE_CONFIG)
    sensors = cfg.sensors[:2]
    if len(sensors) != 2:
        raise RuntimeError(f"{EXAMPLE_CONFIG} must name two sensors, has {len(cfg.sensors)}")
    factory = MockFactory(pin_class=MockPWMPin)
    bus = SimI2C()
    lock = threading.Lock()
    readings: list[RangeReading] = []
    faults: list[SensorFault] = []

    def on_reading(reading: RangeReading) -> None:
        with lock:
            readings.append(reading)

    def on_fault(fault: SensorFault) -> None:
        with lock:
            faults.append(fault)

    # Every result of the run must stay in the chips' history (20 ms is the shortest budget).
    history_len = int((settle_s + seconds) / 0.015) + 64
    chips: list[SimVL53L0X] = []
    specs = []
    for s, scale in zip(sensors, period_scales, strict=True):
        chip = bus.add_chip(distance_mm=500.0, period_scale=scale, history_len=history_len)
        bind_xshut(factory, s.xshut_pin, chip)
        if s.interrupt_pin is not None:
            bind_gpio1(factory, s.interrupt_pin, chip)
        chips.append(chip)
        specs.append(TofSpec(s.id, s.i2c_address, s.xshut_pin, s.timing_budget_ms, interrupt_pin=s.interrupt_pin))
    array = TofArray(specs, i2c=bus, smbus=bus.smbus(), bus_number=cfg.i2c.bus, pin_factory=factory,
                     stagger=stagger, on_reading=on_reading, on_fault=on_fault)
    try:
        array.open()
        array.start()
        time.sleep(settle_s)
        t_from = time.monotonic()
        rephases_from = sum(t["rephases"] for t in array.timing.values())
        time.sleep(seconds)
        t_to = time.monotonic()
        timing = array.timing
        rephases = sum(t["rephases"] for t in timing.values()) - rephases_from
        period_s = array.sensor_periods_s[specs[0].sensor_id]
    finally:
        array.close()
        bus.close()
        factory.reset()
        factory.close()

    def window(t: float) -> bool:
        return t_from <= t <= t_to

    results = [[m.t_mono for m in chip.history if window(m.t_mono)] for chip in chips]
    emitters = [[w for w in chip.emitter_windows() if window(w[1])] for chip in chips]
    with lock:
        delivered = [[r.t_mono for r in readings if r.sensor_id == spec.sensor_id and window(r.t_mono)]
                     for spec in specs]
        n_faults = len(faults)
    final_range_s = chips[0].history[-1].final_range_s / chips[0].period_scale if chips[0].history else 0.0
    minutes = (t_to - t_from) / 60
    return {
        "stagger": stagger, "period_scales": list(period_scales), "period_ms": period_s * 1000,
        "final_range_ms": final_range_s * 1000,
        "results": {spec.sensor_id: len(r) for spec, r in zip(specs, results, strict=True)},
        **_timing_figures(results[0], results[1], period_s),
        "rephases": rephases, "rephases_per_min": rephases / minutes if minutes > 0 else 0.0,
        "emitter_overlap": overlap_fraction(emitters[0], emitters[1]),
        "faults": n_faults,
        # The same figures from the reader's stamps (GPIO1 edge times): late by the host's scheduling.
        "delivered": _timing_figures(delivered[0], delivered[1], period_s),
        "case": name,
    }


def measure(seconds: float = DEFAULT_SECONDS, drift: float = DEFAULT_DRIFT) -> dict:
    """The three cases; ``drift``: how far the second chip's clock is off in the last one."""
    cases = {
        "in_phase": {"stagger": False},
        "staggered": {"stagger": True},
        "staggered_drift": {"stagger": True, "period_scales": (1.0, 1.0 + drift)},
    }
    out = {name: run_case(name, seconds=seconds, **options) for name, options in cases.items()}
    for case in out.values():
        del case["case"]
    return {"seconds_per_case": seconds, "settle_s": SETTLE_S, "drift": drift,
            "sensors": [s.id for s in load_config(EXAMPLE_CONFIG).sensors[:2]],
            "units": {"offset": "periods", "union_gap": "periods", "single_gap": "periods",
                      "emitter_overlap": "share of the first sensor's final-range time"},
            "cases": out}


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def table(result: dict) -> str:
    """A compact table of the cases."""
    head = (f"{'case':<16}{'offset med [p5,p95]':>26}{'union gap':>11}{'1-sensor gap':>14}"
            f"{'rephase/min':>13}{'overlap':>9}{'delivered union gap':>21}")
    rows = [head]
    for name, c in result["cases"].items():
        o = c["offset"]
        rows.append(f"{name:<16}{_fmt(o['median']):>8} [{_fmt(o['p5'])},{_fmt(o['p95'])}]{'':>3}"
                    f"{_fmt(c['union_gap']):>11}{_fmt(c['single_gap']):>14}{c['rephases_per_min']:>13.0f}"
                    f"{c['emitter_overlap']:>9.3f}{_fmt(c['delivered']['union_gap']):>21}")
    first = next(iter(result["cases"].values()))
    rows.append(f"(periods of {first['period_ms']:.1f} ms; final range {first['final_range_ms']:.1f} ms; "
                f"{result['seconds_per_case']:g} s per case; drift case: second clock x{1 + result['drift']:g})")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="measured time per case")
    parser.add_argument("--drift", type=float, default=DEFAULT_DRIFT,
                        help="how far the second chip's clock is off in the drift case (0.02: 2%% slow)")
    args = parser.parse_args(argv)
    if not args.seconds > 0:
        parser.error("--seconds must be > 0")
    if not -0.5 < args.drift < 0.5:
        parser.error("--drift must be within -0.5..0.5")
    logging.basicConfig(level=logging.WARNING)
    result = measure(args.seconds, args.drift)
    path = save("sensor_phase", result)
    print(table(result))
    print(f"-> {path}")
    return result


if __name__ == "__main__":
    main()
