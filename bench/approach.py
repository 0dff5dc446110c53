"""The patient's own motion: where a lurch trips against the approach-speed rule, and long swaying walks.

    python -m bench.approach [--minutes 10] [--seeds 20]

1. Lurches on the pure core in simulated time (sim/walk.py): for each belt speed and lurch speed
   (0.4-1.6 m/s), the patient walks 120 mm beyond the warn line, stops stepping and stumbles
   toward the edge; ±15 mm of sensor noise, over ``--seeds`` lurch onsets. The gap at the trip
   (the true one) beside the approach-speed distance S = base + v_close*(t_detect + t_react) +
   v_belt^2/(2*decel) and the rule's least S - v_close*t_detect.
2. The same on the real-time bench (drivers, pty, register models), noise-free, at 1.0 km/h.
3. Walks of ``--minutes`` at 0.5-2.0 km/h with ±40 mm of sway at 1 Hz and ±15 mm of noise:
   false trips and warn episodes per minute; and the reversed-belt set-up.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile

from bench.common import save
from controller.config import Config, load_config
from sim.bench import EXAMPLE_CONFIG, SimBench, sim_config, wait_until
from sim.walk import approach_rule_mm, walk, walking_gap_mm

BELT_KMH = (0.5, 1.0, 1.5, 2.0)
LURCH_MPS = (0.4, 0.8, 1.2, 1.6)
MARGIN_MM = 120.0


def core_lurches(cfg: Config, seeds: int) -> list[dict]:
    """Lurch trips on the pure core, with sensor noise."""
    rows = []
    for belt in BELT_KMH:
        for lurch in LURCH_MPS:
            margins, rules, gaps = [], [], []
            for seed in range(seeds):
                w = walk(cfg, belt, 0.3, sway_mm=0.0, noise_mm=15.0, seed=seed,
                         lurch=(3.0 + seed * 0.0041, lurch, 5.0))
                margins.append(w.true_trip_gap_mm - w.least_trip_gap_mm)
                rules.append(w.approach_stop_mm)
                gaps.append(w.true_trip_gap_mm)
            rows.append({"belt_kmh": belt, "lurch_mps": lurch, "start_gap_mm": round(walking_gap_mm(cfg, belt, MARGIN_MM), 1),
                         "approach_stop_mm": round(statistics.median(rules), 1),
                         "trip_gap_mm_median": round(statistics.median(gaps), 1), "trip_gap_mm_min": round(min(gaps), 1),
                         "met": sum(m >= 0 for m in margins), "runs": seeds,
                         "worst_margin_mm": round(min(margins), 1)})
    return rows


def bench_lurches(belt_kmh: float = 1.0) -> list[dict]:
    """Lurch trips on the real-time bench, noise-free."""
    rows = []
    for lurch in LURCH_MPS:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = sim_config(tmp)
            cfg = dataclasses.replace(cfg, safety=dataclasses.replace(cfg.safety, speed_ramp_kmh_per_s=2.0))
            bench = SimBench(cfg, state_dir=tmp, start_gap_mm=walking_gap_mm(cfg, belt_kmh, MARGIN_MM)).start()
            try:
                bench.reset_and_start(belt_kmh)
                bench.wait_sensors_sampled()
                bench.patient.set_drift(10.0)
                bench.patient.lurch(lurch, 3.0)
                wait_until(lambda: not bench.relay_energized, 5.0)
                bench.controller.history.flush()
                trip = bench.controller.history.recent(1, kind="trip")[0]
                f = trip["figures"]
                closing = f["belt_speed_mps"] + lurch
                rule, least = approach_rule_mm(cfg, f["belt_speed_mps"], closing)
                rows.append({"belt_kmh": belt_kmh, "lurch_mps": lurch, "code": trip["code"],
                             "trip_gap_mm": f["gap_mm"], "approach_stop_mm": round(rule, 1),
                             "least_mm": round(least, 1), "met": f["gap_mm"] >= least,
                             "measured_closing_mps": f["closing_speed_mps"]})
            finally:
                bench.close()
    return rows


def walks(cfg: Config, minutes: float) -> list[dict]:
    """Long swaying, noisy walks: false trips and warn episodes."""
    rows = []
    away = dataclasses.replace(cfg, treadmill=dataclasses.replace(
        cfg.treadmill, protocol="woodway", reverse_mode_carries="away_from_edge"))
    for label, config, speeds in (("toward_edge", cfg, BELT_KMH), ("away_from_edge", away, (0.8, 1.2, 1.6))):
        for speed in speeds:
            w = walk(config, speed, minutes, sway_mm=40.0, sway_hz=1.0, noise_mm=15.0, seed=int(speed * 10))
            rows.append({"belt_carries": label, "belt_kmh": speed, "minutes": minutes,
                         "walking_gap_mm": round(w.walking_gap_mm, 1), "false_trips": len(w.trips),
                         "warn_episodes_per_min": round(w.warn_episodes_per_min, 2),
                         "min_gap_mm": round(w.min_gap_mm, 1)})
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of each walk")
    parser.add_argument("--seeds", type=int, default=20, help="lurch onsets per belt and lurch speed")
    args = parser.parse_args(argv)
    cfg = load_config(EXAMPLE_CONFIG)
    core = core_lurches(cfg, args.seeds)
    real = bench_lurches()
    long_walks = walks(cfg, args.minutes)
    toward = [w for w in long_walks if w["belt_carries"] == "toward_edge"]
    result = {
        "core_lurches": core, "bench_lurches": real, "walks": long_walks,
        "goal": "no false trip in the walks toward the edge; lurches of up to 1.2 m/s trip at or beyond "
                "the approach-speed distance less one sensor period of travel",
        "walk_minutes_toward_edge": sum(w["minutes"] for w in toward),
        "false_trips": sum(w["false_trips"] for w in long_walks),
        "goal_met": (all(w["false_trips"] == 0 for w in long_walks)
                     and all(r["met"] for r in real if r["lurch_mps"] <= 1.2)),
    }
    print(f"{'belt':>5} {'lurch':>5} {'S':>6} {'median trip':>11} {'min trip':>8} {'met':>6}")
    for r in core:
        print(f"{r['belt_kmh']:5.1f} {r['lurch_mps']:5.1f} {r['approach_stop_mm']:6.0f} "
              f"{r['trip_gap_mm_median']:11.0f} {r['trip_gap_mm_min']:8.0f} {r['met']:3d}/{r['runs']}")
    for r in real:
        print(f"bench {r['belt_kmh']} km/h lurch {r['lurch_mps']} m/s: trip at {r['trip_gap_mm']} mm, "
              f"rule {r['approach_stop_mm']} (least {r['least_mm']}): {'met' if r['met'] else 'NOT met'}")
    for w in long_walks:
        print(f"walk {w['belt_carries']} {w['belt_kmh']} km/h {w['minutes']:g} min: {w['false_trips']} false trips, "
              f"{w['warn_episodes_per_min']} warn episodes/min")
    save("approach", result)
    return result


if __name__ == "__main__":
    main()
