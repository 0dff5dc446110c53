"""Dashboard figures: trip latency with and without 50 dashboard clients, status push latency
into a real browser, and the memory of each process.

The controller (with the simulated hardware) runs in this process; the dashboard
runs as its own process under cheroot, as in production; the 50 clients run
in a third process (bench/load.py). The push latency is from the controller's
state change (the trip event's wall time) to the page's state banner changing,
timed inside the browser with a MutationObserver.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import percentiles, save
from bench.trip_latency import measure
from controller.safety.types import CommandKind
from sim.dashboard import CHROMIUM, CHROMIUM_ARGS, free_port, spawn_dashboard, stop_process
from sim.bench import SimBench, wait_until

PASSWORD = "bench-password-1"


def rss_mb(pid: int) -> float:
    """Resident set size of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _start_web(port: int, socket_path: str, web_state: Path) -> subprocess.Popen:
    from web.accounts import AccountStore
    AccountStore(web_state).add("bench", "therapist", PASSWORD)
    web = spawn_dashboard(port, socket_path, web_state, stderr=subprocess.DEVNULL)
    if web is None:
        raise RuntimeError("the dashboard did not start")
    return web


def estop_lags(bench: SimBench, page, cycles: int, *, log: str, ready_js: str, stopped: str) -> list[float]:
    """Reset, then E-stop over IPC, ``cycles`` times: ms from each trip event's wall time to the first entry
    ``stopped`` in the page's ``window[log]``, a list of [value, wall ms] its MutationObserver fills."""
    lags = []
    for _ in range(cycles):
        if not wait_until(lambda: bench.command(CommandKind.RESET, actor="bench").ok, 5.0, poll_s=0.02):
            raise RuntimeError(f"reset refused: {bench.controller.status.get('reasons')}")
        page.wait_for_function(ready_js)
        page.evaluate(f"() => {{ window.{log} = []; }}")
        bench.command(CommandKind.ESTOP, actor="bench", authorized=False)
        page.wait_for_function(f"() => window.{log}.some(s => s[0] === {stopped!r})", timeout=5000)
        shown_ms = next(t for value, t in page.evaluate(f"() => window.{log}") if value == stopped)
        bench.controller.history.flush()
        trip = bench.controller.history.recent(1, kind="trip")[0]
        lags.append(shown_ms - trip["wall_time"] * 1000)
    return lags


def push_latency(bench: SimBench, url: str, cycles: int) -> dict:
    """E-stop over IPC, then time until the page's banner says STOPPED (ms)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(url)
        page.wait_for_function("() => document.querySelector('#state-banner').textContent.trim() !== ''")
        page.evaluate("""() => { window.__shown = [];
            new MutationObserver(() => window.__shown.push([document.querySelector('#state-banner')
                .textContent.trim(), performance.timeOrigin + performance.now()]))
            .observe(document.querySelector('#state-banner'), {childList: true, characterData: true,
                                                                subtree: true}); }""")
        latencies = estop_lags(bench, page, cycles, log="__shown", stopped="STOPPED",
                               ready_js="() => document.querySelector('#state-banner').textContent.trim() === 'READY'")
        browser.close()
    return percentiles(latencies)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trips", type=int, default=2000, help="trips with the 50 clients (and a quarter as many without)")
    parser.add_argument("--pushes", type=int, default=50)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    result: dict = {"clients": {"pollers": 25, "streams": 25}}
    with tempfile.TemporaryDirectory() as tmp:
        socket_path = str(Path(tmp) / "control.sock")
        port = free_port()
        with SimBench(state_dir=Path(tmp) / "state", ipc_socket=socket_path, start_gap_mm=600) as bench:
            web = _start_web(port, socket_path, Path(tmp) / "web")
            try:
                result["trip_latency_idle"] = measure(bench, max(1, args.trips // 4))
                load = subprocess.Popen([sys.executable, "-m", "bench.load", "--port", str(port),
                                         "--seconds", "600"], stdout=subprocess.PIPE, text=True)
                time.sleep(2.0)  # let the 50 clients connect
                # Goal with 50 clients: p99 <= 5 ms and no missed trip.
                result["trip_latency_loaded"] = measure(bench, args.trips, goal_p99_ms=5.0, goal_max_ms=None)
                result["rss_mb"] = {"controller_with_simulation": round(rss_mb(os.getpid()), 1),
                                    "dashboard": round(rss_mb(web.pid), 1)}
                load.terminate()
                result["clients_summary"] = json.loads(load.communicate(timeout=20)[0])
                bench.patient.set_gap(1000)
                result["status_push_ms"] = push_latency(bench, f"http://127.0.0.1:{port}/", args.pushes)
            finally:
                stop_process(web)
    path = save("dashboard", result)
    idle, loaded = result["trip_latency_idle"]["sample_to_relay"], result["trip_latency_loaded"]["sample_to_relay"]
    push = result["status_push_ms"]
    print(f"trip latency sample->relay: idle median {idle['median']:.2f} / p99 {idle['p99']:.2f} / max "
          f"{idle['max']:.2f} ms; with 50 dashboard clients median {loaded['median']:.2f} / p99 "
          f"{loaded['p99']:.2f} / max {loaded['max']:.2f} ms; status push to the browser median "
          f"{push['median']:.1f} / p99 {push['p99']:.1f} ms; RSS {result['rss_mb']}; missed trips with the clients "
          f"{result['trip_latency_loaded']['missed']}; goal (p99 <= 5 ms, none missed): "
          f"{'met' if result['trip_latency_loaded']['goal_met'] else 'NOT MET'}; clients {result['clients_summary']} "
          f"-> {path}")
    return result


if __name__ == "__main__":
    main()
