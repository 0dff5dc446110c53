"""While 50 dashboard clients poll and stream, the trips still meet their deadlines."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

import pytest

from controller.safety.types import Command, CommandKind
from sim.dashboard import free_port, spawn_dashboard, stop_process
from sim.bench import SimBench, sim_config, wait_until
from tests.hil.helpers import relay_opened_at, trips, wait_tripped
from tests.reliability.machine import DASHBOARD_NICE, production_priority, renice_all_threads
from web.ipc_client import IpcClient


@pytest.fixture
def served_dashboard(tmp_path):
    """The controller here; the dashboard in its own process under cheroot, as in production."""
    socket_path = str(tmp_path / "control.sock")
    cfg = sim_config(tmp_path / "state")
    # As the units run them: the controller's threads at SCHED_RR 10, the dashboard at Nice 5.
    with production_priority():
        bench = SimBench(cfg, state_dir=tmp_path / "state", ipc_socket=socket_path, start_gap_mm=1000).start()
    port = free_port()
    web = spawn_dashboard(port, socket_path, tmp_path / "web", stderr=subprocess.DEVNULL)
    try:
        assert web is not None, "the dashboard did not start"
        renice_all_threads(web.pid, DASHBOARD_NICE)
        yield bench, socket_path, port
    finally:
        if web is not None:
            stop_process(web)
        bench.close()


def test_trips_meet_their_deadlines_while_fifty_dashboard_clients_poll_and_stream(served_dashboard):
    bench, socket_path, port = served_dashboard
    ipc = IpcClient(socket_path)
    # Spawned from this normally scheduled thread, the load runs at normal priority.
    load = subprocess.Popen([sys.executable, "-m", "bench.load", "--port", str(port), "--seconds", "60"],
                            stdout=subprocess.PIPE, text=True)
    try:
        # In production every thread of the controller's process runs SCHED_RR, and so does this one, which
        # polls the emulator: at normal priority the load could preempt it while it holds the GIL (or the
        # emulator's lock) that the controller's and the emulator's threads need.
        with production_priority():
            assert wait_until(lambda: bench.controller.ipc.client_count >= 1, 5.0)
            assert wait_until(lambda: _reset(ipc), 5.0)
            assert ipc.command("start", "ann", True, 2.0)["ok"]
            assert wait_until(lambda: bench.emulator.belt_speed_mps > 0.5, 6.0), _belt_picture(bench)
            bench.patient.set_drift(10.0)
            assert wait_tripped(bench, 5.0)
            f = trips(bench)[-1]["figures"]
            opened = relay_opened_at(bench, f["input_t_mono"])
            assert opened - f["input_t_mono"] <= 0.005
            crossed_t = f["input_t_mono"] - (f["stop_distance_mm"] - f["gap_mm"]) / 1000.0 / f["belt_speed_mps"]
            assert opened - crossed_t <= bench.cfg.sensor_period_s + 0.005
            assert wait_until(lambda: bench.emulator.belt_speed_mps == 0.0, 3.0)
            assert not bench.patient.fallen
    finally:
        load.send_signal(signal.SIGTERM)
        summary = json.loads(load.communicate(timeout=20)[0])
    assert summary["ok"] > 200 and summary["stream_bytes"] > 1000, summary
    assert summary["errors"] == 0, summary


def _belt_picture(bench: SimBench) -> str:
    """Why the belt does not run: the controller's state and reasons, the treadmill's and the circuit's."""
    emu, status = bench.emulator, bench.controller.status
    commands = [str(e) for e in emu.commands(include_status_requests=False)[-6:]]
    return (f"state {status.get('state')}, reasons {list(status.get('reasons', {}).values())}; belt "
            f"{emu.belt_speed_mps:.3f} m/s set {emu.set_speed_mps:.3f} status {emu.belt_status:#x} circuit "
            f"{'closed' if emu.safety_circuit_closed else 'open'} relay {'on' if bench.relay_energized else 'off'} "
            f"watchdog {'closed' if bench.watchdog.is_closed() else 'open'}; last commands {commands}")


def _reset(ipc: IpcClient) -> bool:
    from web.ipc_client import ControllerError
    try:
        return ipc.command("reset", "ann", True)["ok"]
    except ControllerError:
        return False


def test_metrics_from_the_real_controller_count_decisions_and_trips(served_dashboard):
    from prometheus_client.parser import text_string_to_metric_families
    bench, socket_path, port = served_dashboard
    assert wait_until(lambda: bench.command(CommandKind.RESET).ok, 5.0)  # it starts STOPPED
    assert bench.controller.command(Command(CommandKind.ESTOP, "visitor")).ok

    def scrape() -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        return {s.name + str(sorted(s.labels.items())): s.value
                for fam in text_string_to_metric_families(text) for s in fam.samples}

    assert wait_until(lambda: scrape().get("treadmill_trips_total[('reason', 'estop_command')]", 0) >= 1, 5.0)
    samples = scrape()
    assert samples["treadmill_controller_up[]"] == 1
    assert samples["treadmill_state[('state', 'STOPPED')]"] == 1
    assert samples["treadmill_decisions_total[]"] > 0
    assert wait_until(lambda: scrape()["treadmill_decisions_total[]"] > samples["treadmill_decisions_total[]"] + 50,
                      3.0), "the decision count grows with the ticks"
    assert samples["treadmill_decision_latency_seconds_count[]"] == pytest.approx(
        samples["treadmill_decision_latency_seconds_bucket[('le', '+Inf')]"])
    assert samples["treadmill_decision_latency_seconds_bucket[('le', '0.01')]"] > 0
