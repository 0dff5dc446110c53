"""Stop margin: where the patient stands once the belt has stopped, beside what the stop-distance formula predicts.

For each belt speed, in the HIL harness (real drivers on simulated hardware): the patient walks at a
steady gap just outside the warn zone, then stops stepping and is carried towards the rear edge at
the belt speed. The controller slows the belt once in the warn zone (as in the clinic), trips at the
stop distance, and the belt brakes at the configured deceleration. Measured per run: the gap at the
trip sample, the gap once the belt stands (emulator speed 0), the closest approach, and any fall.

From the trip sample the formula predicts a standstill gap of
    gap_at_trip - v * t_react - v^2 / (2 * decel)        (v: the belt speed at the trip)
which is at least the base stop distance when the sample lagged the stop line by at most one
sensor period. The emulated treadmill spends the configured reaction time (relay drop-out plus the
drive's own reaction) after the relay opens before it brakes at the configured deceleration.
Goal: the standstill gap never under the configured base stop distance.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from bench.common import save
from controller.config import (KMH_PER_MPS, Config, load_config, parse_config,
                               stop_distance_mm)
from sim.bench import EXAMPLE_CONFIG, STALE_INPUT_TRIPS, SimBench, sim_config, wait_until
from hardware.belt_protocol import mps_to_tenths_mph_floor, tenths_mph_to_mps
from hardware.sim.patient import PatientModel

SPEEDS_KMH = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
#: The patient walks this far outside the warn zone before they stop stepping.
START_BEYOND_WARN_MM = 30.0
#: Drift far above any belt speed: the patient is carried at the full belt speed.
CARRIED_DRIFT_MPS = 10.0
#: A quicker ramp than the clinic's (0.5 km/h/s) keeps runs short; the stop does not depend on it.
BENCH_RAMP_KMH_PER_S = 2.0
BENCH_ACCEL_MPS2 = 1.0
#: Codes of runs whose stop failed: they count against the goal.
FAILED_STOPS = ("missed_trip", "belt_kept_running", "unlogged_trip")
#: Runs a speed may redo (at least): beyond that the speed is reported incomplete, and its goal not met.
MIN_REDOS = 3


def _stop_mm(cfg: Config, belt_speed_mps: float) -> float:
    t = cfg.treadmill
    return stop_distance_mm(belt_speed_mps, cfg.limits.base_stop_mm, cfg.sensor_period_s, t.reaction_time_s,
                            t.decel_mps2)


def bench_config(speed_kmh: float) -> tuple[Config, dict[str, Any]]:
    """The example config, through the real loader, changed only as far as ``speed_kmh`` needs; and the changes.

    Above the example's reverse cap: the cap and its ceiling rise to the speed; where the warn zone
    would then end beyond the sensors' reliable reach, the warn margin shrinks (in 10 mm steps, to
    no less than 50 mm), and failing that the sensor windows sit at the rear edge (mount offset 0).
    """
    data = tomllib.loads(EXAMPLE_CONFIG.read_text())
    changes: dict[str, Any] = {}

    def change(section: str, key: str, value: float) -> None:
        data[section][key] = value
        changes[f"{section}.{key}"] = value

    change("safety", "speed_ramp_kmh_per_s", BENCH_RAMP_KMH_PER_S)
    limits, ceilings = data["limits"], data["ceilings"]
    if speed_kmh > limits["reverse_cap_kmh"]:
        change("limits", "reverse_cap_kmh", speed_kmh)
        if speed_kmh > ceilings["max_reverse_cap_kmh"]:
            change("ceilings", "max_reverse_cap_kmh", speed_kmh)
        example = load_config(EXAMPLE_CONFIG)
        stop_mm = _stop_mm(example, speed_kmh / KMH_PER_MPS)
        offset_mm = max(0.0, example.max_mount_offset_mm)
        room_mm = example.safety.sensor_reach_mm - stop_mm - offset_mm
        if room_mm < 50 and offset_mm > 0:
            for sensor in data["sensors"]:
                sensor["mount_offset_mm"] = 0
            changes["sensors[*].mount_offset_mm"] = 0
            room_mm = example.safety.sensor_reach_mm - stop_mm
        warn_mm = float(max(50, math.floor(room_mm / 10) * 10))
        if warn_mm < limits["warn_margin_mm"]:
            change("limits", "warn_margin_mm", warn_mm)
            if warn_mm < ceilings["min_warn_margin_mm"]:
                change("ceilings", "min_warn_margin_mm", warn_mm)
        # The stop zone of a patient approaching at the assumed speed must lie within what the
        # sensors see: the simulated ones see further than the clinic's 800 mm, and this says so.
        approach = stop_distance_mm(speed_kmh / KMH_PER_MPS, limits["base_stop_mm"], example.sensor_period_s,
                                    example.treadmill.reaction_time_s, example.treadmill.decel_mps2,
                                    max(speed_kmh / KMH_PER_MPS, example.safety.approach_speed_mps))
        reach_mm = math.ceil((approach + max(s["mount_offset_mm"] for s in data["sensors"])) / 10) * 10
        if reach_mm > example.safety.sensor_reach_mm:
            change("safety", "sensor_reach_mm", float(reach_mm))
    # The real loader: a config it refuses is not benchmarked.
    cfg = parse_config(data, f"{EXAMPLE_CONFIG.name} + stop-margin bench changes")
    return cfg, changes


def _config_record(cfg: Config, changes: dict[str, Any]) -> dict[str, Any]:
    t, lim = cfg.treadmill, cfg.limits
    return {"changes_from_example": changes, "reverse_cap_kmh": lim.reverse_cap_kmh,
            "base_stop_mm": lim.base_stop_mm, "warn_margin_mm": lim.warn_margin_mm,
            "mount_offset_mm": [s.mount_offset_mm for s in cfg.sensors], "sensor_period_s": cfg.sensor_period_s,
            "reaction_time_s": t.reaction_time_s, "decel_mps2": t.decel_mps2,
            "warn_slowdown_kmh": cfg.safety.warn_slowdown_kmh, "min_speed_kmh": cfg.safety.min_speed_kmh,
            "speed_ramp_kmh_per_s": cfg.safety.speed_ramp_kmh_per_s, "protocol": t.protocol}


def _trip_after(bench: SimBench, t_mono: float) -> dict | None:
    bench.controller.history.flush()
    found = [e for e in bench.controller.history.recent(5, kind="trip") if e["t_mono"] >= t_mono]
    return found[-1] if found else None


def _controller_sees(bench: SimBench, gap_mm: float) -> bool:
    sensors = bench.controller.status.get("sensors", {})
    return bool(sensors) and all(s["fresh"] and s["gap_mm"] is not None and abs(s["gap_mm"] - gap_mm) <= 1.0
                                 for s in sensors.values())


def _failed(code: str, running_mps: float, patient: PatientModel) -> dict[str, Any]:
    """A run whose stop failed: no figures, only what became of the patient."""
    return {"code": code, "running_mps": round(running_mps, 4), "trip_belt_speed_mps": None,
            "trip_commanded_mps": None, "gap_at_trip_mm": None, "stop_distance_at_trip_mm": None,
            "sample_to_relay_ms": None, "predicted_gap_mm": None, "standstill_gap_mm": None,
            "fell": patient.fallen}


def run_once(bench: SimBench, speed_kmh: float, start_gap_mm: float) -> dict[str, Any]:
    """One stop from ``speed_kmh``; RuntimeError if the run could not be set up (the caller redoes it)."""
    cfg, patient = bench.cfg, bench.patient
    patient.set_drift(0.0)
    patient.set_gap(start_gap_mm)
    # Reset only once every sensor has seen the patient back at the start, or the controller refuses the start.
    if not wait_until(lambda: _controller_sees(bench, start_gap_mm), 2.0):
        raise RuntimeError(f"the sensors did not see the patient at {start_gap_mm:.0f} mm")
    bench.reset_and_start(speed_kmh)
    # The treadmill runs at the speed it was sent: whole tenths of mph, rounded down.
    set_mps = tenths_mph_to_mps(mps_to_tenths_mph_floor(speed_kmh / KMH_PER_MPS))
    if not wait_until(lambda: abs(bench.emulator.belt_speed_mps - set_mps) < 1e-9, 5.0):
        raise RuntimeError(f"belt at {bench.emulator.belt_speed_mps:.3f} m/s, not its set {set_mps:.3f} m/s")
    running_mps = bench.emulator.belt_speed_mps
    n_hist = len(bench.relay_history)
    t_drift = time.monotonic()
    patient.set_drift(CARRIED_DRIFT_MPS)
    # Failures of the stop itself are results, never redone.
    if not wait_until(lambda: any(not on for _, on in bench.relay_history[n_hist:]), 10.0):
        return _failed("missed_trip", running_mps, patient)
    opened_t = next(t for t, on in bench.relay_history[n_hist:] if not on)
    braking_s = 2.0 + 2.0 * running_mps / cfg.treadmill.decel_mps2
    if not wait_until(lambda: bench.emulator.belt_speed_mps == 0.0, braking_s):
        return _failed("belt_kept_running", running_mps, patient)
    standing_t = time.monotonic()
    # One more patient step after the belt stood: the gap no longer changes.
    if not wait_until(lambda: patient.time_s > standing_t, 1.0):
        raise RuntimeError("the patient model stopped stepping")
    standstill_mm = patient.gap_mm
    patient.set_drift(0.0)
    trip = _trip_after(bench, t_drift)
    if trip is None:
        return _failed("unlogged_trip", running_mps, patient)
    f = trip["figures"]
    t = cfg.treadmill
    v = f["belt_speed_mps"]
    input_t, gap_mm = f.get("input_t_mono"), f.get("gap_mm")
    latency_s = None if input_t is None else opened_t - input_t
    predicted_mm = None if gap_mm is None else \
        round(gap_mm - 1000.0 * (v * t.reaction_time_s + v * v / (2.0 * t.decel_mps2)), 1)
    return {"code": trip["code"], "running_mps": round(running_mps, 4), "trip_belt_speed_mps": v,
            "trip_commanded_mps": f["commanded_mps"], "gap_at_trip_mm": gap_mm,
            "stop_distance_at_trip_mm": f["stop_distance_mm"],
            "sample_to_relay_ms": None if latency_s is None else round(latency_s * 1000, 2),
            "predicted_gap_mm": predicted_mm, "standstill_gap_mm": round(standstill_mm, 1),
            "fell": patient.fallen}


def measure_speed(speed_kmh: float, runs: int) -> dict[str, Any]:
    """``runs`` stops from one speed; runs a machine stall spoiled are redone (at most max(MIN_REDOS, runs))."""
    cfg, changes = bench_config(speed_kmh)
    stop_mm = _stop_mm(cfg, speed_kmh / KMH_PER_MPS)
    start_gap_mm = stop_mm + cfg.limits.warn_margin_mm + START_BEYOND_WARN_MM
    done: list[dict[str, Any]] = []
    redone: list[str] = []
    min_gap_mm = math.inf
    with tempfile.TemporaryDirectory(prefix="stop-margin-") as tmp:
        benches = 0
        bench: SimBench | None = None
        try:
            while len(done) < runs and len(redone) < max(MIN_REDOS, runs):
                if bench is None:
                    state_dir = Path(tmp) / f"state{benches}"
                    benches += 1
                    bench = SimBench(sim_config(state_dir, base=cfg), state_dir=state_dir,
                                     start_gap_mm=start_gap_mm, accel_mps2=BENCH_ACCEL_MPS2).start()
                run: dict[str, Any] | None = None
                try:
                    run = run_once(bench, speed_kmh, start_gap_mm)
                except RuntimeError as exc:
                    reasons = "; ".join(bench.controller.status.get("reasons", {}))
                    redone.append(f"{exc} (controller reasons: {reasons or 'none'})")
                if run is not None and run["code"].startswith(STALE_INPUT_TRIPS) and not run["fell"]:
                    redone.append(f"trip {run['code']}")
                elif run is not None:
                    done.append(run)
                if run is None or run["fell"] or run["code"] in FAILED_STOPS:
                    # A fall is not undone, and a run cut short may leave the belt running: a fresh bench.
                    min_gap_mm = min(min_gap_mm, bench.patient.min_gap_mm)
                    bench.close()
                    bench = None
        finally:
            if bench is not None:
                min_gap_mm = min(min_gap_mm, bench.patient.min_gap_mm)
                bench.close()
    return summarize(speed_kmh, runs, cfg, changes, done, redone, min_gap_mm, stop_mm)


def summarize(speed_kmh: float, runs: int, cfg: Config, changes: dict[str, Any], done: list[dict[str, Any]],
              redone: list[str], min_gap_mm: float, stop_mm: float) -> dict[str, Any]:
    """One speed's figures from its runs."""
    base_mm = cfg.limits.base_stop_mm

    def stat(key: str) -> dict[str, float | None]:
        values = [r[key] for r in done if r[key] is not None]
        if not values:
            return {"min": None, "median": None, "max": None}
        return {"min": min(values), "median": round(statistics.median(values), 4), "max": max(values)}

    standstill = stat("standstill_gap_mm")
    stopped_by_zone = all(r["code"] == "stop_zone" for r in done)
    fell = sum(r["fell"] for r in done)
    return {
        "speed_kmh": speed_kmh, "runs": len(done), "redone": redone,
        "config": _config_record(cfg, changes),
        "stop_distance_mm": round(stop_mm, 1), "predicted_standstill_gap_mm": base_mm,
        "running_mps": stat("running_mps"), "trip_belt_speed_mps": stat("trip_belt_speed_mps"),
        "trip_codes": sorted({r["code"] for r in done}),
        "gap_at_trip_mm": stat("gap_at_trip_mm"), "stop_distance_at_trip_mm": stat("stop_distance_at_trip_mm"),
        "predicted_from_trip_mm": stat("predicted_gap_mm"), "standstill_gap_mm": standstill,
        "sample_to_relay_ms": stat("sample_to_relay_ms"),
        "min_gap_mm": round(min_gap_mm, 1) if math.isfinite(min_gap_mm) else None,
        "margin_over_base_mm": None if standstill["min"] is None else round(standstill["min"] - base_mm, 1),
        "fell": fell,
        "goal_met": (len(done) == runs and stopped_by_zone and fell == 0 and standstill["min"] is not None
                     and standstill["min"] >= base_mm and min_gap_mm >= base_mm),
        "per_run": done,
    }


def measure(speeds_kmh: list[float], runs: int) -> dict[str, Any]:
    """Every speed's figures, and whether the goal held at all of them."""
    per_speed = [measure_speed(s, runs) for s in speeds_kmh]
    example = load_config(EXAMPLE_CONFIG)
    return {"unit": "mm", "goal": "standstill gap >= base_stop_mm at every speed", "runs_per_speed": runs,
            "base_stop_mm": example.limits.base_stop_mm, "reaction_time_s": example.treadmill.reaction_time_s,
            "decel_mps2": example.treadmill.decel_mps2, "sensor_period_s": example.sensor_period_s,
            "goal_met": all(s["goal_met"] for s in per_speed), "speeds": per_speed}


def _min_median(figure: dict[str, float | None], width: int) -> str:
    if figure["min"] is None:
        return "-".rjust(width)
    return f"{figure['min']:.0f}/{figure['median']:.0f}".rjust(width)


def table(result: dict[str, Any]) -> str:
    """The figures as a text table, one speed a line."""
    lines = [f"stop margin: base stop {result['base_stop_mm']:g} mm, reaction {result['reaction_time_s']:g} s, "
             f"decel {result['decel_mps2']:g} m/s^2, sensor period {result['sensor_period_s'] * 1000:.0f} ms, "
             f"{result['runs_per_speed']} runs per speed; gaps in mm as min/median",
             f"{'km/h':>5} {'belt km/h':>9} {'trip km/h':>9} {'warn':>5} {'stop':>5} {'gap@trip':>9} {'predicted':>9} "
             f"{'standstill':>10} {'margin':>6} {'fell':>4} {'redone':>6}  goal"]
    for s in result["speeds"]:
        belt_mps, trip_mps = s["running_mps"]["median"], s["trip_belt_speed_mps"]["median"]
        margin = s["margin_over_base_mm"]
        lines.append(
            f"{s['speed_kmh']:>5.1f} {'-' if belt_mps is None else f'{belt_mps * KMH_PER_MPS:.2f}':>9} "
            f"{'-' if trip_mps is None else f'{trip_mps * KMH_PER_MPS:.2f}':>9} "
            f"{s['config']['warn_margin_mm']:>5.0f} {s['stop_distance_mm']:>5.0f} "
            f"{_min_median(s['gap_at_trip_mm'], 9)} {_min_median(s['predicted_from_trip_mm'], 9)} "
            f"{_min_median(s['standstill_gap_mm'], 10)} "
            f"{'-' if margin is None else f'{margin:+.0f}':>6} {s['fell']:>4} {len(s['redone']):>6}  "
            f"{'met' if s['goal_met'] else 'NOT MET'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speeds", type=float, nargs="+", default=list(SPEEDS_KMH), metavar="KMH")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    result = measure(args.speeds, args.runs)
    path = save("stop_margin", result)
    print(table(result))
    print(f"goal (standstill gap >= base stop distance at every speed): "
          f"{'met' if result['goal_met'] else 'NOT MET'} -> {path}")
    return result


if __name__ == "__main__":
    main()
