"""The reliability suite: fault storm, fuzzing and dashboard flood (see tally.py for the counts)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.reliability.tally import TALLY

REPORT_ENV = "TREADMILL_RELIABILITY_REPORT"


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    counts = TALLY.snapshot()
    if not counts:
        return
    terminalreporter.section("reliability")
    for what, n in counts.items():
        terminalreporter.write_line(f"{what}: {n}")
    path = os.environ.get(REPORT_ENV)
    if path:
        Path(path).write_text(json.dumps({"exit_status": int(exitstatus), "counts": counts}, indent=2))
