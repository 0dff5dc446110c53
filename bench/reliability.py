"""The reliability suite (tests/reliability) as a benchmark: what it tried, for the README's table.

Runs ``pytest -W error tests/reliability`` in its own process with TREADMILL_RELIABILITY_REPORT
set, so the suite writes its tally (faults injected and tripped, bad inputs tried by kind,
crashes), and saves it with the run's exit status and duration. CI runs the same suite as part
of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import save

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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments, e.g. -k storm")
    args = parser.parse_args(argv)
    result = run(args.pytest_args)
    path = save("reliability", result)
    print(f"reliability suite {'passed' if result['passed'] else 'FAILED'} in {result['duration_s']} s: "
          f"{result['faults_injected']} faults injected, {result['faults_tripped']} tripped, "
          f"{result['bad_inputs_tried']} bad inputs tried, {result['crashes']} crashes -> {path}")
    return result


if __name__ == "__main__":
    main()
