"""HIL: belt speed against the cap (scenario 3), two sensors (scenario 5), other links."""

from __future__ import annotations

import time

import pytest

from controller.config import KMH_PER_MPS
from controller.safety.types import CommandKind as K
from sim.bench import wait_until
from tests.hil.helpers import relay_opened_at, trips, wait_tripped
from tests.hil.test_hil_edge import a3_speeds_mps


def test_console_override_above_the_cap_is_pulled_back_within_200_ms(make_bench):
    bench = make_bench()
    cap_kmh = bench.cfg.limits.reverse_cap_kmh
    bench.reset_and_start(cap_kmh)
    t0 = time.monotonic()
    bench.emulator.console_speed((cap_kmh + 0.4) / KMH_PER_MPS)
    assert wait_until(lambda: a3_speeds_mps(bench, after_t=t0), 1.0)
    t_a3, v_a3 = a3_speeds_mps(bench, after_t=t0)[0]
    assert t_a3 - t0 <= 0.200
    assert v_a3 <= cap_kmh / KMH_PER_MPS + 1e-9
    assert wait_until(lambda: bench.emulator.belt_speed_mps <= cap_kmh / KMH_PER_MPS + 1e-6, 2.0)
    grace_s = bench.cfg.safety.overspeed_grace_s
    assert wait_until(lambda: time.monotonic() - t0 > grace_s + 0.3, grace_s + 1)
    assert bench.controller.status["state"] == "RUNNING", "a corrected overspeed does not trip"


def test_runaway_belt_that_ignores_the_cap_trips_within_the_grace_time(make_bench):
    bench = make_bench()
    cap_kmh = bench.cfg.limits.reverse_cap_kmh
    bench.reset_and_start(cap_kmh)
    bench.emulator.runaway(True)  # acknowledges A3 and ignores it
    t0 = time.monotonic()
    bench.emulator.console_speed((cap_kmh + 0.4) / KMH_PER_MPS)
    assert wait_tripped(bench, 3.0)
    trip = trips(bench)[-1]
    assert trip["code"] == "overspeed"
    opened = relay_opened_at(bench, after_t=t0)
    grace_s = bench.cfg.safety.overspeed_grace_s
    # The belt needs ~0.1 s to pass cap + tolerance, one poll to report it, then the grace time.
    assert grace_s <= opened - t0 <= grace_s + 0.25
    assert opened - trip["figures"]["input_t_mono"] <= 0.005


def test_gross_overspeed_trips_at_once(make_bench):
    bench = make_bench(accel_mps2=2.0)
    cap_kmh = bench.cfg.limits.reverse_cap_kmh
    bench.reset_and_start(cap_kmh)
    bench.emulator.runaway(True)
    t0 = time.monotonic()
    bench.emulator.console_speed(cap_kmh * 1.5 / KMH_PER_MPS)
    assert wait_tripped(bench, 2.0)
    trip = trips(bench)[-1]
    assert trip["code"] == "gross_overspeed"
    f = trip["figures"]
    assert f["belt_speed_mps"] > cap_kmh * 1.25 / KMH_PER_MPS
    opened = relay_opened_at(bench, after_t=t0)
    assert opened - f["input_t_mono"] <= 0.005, "tripped by the first reading above the gross limit"
    assert opened - t0 < bench.cfg.safety.overspeed_grace_s


def test_two_sensors_disagreeing_beyond_tolerance_trip(bench):
    bench.reset_and_start(1.5)
    right = bench.chips["right"]
    tol_mm = bench.cfg.safety.sensor_disagree_mm
    offset = bench.cfg.sensors[1].mount_offset_mm
    right.distance_fn = lambda: bench.patient.gap_mm + offset + tol_mm + 60
    assert wait_tripped(bench, 1.0)
    assert trips(bench)[-1]["code"] == "sensors_disagree"


def test_the_nearest_valid_reading_governs(bench):
    bench.reset_and_start(1.0)
    offset = bench.cfg.sensors[1].mount_offset_mm
    bench.chips["right"].distance_fn = lambda: bench.patient.gap_mm + offset - 100
    assert wait_until(lambda: bench.controller.status.get("nearest_sensor") == "right", 1.0)
    assert bench.controller.status["gap_mm"] == pytest.approx(bench.patient.gap_mm - 100, abs=15)
    assert bench.controller.status["state"] == "RUNNING"


def test_speed_sensor_link_gets_no_commands_and_trips_on_overspeed(make_bench):
    bench = make_bench(protocol="speed-sensor")
    cap_kmh = bench.cfg.limits.reverse_cap_kmh
    from tests.hil.helpers import reset_when_healthy
    assert reset_when_healthy(bench).ok
    assert bench.command(K.START, 1.5).ok
    bench.emulator.console_speed(1.5 / KMH_PER_MPS)  # the therapist starts the belt at the console
    assert wait_until(lambda: bench.emulator.belt_speed_mps > 0.4, 2.0)
    assert wait_until(lambda: bench.controller.status.get("belt_speed_mps", 0) > 0.4, 1.0)
    t0 = time.monotonic()
    bench.emulator.console_speed((cap_kmh + 0.4) / KMH_PER_MPS)
    assert wait_tripped(bench, 3.0)
    assert trips(bench)[-1]["code"] == "overspeed"
    assert relay_opened_at(bench, after_t=t0) - t0 >= bench.cfg.safety.overspeed_grace_s
    assert bench.emulator.commands(include_status_requests=False) == []
    assert wait_until(lambda: bench.emulator.belt_speed_mps == 0.0, 3.0), "the safety circuit stops it"


def test_woodway_reverse_belt_sends_the_direction_digit(make_bench):
    bench = make_bench(protocol="woodway", reverse_belt=True)
    bench.reset_and_start(1.5)
    frames = [ev.frame for ev in bench.emulator.commands(include_status_requests=False)
              if ev.frame[:1] == b"\xa3"]
    assert frames and all(f[1:2] == b"3" for f in frames)
    assert frames[-1] == b"\xa3" + b"3009", "1.5 km/h = 0.93 mph floors to 0.9 mph, never rounds up"
    assert bench.emulator.belt_velocity_mps < 0


def _warns(bench, code: str) -> list[dict]:
    bench.controller.history.flush()
    return [e for e in reversed(bench.controller.history.recent(200, kind="warn")) if e["code"] == code]


def test_console_push_under_the_cap_is_corrected_and_logged_as_a_warning(make_bench):
    bench = make_bench()
    cap_kmh = bench.cfg.limits.reverse_cap_kmh
    bench.reset_and_start(1.5)
    assert 1.9 <= cap_kmh, "the push stays under the cap: the cap rule alone saw nothing"
    # The push comes once the ramp is over: its last speed command on the wire (the belt link writes it a
    # moment after the decision) would undo a push, sometimes before the belt is 0.2 km/h too fast.
    core = bench.controller.loop.core

    def ramp_over() -> bool:
        sent = a3_speeds_mps(bench)
        return (core.commanded_mps >= core.target_mps and bool(sent) and time.monotonic() - sent[-1][0] > 0.2
                and abs(bench.emulator.belt_speed_mps - sent[-1][1]) < 0.01)
    assert wait_until(ramp_over, 3.0), "the start's ramp ends"
    t0 = time.monotonic()
    bench.emulator.console_speed(1.9 / KMH_PER_MPS)  # the demo's "console pushes speed up"
    assert wait_until(lambda: _warns(bench, "console_override"), 2.0), "a push is a warn event"
    warn = _warns(bench, "console_override")[0]
    assert "faster than the commanded 1.50 km/h" in warn["message"]
    assert wait_until(lambda: a3_speeds_mps(bench, after_t=t0), 1.0)
    assert all(v <= 1.5 / KMH_PER_MPS + 1e-9 for _, v in a3_speeds_mps(bench, after_t=t0))
    # Back at the commanded speed (0.1 mph below it at most: the treadmill floors A3).
    assert wait_until(lambda: abs(bench.emulator.belt_speed_mps - 1.5 / KMH_PER_MPS) <= 0.045, 2.0)
    grace_s = bench.cfg.safety.overspeed_grace_s
    assert wait_until(lambda: time.monotonic() - t0 > grace_s + 0.5, grace_s + 1)
    assert bench.controller.status["state"] == "RUNNING", "a corrected push does not trip"
    assert len(_warns(bench, "console_override")) == 1
    assert not trips(bench)


def test_console_that_keeps_pushing_trips_within_the_grace_time_and_a_poll(make_bench):
    bench = make_bench()
    bench.reset_and_start(1.5)
    t0 = time.monotonic()
    bench.emulator.console_hold(1.9 / KMH_PER_MPS)  # every A3 obeyed, then overruled at the console
    # Until the trip, the status says why it warns: the dashboard's header names the console.
    assert wait_until(lambda: "console_override" in bench.controller.status.get("warning_causes", []), 2.0)
    assert bench.controller.status["warning"] is True
    assert wait_tripped(bench, 4.0)
    trip = trips(bench)[-1]
    assert trip["code"] == "overspeed" and "faster than the commanded 1.50 km/h" in trip["message"]
    warn = _warns(bench, "console_override")[0]
    opened = relay_opened_at(bench, after_t=t0)
    grace_s = bench.cfg.safety.overspeed_grace_s
    poll_s = 1.0 / bench.cfg.treadmill.poll_hz
    # From the first reading past the tolerance (the warning), the grace time plus a poll and a tick.
    assert grace_s <= opened - warn["t_mono"] <= grace_s + poll_s + 0.02
    assert len(a3_speeds_mps(bench, after_t=t0)) >= 3, "re-asserted while it lasted"
    bench.emulator.console_hold(None)
    assert wait_until(lambda: bench.emulator.belt_speed_mps == 0.0, 3.0), "the safety circuit stops it"
