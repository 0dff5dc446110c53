"""A Pi-sized budget: trip latency and the fault storm with the controller confined to a slice of ONE core.

A Pi Zero 2 W is several times slower than the development machine. Here the controller's
threads (not the simulator's, not the measuring thread) are confined to 100%, 50% and 25% of one
CPU, in that order (bench/cpu_slice.py: a cgroup CFS quota with a short period, else a competing
SCHED_FIFO hog), and at each share:

- trip latency (bench/trip_latency.py): ``--trips`` trips; crossing->relay median, p90, p99 and max,
  in ms and as a multiple of the sensor period; sample->relay p99; trips missed; rounds spoiled by
  stale-input trips (at a small share those may be the controller's own starvation, not the machine's);
- the fault storm (tests/reliability/storm.py, run directly): ``--storm-faults`` faults, one seed for
  every share; faults that met their own deadline, were late or never tripped, the worst margin.

The goal (the issue "A Pi-sized budget"), at 25% of one core: no missed trip and crossing->relay
p99 <= 1.2 x the sensor period. It is recorded at every share. Results: bench/results/pi_budget.json.
"""

from __future__ import annotations

import argparse
import logging

from bench import reliability, trip_latency
from bench.common import save
from bench.cpu_slice import DEFAULT_PERIOD_US, METHODS

SHARES = (1.0, 0.5, 0.25)
#: The goal: crossing->relay p99 within this multiple of the sensor period, and no missed trip.
GOAL_P99_PERIODS = 1.2
GOAL_SHARE = 0.25
#: The same storm at every share, unless --seed says otherwise.
DEFAULT_SEED = 20261204


def _trips_at(share: float, trips: int, period_us: int, method: str) -> dict:
    try:
        r = trip_latency.run_confined(trips, share, period_us, method, max_spoiled=max(50, trips // 2),
                                      stop_when_unfit=True)
    except Exception as exc:  # a share that breaks the bench is a finding, not the end of the run
        return {"error": f"{type(exc).__name__}: {exc}"}
    period_ms = r["sensor_period_ms"]
    c, s = r["crossing_to_relay"], r["sample_to_relay"]
    out = {"trips": r["trips"], "missed": r["missed"], "missed_detail": r["missed_detail"][:5],
           "spoiled": sum(r["spoiled_by_machine_stalls"].values()), "spoiled_by": r["spoiled_by_machine_stalls"],
           "sensor_period_ms": period_ms,
           "crossing_to_relay_ms": {k: round(c[k], 2) for k in ("median", "p90", "p99", "max")},
           "crossing_to_relay_periods": {k: round(c[k] / period_ms, 3) for k in ("median", "p90", "p99", "max")},
           "sample_to_relay_ms": {k: round(s[k], 3) for k in ("median", "p99", "max")},
           "cpu_slice": r["cpu_slice"]}
    if "unfit" in r:
        out["unfit"] = r["unfit"]
    out["goal_met"] = r["missed"] == 0 and c["p99"] <= GOAL_P99_PERIODS * period_ms
    return out


def _storm_at(share: float, faults: int, seed: int, period_us: int, method: str) -> dict:
    try:
        r = reliability.run_storm(faults, seed, share, period_us, method)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    keep = ("faults", "met_deadline", "late", "never_tripped", "late_excused_by_stall_or_cpu_wait", "late_detail",
            "worst_margin_ms", "worst_margin_fault", "preempted_by_stale_input_trips", "passed", "problems",
            "duration_s", "cpu_slice")
    return {k: r[k] for k in keep} | {"missed_deadline": r["late"] + r["never_tripped"]}


def run(trips: int, storm_faults: int, shares: tuple[float, ...] = SHARES, period_us: int = DEFAULT_PERIOD_US,
        method: str = "auto", seed: int = DEFAULT_SEED) -> dict:
    by_share = {}
    for share in shares:
        key = f"{round(share * 100)}%"
        entry: dict = {"share_of_one_core": share}
        if trips:
            entry["trip_latency"] = _trips_at(share, trips, period_us, method)
        if storm_faults:
            entry["storm"] = _storm_at(share, storm_faults, seed, period_us, method)
        slice_ = next((e["cpu_slice"] for e in (entry.get("trip_latency", {}), entry.get("storm", {}))
                       if "cpu_slice" in e), {})
        entry["method"] = slice_.get("method", "?")
        entry["cfs_period_us"] = slice_.get("period_us", period_us)
        entry["goal_met"] = entry.get("trip_latency", {}).get("goal_met")
        by_share[key] = entry
    goal_key = f"{round(GOAL_SHARE * 100)}%"
    return {"trips_per_share": trips, "storm_faults_per_share": storm_faults, "storm_seed": seed,
            "goal": {"share_of_one_core": GOAL_SHARE, "missed_trips": 0,
                     "crossing_to_relay_p99_max_sensor_periods": GOAL_P99_PERIODS},
            "goal_met": by_share.get(goal_key, {}).get("goal_met"), "by_share": by_share}


def table(result: dict) -> str:
    head = (f"{'share':>5}  {'trips':>5}  {'crossing->relay ms med/p90/p99/max':>34}  {'p99/period':>10}  {'s->r p99':>8}  "
            f"{'missed':>6}  {'spoiled':>7}  {'ctl cpu':>7}  {'throttled':>9}  {'storm met/faults':>16}  "
            f"{'worst margin':>12}  goal")
    lines = [head]
    for key, e in result["by_share"].items():
        t, s = e.get("trip_latency", {}), e.get("storm", {})
        if "crossing_to_relay_ms" in t:
            c = t["crossing_to_relay_ms"]
            lat = f"{c['median']:.1f}/{c['p90']:.1f}/{c['p99']:.1f}/{c['max']:.1f}"
            per = f"{t['crossing_to_relay_periods']['p99']:.2f}"
            s2r = f"{t['sample_to_relay_ms']['p99']:.2f}"
            missed, spoiled = str(t["missed"]), str(t["spoiled"])
            trips = f"{t['trips']}{'*' if 'unfit' in t else ''}"
            used = t["cpu_slice"].get("used", {})
            cpu = f"{100 * used['cpu_share_used_by_confined_threads']:.1f}%" if used else "-"
            thr = (f"{100 * used['cfs_periods_throttled'] / used['cfs_periods']:.1f}%"
                   if used.get("cfs_periods") else "-")
        else:
            lat, per, s2r, missed, spoiled, cpu, thr, trips = (t.get("error", "-")[:34], "-", "-", "-", "-", "-",
                                                               "-", "-")
        if "faults" in s:
            storm = f"{s['met_deadline']}/{s['faults']}"
            margin = "-" if s["worst_margin_ms"] is None else f"{s['worst_margin_ms']:.1f} ms"
        else:
            storm, margin = (s.get("error", "-")[:16], "-")
        goal = {True: "met", False: "NOT MET", None: "-"}[e["goal_met"]]
        lines.append(f"{key:>5}  {trips:>5}  {lat:>34}  {per:>10}  {s2r:>8}  {missed:>6}  {spoiled:>7}  {cpu:>7}  {thr:>9}  "
                     f"{storm:>16}  {margin:>12}  {goal}")
    if any("unfit" in e.get("trip_latency", {}) for e in result["by_share"].values()):
        lines.append("*: stopped early, too many rounds spoiled by stale-input trips (see 'unfit')")
    lines.append("ctl cpu: CPU the controller's threads used during the trips (of one core); throttled: share of "
                 "CFS periods in which they hit the quota")
    lines += [f"{key}: {e['method']}" for key, e in result["by_share"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trips", type=int, default=300, help="trips per share (0: none)")
    parser.add_argument("--storm-faults", type=int, default=500, help="storm faults per share (0: no storm)")
    parser.add_argument("--shares", type=float, nargs="+", default=list(SHARES), help="shares of one core, in order")
    parser.add_argument("--cpu-period-us", type=int, default=DEFAULT_PERIOD_US, help="the slice's CFS period")
    parser.add_argument("--cpu-method", choices=METHODS, default="auto", help="how to confine (default: best available)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="the storm's seed, the same at every share")
    args = parser.parse_args(argv)
    quiet = logging.StreamHandler()  # the storm's injected faults log errors by the hundred
    quiet.setLevel(logging.CRITICAL)
    logging.basicConfig(level=logging.CRITICAL, handlers=[quiet])
    result = run(args.trips, args.storm_faults, tuple(args.shares), args.cpu_period_us, args.cpu_method, args.seed)
    path = save("pi_budget", result)
    print(table(result))
    verdict = {True: "met", False: "NOT MET", None: "not measured"}[result["goal_met"]]
    print(f"goal at {GOAL_SHARE:.0%} of one core (0 missed trips, crossing->relay p99 <= {GOAL_P99_PERIODS:g} x "
          f"sensor period): {verdict} -> {path}")
    return result


if __name__ == "__main__":
    main()
