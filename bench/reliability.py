"""The reliability suite (tests/reliability) as a benchmark: what it tried, for the README's table.

Runs ``pytest -W error tests/reliability`` in its own process with TREADMILL_RELIABILITY_REPORT
set, so the suite writes its tally (faults injected and tripped, bad inputs tried by kind,
crashes), and saves it with the run's exit status and duration. CI runs the same suite as part
of ``make test``.

``--cpu-share S`` runs the fault storm alone, directly (``run_storm``), with the controller's threads
confined to S of one core (bench/cpu_slice.py), and saves reliability_storm_cpuNN.json: how many
faults met their deadline, how many were late or never tripped, the worst margin.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import save
from bench.cpu_slice import DEFAULT_PERIOD_US, METHODS, CpuSlice, controller_threads

ROOT = Path(__file__).resolve().parent.parent


def run(extra_args: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "reliability.json"
        env = {**os.environ, "TREADMILL_RELIABILITY_REPORT": str(report)}
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-W", "error", "-q", "-p", "no:cacheprovider",
                               "tests/reliability", *extra_args], cwd=ROOT, env=env)
        duration = time.monotonic() - t0
        tally = json.loads(report.read_text()) if report.exists() else {"exit_status": proc.returncode, "counts": {}}
    counts = tally["counts"]
    bad_inputs = sum(n for what, n in counts.items() if what.startswith("bad inputs:"))
    return {"exit_status": proc.returncode, "passed": proc.returncode == 0, "duration_s": round(duration, 1),
            "faults_injected": counts.get("storm: faults injected", 0),
            "faults_tripped": counts.get("storm: faults tripped", 0),
            "bad_inputs_tried": bad_inputs, "crashes": counts.get("crashes", 0), "counts": counts}


def run_storm(n_faults: int = 500, seed: int | None = None, cpu_share: float | None = None,
              period_us: int = DEFAULT_PERIOD_US, method: str = "auto") -> dict:
    """The fault storm (tests/reliability/storm.py) in this process, the controller's threads confined to
    ``cpu_share`` of one core if given (re-applied every 50 ms: a restarted controller's threads are
    caught too). Every fault counts by its own deadline: met, late (even if a machine stall or the CPU
    denied excused it), never tripped. ``problems`` are the storm's own verdict (check())."""
    from tests.reliability.storm import Storm, StormFailure

    seed = random.SystemRandom().randrange(2**32) if seed is None else seed
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="storm-") as tmp:
        storm = Storm(seed, n_faults, Path(tmp) / "state")
        confine = (CpuSlice(cpu_share, controller_threads, period_us=period_us, method=method)
                   if cpu_share is not None else contextlib.nullcontext())
        with confine as confined:
            storm.run()
        try:
            storm.check()
            problems: list[str] = []
        except StormFailure as exc:
            problems = [line.strip() for line in str(exc).splitlines()[1:]]
    outcomes = storm.outcomes
    met = [o for o in outcomes if o.latency_s is not None and o.latency_s <= o.deadline_s]
    late = [o for o in outcomes if o.latency_s is not None and o.latency_s > o.deadline_s]
    margins = [((o.deadline_s - o.latency_s) * 1000, o.fault) for o in outcomes if o.latency_s is not None]
    worst = min(margins, default=(None, None))
    summary = storm.summary()
    return {"seed": seed, "faults": len(outcomes), "met_deadline": len(met), "late": len(late),
            "never_tripped": sum(1 for o in outcomes if o.latency_s is None),
            "late_excused_by_stall_or_cpu_wait": sum(1 for o in late if o.disturbed_by_stall_s),
            "late_detail": [f"{o.fault}: {o.latency_s * 1000:.1f} ms, deadline {o.deadline_s * 1000:.1f} ms"
                            for o in late[:10]],
            "worst_margin_ms": None if worst[0] is None else round(worst[0], 2), "worst_margin_fault": worst[1],
            "preempted_by_stale_input_trips": storm.preempted, "passed": not problems, "problems": problems[:20],
            "duration_s": round(time.monotonic() - t0, 1),
            "by_fault": {k: {x: v[x] for x in ("n", "tripped", "worst_ms", "least_margin_ms")}
                         for k, v in summary["by_fault"].items()},
            **({"cpu_slice": confined.describe()} if cpu_share is not None else {})}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments, e.g. -k storm")
    parser.add_argument("--cpu-share", type=float, default=None,
                        help="run the fault storm alone, the controller confined to this share of ONE core")
    parser.add_argument("--cpu-period-us", type=int, default=DEFAULT_PERIOD_US, help="the slice's CFS period")
    parser.add_argument("--cpu-method", choices=METHODS, default="auto", help="how to confine (default: best available)")
    parser.add_argument("--faults", type=int, default=500, help="faults in the confined storm")
    parser.add_argument("--seed", type=int, default=None, help="the confined storm's seed (default: random)")
    args = parser.parse_args(argv)
    if args.cpu_share is not None:
        quiet = logging.StreamHandler()  # the storm's injected faults log errors by the hundred
        quiet.setLevel(logging.CRITICAL)
        logging.basicConfig(level=logging.CRITICAL, handlers=[quiet])
        result = run_storm(args.faults, args.seed, args.cpu_share, args.cpu_period_us, args.cpu_method)
        path = save(f"reliability_storm_cpu{round(args.cpu_share * 100)}", result)
        print(f"fault storm seed {result['seed']}, controller confined ({result['cpu_slice']['method']}): "
              f"{result['met_deadline']} of {result['faults']} faults met their deadline, {result['late']} late "
              f"({result['late_excused_by_stall_or_cpu_wait']} excused by a stall or CPU wait), "
              f"{result['never_tripped']} never tripped; worst margin {result['worst_margin_ms']} ms "
              f"({result['worst_margin_fault']}); storm {'passed' if result['passed'] else 'FAILED'} -> {path}")
        return result
    result = run(args.pytest_args)
    path = save("reliability", result)
    print(f"reliability suite {'passed' if result['passed'] else 'FAILED'} in {result['duration_s']} s: "
          f"{result['faults_injected']} faults injected, {result['faults_tripped']} tripped, "
          f"{result['bad_inputs_tried']} bad inputs tried, {result['crashes']} crashes -> {path}")
    return result


if __name__ == "__main__":
    main()
