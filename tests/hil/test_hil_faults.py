"""HIL: faults while the belt runs (scenarios 4, 6, 7, 8 and 9).

Every deadline is measured from the relay pin's history, the emulator's logs or
the watchdog model's edge times, against a time.monotonic() taken just before
the fault was injected. Run with -s to see the measured latencies.
"""

from __future__ import annotations

import threading
import time

import pytest

from controller.assembly import Controller
from controller.config import KMH_PER_MPS
from controller.safety.core import DEADLINE_AFTER_S
from controller.safety.types import CommandKind as K
from sim.bench import wait_until
from hardware import belt_protocol as proto
from hardware.sim.treadmill import SERVE_SLICE_S
from tests.hil.helpers import relay_opened_at, reset_when_healthy, trips, wait_tripped

#: Scheduling slack on top of every deadline (a shared 2-core CI machine).
SLACK_S = 0.005
#: An input's hop from its producer thread to the decision thread, on a loaded machine.
INPUT_HOP_S = 0.010
#: Scheduling allowance for the emulator's own timers (not the controller's deadlines).
EMULATOR_STALL_S = 0.15
#: The bench polls the external watchdog relay this often (SimBench._watch_circuit).
BENCH_CIRCUIT_POLL_S = 0.005
RUN_KMH = 1.5




def braking_time_s(bench) -> float:
    """Time the belt needs to stand from the running speed, plus a margin."""
    return RUN_KMH / KMH_PER_MPS / bench.cfg.treadmill.decel_mps2 + 0.5


def wait_belt_stands(bench) -> bool:
    return wait_until(lambda: bench.emulator.belt_speed_mps == 0.0, braking_time_s(bench))


def wait_ready(bench) -> bool:
    return wait_until(lambda: bench.controller.status.get("state") == "READY", 0.5)


def report(what: str, seconds: float, limit_s: float) -> None:
    print(f"\n[latency] {what}: {seconds * 1000:.1f} ms (limit {limit_s * 1000:.1f} ms)")


# ---- scenario 4: sensor faults while the belt runs ----------------------------------------

SENSOR_FAULTS = [
    # (fault kind, chip it is injected on, cause code it must trip with)
    ("i2c_error", "left", "sensor_fault"),
    ("hang", "right", "sensor_stale"),
    ("no_target", "left", "no_target"),
    ("invalid_status", "right", "sensor_invalid"),
    ("phantom", "left", "sensor_obstructed"),
]


@pytest.mark.parametrize("kind,sensor_id,code", SENSOR_FAULTS, ids=[f[0] for f in SENSOR_FAULTS])
def test_one_sensor_fault_trips_within_two_sensor_periods_and_blocks_the_reset(bench, kind, sensor_id, code):
    bench.reset_and_start(RUN_KMH)
    chip = bench.chips[sensor_id]
    if kind == "phantom":
        chip.phantom_distance_mm = bench.cfg.safety.obstruction_mm / 2  # 15 mm: something covers the window
    # For "hang" the last sample came before this instant, so the deadline holds from here too.
    t_inject = time.monotonic()
    chip.inject_fault(kind)
    assert wait_tripped(bench, 1.0)
    opened = relay_opened_at(bench, after_t=t_inject)
    assert opened is not None
    limit_s = 2 * bench.cfg.sensor_period_s + DEADLINE_AFTER_S + SLACK_S
    report(f"sensor {kind} on {sensor_id} -> relay open", opened - t_inject, limit_s)
    assert opened - t_inject <= limit_s
    cause = f"{code}:{sensor_id}"
    assert trips(bench)[-1]["code"] == cause
    assert cause in bench.controller.status["reasons"]

    reply = bench.command(K.RESET)  # the belt is still braking
    assert not reply.ok and reply.code == "conflict"
    assert f"sensor {sensor_id}" in reply.message
    assert wait_belt_stands(bench)
    # "No target" is a fault only while the belt moves (a patient may step off a standing belt),
    # so only the other kinds still block a reset once the belt stands.
    if kind != "no_target":
        reply = bench.command(K.RESET)
        assert not reply.ok and reply.code == "conflict", "refused while the fault persists"
        assert f"sensor {sensor_id}" in reply.message

    chip.clear_faults()
    reply = reset_when_healthy(bench, 3.0)
    assert reply.ok, reply
    assert wait_ready(bench)


# ---- scenario 6: serial faults while the belt runs ----------------------------------------

SERIAL_FAULTS = {
    "silence": (lambda emu: emu.silence(True), lambda emu: emu.silence(False)),
    "garbage_within_frames": (lambda emu: emu.garbage(True, within_frames=True), lambda emu: emu.garbage(False)),
    "forced_BD": (lambda emu: emu.force_reply(proto.MASTER_TIMEOUT), lambda emu: emu.force_reply(None)),
    "unplug": (lambda emu: emu.unplug(), lambda emu: emu.replug()),
}


@pytest.mark.parametrize("fault", list(SERIAL_FAULTS))
def test_serial_fault_trips_within_the_link_timeout_and_a_reset_reconnects(bench, monkeypatch, fault):
    inject, end = SERIAL_FAULTS[fault]
    bench.reset_and_start(RUN_KMH)
    t_inject = time.monotonic()
    inject(bench.emulator)
    assert wait_tripped(bench, 1.0)
    opened = relay_opened_at(bench, after_t=t_inject)
    assert opened is not None
    limit_s = bench.cfg.treadmill.link_timeout_s + DEADLINE_AFTER_S + SLACK_S
    report(f"serial {fault} -> relay open", opened - t_inject, limit_s)
    assert opened - t_inject <= limit_s
    trip = trips(bench)[-1]
    assert trip["code"] == "link_fault"
    assert trip["message"].startswith("treadmill link: ")
    assert bench.controller.belt.port in trip["message"]
    assert wait_belt_stands(bench)

    reopened: list[float] = []
    adapter = bench.controller.loop.belt
    real_reopen = adapter.reopen

    def spy_reopen():
        reopened.append(time.monotonic())
        return real_reopen()

    monkeypatch.setattr(adapter, "reopen", spy_reopen)
    end(bench.emulator)  # the fault is over, but the link stays latched until a reset
    t_reset = time.monotonic()
    reply = bench.command(K.RESET)
    assert not reply.ok and reply.code == "conflict"
    assert "treadmill link" in reply.message
    assert wait_until(lambda: reopened, 1.0), "the refused reset asks for a reconnect"
    assert reopened[0] >= t_reset
    reply = reset_when_healthy(bench, 4.0)
    assert reply.ok, reply
    assert wait_ready(bench)
    assert len(trips(bench)) == 1


def test_silent_controller_lets_the_treadmill_disconnect_stop_halt_the_belt(bench, monkeypatch):
    """The relay contact is welded, so only the treadmill's own A0 disconnect stop is left."""
    bench.reset_and_start(RUN_KMH)
    # Without this the controller's stale-link trip (0.3 s) would open the circuit first,
    # and a treadmill stopped by its safety key has no disconnect stop left to fire.
    monkeypatch.setattr(bench.emulator, "safety_circuit", lambda closed: None)
    bench.controller.belt.close()  # goes silent without sending anything
    assert wait_until(lambda: bench.emulator.disconnect_stop_t_mono is not None, 1.5)
    last_byte_t = bench.emulator.commands()[-1].t_mono
    fired_after = bench.emulator.disconnect_stop_t_mono - last_byte_t
    timeout_s = 0.5
    # The emulated treadmill's own firmware timer: its thread may be stalled by the shared
    # machine (stalls of up to ~90 ms measured), which says nothing of the controller.
    limit_s = timeout_s + SERVE_SLICE_S + EMULATOR_STALL_S
    report("last controller byte -> treadmill disconnect stop", fired_after, limit_s)
    assert timeout_s < fired_after <= limit_s
    assert wait_belt_stands(bench)
    assert bench.emulator.safety_circuit_closed, "the stop came from the treadmill, not the safety circuit"
    assert wait_tripped(bench, 0.5)
    assert "belt_stale" in bench.controller.status["reasons"]


# ---- scenario 7: E-stop ---------------------------------------------------------------------


def break_estop_wire(bench) -> None:
    """The NC loop's wire breaks: nothing drives the input low, so it goes where its pull resistor takes it."""
    pin = bench.estop_pin
    pin.pull = pin.pull  # MockPin: (re)applying the pull drives the undriven input to it


@pytest.mark.parametrize("how", ["pressed", "broken_wire"])
def test_estop_opens_the_relay_at_once_and_blocks_the_reset_until_closed(bench, how):
    bench.reset_and_start(RUN_KMH)
    t_press = time.monotonic()
    if how == "pressed":
        bench.press_estop()
    else:
        break_estop_wire(bench)
    assert wait_tripped(bench, 1.0)
    opened = relay_opened_at(bench, after_t=t_press)
    assert opened is not None
    limit_s = INPUT_HOP_S + SLACK_S  # the E-stop's edge is an input: decided on when it arrives
    report(f"E-stop {how} -> relay open", opened - t_press, limit_s)
    assert opened - t_press <= limit_s
    assert trips(bench)[-1]["code"] == "estop"
    assert wait_belt_stands(bench)

    reply = bench.command(K.RESET)
    assert not reply.ok and reply.code == "conflict"
    assert "E-stop" in reply.message
    bench.release_estop()  # released, or the wire mended: the NC contact closes again
    reply = reset_when_healthy(bench, 2.0)
    assert reply.ok, reply
    assert wait_ready(bench)


# ---- scenario 8: the decision loop hangs -------------------------------------------------------


def test_hung_decision_loop_stops_the_heartbeat_and_the_watchdog_relay_stops_the_belt(bench, monkeypatch):
    bench.reset_and_start(RUN_KMH)
    circuit_log: list[tuple[float, bool]] = []
    set_circuit = bench.emulator.safety_circuit

    def record_circuit(closed: bool) -> None:
        circuit_log.append((time.monotonic(), closed))
        set_circuit(closed)

    monkeypatch.setattr(bench.emulator, "safety_circuit", record_circuit)
    core = bench.controller.loop.core
    # The loop wakes for inputs: it hangs in the step of the next sensor sample.
    real_step = core.on_distance
    release = threading.Event()
    hung_at: list[float] = []

    def hanging_step(*args):
        if not hung_at:
            hung_at.append(time.monotonic())
        release.wait()
        return real_step(*args)

    monkeypatch.setattr(core, "on_distance", hanging_step)
    try:
        assert wait_until(lambda: any(not closed for _, closed in circuit_log), 1.0)
        circuit_opened = next(t for t, closed in circuit_log if not closed)
        last_edge = bench.watchdog.last_edge_t
        assert last_edge is not None and hung_at
        assert last_edge <= hung_at[0], "no heartbeat edge once the loop hangs"
        hold_s = bench.watchdog.hold_time_s
        limit_s = hold_s + BENCH_CIRCUIT_POLL_S + SLACK_S
        report("last heartbeat edge -> safety circuit open", circuit_opened - last_edge, limit_s)
        assert hold_s <= circuit_opened - last_edge <= limit_s
        assert not bench.watchdog.is_closed()
        assert wait_belt_stands(bench)
        # The hung loop never dropped the relay itself: that is why the watchdog exists.
        assert bench.relay_energized
        assert all(t < hung_at[0] for t, _ in bench.relay_history)
        assert bench.watchdog.last_edge_t == last_edge
    finally:
        release.set()


# ---- scenario 9: the controller restarts mid-session ---------------------------------------------


def test_restarted_controller_comes_up_stopped_and_sends_auto_stop(bench):
    bench.reset_and_start(RUN_KMH)
    old = bench.controller
    t_close = time.monotonic()
    old.close()
    t_start = time.monotonic()
    closing = [e for e in bench.emulator.commands(include_status_requests=False)
               if t_close <= e.t_mono <= t_start and e.frame == bytes([proto.AUTO_STOP])]
    assert closing, "a controller that shuts down sends AA before it closes the port"
    new = Controller(bench.cfg, i2c=bench.bus, pin_factory=bench.factory, port=old.port,
                     smbus=bench.bus.smbus(), state_dir=old.state_dir)
    bench.controller = new  # the fixture closes it
    new.start()
    bench.estop_pin.drive_low()  # the new panel set the pull-up; the closed NC contact holds the input low
    assert wait_until(lambda: new.status.get("state"), 1.0)
    assert new.status["state"] == "STOPPED"
    assert "startup" in new.status["reasons"]

    def auto_stops():
        return [e for e in bench.emulator.commands(include_status_requests=False)
                if e.t_mono >= t_start and e.frame == bytes([proto.AUTO_STOP])]

    assert wait_until(auto_stops, 1.0), "AA (auto stop) after the restart"
    report("controller start -> AA on the wire", auto_stops()[0].t_mono - t_start, 1.0)
    assert not bench.relay_energized
    assert not [t for t, energized in bench.relay_history if t >= t_start and energized]
    assert wait_belt_stands(bench)
    reply = reset_when_healthy(bench, 3.0)
    assert reply.ok, reply
    commands = [e.frame for e in bench.emulator.commands(include_status_requests=False) if e.t_mono >= t_start]
    assert set(commands) == {bytes([proto.AUTO_STOP])}, "a restarted controller never starts the belt"
