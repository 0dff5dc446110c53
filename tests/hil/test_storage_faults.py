"""HIL: a locked, full or read-only database during a session never delays a trip, and loses nothing.

The faults are real SQLite faults: a competing exclusive lock from another
connection, ``max_page_count`` (SQLITE_FULL) and ``query_only`` (SQLITE_READONLY)
on the writer's own connection. The tests run as root in CI, so file modes
cannot make the state directory read-only.
"""

from __future__ import annotations

import sqlite3
import time

import pytest

from controller.storage import records
from controller.storage.database import connect
from sim.bench import SimBench, sim_config, wait_until
from controller.storage.store import HistoryStore
from tests.hil.helpers import on_a_calm_machine, relay_opened_at, reset_when_healthy, trips, wait_tripped

PATIENT = {"patient_id": "P-7", "display_name": "C.D.", "notes": "", "mode": "reverse", "speed_cap_kmh": 1.5,
           "base_stop_mm": 250, "warn_margin_mm": 200, "target_min": 20, "sessions_per_day": 1}
THERAPIST = {"actor": "Ann", "authorized": True}
#: From the in-zone sample (or the E-stop edge) to the relay pin low, as in the edge scenarios.
SAMPLE_TO_RELAY_S = 0.005
#: The E-stop is read on its edge and on every 10 ms tick.
ESTOP_TO_RELAY_S = 0.015


class Fault:
    """Switches one storage fault on and off; the writer's connections pass through ``connect``."""

    def __init__(self, kind: str, db_path):
        self.kind, self.db_path = kind, db_path
        self.writer_conns: list[sqlite3.Connection] = []
        self._locker: sqlite3.Connection | None = None

    def connect(self, path):
        if not path.exists():
            # Small pages fill within a second of timeline, so a "full disk" shows at once.
            first = sqlite3.connect(path)
            first.execute("PRAGMA page_size = 512")
            first.execute("VACUUM")
            first.close()
        conn = connect(path)
        self.writer_conns.append(conn)
        return conn

    def on(self) -> None:
        conn = self.writer_conns[-1]
        if self.kind == "locked":
            self._locker = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False)
            self._locker.execute("BEGIN EXCLUSIVE")
        elif self.kind == "full":
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")
        else:
            conn.execute("PRAGMA query_only = 1")

    def off(self) -> None:
        if self._locker is not None:
            self._locker.execute("ROLLBACK")
            self._locker.close()
            self._locker = None
        for conn in self.writer_conns:
            try:
                conn.execute("PRAGMA max_page_count = 1073741823")
                conn.execute("PRAGMA query_only = 0")
            except sqlite3.ProgrammingError:
                pass  # a connection the writer already closed


@pytest.mark.parametrize("kind, words", [("locked", "locked"), ("full", "full"), ("readonly", "readonly")])
def test_trips_meet_their_deadlines_and_nothing_is_lost_while_the_database_fails(tmp_path, kind, words):
    benches = []

    def make():
        state = tmp_path / f"state{len(benches)}"
        bench = SimBench(sim_config(state), state_dir=state, start_gap_mm=1000.0)
        fault = Fault(kind, state / "history.db")
        bench.controller.history = HistoryStore(state, connect=fault.connect)
        bench.fault = fault
        benches.append(bench)
        return bench.start()

    def scenario(bench):
        try:
            walk_through_a_fault(bench)
        finally:
            bench.fault.off()  # so the trips of a stalled run can be read back

    def walk_through_a_fault(bench):
        runner, store, fault = bench.controller.sessions, bench.controller.history, bench.fault
        runner.request("save", {"patient": PATIENT, "create": True, **THERAPIST})
        assert reset_when_healthy(bench, 5.0).ok
        # At the patient's cap, given explicitly (a session starts at the slowest speed by default): the
        # patient is carried from 1 m to the stop line in about 2 s.
        sid = runner.request("start", {"patient_id": "P-7", "planned_min": 10, "pain_before": 1, "speed_kmh": 1.5,
                                       **THERAPIST})["session"]["session_id"]
        assert wait_until(lambda: runner.snapshot and runner.snapshot["elapsed_s"] > 1.5, 8.0)

        fault.on()
        assert wait_until(lambda: not store.health()["ok"], 6.0), store.health()
        health = store.health()
        assert words in health["message"].replace("read-only", "readonly") and "history.db" in health["message"]

        # A patient carried to the edge while the database fails: the trip is as fast as ever.
        bench.patient.set_drift(10.0)
        assert wait_tripped(bench, 5.0)
        assert bench.controller.status["reasons"].keys() >= {"stop_zone"}
        bench.patient.set_drift(0.0)
        bench.patient.set_gap(1000.0)
        assert reset_when_healthy(bench, 5.0).ok
        runner.request("resume", THERAPIST)
        assert wait_until(lambda: bench.controller.status["state"] == "RUNNING", 5.0)
        pressed = time.monotonic()
        bench.press_estop()
        assert wait_tripped(bench, 2.0)
        estop_latency = relay_opened_at(bench, pressed) - pressed
        bench.release_estop()
        assert not store.health()["ok"] and store.health()["backlog"] > 0, "records held in memory"

        fault.off()
        assert wait_until(lambda: store.health()["ok"], 6.0), store.health()
        runner.request("end", THERAPIST)
        assert store.flush(5.0)

        # Nothing lost: both trips are in the log with their figures, and the timeline has no hole.
        codes = [t["code"] for t in trips(bench)]
        assert "stop_zone" in codes and "estop" in codes, codes
        zone = next(t for t in trips(bench) if t["code"] == "stop_zone")
        assert relay_opened_at(bench, zone["figures"]["input_t_mono"]) - zone["figures"]["input_t_mono"] \
            <= SAMPLE_TO_RELAY_S
        assert estop_latency <= ESTOP_TO_RELAY_S
        rows, total = store.read(lambda conn: records.samples(conn, sid, 0, None))
        assert total == len(rows) > 30
        gaps = [b[0] - a[0] for a, b in zip(rows, rows[1:])]
        assert max(gaps) <= 0.25, f"a hole of {max(gaps):.2f} s in the timeline"
        summary = runner.session_page(sid)["session"]
        assert summary["trips"] >= 2 and summary["status"] == "ended"

    try:
        on_a_calm_machine(make, scenario, expected=("stop_zone", "estop"))
    finally:
        for bench in benches:
            bench.fault.off()
            bench.close()
