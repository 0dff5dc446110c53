"""Belt drivers against the treadmill emulator over real pseudo-terminals; public clients too.

Garbage policy under test: noise between frames is skipped and counted and
speed is still read; a frame corrupted inside, so that no valid answer arrives
within ack_timeout_s, is a LinkFault (as is more than GARBAGE_LIMIT_BYTES of
noise without a valid frame).
"""

from __future__ import annotations

import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.waiting import expect, holds_for
import serial

from hardware import BeltReading, LinkError, LinkFault
from hardware import belt_protocol as proto
from hardware.belt import SpeedSensorBelt, TrackMasterBelt
from hardware.sim.belt_physics import BeltPhysics
from hardware.sim.treadmill import TreadmillEmulator
from hardware.sim.treadmill_model import TreadmillModel

REPO_ROOT = Path(__file__).resolve().parents[2]
KMH = 1 / 3.6
#: One D1 step: the protocol's resolution is 0.1 mph.
TENTH_MPH_MPS = 0.1 * proto.MPS_PER_MPH


class Sink:
    """Collects readings and faults delivered by a driver's worker thread."""

    def __init__(self) -> None:
        self.readings: list[BeltReading] = []
        self.faults: list[LinkFault] = []

    def speed_mps(self) -> float:
        return self.readings[-1].belt_speed_mps if self.readings else math.nan


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., TreadmillEmulator]]:
    made: list[TreadmillEmulator] = []

    def make(dialect: str = "trackmaster", *, accel_mps2: float = 10.0, decel_mps2: float = 10.0,
             link_path: Path | None = None, max_speed_mps: float | None = None,
             disconnect_timeout_s: float = 0.5, byte_time: bool = False) -> TreadmillEmulator:
        emulator = TreadmillEmulator(dialect, accel_mps2=accel_mps2, decel_mps2=decel_mps2, link_path=link_path,
                                     max_speed_mps=max_speed_mps, disconnect_timeout_s=disconnect_timeout_s,
                                     byte_time=byte_time)
        made.append(emulator)
        return emulator.start()

    try:
        yield make
    finally:
        for emulator in made:
            emulator.close()


@pytest.fixture
def make_belt() -> Iterator[Callable[..., tuple[TrackMasterBelt, Sink]]]:
    made: list[TrackMasterBelt] = []

    def make(port: str, *, dialect: str = "trackmaster", start: bool = True, reverse_belt: bool = False,
             poll_hz: float = 20.0, ack_timeout_s: float = 0.1) -> tuple[TrackMasterBelt, Sink]:
        sink = Sink()
        belt = TrackMasterBelt(port, dialect=dialect, on_reading=sink.readings.append,
                               on_fault=sink.faults.append, reverse_belt=reverse_belt, poll_hz=poll_hz,
                               ack_timeout_s=ack_timeout_s)
        made.append(belt)
        if start:
            belt.start()
        return belt, sink

    try:
        yield make
    finally:
        for belt in made:
            belt.close()


def sent_commands(emulator: TreadmillEmulator) -> list[str]:
    return [str(event) for event in emulator.commands(include_status_requests=False)]


# ---- TrackMaster/Woodway driver ---------------------------------------------------------


def test_polls_at_20_hz_deliver_the_emulators_belt_speed(make_emulator, make_belt):
    emulator = make_emulator()
    emulator.console_speed(1.0)
    belt, sink = make_belt(emulator.port)
    expect(lambda: abs(sink.speed_mps() - 1.0) <= TENTH_MPH_MPS, what="reading of 1.0 m/s")
    first = len(sink.readings)
    expect(lambda: len(sink.readings) >= first + 10, what="10 more readings")
    window = sink.readings[first - 1 : first + 10]
    mean_interval_s = (window[-1].t_mono - window[0].t_mono) / 10
    assert mean_interval_s <= 1 / 18, f"polling at {1 / mean_interval_s:.1f} Hz, want >= 20 Hz"
    assert belt.stats.polls >= belt.stats.readings >= 11
    assert all(event.frame == bytes([proto.ACTUAL_SPEED]) for event in emulator.commands())
    assert [t.name for t in threading.enumerate()].count("belt-link") >= 1
    assert not sink.faults


@pytest.mark.parametrize(
    ("dialect", "reverse_belt", "speed_mps", "a3"),
    [
        ("trackmaster", False, 2.0 * KMH, "A3 0012"),  # 1.243 mph
        ("woodway", False, 2.0 * KMH, "A3 0012"),
        ("woodway", True, 2.0 * KMH, "A3 3012"),  # direction digit, never a '-' byte
        ("trackmaster", False, 1.29 * proto.MPS_PER_MPH, "A3 0012"),  # floor, not round
        ("trackmaster", False, 1.0 * proto.MPS_PER_MPH, "A3 0010"),  # exact value survives float error
        ("woodway", True, 3.0, "A3 3067"),  # 6.71 mph: tenths, not whole mph
    ],
)
def test_request_speed_starts_with_a0_then_sends_floored_a3(make_emulator, make_belt, dialect, reverse_belt,
                                                             speed_mps, a3):
    emulator = make_emulator(dialect)
    belt, sink = make_belt(emulator.port, dialect=dialect, reverse_belt=reverse_belt)
    assert belt.request_speed(speed_mps) is True
    expect(lambda: belt.stats.acks == 2, what="A0 and A3 acknowledged")
    assert sent_commands(emulator) == ["A0", a3]
    assert all(b"-" not in event.frame for event in emulator.commands())
    assert belt.belt_started
    expect(lambda: emulator.set_speed_mps > 0 and sink.speed_mps() > 0, what="belt moving")
    assert emulator.belt_velocity_mps < 0 if reverse_belt else emulator.belt_velocity_mps > 0
    assert sink.speed_mps() <= speed_mps, "floor encoding keeps the belt at or under the request"


def test_request_stop_sends_aa_and_the_belt_stops(make_emulator, make_belt):
    emulator = make_emulator()
    belt, sink = make_belt(emulator.port)
    belt.request_speed(1.0)
    expect(lambda: sink.speed_mps() > 0.9, what="belt at speed")
    assert belt.request_stop() is True
    expect(lambda: sink.speed_mps() == 0.0, what="reading of a stopped belt")
    assert sent_commands(emulator) == ["A0", "A3 0022", "AA"]
    assert emulator.belt_status == proto.STATUS_STOPPED
    assert not belt.belt_started


def test_speed_zero_is_sent_as_auto_stop(make_emulator, make_belt):
    emulator = make_emulator()
    belt, _sink = make_belt(emulator.port)
    belt.request_speed(0.0)
    expect(lambda: belt.stats.acks == 1, what="AA acknowledged")
    assert sent_commands(emulator) == ["AA"]


def test_a_stop_beats_a_pending_speed_and_the_latest_speed_wins(make_emulator, make_belt):
    emulator = make_emulator()
    belt, _sink = make_belt(emulator.port, start=False)
    belt.request_speed(0.5)
    belt.request_stop()
    belt.request_speed(0.8)
    belt.request_speed(1.0)  # latest wins over 0.8; the stop still goes out first
    belt.start()
    expect(lambda: belt.stats.acks == 3, what="AA, A0 and A3 acknowledged")
    assert sent_commands(emulator) == ["AA", "A0", "A3 0022"]


def test_disconnect_stop_fires_bd_and_stops_the_belt_when_the_driver_goes_silent(make_emulator, make_belt):
    emulator = make_emulator(decel_mps2=5.0)
    belt, sink = make_belt(emulator.port)
    belt.request_speed(1.0)
    expect(lambda: emulator.belt_speed_mps > 0.9, what="belt at speed")
    belt.close()  # the process hangs or dies: nothing more is sent
    expect(lambda: emulator.disconnect_stop_t_mono is not None, timeout_s=2.0, what="disconnect stop")
    # From the last byte heard, not the last frame logged: a partial frame cut off by close() is
    # logged only when it expires. Never early; late only by the emulator thread's own scheduling.
    last_byte_t = emulator.last_byte_t_mono
    fired_after = emulator.disconnect_stop_t_mono - last_byte_t
    assert 0.5 < fired_after < 0.8, f"disconnect stop {fired_after * 1000:.0f} ms after the last byte"
    # The emulator marks the stop, then sends BD: wait for it rather than race its thread.
    expect(lambda: any(r.frame == bytes([proto.MASTER_TIMEOUT]) and r.t_mono > last_byte_t
                       for r in emulator.replies()), what="BD after the last byte")
    expect(lambda: emulator.belt_speed_mps == 0.0, what="belt stopped")
    assert not sink.faults, "close() is not a fault"


def test_silent_treadmill_is_a_link_fault_within_the_ack_timeout(make_emulator, make_belt):
    emulator = make_emulator()
    belt, sink = make_belt(emulator.port)
    expect(lambda: sink.readings, what="first reading")
    silenced_t = time.monotonic()
    emulator.silence()
    expect(lambda: sink.faults, what="link fault")
    fault = sink.faults[0]
    assert fault.t_mono - silenced_t <= belt.poll_period_s + belt.ack_timeout_s + 0.1
    assert emulator.port in fault.message and "did not answer C1 within 100 ms" in fault.message
    assert belt.faulted and belt.stats.faults == 1
    assert all(r.t_mono <= fault.t_mono for r in sink.readings), "no reading after the fault"
    assert belt.request_speed(0.5) is False, "a latched link refuses commands"


def test_request_speed_never_blocks_even_while_the_treadmill_is_silent(make_emulator, make_belt):
    emulator = make_emulator()
    emulator.silence()
    belt, sink = make_belt(emulator.port, ack_timeout_s=0.3)
    worst_s = 0.0
    for i in range(50):
        t0 = time.perf_counter()
        belt.request_speed(0.5 + i / 100)
        worst_s = max(worst_s, time.perf_counter() - t0)
    assert worst_s < 0.02, f"request_speed took {worst_s * 1000:.1f} ms"
    assert not sink.faults, "requests returned before the 300 ms ack timeout could even expire"


def test_garbage_between_frames_is_counted_and_speed_is_still_read(make_emulator, make_belt):
    emulator = make_emulator()
    emulator.console_speed(1.5)
    belt, sink = make_belt(emulator.port)
    expect(lambda: sink.readings, what="first reading")
    emulator.garbage(True)
    count = len(sink.readings)
    expect(lambda: len(sink.readings) >= count + 10 and belt.stats.garbage_bytes > 20,
               what="readings through the noise")
    assert abs(sink.speed_mps() - 1.5) <= TENTH_MPH_MPS
    belt.request_speed(1.0)
    expect(lambda: belt.stats.acks == 2, what="commands acknowledged through the noise")
    assert not sink.faults


def test_garbage_inside_frames_that_never_resyncs_is_a_link_fault(make_emulator, make_belt):
    emulator = make_emulator()
    belt, sink = make_belt(emulator.port)
    expect(lambda: sink.readings, what="first reading")
    emulator.garbage(True, within_frames=True)
    expect(lambda: sink.faults, what="link fault")
    assert belt.stats.garbage_bytes > 0
    assert "did not answer C1" in sink.faults[0].message


@pytest.mark.parametrize(
    ("code", "text"),
    [(0xBD, "BD (master timeout)"), (0xBE, "BE (data out of range)"), (0xBF, "BF (illegal command)")],
)
def test_error_answers_are_link_faults_naming_the_code(make_emulator, make_belt, code, text):
    emulator = make_emulator()
    belt, sink = make_belt(emulator.port)
    expect(lambda: sink.readings, what="first reading")
    emulator.force_reply(code)
    expect(lambda: sink.faults, what="link fault")
    assert sink.faults[0].message == f"treadmill on {emulator.port} answered {text} to C1"
    assert len(sink.faults) == 1


def test_out_of_range_speed_is_answered_be_and_faults_naming_the_frame(make_emulator, make_belt):
    emulator = make_emulator(max_speed_mps=1.0)
    belt, sink = make_belt(emulator.port)
    belt.request_speed(1.5)  # 3.355 mph -> 0033, above this treadmill's 1.0 m/s
    expect(lambda: sink.faults, what="link fault")
    assert sink.faults[0].message == f"treadmill on {emulator.port} answered BE (data out of range) to A3 0033"
    assert emulator.set_speed_mps == 0.0


def test_unasked_bd_from_a_starved_disconnect_stop_is_a_link_fault(make_emulator, make_belt):
    emulator = make_emulator(disconnect_timeout_s=0.03)  # shorter than the 200 ms poll gap below
    belt, sink = make_belt(emulator.port, poll_hz=5.0)
    belt.request_speed(1.0)
    expect(lambda: sink.faults, what="link fault")
    assert "sent BD (master timeout): its disconnect stop halted the belt" in sink.faults[0].message
    assert not belt.belt_started


def test_unplug_latches_a_fault_and_only_reopen_after_replug_recovers(make_emulator, make_belt, tmp_path):
    link = tmp_path / "treadmill"
    emulator = make_emulator(link_path=link)
    emulator.console_speed(1.0)
    belt, sink = make_belt(str(link))
    expect(lambda: sink.readings, what="first reading")
    emulator.unplug()
    expect(lambda: sink.faults, what="link fault")
    assert str(link) in sink.faults[0].message
    with pytest.raises(LinkError, match=str(link)):
        belt.reopen()  # still unplugged
    assert belt.faulted

    emulator.replug()
    count, traffic = len(sink.readings), len(emulator.commands())
    replug_t = time.monotonic()
    holds_for(lambda: len(sink.readings) == count and len(emulator.commands()) == traffic, 0.3,
              what="no readings and no traffic while latched")
    assert sink.readings[-1].t_mono < replug_t

    belt.reopen()
    expect(lambda: len(sink.readings) > count + 2, what="readings after reopen")
    assert abs(sink.speed_mps() - 1.0) <= TENTH_MPH_MPS
    assert not belt.faulted and len(sink.faults) == 1


@pytest.mark.parametrize("bad_speed", [-0.1, math.nan, math.inf, 50.0])
def test_invalid_speed_requests_raise_value_error_at_once(bad_speed):
    belt = TrackMasterBelt("/dev/never-opened", dialect="woodway", on_reading=print, on_fault=print)
    with pytest.raises(ValueError, match=r"belt_speed_mps must be within \[0, 44\.659\] m/s, got"):
        belt.request_speed(bad_speed)


def test_opening_a_missing_port_raises_link_error_naming_it(tmp_path):
    missing = str(tmp_path / "ttyUSB9")
    belt = TrackMasterBelt(missing, dialect="trackmaster", on_reading=print, on_fault=print)
    with pytest.raises(LinkError, match="ttyUSB9"):
        belt.start()
    belt.close()
    belt.close()  # idempotent


def test_the_port_is_opened_exclusively(make_emulator, make_belt):
    emulator = make_emulator()
    make_belt(emulator.port)
    second = TrackMasterBelt(emulator.port, dialect="trackmaster", on_reading=print, on_fault=print)
    with pytest.raises(LinkError, match=emulator.port):
        second.open()


def test_runaway_and_console_override_show_in_the_readings(make_emulator, make_belt):
    emulator = make_emulator()
    belt, sink = make_belt(emulator.port)
    emulator.runaway(True)
    belt.request_speed(1.0)
    expect(lambda: belt.stats.acks == 2, what="A0 and A3 acknowledged")
    emulator.console_speed(2.0)  # the treadmill does its own thing; the readings tell the truth
    expect(lambda: abs(sink.speed_mps() - 2.0) <= TENTH_MPH_MPS, what="reading of the console speed")


def test_byte_time_emulation_paces_bytes_at_the_baud_rate(make_emulator):
    emulator = make_emulator(byte_time=True)
    with serial.Serial(emulator.port, 4800, timeout=1.0) as port:
        t0 = time.monotonic()
        port.write(bytes([proto.ACTUAL_SPEED]))
        answer = port.read(5)
        elapsed_s = time.monotonic() - t0
    assert answer == b"\xd10000"
    assert elapsed_s >= 6 * 10 / 4800  # C1 in, D1 + 4 digits out, 8N1


def test_speed_listener_follows_the_belt_as_it_ramps():
    heard: list[tuple[float, float]] = []
    emulator = TreadmillEmulator("trackmaster", accel_mps2=5.0, on_speed=lambda v, t: heard.append((v, t)))
    with emulator:
        emulator.console_speed(1.0)
        expect(lambda: heard and heard[-1][0] == 1.0, what="listener hearing 1.0 m/s")
    speeds = [speed for speed, _t in heard]
    assert speeds == sorted(speeds) and len(speeds) > 5, "a ramp, not a jump"


def test_belt_physics_ramps_at_the_configured_rates():
    physics = BeltPhysics(accel_mps2=0.5, decel_mps2=1.0)
    physics.advance(0.0)
    physics.running, physics.set_speed_mps = True, 1.0
    assert physics.advance(1.0) == pytest.approx(0.5)
    assert physics.advance(3.0) == pytest.approx(1.0)
    physics.reversed_belt = True  # through zero at decel, then up at accel
    assert physics.advance(4.0) == pytest.approx(0.0)
    assert physics.advance(5.0) == pytest.approx(-0.5)


def test_opened_safety_circuit_brakes_the_belt_after_the_reaction_time_even_if_aa_comes_first():
    """Relay drop-out and the drive's reaction: the belt keeps going for reaction_s, then brakes."""
    model = TreadmillModel("trackmaster", accel_mps2=1.0, decel_mps2=1.0, max_speed_mps=3.0,
                           disconnect_timeout_s=0.5, now_mono=0.0, reaction_s=0.15)
    model.physics.running, model.physics.set_speed_mps = True, 0.5
    assert model.physics.advance(1.0) == pytest.approx(0.5)
    model.set_safety_circuit(False, 1.0)
    model.answer(bytes([proto.AUTO_STOP]), 1.01)  # the controller's AA right behind the relay
    assert model.physics.advance(1.149) == pytest.approx(0.5), "still driven within the reaction time"
    assert model.physics.advance(1.35) == pytest.approx(0.3)  # braking at 1 m/s^2 from 1.15 s
    assert model.physics.advance(2.0) == 0.0
    model.set_safety_circuit(True, 2.0)
    model.set_safety_circuit(False, 2.1)  # standing: nothing to brake, and nothing left pending after
    assert model.physics.advance(2.5) == 0.0 and model.physics.cut_at is None
    model.set_safety_circuit(True, 2.6)
    model.set_safety_circuit(False, 2.7)
    model.set_safety_circuit(True, 2.75)  # closed again within the reaction time, then started
    model.answer(bytes([proto.START_BELT_DISCONNECT_STOP]), 2.76)
    model.answer(b"\xa3" + b"0010", 2.77)
    assert model.physics.cut_at is None and model.physics.running
    assert model.physics.advance(3.77) > 0.4, "a start after the circuit closed again runs the belt"


# ---- Speed-sensor driver ----------------------------------------------------------------


@pytest.fixture
def make_sensor() -> Iterator[Callable[..., tuple[SpeedSensorBelt, Sink]]]:
    made: list[SpeedSensorBelt] = []

    def make(port: str) -> tuple[SpeedSensorBelt, Sink]:
        sink = Sink()
        sensor = SpeedSensorBelt(port, on_reading=sink.readings.append, on_fault=sink.faults.append)
        made.append(sensor)
        sensor.start()
        return sensor, sink

    try:
        yield make
    finally:
        for sensor in made:
            sensor.close()


def test_speed_sensor_lines_become_readings_and_it_cannot_command(make_emulator, make_sensor):
    emulator = make_emulator("speed-sensor")
    emulator.console_speed(1.2)
    sensor, sink = make_sensor(emulator.port)
    expect(lambda: sink.speed_mps() == pytest.approx(1.2), what="reading of 1.2 m/s")
    assert sensor.can_command is False
    assert sensor.request_speed(0.5) is False and sensor.request_stop() is False
    emulator.garbage(True)
    expect(lambda: sensor.stats.garbage_lines >= 3, what="garbage lines counted")
    count = len(sink.readings)
    expect(lambda: len(sink.readings) >= count + 3, what="readings between garbage lines")
    assert not sink.faults


@pytest.fixture
def raw_pty() -> Iterator[tuple[int, str]]:
    master_fd, slave_fd = os.openpty()
    tty.setraw(slave_fd)
    try:
        yield master_fd, os.ttyname(slave_fd)
    finally:
        os.close(master_fd)
        os.close(slave_fd)


def test_speed_sensor_takes_signed_lines_and_counts_each_kind_of_garbage(raw_pty, make_sensor):
    master_fd, port = raw_pty
    sensor, sink = make_sensor(port)
    os.write(master_fd, b"-750\r\nhello\n12.5\n99999\n" + b"7" * 40 + b"\n+250\n")
    expect(lambda: len(sink.readings) == 2, what="two valid readings")
    assert [r.belt_speed_mps for r in sink.readings] == [0.75, 0.25]
    assert sensor.stats.garbage_lines == 4  # text, decimal, out of range, overlong
    assert sensor.stats.garbage_bytes == len(b"hello\n12.5\n99999\n") + 41


def test_speed_sensor_that_sends_only_garbage_goes_stale_and_faults(make_emulator, make_sensor):
    emulator = make_emulator("speed-sensor")
    sensor, sink = make_sensor(emulator.port)
    expect(lambda: sink.readings, what="first reading")
    emulator.garbage(True, within_frames=True)
    expect(lambda: sink.faults, what="stale fault")
    assert f"speed sensor on {emulator.port} sent no valid speed line" in sink.faults[0].message
    assert sensor.stats.garbage_lines > 0


def test_speed_sensor_silence_faults_after_the_stale_timeout_and_reopen_recovers(make_emulator, make_sensor):
    emulator = make_emulator("speed-sensor")
    sensor, sink = make_sensor(emulator.port)
    expect(lambda: sink.readings, what="first reading")
    silenced_t = time.monotonic()
    emulator.silence()
    expect(lambda: sink.faults, what="stale fault")
    fault_t = sink.faults[0].t_mono
    assert fault_t - sink.readings[-1].t_mono >= 0.3, "stale is counted from the last valid line"
    assert fault_t - silenced_t < 0.3 + 0.2
    emulator.silence(False)
    count = len(sink.readings)
    sensor.reopen()
    expect(lambda: len(sink.readings) > count, what="readings after reopen")


# ---- Public clients drive the emulator --------------------------------------------------


def test_pywoodway_reads_sets_reverses_and_stops_the_emulator(make_emulator):
    from pywoodway.treadmill import Treadmill

    emulator = make_emulator("woodway")
    treadmill = Treadmill(emulator.port)  # sends C0 then AA
    try:
        treadmill.comport.timeout = 1.0  # pywoodway opens without a timeout: never hang the suite
        assert treadmill.start_belt(False) is True  # A9
        assert treadmill.set_speed(-1.5) is True  # reversed belt, direction digit 3
        expect(lambda: emulator.belt_velocity_mps == pytest.approx(-1.5 * proto.MPS_PER_MPH),
                   what="belt at 1.5 mph reversed")
        assert treadmill.get_speed() == -1.5
        assert treadmill.stop_belt() is True
        expect(lambda: treadmill.get_speed() == 0.0, what="pywoodway reading a stopped belt")
    finally:
        treadmill.close()
    assert sent_commands(emulator) == ["AA", "A9", "A3 3015", "AA"]


def test_trackmaster_client_reads_sets_and_stops_the_emulator(make_emulator):
    from trackmaster import Treadmill

    emulator = make_emulator("trackmaster")
    treadmill = Treadmill(emulator.port)  # sends C3 and C4
    try:
        treadmill.speed = 1.2  # A3 0012, then C0 and A1 because the belt is stopped
        assert treadmill.belt_running
        expect(lambda: treadmill.get_actual_speed() == 1.2, what="client reading 1.2 mph")
        treadmill.auto_stop()
        expect(lambda: treadmill.get_actual_speed() == 0.0, what="client reading a stopped belt")
        assert not treadmill.belt_running
    finally:
        treadmill.device.close()
    assert sent_commands(emulator) == ["A3 0012", "A1", "AA"]


# ---- simulate-treadmill CLI ----------------------------------------------------------------


def test_cli_prints_its_port_serves_polls_and_exits_0_on_sigint():
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "simulate-treadmill", "--dialect", "woodway"],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 10.0)
        assert ready, "no port line within 10 s"
        first_line = proc.stdout.readline().decode()
        assert first_line.startswith("port: /dev/pts/")
        with serial.Serial(first_line.removeprefix("port: ").strip(), 4800, timeout=1.0) as port:
            port.write(bytes([proto.ACTUAL_SPEED]))
            assert port.read(5) == b"\xd10000"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5.0) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=5.0)
