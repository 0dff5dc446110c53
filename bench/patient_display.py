"""The patient display's lag: from a trip in the controller to the display's cue turning red.

The controller (with the simulated hardware) runs in this process and the dashboard as its own
process, as in bench/dashboard.py; the patient display (/patient) is open in headless Chromium.
Each cycle resets, then E-stops over IPC; the time is from the trip event's wall time to the
moment a MutationObserver sees the page's cue become "stopped" (both on this machine's clock).
The issue's goal: within 250 ms of the status stream.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from bench.common import percentiles, save
from bench.dashboard import _start_web, estop_lags
from sim.bench import SimBench
from sim.dashboard import CHROMIUM, CHROMIUM_ARGS, free_port, stop_process

GOAL_MS = 250.0

OBSERVE = """() => { window.__cues = [];
  new MutationObserver(() => window.__cues.push([document.querySelector('#main').dataset.cue,
                                                 performance.timeOrigin + performance.now()]))
    .observe(document.querySelector('#main'), { attributes: true, attributeFilter: ['data-cue'] }); }"""


def display_lag(bench: SimBench, url: str, cycles: int) -> dict:
    """E-stop over IPC, then the time until the display's cue says stopped (ms)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 800, "height": 480})
        page.goto(url + "patient")
        page.wait_for_function("() => document.querySelector('#main').dataset.cue !== 'unknown'")
        page.evaluate(OBSERVE)
        lags = estop_lags(bench, page, cycles, log="__cues", stopped="stopped",
                          ready_js="() => document.querySelector('#main').dataset.cue === 'good'")
        browser.close()
    return percentiles(lags)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=100)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    with tempfile.TemporaryDirectory() as tmp:
        socket_path = str(Path(tmp) / "control.sock")
        port = free_port()
        with SimBench(state_dir=Path(tmp) / "state", ipc_socket=socket_path, start_gap_mm=1000) as bench:
            web = _start_web(port, socket_path, Path(tmp) / "web")
            try:
                lag = display_lag(bench, f"http://127.0.0.1:{port}/", args.cycles)
            finally:
                stop_process(web)
    result = {"trip_to_display_ms": lag, "goal_ms": GOAL_MS, "goal_met": lag["p99"] <= GOAL_MS}
    path = save("patient_display", result)
    print(f"patient display: trip -> cue shown red median {lag['median']:.1f} / p99 {lag['p99']:.1f} / max "
          f"{lag['max']:.1f} ms over {lag['n']} trips; goal p99 <= {GOAL_MS:.0f} ms: "
          f"{'met' if result['goal_met'] else 'NOT MET'} -> {path}")
    return result


if __name__ == "__main__":
    main()
