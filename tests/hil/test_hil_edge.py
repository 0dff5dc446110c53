"""HIL: the patient and the rear edge (scenarios 1, 2 and 10)."""

from __future__ import annotations

import time

import pytest

from controller.config import KMH_PER_MPS
from controller.safety.types import CommandKind as K
from sim.bench import wait_until
from hardware.belt_protocol import decode_speed_field
from tests.hil.helpers import relay_opened_at, trips, wait_tripped

MPH_TENTH_MPS = 0.044704


def a3_speeds_mps(bench, after_t: float = 0.0) -> list[tuple[float, float]]:
    """(time, speed m/s) of every A3 the treadmill received after ``after_t``."""
    out = []
    for ev in bench.emulator.commands(include_status_requests=False):
        if ev.t_mono >= after_t and ev.frame[:1] == b"\xa3":
            tenths, _ = decode_speed_field(ev.frame[1:], bench.cfg.treadmill.protocol)
            out.append((ev.t_mono, tenths * MPH_TENTH_MPS))
    return out


@pytest.mark.parametrize("speed_kmh", [1.0, 1.5, 2.0])
def test_patient_drifting_back_at_speed_trips_before_the_edge(make_bench, speed_kmh):
    bench = make_bench(start_gap_mm=1000.0)
    bench.reset_and_start(speed_kmh)
    bench.patient.set_drift(10.0)  # stops stepping: carried back at the full belt speed
    assert wait_tripped(bench, 5.0)
    assert wait_until(lambda: bench.emulator.belt_speed_mps == 0.0, 3.0), "the belt stops"
    trip = trips(bench)[-1]
    f = trip["figures"]
    assert trip["code"] == "stop_zone"
    opened = relay_opened_at(bench, after_t=f["input_t_mono"])
    assert opened is not None
    # From the in-zone sample becoming available to the relay pin going low.
    assert opened - f["input_t_mono"] <= 0.005
    # From the patient crossing the stop line: the sample lags the crossing by at most one period.
    v = f["belt_speed_mps"]
    crossed_t = f["input_t_mono"] - (f["stop_distance_mm"] - f["gap_mm"]) / 1000.0 / v
    assert opened - crossed_t <= bench.cfg.sensor_period_s + 0.005
    assert not bench.patient.fallen
    assert bench.patient.min_gap_mm > 0


def test_warn_zone_sounds_the_buzzer_slows_once_and_never_speeds_up(make_bench):
    bench = make_bench(start_gap_mm=1000.0)
    t_start = time.monotonic()
    bench.reset_and_start(2.0)
    buzzer = bench.factory.pin(bench.cfg.gpio.buzzer_pin)
    status = bench.controller.status
    warn_mm = status["warn_distance_mm"]
    bench.patient.set_drift(0.25)
    assert wait_until(lambda: bench.controller.status.get("warning"), 5.0)
    assert wait_until(lambda: buzzer.state, 0.1), "buzzer on in the warn zone"
    assert bench.patient.gap_mm <= warn_mm + 20
    bench.patient.set_drift(-0.3)  # steps forward, out of the zone
    assert wait_until(lambda: not bench.controller.status.get("warning"), 5.0)
    assert wait_until(lambda: not buzzer.state, 0.1)
    bench.patient.set_drift(0.0)
    time_out_of_zone = time.monotonic()
    assert wait_until(lambda: time.monotonic() - time_out_of_zone > 1.0, 2.0)
    assert bench.controller.status["state"] == "RUNNING"
    speeds = [v for _, v in a3_speeds_mps(bench, after_t=t_start)]
    drops = [i + 1 for i, (a, b) in enumerate(zip(speeds, speeds[1:])) if b < a]
    assert len(drops) == 1, speeds
    after_slowdown = speeds[drops[0]:]
    assert max(after_slowdown) == after_slowdown[0] < max(speeds[:drops[0]]), \
        f"leaving the zone raises no speed: {speeds}"
    assert bench.emulator.belt_speed_mps <= after_slowdown[0] + 1e-6


def test_speed_request_above_the_cap_is_refused_with_the_cap(bench):
    bench.reset_and_start(1.5)
    cap = bench.cfg.limits.reverse_cap_kmh
    reply = bench.command(K.SET_SPEED, cap + 0.5)
    assert not reply.ok and reply.code == "invalid"
    assert f"{cap:g} km/h" in reply.message
    assert bench.controller.status["target_mps"] == pytest.approx(1.5 / KMH_PER_MPS)


def test_the_controller_never_commands_more_than_the_therapist_set(make_bench):
    bench = make_bench(start_gap_mm=1000.0)
    t0 = time.monotonic()
    bench.reset_and_start(1.6)
    bench.patient.set_drift(0.3)
    wait_until(lambda: bench.controller.status.get("warning"), 5.0)
    bench.patient.set_drift(-0.3)
    wait_until(lambda: not bench.controller.status.get("warning"), 5.0)
    reply = bench.command(K.SET_SPEED, 1.2, authorized=False, actor="visitor")
    assert reply.ok, "slowing down needs no login"
    reply = bench.command(K.SET_SPEED, 1.8, authorized=False, actor="visitor")
    assert reply.code == "unauthorized"
    speeds = a3_speeds_mps(bench, after_t=t0)
    assert speeds and max(v for _, v in speeds) <= 1.6 / KMH_PER_MPS + 1e-9
