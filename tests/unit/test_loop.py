"""The control loop's threading contract, with a recording output port."""

from __future__ import annotations

import logging
import threading
import time

from controller.loop import ControlLoop
from controller.safety.core import SafetyCore
from controller.safety.types import Command, CommandKind
from sim.bench import wait_until
from tests.unit.rig import example_config


class RecordingOutputs:
    """An output port that records every call with its thread."""

    def __init__(self):
        self.calls: list[tuple[str, object, str]] = []
        self.relay = False
        self.heartbeats = 0

    def _rec(self, name, value=None):
        self.calls.append((name, value, threading.current_thread().name))

    def set_relay(self, energized):
        self.relay = energized
        self._rec("relay", energized)

    def toggle_heartbeat(self):
        self.heartbeats += 1
        self._rec("heartbeat")

    def set_buzzer(self, on):
        self._rec("buzzer", on)

    def set_lamps(self, green, amber, red):
        self._rec("lamps", (green, amber, red))

    def safe_off(self):
        self._rec("safe_off")


def feeder(loop: ControlLoop, cfg, gap_mm: list[float], stop: threading.Event):
    """A producer thread: healthy sensors at 30 Hz and a standing belt at 20 Hz."""
    n = 0
    while not stop.wait(0.01):
        now = time.monotonic()
        if n % 3 == 0:
            for s in cfg.sensors:
                loop.submit_distance(s.id, gap_mm[0] + s.mount_offset_mm, 11, now)
        if n % 5 == 0:
            loop.submit_belt_speed(0.0, now)
        n += 1


def started_loop():
    cfg = example_config()
    outputs = RecordingOutputs()
    events = []
    loop = ControlLoop(SafetyCore(cfg, time.monotonic()), outputs=outputs, event_sink=events.append)
    gap = [900.0]
    stop = threading.Event()
    thread = threading.Thread(target=feeder, args=(loop, cfg, gap, stop), daemon=True)
    loop.start()
    loop.submit_estop(False, time.monotonic())
    thread.start()
    return loop, outputs, events, gap, stop


def test_reset_over_the_loop_energizes_and_an_in_zone_sample_opens_the_relay():
    loop, outputs, events, gap, stop = started_loop()
    try:
        assert wait_until(lambda: loop.command(Command(CommandKind.RESET, "ann", True)).ok, 3.0)
        assert wait_until(lambda: outputs.relay, 1.0)
        gap[0] = 240.0  # inside the base stop distance of 250 mm
        assert wait_until(lambda: not outputs.relay, 1.0)
        assert any(e.kind == "trip" and "inside the stop distance" in e.message for e in events)
    finally:
        stop.set()
        loop.stop()


def test_relay_and_heartbeat_are_driven_only_from_the_decision_thread():
    loop, outputs, events, gap, stop = started_loop()
    try:
        assert wait_until(lambda: loop.command(Command(CommandKind.RESET, "ann", True)).ok, 3.0)
        assert wait_until(lambda: outputs.heartbeats > 20, 2.0)
    finally:
        stop.set()
        loop.stop()
    threads = {t for name, _, t in outputs.calls if name in ("heartbeat", "lamps", "buzzer")}
    assert threads == {"decision"}
    relay_threads = {t for name, v, t in outputs.calls if name == "relay" and v}
    assert relay_threads == {"decision"}, "only the decision thread ever energizes"


def test_silence_is_noticed_at_its_deadline():
    loop, outputs, events, gap, stop = started_loop()
    try:
        assert wait_until(lambda: loop.command(Command(CommandKind.RESET, "ann", True)).ok, 3.0)
        stop.set()  # every producer goes quiet
        assert wait_until(lambda: not outputs.relay, 1.0)
        assert wait_until(lambda: any(e.kind == "trip" for e in events), 1.0)
        assert {e.code for e in events if e.kind == "trip"} & {"belt_stale", "sensor_stale:left",
                                                             "sensor_stale:right"}
    finally:
        loop.stop()


def test_an_exception_in_a_decision_trips_logs_a_traceback_and_the_loop_goes_on(caplog):
    loop, outputs, events, gap, stop = started_loop()
    try:
        assert wait_until(lambda: loop.command(Command(CommandKind.RESET, "ann", True)).ok, 3.0)
        real = loop.core.on_belt_speed

        def broken(speed, t):
            raise ZeroDivisionError("injected")

        with caplog.at_level(logging.ERROR, logger="controller.loop"):
            loop.core.on_belt_speed = broken
            assert wait_until(lambda: not outputs.relay, 1.0)
            assert wait_until(lambda: "exception" in loop.status.get("reasons", {}), 1.0)
            loop.core.on_belt_speed = real
        assert "ZeroDivisionError" in loop.status["reasons"]["exception"]
        assert "Traceback" in caplog.text and "injected" in caplog.text
        beats = outputs.heartbeats
        assert wait_until(lambda: outputs.heartbeats > beats + 10, 1.0), "the loop keeps running"
        assert not loop.broken
    finally:
        stop.set()
        loop.stop()


def test_a_broken_trip_path_holds_the_relay_open_for_good():
    loop, outputs, events, gap, stop = started_loop()
    try:
        assert wait_until(lambda: loop.command(Command(CommandKind.RESET, "ann", True)).ok, 3.0)

        def broken(*args):
            raise RuntimeError("broken")

        # Every step the core takes now fails, the trip path too.
        loop.core.on_tick = loop.core.on_distance = loop.core.on_belt_speed = broken
        loop.core.on_exception = broken
        assert wait_until(lambda: loop.broken, 1.0)
        assert not outputs.relay
        beats = outputs.heartbeats
        assert not wait_until(lambda: outputs.heartbeats > beats, 0.1), "no heartbeat from a broken loop"
    finally:
        stop.set()
        loop.stop()


def test_stop_drops_the_relay_before_anything_else():
    loop, outputs, events, gap, stop = started_loop()
    assert wait_until(lambda: loop.command(Command(CommandKind.RESET, "ann", True)).ok, 3.0)
    assert wait_until(lambda: outputs.relay, 1.0)
    stop.set()
    n = len(outputs.calls)
    loop.stop()
    assert outputs.calls[n][:2] == ("relay", False)
    assert outputs.calls[-1][0] == "safe_off"
    assert not loop.is_alive()
    loop.stop()  # a second stop is harmless


def test_a_command_the_loop_cannot_answer_times_out_with_a_conflict():
    cfg = example_config()
    loop = ControlLoop(SafetyCore(cfg, time.monotonic()), outputs=RecordingOutputs())
    reply = loop.command(Command(CommandKind.RESET, "ann", True), timeout_s=0.05)  # never started
    assert not reply.ok and reply.code == "conflict" and "did not answer" in reply.message
    assert "nothing was done" in reply.message


def test_the_estop_level_is_read_on_every_wake_up_even_without_an_edge():
    cfg = example_config()
    outputs = RecordingOutputs()
    level = [False]
    loop = ControlLoop(SafetyCore(cfg, time.monotonic()), outputs=outputs, estop_level=lambda: level[0])
    gap = [900.0]
    stop = threading.Event()
    threading.Thread(target=feeder, args=(loop, cfg, gap, stop), daemon=True).start()
    loop.start()
    try:
        assert wait_until(lambda: loop.command(Command(CommandKind.RESET, "ann", True)).ok, 3.0)
        level[0] = True  # pressed, and the edge callback never came
        assert wait_until(lambda: not outputs.relay, 0.5)
        assert "estop" in loop.status["reasons"]
    finally:
        stop.set()
        loop.stop()


def test_a_chime_beeps_its_pattern_from_the_decision_thread_then_falls_silent():
    loop, outputs, events, gap, stop = started_loop()
    try:
        assert wait_until(lambda: loop.command(Command(CommandKind.RESET, "ann", True)).ok, 3.0)
        loop.chime((0.05, 0.05, 0.05))
        beeps = lambda: [v for name, v, _ in outputs.calls if name == "buzzer"]  # noqa: E731
        assert wait_until(lambda: beeps()[-4:] == [True, False, True, False], 2.0), beeps()
        assert loop._chime is None
    finally:
        stop.set()
        loop.stop()
    assert {t for name, _, t in outputs.calls if name == "buzzer"} == {"decision"}


def test_with_no_input_at_all_the_heartbeat_keeps_its_pace_from_deadline_wake_ups():
    """Every producer silent: the thread wakes for the heartbeat's edges (and the core's deadlines),
    not on a blind tick, and each edge comes after a core step at the present time."""
    cfg = example_config()
    outputs = RecordingOutputs()
    loop = ControlLoop(SafetyCore(cfg, time.monotonic()), outputs=outputs)
    loop.start()
    try:
        assert wait_until(lambda: outputs.heartbeats >= 3, 2.0)
        beats0, wakeups0, steps0, t0 = outputs.heartbeats, loop.wakeups, loop.core.now, time.monotonic()
        assert wait_until(lambda: time.monotonic() - t0 >= 1.0, 2.0, poll_s=0.05)
        elapsed = time.monotonic() - t0
        beats, wakeups = outputs.heartbeats - beats0, loop.wakeups - wakeups0
    finally:
        loop.stop()
    edges_per_s = 1.0 / loop.edge_interval_s  # 40 with the example's 50 ms period
    # A loaded machine may delay edges (fewer); nothing may add wake-ups beyond the edges.
    assert edges_per_s * 0.4 * elapsed <= beats <= edges_per_s * 1.1 * elapsed + 2, beats
    assert wakeups <= beats + 3, (wakeups, beats)
    assert loop.core.now > steps0, "the core stepped at the edges' times"


def test_inputs_wake_the_thread_and_no_tick_is_added_to_them():
    loop, outputs, events, gap, stop = started_loop()
    try:
        assert wait_until(lambda: loop.command(Command(CommandKind.RESET, "ann", True)).ok, 3.0)
        wakeups0, steps0, t0 = loop.wakeups, loop.steps, time.monotonic()
        assert wait_until(lambda: time.monotonic() - t0 >= 1.0, 2.0, poll_s=0.05)
        wakeups, steps = loop.wakeups - wakeups0, loop.steps - steps0
    finally:
        stop.set()
        loop.stop()
    # The feeder puts about 33 sensor pairs and 20 belt readings a second; the old 100 Hz tick
    # alone woke the thread 100 times a second. Edges ride on the inputs' wake-ups.
    assert steps >= 20, steps
    assert wakeups < 90, wakeups


def test_a_chime_that_ends_under_the_warning_ends_and_costs_no_extra_wake_ups():
    loop, outputs, events, gap, stop = started_loop()
    try:
        assert wait_until(lambda: loop.command(Command(CommandKind.RESET, "ann", True)).ok, 3.0)
        gap[0] = 400.0  # inside the warn zone (450 mm at standstill), outside the stop zone
        assert wait_until(lambda: loop.status.get("warning"), 1.0)
        loop.chime((0.05, 0.05))
        # The pattern runs out while the warning drowns it: the chime still ends.
        assert wait_until(lambda: loop._chime is None, 1.0)
        wakeups0, t0 = loop.wakeups, time.monotonic()
        assert wait_until(lambda: time.monotonic() - t0 >= 0.5, 1.0, poll_s=0.05)
        assert loop.wakeups - wakeups0 < 60, "no wake-up storm after the chime"
        assert loop.status["warning"]
    finally:
        stop.set()
        loop.stop()
