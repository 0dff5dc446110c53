"""The controller's Unix-socket API, against the real controller on simulated hardware."""

from __future__ import annotations

import os
import stat
import time

import pytest

from controller.ipc import MAX_LINE_BYTES
from sim.bench import SimBench, wait_until
from tests.hil.helpers import ENVIRONMENT_TRIPS, relay_opened_at, trips, wait_tripped
from tests.hil.ipc_client import JsonLinesClient
from web.ipc_client import ControllerError, ControllerOffline, IpcClient


@pytest.fixture
def served(tmp_path):
    path = str(tmp_path / "control.sock")
    bench = SimBench(state_dir=tmp_path / "state", ipc_socket=path, start_gap_mm=1000).start()
    try:
        yield bench, path
    finally:
        bench.close()


def test_socket_is_mode_0660(served):
    bench, path = served
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    assert stat.S_ISSOCK(os.stat(path).st_mode)


@pytest.mark.parametrize("line, code", [
    (b"this is not json\n", "bad_request"),
    (b"[1, 2, 3]\n", "bad_request"),
    (b'{"id": 5, "method": "status", "params": [1]}\n', "bad_request"),
    (b'{"id": 5, "method": "launch"}\n', "unknown_method"),
    (b'{"id": 5, "method": "events", "params": {"limit": 0}}\n', "invalid"),
    (b'{"id": 5, "method": "events", "params": {"kind": "gossip"}}\n', "invalid"),
    (b'{"id": 5, "method": "command", "params": {"command": "fly", "actor": "a"}}\n', "invalid"),
    (b'{"id": 5, "method": "command", "params": {"command": "reset", "actor": ""}}\n', "invalid"),
    (b'{"id": 5, "method": "command", "params": {"command": "reset", "actor": "a", "authorized": "yes"}}\n',
     "invalid"),
    (b'{"id": 5, "method": "command", "params": {"command": "reset", "actor": "a", "sudo": true}}\n', "invalid"),
])
def test_a_malformed_request_gets_an_error_and_the_connection_stays_open(served, line, code):
    bench, path = served
    client = JsonLinesClient(path)
    try:
        client.send(line)
        reply = client.read()
        assert reply["ok"] is False and reply["error"]["code"] == code
        assert reply["error"]["message"]
        client.send(b'{"id": 9, "method": "status"}\n')
        assert client.reply_to(9)["ok"] is True
    finally:
        client.close()


def test_an_oversized_line_is_refused_and_the_next_request_is_served(served):
    bench, path = served
    client = JsonLinesClient(path)
    try:
        client.send(b'{"id": 1, "method": "status", "pad": "' + b"x" * (MAX_LINE_BYTES * 3) + b'"}\n')
        reply = client.read()
        assert reply["error"]["code"] == "too_long" and str(MAX_LINE_BYTES) in reply["error"]["message"]
        client.send(b'{"id": 2, "method": "status"}\n')
        assert client.reply_to(2)["ok"] is True
    finally:
        client.close()


def test_refusals_carry_the_code_the_field_and_the_range(served):
    bench, path = served
    ipc = IpcClient(path)
    with pytest.raises(ControllerError) as exc:
        ipc.command("reset", "visitor", False)
    assert exc.value.code == "unauthorized"
    assert wait_until(lambda: _try(lambda: ipc.command("reset", "ann", True)), 3.0)
    with pytest.raises(ControllerError) as exc:
        ipc.command("set_speed", "ann", True, 2.6)
    assert exc.value.code == "invalid" and "2 km/h" in exc.value.message
    assert exc.value.errors[0]["field"] == "[command] speed_kmh"
    with pytest.raises(ControllerError) as exc:
        ipc.command("reset", "ann", True)
    assert exc.value.code == "conflict"


def _try(fn) -> bool:
    try:
        fn()
        return True
    except ControllerError:
        return False


def test_subscription_pushes_at_ten_hertz_or_more_and_on_each_state_change(served):
    bench, path = served
    client = JsonLinesClient(path)
    try:
        client.send(b'{"id": 1, "method": "subscribe"}\n')
        t0 = time.monotonic()
        pushes = []
        while time.monotonic() - t0 < 1.0:
            msg = client.read()
            if msg.get("push") == "status":
                pushes.append(msg["status"])
        assert len(pushes) >= 10
        IpcClient(path).command("estop", "visitor", False)
        states = []
        while "STOPPED" not in states[-1:] or len(states) < 2:
            msg = client.read()
            if msg.get("push") == "status":
                states.append(msg["status"]["state"])
        assert pushes[-1]["seq"] < msg["status"]["seq"]
    finally:
        client.close()


def test_a_client_that_never_reads_does_not_delay_a_trip(served):
    bench, path = served
    stalled = [JsonLinesClient(path) for _ in range(3)]
    try:
        for c in stalled:
            c.send(b'{"id": 1, "method": "subscribe"}\n' * 50)  # and never read a byte
        ipc = IpcClient(path)

        def running() -> bool:
            # A machine stall may trip the controller on a stale input before the belt gets going: start again.
            assert wait_until(lambda: _try(lambda: ipc.command("reset", "ann", True)), 3.0)
            assert ipc.command("start", "ann", True, 1.5)["ok"]
            wait_until(lambda: bench.emulator.belt_speed_mps > 0.35 or not bench.relay_energized, 5.0)
            reasons = bench.controller.status.get("reasons") or {}
            assert all(r.startswith(ENVIRONMENT_TRIPS) for r in reasons), reasons
            return bench.emulator.belt_speed_mps > 0.35 and bench.relay_energized

        assert any(running() for _ in range(3)), "three machine stalls in a row"
        ipc.call("demo", {"action": "drift_back"})
        assert wait_tripped(bench, 5.0)
        f = trips(bench)[-1]["figures"]
        assert relay_opened_at(bench, f["input_t_mono"]) - f["input_t_mono"] <= 0.005
        assert not bench.patient.fallen
        assert wait_until(lambda: bench.controller.ipc.client_count <= 1, 10.0), "stalled clients are dropped"
    finally:
        for c in stalled:
            c.close()


def test_offline_controller_is_reported_as_offline(tmp_path):
    with pytest.raises(ControllerOffline):
        IpcClient(str(tmp_path / "nobody.sock"), timeout_s=0.5).status()


FLOOD = """
import socket, sys, time
socks = []
for _ in range(4):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(sys.argv[1]); s.settimeout(1); socks.append(s)
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    for s in socks:
        try:
            s.sendall(b"\\n" * 65536)
        except OSError:
            pass
"""


def test_a_flood_of_newlines_does_not_stall_the_decision_loop(served):
    import subprocess
    import sys
    bench, path = served
    loop = bench.controller.loop

    def pace(seconds: float) -> float:
        steps0, t0 = loop.steps, time.monotonic()
        assert wait_until(lambda: time.monotonic() - t0 >= seconds, seconds + 1.0)
        return (loop.steps - steps0) / (time.monotonic() - t0)

    # The pace without the flood, on this machine now (a shared machine's load moves both alike).
    quiet = pace(1.0)
    flood = subprocess.Popen([sys.executable, "-c", FLOOD, path, "3"])
    try:
        assert wait_until(lambda: bench.controller.ipc.client_count >= 4, 2.0)
        flooded = pace(2.0)
        assert flooded >= 0.75 * quiet, f"the loop kept its pace: {flooded:.0f} steps/s, {quiet:.0f} without the flood"
        assert not [c for c in loop.core.causes() if c.persistent and c.code != "estop"], "no input went stale"
    finally:
        flood.kill()
        flood.wait()


def test_a_full_api_still_takes_an_estop(tmp_path):
    path = str(tmp_path / "control.sock")
    bench = SimBench(state_dir=tmp_path / "state", ipc_socket=path).start()
    idle = []
    try:
        assert wait_until(lambda: _try(lambda: IpcClient(path).command("reset", "ann", True)), 5.0)
        idle = [JsonLinesClient(path) for _ in range(bench.controller.ipc.max_clients)]
        assert wait_until(lambda: bench.controller.ipc.client_count >= bench.controller.ipc.max_clients, 2.0)
        with pytest.raises(ControllerError) as exc:
            IpcClient(path).status()
        assert exc.value.code == "busy"
        assert IpcClient(path).command("estop", "visitor", False)["ok"]
        assert wait_tripped(bench, 1.0)
    finally:
        for c in idle:
            c.close()
        bench.close()


def test_a_command_value_nested_as_deep_as_the_parser_takes_is_refused_and_trips_nothing(served):
    """The refusal names the field without printing the whole value: repr() of it would raise
    RecursionError on the decision thread and trip the belt."""
    bench, path = served
    ipc = IpcClient(path)
    assert wait_until(lambda: _try(lambda: ipc.command("reset", "ann", True)), 3.0)
    raw = JsonLinesClient(path)
    try:
        # The deepest value the parser takes (deeper lines are a bad request, answered with no id).
        for depth in range(1000, 899, -4):
            raw.send(('{"id": %d, "method": "command", "params": {"command": "set_speed", "actor": "ann", '
                      '"authorized": true, "value": %s1%s}}\n' % (depth, "[" * depth, "]" * depth)).encode())
            reply = raw.read()
            if reply["id"] is not None:
                break
    finally:
        raw.close()
    assert depth >= 950, f"the parser took only {depth} levels"
    assert reply["ok"] is False and reply["error"]["code"] == "invalid"
    assert reply["error"]["errors"][0]["field"] == "[command] speed_kmh"
    bench.controller.history.flush()
    refused = bench.controller.history.recent(1, kind="refused")[0]
    assert refused["code"] == "set_speed" and refused["figures"]["value"].startswith("[[[[")
    assert bench.controller.status["state"] == "READY" and "exception" not in bench.controller.status["reasons"]
