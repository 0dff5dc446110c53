"""Dashboard flood: every kind of request at the highest rate the machine gives, plus connections that never read.

The controller runs here on simulated hardware at its production priority (SCHED_RR 10, when this process
may set it); the dashboard runs in its own process under cheroot at Nice 5, as its systemd unit runs it;
bench/flood.py, in a third process at nice 10, stands for other devices on the LAN. During the flood the
controller trips again and again and every in-zone trip must meet its deadlines; afterwards the dashboard
must serve a fresh client (status, login, live view) in every stream slot while the flood still holds its
never-read sockets open, and return to its resting number of connections once the flood closes them.
A trip spoilt by a machine stall is not the controller's doing: stale-input trips are tolerated as correct,
and a late in-zone trip only when stall canaries, which nothing in these processes can delay, saw the
machine stop for the excess. Both must stay rare.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import os
import queue
import random
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.flood import DRIBBLE_S
from sim.dashboard import free_port, spawn_dashboard, stop_process
from controller.safety.types import CommandKind
from sim.bench import SimBench, sim_config
from tests.hil.helpers import ENVIRONMENT_TRIPS
from tests.reliability.machine import DASHBOARD_NICE, StallWatch, production_priority, renice_all_threads
from tests.reliability.tally import TALLY
from tests.waiting import expect, wait_until
from web import DEFAULT_MAX_SSE_STREAMS
from web.accounts import AccountStore

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "flood-test-password-1"
FLOOD_S = 20.0
#: The flood's make-up (bench/flood.py options): request threads and the sockets that never read.
WORKERS, NEVER_READ_STREAMS, NEVER_READ_STATUS, SLOWLORIS = 6, 36, 8, 20
#: The idle sockets the dashboard holds open through the flood and the recovery. Not the dribbling
#: slowloris ones: their half request line ("GET /api/sta") and the first dribbled header line make a
#: malformed request line, which cheroot, reading line by line, refuses at once and closes (waitress
#: waited for the end of the headers, which never came).
HELD_OPEN = ("stream", "status", "slowloris")
#: A third of the ~550 requests/s the flood reaches on the 2-core development machine.
REQUESTS_PER_S_FLOOR = 180.0
#: After the flood, a fresh client is served within this long.
RECOVERY_S = 5.0
SAMPLE_TO_RELAY_S = 0.005
CROSSING_MARGIN_S = 0.005
#: In-zone trips measured during the flood, at the least; and the share of rounds a stale input may spoil.
MIN_CLEAN_TRIPS = 20
MAX_DISTURBED_SHARE = 0.1
#: The share of in-zone trips a machine stall (seen by the canaries) may make late: rare, or the machine is unfit.
MAX_STALLED_SHARE = 0.02
#: Byte budget for reading a live view up to its first status.
STREAM_READ_BUDGET = 64 * 1024


@dataclass
class Round:
    """One trip from READY during the flood: what opened the relay, and when (time.monotonic())."""

    code: str
    crossed_t: float
    opened_t: float
    #: The in-zone sample's read time (stop_zone trips only).
    sample_t: float | None

    @property
    def sample_to_relay_s(self) -> float | None:
        return None if self.sample_t is None else self.opened_t - self.sample_t

    @property
    def crossing_to_relay_s(self) -> float:
        return self.opened_t - self.crossed_t


def open_sockets(pid: int) -> int:
    """How many sockets the process holds (listening, IPC and client connections)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except FileNotFoundError:
            pass
    return count


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


@pytest.fixture
def served_dashboard(tmp_path):
    """The controller here (at its production priority), the dashboard in its own process at Nice 5."""
    socket_path = str(tmp_path / "control.sock")
    cfg = sim_config(tmp_path / "state")
    with ExitStack() as stack:
        with production_priority() as priority:
            bench = SimBench(cfg, state_dir=tmp_path / "state", ipc_socket=socket_path,
                             start_gap_mm=cfg.limits.base_stop_mm + 70).start()
        stack.callback(bench.close)
        AccountStore(tmp_path / "web").add("Dr Flood", "therapist", PASSWORD)
        port = free_port()
        web = spawn_dashboard(port, socket_path, tmp_path / "web", stderr=subprocess.DEVNULL)
        assert web is not None, "the dashboard did not start"
        stack.callback(stop_process, web)
        renice_all_threads(web.pid, DASHBOARD_NICE)
        print(f"controller priority: {priority}; dashboard nice {DASHBOARD_NICE}")
        yield bench, web, port


# ---- trips -----------------------------------------------------------------------------------


def first_trip_since(bench: SimBench, t_mono: float) -> dict | None:
    bench.controller.history.flush()
    recent = bench.controller.history.recent(10, kind="trip")
    return min((e for e in recent if e["t_mono"] >= t_mono), key=lambda e: e["t_mono"], default=None)


def tolerated(cause: dict | None, what: str) -> Round:
    """A round spoilt by a stale input (a machine stall starved a reader): correct, so counted, not failed."""
    assert cause is not None and cause["code"].startswith(ENVIRONMENT_TRIPS), f"{what}: {cause}"
    return Round(cause["code"], cause["t_mono"], cause["t_mono"], None)


#: Seeded: a failing run crosses at the same phases again.
CROSSING_PHASE = random.Random(20261204)


def trip_once(bench: SimBench) -> Round:
    """Reset with the patient stepped forward out of the warn zone, let them step back to 70 mm outside the
    stop distance, then 10 mm inside it, and see what opens the relay.

    Fails on a missed trip (the relay stays closed) and on a trip by any cause but the zone or a stale input.
    """
    stop_mm = bench.cfg.limits.base_stop_mm
    warn_mm = stop_mm + bench.cfg.limits.warn_margin_mm
    # As a therapist does: the patient steps forward out of the warn zone (a reset is refused inside it).
    bench.patient.set_gap(warn_mm + 50)
    # Until the reset is accepted the controller stays STOPPED: the first trip after this is this round's.
    reset_t = time.monotonic()
    # A reset while the sensors still see the zone is refused (and logged): wait for them first.
    expect(lambda: (bench.controller.status.get("gap_mm") or 0.0) > warn_mm, 2.0, "the sensors to see the step forward")
    if not wait_until(lambda: bench.command(CommandKind.RESET, actor="flood test").ok, 5.0):
        pytest.fail(f"reset refused for 5 s: {bench.controller.status.get('reasons')}")
    n_hist = len(bench.relay_history)
    if not wait_until(lambda: bench.relay_energized, 1.0):
        return tolerated(first_trip_since(bench, reset_t), "the relay did not close after a reset")
    # On the standing belt the patient steps back to 70 mm outside the stop line, in two steps both
    # sensors see (one jump would be more than their disagreement tolerance between two samples).
    for gap_mm in ((warn_mm + 50 + stop_mm + 70) / 2, stop_mm + 70):
        bench.patient.set_gap(gap_mm)
        bench.wait_sensors_sampled()
    if any(not on for _, on in bench.relay_history[n_hist:]):
        return tolerated(first_trip_since(bench, reset_t), "the relay opened while the patient stepped back")
    # The step back ended just after a sample: the crossing comes at any phase of the sensor period, as a
    # patient's would, not always a whole period before the next sample.
    time.sleep(CROSSING_PHASE.uniform(0.0, bench.cfg.sensor_period_s))
    crossed_t = time.monotonic()
    bench.patient.set_gap(stop_mm - 10)
    if not wait_until(lambda: any(not on for _, on in bench.relay_history[n_hist:]), 2.0):
        pytest.fail(f"missed trip: the patient is 10 mm inside the stop distance and the relay is still closed "
                    f"after 2 s (state {bench.controller.status.get('state')})")
    opened_t = next(t for t, on in bench.relay_history[n_hist:] if not on)
    cause = first_trip_since(bench, reset_t)
    if cause is not None and cause["code"] == "stop_zone":
        return Round("stop_zone", crossed_t, opened_t, cause["figures"]["input_t_mono"])
    return tolerated(cause, "the relay opened, but not for the zone nor a stale input")


def check_rounds(rounds: list[Round], sensor_period_s: float, stalls: StallWatch) -> None:
    """Every in-zone trip within its deadlines, unless a machine stall inside it accounts for the excess.

    Stale-input trips are correct and tolerated, but only now and then; so are stall-excused trips.
    """
    crossing_limit_s = sensor_period_s + CROSSING_MARGIN_S
    clean = [r for r in rounds if r.sample_t is not None]
    disturbed = [r for r in rounds if r.sample_t is None]
    late, excused = [], []
    for r in clean:
        deadlines = ((r.sample_t, SAMPLE_TO_RELAY_S, r.sample_to_relay_s),
                     (r.crossed_t, crossing_limit_s, r.crossing_to_relay_s))
        over = [(start_t, limit_s, latency_s) for start_t, limit_s, latency_s in deadlines if latency_s > limit_s]
        if over:
            stall_explains = all(latency_s - stalls.stalled_s(start_t, r.opened_t) <= limit_s
                                 for start_t, limit_s, latency_s in over)
            (excused if stall_explains else late).append(r)
    seen = stalls.snapshot()
    worst_sample = max((r.sample_to_relay_s for r in clean), default=0.0)
    worst_crossing = max((r.crossing_to_relay_s for r in clean), default=0.0)
    figures = (f"{len(rounds)} trips during the flood: {len(clean)} in-zone, worst sample->relay "
               f"{worst_sample * 1000:.2f} ms (limit {SAMPLE_TO_RELAY_S * 1000:.0f}), worst crossing->relay "
               f"{worst_crossing * 1000:.1f} ms (limit {crossing_limit_s * 1000:.0f}); "
               f"{len(disturbed)} opened first by a stale input {[r.code for r in disturbed]}; "
               f"{len(excused)} late during a machine stall; the canaries saw {len(seen)} stalls, longest "
               f"{max((e - s for _, s, e in seen), default=0.0) * 1000:.1f} ms")
    print(figures)

    def shown(r: Round) -> str:
        stall_ms = stalls.stalled_s(r.crossed_t, r.opened_t) * 1000
        return (f"{r.code}: sample->relay {(r.sample_to_relay_s or 0) * 1000:.2f} ms, crossing->relay "
                f"{r.crossing_to_relay_s * 1000:.1f} ms, machine stalled {stall_ms:.1f} ms of it")
    assert not late, f"late in-zone trips: {[shown(r) for r in late]}; {figures}"
    assert len(clean) >= MIN_CLEAN_TRIPS, figures
    assert len(disturbed) <= MAX_DISTURBED_SHARE * len(rounds), figures
    assert len(excused) <= MAX_STALLED_SHARE * len(clean), f"{[shown(r) for r in excused]}; {figures}"


# ---- a fresh client ----------------------------------------------------------------------------


def status_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2) as resp:
            return resp.status == 200 and "state" in json.loads(resp.read())
    except OSError:
        return False


def logs_in(port: int) -> bool:
    """Fetch a CSRF token, log in with it, and find the session logged in."""
    base = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    try:
        with opener.open(f"{base}/api/session", timeout=2) as resp:
            token = json.loads(resp.read())["csrf_token"]
        login = urllib.request.Request(f"{base}/login", method="POST",
                                       data=json.dumps({"name": "Dr Flood", "password": PASSWORD}).encode(),
                                       headers={"Content-Type": "application/json", "X-CSRFToken": token})
        with opener.open(login, timeout=2) as resp:
            if not json.loads(resp.read()).get("ok"):
                return False
        with opener.open(f"{base}/api/session", timeout=2) as resp:
            session = json.loads(resp.read())
        return session["logged_in"] is True and session["name"] == "Dr Flood"
    except OSError:
        return False


def open_live_view(port: int) -> http.client.HTTPConnection | None:
    """A new /api/stream that delivers a status event; None when refused (503) or silent."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/api/stream")
        resp = conn.getresponse()
        read = 0
        while resp.status == 200 and read < STREAM_READ_BUDGET:
            line = resp.readline()
            if not line:
                break
            read += len(line)
            if line.startswith(b"data: ") and "state" in json.loads(line[len(b"data: "):]):
                return conn
    except (OSError, http.client.HTTPException, ValueError):
        pass
    conn.close()
    return None


def every_stream_slot_serves(port: int) -> bool:
    """All DEFAULT_MAX_SSE_STREAMS live views open at once, each with a status event: no slot is held."""
    views: list[http.client.HTTPConnection] = []
    try:
        for _ in range(DEFAULT_MAX_SSE_STREAMS):
            view = open_live_view(port)
            if view is None:
                return False
            views.append(view)
        return True
    finally:
        for view in views:
            view.close()


# ---- the flood process ---------------------------------------------------------------------------


class FloodProcess:
    """bench/flood.py in its own process; its JSON lines arrive on a queue."""

    def __init__(self, port: int):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.flood", "--port", str(port), "--seconds", str(FLOOD_S),
             "--hold-seconds", "60", "--workers", str(WORKERS), "--never-read", str(NEVER_READ_STREAMS),
             "--status-never-read", str(NEVER_READ_STATUS), "--slowloris", str(SLOWLORIS)],
            stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self.lines: queue.Queue[dict] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)

    def start_reading(self) -> None:
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def next_report(self, timeout_s: float) -> dict:
        try:
            return self.lines.get(timeout=timeout_s)
        except queue.Empty:
            pytest.fail(f"no report from the flood within {timeout_s} s (exit code {self.proc.poll()})")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self._reader.is_alive():
            self._reader.join(5)
        self.proc.stdout.close()


# ---- the test -----------------------------------------------------------------------------------


def trips_through_the_flood(bench: SimBench, web: subprocess.Popen, flood: FloodProcess) -> tuple[list[Round], int]:
    """Trips back to back until the flood reports its end; and the most sockets the dashboard held meanwhile."""
    rounds: list[Round] = []
    peak_sockets = 0
    deadline = time.monotonic() + FLOOD_S + 15
    while flood.lines.empty() and flood.proc.poll() is None and time.monotonic() < deadline:
        rounds.append(trip_once(bench))
        peak_sockets = max(peak_sockets, open_sockets(web.pid))
    return rounds, peak_sockets


def check_the_flood_happened(summary: dict, resting_sockets: int, peak_sockets: int) -> None:
    """Its rate, every kind of request answered without a 500, and the never-read sockets held open."""
    assert summary["requests_per_s"] >= REQUESTS_PER_S_FLOOR, summary
    assert all(summary["by_kind"].get(kind, 0) > 0 for kind in (
        "status", "page", "static", "limits", "events", "metrics", "stream opened and dropped",
        "unauthenticated post", "wrong password", "bad path", "oversized body", "garbage request")), summary
    assert not any(code.startswith("5") and code != "503" for code in summary["statuses"]), summary
    assert sum(summary["errors"].values()) <= 0.01 * summary["requests"], summary["errors"]
    assert summary["statuses"].get("429", 0) > 0, "the login limit never held the flood's wrong passwords"
    idle = summary["idle"]
    opened = (idle["stream"]["opened"], idle["status"]["opened"],
              idle["slowloris"]["opened"] + idle["slowloris dribbling"]["opened"])
    assert opened == (NEVER_READ_STREAMS, NEVER_READ_STATUS, SLOWLORIS), idle
    # Every worker holds at most one stream at a time: the never-read ones got all the other slots.
    assert idle["stream"]["answered"].get("200", 0) >= DEFAULT_MAX_SSE_STREAMS - WORKERS, idle
    assert idle["status"]["answered"] == {"200": NEVER_READ_STATUS}, idle
    assert all(idle[kind]["open"] == idle[kind]["opened"] for kind in HELD_OPEN), \
        f"never-read sockets closed before the flood's end: {idle}"
    dribbling = idle["slowloris dribbling"]
    assert dribbling["closed_by_server"] == dribbling["opened"] and dribbling["open_s"][0] >= DRIBBLE_S, \
        f"the malformed dribbled requests were not refused at their first dribble: {idle}"
    assert peak_sockets >= resting_sockets + sum(opened), \
        f"the dashboard never held the never-read connections at once: peak {peak_sockets}"


def test_trips_meet_their_deadlines_through_a_dashboard_flood_and_the_dashboard_recovers(served_dashboard):
    bench, web, port = served_dashboard
    expect(lambda: status_ok(port), 5.0, "the dashboard's first status")
    resting_sockets, resting_threads = open_sockets(web.pid), thread_count(web.pid)

    with StallWatch() as canaries:
        # Spawned from this normally scheduled thread, the flood runs at normal priority (and nice 10).
        flood = FloodProcess(port)
        try:
            # In production every thread of the controller's process runs SCHED_RR, this one and the reader here
            # too: a normally scheduled thread could be preempted while it holds the GIL the controller needs.
            with production_priority():
                flood.start_reading()
                # 1. During the flood, every in-zone trip meets its deadlines.
                rounds, peak_sockets = trips_through_the_flood(bench, web, flood)
                summary = flood.next_report(15.0)
                flood_ended_t = time.monotonic()
                idle = summary["idle"]
                TALLY.add("flood: trips during flood", len(rounds))
                TALLY.add("flood: requests", summary["requests"])
                TALLY.add("flood: never-read connections", sum(kind["opened"] for kind in idle.values()))
                print(f"flood: {json.dumps(summary)}; dashboard sockets resting {resting_sockets}, peak {peak_sockets}")
                check_rounds(rounds, bench.cfg.sensor_period_s, canaries)

                # 2. The flood really happened, never-read sockets included.
                check_the_flood_happened(summary, resting_sockets, peak_sockets)

                # 3a. Recovery while the flood still holds every never-read socket open: one deadline for all three.
                def left_s() -> float:
                    return max(0.0, flood_ended_t + RECOVERY_S - time.monotonic())

                expect(lambda: status_ok(port), left_s(), "/api/status 200 after the flood")
                expect(lambda: logs_in(port), left_s(), "a login (with its CSRF token) after the flood")
                expect(lambda: every_stream_slot_serves(port), left_s(),
                       f"all {DEFAULT_MAX_SSE_STREAMS} live views served while never-read streams stay open")
                print(f"recovered {time.monotonic() - flood_ended_t:.2f} s after the flood's end")
                flood.proc.terminate()
                held = flood.next_report(10.0)
                print(f"after the hold: {json.dumps(held)}")
                assert held["phase"] == "hold", held
                assert all(held["idle"][kind]["open"] == held["idle"][kind]["opened"] for kind in HELD_OPEN), \
                    f"the flood did not hold every never-read socket open through the recovery: {held}"
                # Those the dashboard answered and that then never read were dropped by it, not by the flood.
                stalled = {"stream": idle["stream"]["answered"]["200"], "status": NEVER_READ_STATUS}
                assert held["gone_at_server"] == stalled, held

                # 3b. Recovery once the flood has closed them.
                assert flood.proc.wait(10) == 0
                assert wait_until(lambda: open_sockets(web.pid) <= resting_sockets, RECOVERY_S), \
                    f"the dashboard holds {open_sockets(web.pid)} sockets, {resting_sockets} at rest"
                # (The login limiter's expiry timer is a short-lived thread of its own.)
                assert wait_until(lambda: thread_count(web.pid) == resting_threads, RECOVERY_S), \
                    f"the dashboard has {thread_count(web.pid)} threads, {resting_threads} at rest"
                assert status_ok(port)
                view = open_live_view(port)
                assert view is not None, "no live view after the flood closed its sockets"
                view.close()
                assert web.poll() is None, "the dashboard process ended"
        finally:
            flood.close()
