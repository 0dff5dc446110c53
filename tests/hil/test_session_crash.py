"""Nothing already recorded is lost on a crash: the controller killed mid-session, then started again."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from sim.bench import EXAMPLE_CONFIG, wait_until
from controller.storage.store import HistoryStore
from tests.hil.ipc_client import JsonLinesClient
from tests.hil.test_sessions import PATIENT, THERAPIST, on_a_calm_machine

REPO = Path(__file__).resolve().parents[2]
#: Timeline rows and figures are committed about once a second: at most this much is lost on a crash.
MAX_LOST_S = 1.5
#: Polls of the child's socket and database: a tighter loop would starve the child of CPU on a 2-core machine.
POLL_S = 0.05


class ControllerProcess:
    """``treadmill-safety run --simulate`` as a child process, seen through its socket and its database."""

    def __init__(self, workdir: Path):
        workdir.mkdir(parents=True)
        self.state_dir = workdir / "state"
        self.socket_path = workdir / "c.sock"
        self.config_path = workdir / "config.toml"
        self.log_path = workdir / "controller.log"
        self.config_path.write_text(
            EXAMPLE_CONFIG.read_text()
            .replace('state_dir = "/var/lib/treadmill-safety"', f'state_dir = "{self.state_dir}"')
            .replace('ipc_socket = "/run/treadmill-safety/control.sock"', f'ipc_socket = "{self.socket_path}"')
            .replace('ipc_group = "treadmill"', 'ipc_group = ""'))
        self.proc: subprocess.Popen | None = None
        # What tests.hil.helpers.trips reads to tell a machine stall from a failure: the child's
        # event log, through a store that is never started (read-only connections only).
        self.controller = SimpleNamespace(events=HistoryStore(self.state_dir))

    def start(self) -> None:
        """Start the child and wait until its socket answers."""
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "run", "--simulate", "--config", str(self.config_path)],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        assert wait_until(self._answers, 20.0, POLL_S), f"the controller's socket never answered ({self.log_path})"

    def _answers(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log_path.read_text()[-3000:]
        try:
            with JsonLinesClient(self.socket_path) as ipc:
                return ipc.call("status")["ok"]
        except OSError:
            return False

    def client(self) -> JsonLinesClient:
        """A new connection to the child's socket."""
        return JsonLinesClient(self.socket_path)

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed."""
        assert self.proc is not None and self.proc.poll() is None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit; safe when already gone."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Rows from history.db opened read-only (as a clinic's backup script would)."""
        conn = sqlite3.connect((self.state_dir / "history.db").resolve().as_uri() + "?mode=ro", uri=True,
                               timeout=1.0)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()


@pytest.fixture
def controller_process(tmp_path):
    """Make child controllers with a patient on file, reset to READY; every child is stopped afterwards."""
    children: list[ControllerProcess] = []

    def make() -> ControllerProcess:
        child = ControllerProcess(tmp_path / f"run{len(children)}")
        children.append(child)
        child.start()
        with child.client() as ipc:
            assert ipc.ok("patient_save", {"patient": PATIENT, "create": True, **THERAPIST})
            assert wait_until(lambda: ipc.call("command", {"command": "reset", **THERAPIST})["ok"], 10.0, POLL_S), \
                "a reset accepted"
        return child

    try:
        yield make
    finally:
        for child in children:
            child.stop()


SESSION_SQL = ("SELECT status, started_wall, ended_wall, end_reason, duration_s, distance_m FROM sessions "
               "WHERE session_id = ?")
SAMPLES_SQL = "SELECT seq, t_s, gap_mm, belt_kmh, state, warning FROM samples WHERE session_id = ? ORDER BY seq"


def recorded_s(child: ControllerProcess, sid: int) -> float:
    """Seconds of the session's timeline committed to the database so far."""
    try:
        return child.query("SELECT MAX(t_s) FROM samples WHERE session_id = ?", (sid,))[0][0] or 0.0
    except sqlite3.OperationalError:  # the database is being created
        return 0.0


def test_nothing_already_recorded_is_lost_on_a_crash(controller_process):
    on_a_calm_machine(controller_process, crash_mid_session)


def crash_mid_session(child: ControllerProcess) -> None:
    with child.client() as ipc:
        session = ipc.ok("session_start", {"patient_id": PATIENT["patient_id"], "planned_min": 5, "pain_before": 3,
                                           **THERAPIST})["session"]
    sid, started_wall = session["session_id"], session["started_wall"]
    assert wait_until(lambda: recorded_s(child, sid) >= 3.0, 10.0, POLL_S), "3 s of the timeline in the database"

    t_kill = time.time()
    child.kill()
    status, _, ended_wall, end_reason, _, _ = child.query(SESSION_SQL, (sid,))[0]
    samples = child.query(SAMPLES_SQL, (sid,))
    assert (status, ended_wall, end_reason) == ("active", None, None), "the crash left the session open"
    assert [s[0] for s in samples] == list(range(len(samples))), "no gap in the timeline"
    last_t_s = samples[-1][1]
    assert len(samples) >= 5 * last_t_s, "at least 5 samples a second"
    lost_s = t_kill - (started_wall + last_t_s)
    assert 0 <= lost_s <= MAX_LOST_S, f"the last committed sample was {lost_s:.2f} s old at the kill"

    child.start()
    with child.client() as ipc:
        restarted = ipc.ok("status")
        assert restarted["state"] == "STOPPED", "a restarted controller comes up stopped"
        assert restarted["session"] is None and restarted["storage"]["ok"] is True
        assert wait_until(lambda: child.query(SESSION_SQL, (sid,))[0][0] == "interrupted", 5.0, POLL_S)
        status, started, ended_wall, end_reason, duration_s, distance_m = child.query(SESSION_SQL, (sid,))[0]
        assert end_reason == "controller restarted after a crash"
        assert started == started_wall and ended_wall == pytest.approx(started_wall + last_t_s, abs=1e-6)
        assert child.query(SAMPLES_SQL, (sid,)) == samples, "every committed sample is still there"
        assert 0 < duration_s <= last_t_s + 0.5 and distance_m > 0
        shown = ipc.ok("session", {"session_id": sid})["session"]
        assert (shown["status"], shown["end_reason"], shown["duration_s"]) == (status, end_reason, duration_s)
        assert ipc.ok("session_samples", {"session_id": sid})["total"] == len(samples)
