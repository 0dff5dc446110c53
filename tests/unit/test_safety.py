"""Safety rules of the pure core, one scenario per test."""

from __future__ import annotations

import dataclasses

import pytest

from controller.config import KMH_PER_MPS, stop_distance_mm
from controller.safety.types import BeltAction, CommandKind as K, State
from tests.unit.rig import Rig, example_config, kmh


def test_controller_comes_up_stopped_with_relay_off():
    rig = Rig()
    out = rig.tick()
    assert out.state is State.STOPPED and not out.relay_energized
    assert "startup" in rig.core.reasons


def test_reset_refused_until_every_input_is_fresh():
    rig = Rig()
    rig.estop(False)
    out = rig.command(K.RESET)
    assert not out.reply.ok and out.reply.code == "conflict"
    assert "no speed reading yet" in out.reply.message and "no sample yet" in out.reply.message
    assert out.state is State.STOPPED and not out.relay_energized
    rig.healthy()
    out = rig.command(K.RESET)
    assert out.reply.ok and out.state is State.READY and out.relay_energized


def test_start_ramps_the_belt_up_to_the_requested_speed_never_beyond():
    rig = Rig()
    rig.running(2.0)
    sent = [c.belt_speed_mps for c in rig.belt_commands() if c.action is BeltAction.SET_SPEED]
    assert sent == sorted(sent), "a start only ramps up"
    assert sent[-1] == pytest.approx(kmh(2.0))
    assert max(sent) <= kmh(2.0) + 1e-9
    # 0.5 km/h/s from 0.5 to 2.0 km/h takes 3 s: several steps, not a jump.
    assert len(sent) >= 10


def test_patient_drifting_back_trips_in_the_same_step_as_the_in_zone_sample():
    rig = Rig()
    rig.running(2.0)
    n = len(rig.outs)
    rig.approach(0, step_mm=2)
    first_open = next(o for o in rig.outs[n:] if not o.relay_energized)
    trip = [e for e in first_open.events if e.kind == "trip"][0]
    assert first_open.state is State.STOPPED and first_open.belt.action is BeltAction.AUTO_STOP
    assert trip.code == "stop_zone"
    f = trip.figures
    assert f["stop_distance_mm"] - 2 <= f["gap_mm"] <= f["stop_distance_mm"]
    assert f["commanded_mps"] > 0 and f["from_state"] == "RUNNING", "figures are those before the trip"
    assert f["base_stop_mm"] + f["reaction_term_mm"] + f["braking_term_mm"] == pytest.approx(
        f["stop_distance_mm"], abs=0.3)


def test_an_in_zone_sample_from_one_sensor_opens_the_relay_in_its_own_step():
    rig = Rig()
    rig.running(1.0)
    stop = rig.core.stop_distance_mm()
    rig.approach(stop + 60)
    stop = rig.core.stop_distance_mm()
    out = rig.distance("left", stop - 1)  # 61 mm apart: within the disagreement tolerance
    assert out.state is State.STOPPED and not out.relay_energized
    assert [e.code for e in out.events if e.kind == "trip"] == ["stop_zone"]


def test_stop_distance_grows_with_speed_as_the_formula_says():
    rig = Rig()
    cfg = rig.cfg
    v = kmh(2.0)
    expected = 250 + 1000 * (v * (0.033 + 0.15) + v * v / 2.0)
    assert stop_distance_mm(v, 250, cfg.sensor_period_s, 0.15, 1.0) == pytest.approx(expected)
    # A patient who does not move on their own: the belt's speed is the closing speed.
    assert rig.core.stop_distance_mm(0.0, approach_mps=0.0) == 250
    assert rig.core.stop_distance_mm(v, approach_mps=0.0) == pytest.approx(expected)
    # No sample yet and a belt that may move: the assumed approach speed of 1.6 m/s counts.
    assert rig.core.stop_distance_mm(v) == pytest.approx(expected + 1000 * (1.6 - v) * (0.033 + 0.15))


def test_stale_sensor_trips_after_two_periods_not_before():
    rig = Rig()
    rig.running(1.0)
    period = rig.cfg.sensor_period_s
    t0 = rig.t
    rig.all_sensors()
    while rig.t < t0 + 2 * period - 0.002:
        rig.t += 0.001
        rig.belt()
        assert rig.tick().state is State.RUNNING
    rig.t = t0 + 2 * period + 0.001
    rig.belt()
    out = rig.tick()
    assert out.state is State.STOPPED and not out.relay_energized
    assert any(code.startswith("sensor_stale") for code in rig.core.reasons)


@pytest.mark.parametrize("distance_mm, status, code", [
    (500, 4, "sensor_invalid"),
    (8190, 4, "no_target"),
    (8191, 11, "no_target"),
    (12, 11, "sensor_obstructed"),
    (float("nan"), 11, "sensor_invalid"),
    (-5, 11, "sensor_invalid"),
])
def test_bad_readings_trip_a_running_belt(distance_mm, status, code):
    rig = Rig()
    rig.running(1.0)
    out = rig.raw_distance("left", distance_mm, status)
    assert out.state is State.STOPPED and not out.relay_energized
    assert f"{code}:left" in rig.core.reasons


def test_no_target_while_belt_stands_is_not_a_fault_but_blocks_start():
    rig = Rig()
    rig.ready()
    out = rig.raw_distance("left", 8190, 4)
    rig.raw_distance("right", 8190, 4)
    assert rig.last.state is State.READY and rig.last.relay_energized
    out = rig.command(K.START, 1.0)
    assert not out.reply.ok and "no patient" in out.reply.message


def test_sensor_read_fault_trips_and_reset_waits_for_a_good_sample():
    rig = Rig()
    rig.running(1.0)
    out = rig._keep(rig.core.on_sensor_fault("right", "I2C error at 0x31: EIO", rig.t))
    assert out.state is State.STOPPED
    rig.speed_mps = 0.0
    rig.belt()
    rig.distance("left", 900)
    out = rig.command(K.RESET)
    assert not out.reply.ok and "EIO" in out.reply.message
    rig.t += 0.01
    rig.all_sensors(900)
    assert rig.command(K.RESET).reply.ok


def test_sensors_disagreeing_beyond_tolerance_trip():
    rig = Rig()
    rig.running(1.0)
    tol = rig.cfg.safety.sensor_disagree_mm
    rig.distance("left", 900)
    out = rig.distance("right", 900 + tol - 1)
    assert out.state is State.RUNNING
    out = rig.distance("right", 900 + tol + 1)
    assert out.state is State.STOPPED and "sensors_disagree" in rig.core.reasons


def test_the_nearest_valid_reading_governs():
    rig = Rig()
    rig.running(1.0)
    rig.distance("left", 800)
    rig.distance("right", 700)
    assert rig.core.nearest() == ("right", pytest.approx(700))


def test_stale_belt_speed_trips_within_the_link_timeout():
    rig = Rig()
    rig.running(1.0)
    timeout = rig.cfg.treadmill.link_timeout_s
    t_last = rig.t
    while rig.last.state is State.RUNNING:
        rig.t += 0.01
        rig.all_sensors()
        rig.tick()
    assert timeout < rig.t - t_last <= timeout + 0.011
    assert "belt_stale" in rig.core.reasons


def test_link_fault_trips_and_reset_asks_for_a_reconnect():
    rig = Rig()
    rig.running(1.0)
    out = rig._keep(rig.core.on_link_fault("treadmill answered BD (master timeout)", rig.t))
    assert out.state is State.STOPPED and not out.relay_energized
    rig.speed_mps = 0
    out = rig.command(K.RESET)
    assert not out.reply.ok and out.reconnect_link and "BD" in out.reply.message
    rig.t += 0.01
    rig._keep(rig.core.on_link_reopened(rig.t, rig.t))
    rig.healthy()
    assert rig.command(K.RESET).reply.ok


def test_overspeed_is_corrected_at_once_and_trips_after_the_grace_time():
    rig = Rig()
    rig.running(2.0)
    rig.speed_mps = kmh(2.4)  # console override above the cap
    out = rig.belt()
    assert out.state is State.RUNNING and out.warning
    assert out.belt.action is BeltAction.SET_SPEED and out.belt.belt_speed_mps <= kmh(2.0) + 1e-9
    t0 = rig.t
    while rig.last.state is State.RUNNING:
        rig.t += 0.01
        rig.belt()
        rig.all_sensors()
        rig.tick()
    assert rig.t - t0 == pytest.approx(rig.cfg.safety.overspeed_grace_s, abs=0.011)
    assert "overspeed" in rig.core.reasons


def test_overspeed_corrected_within_grace_does_not_trip():
    rig = Rig()
    rig.running(2.0)
    rig.speed_mps = kmh(2.4)
    rig.belt()
    rig.advance(0.5)
    rig.speed_mps = kmh(2.0)
    rig.advance(2.0)
    assert rig.last.state is State.RUNNING and not rig.last.warning


def test_gross_overspeed_trips_at_once():
    rig = Rig()
    rig.running(2.0)
    out = rig.belt(kmh(2.0) * 1.26)
    assert out.state is State.STOPPED and "gross_overspeed" in rig.core.reasons


def test_estop_input_open_trips_and_blocks_reset_until_closed():
    rig = Rig()
    rig.running(1.0)
    out = rig.estop(True)
    assert out.state is State.STOPPED and not out.relay_energized
    rig.speed_mps = 0
    rig.belt()
    out = rig.command(K.RESET)
    assert not out.reply.ok and "E-stop input open" in out.reply.message
    rig.estop(False)
    assert rig.command(K.RESET).reply.ok


def test_exception_trips_with_its_message():
    rig = Rig()
    rig.running(1.0)
    out = rig._keep(rig.core.on_exception("ZeroDivisionError: division by zero", rig.t))
    assert out.state is State.STOPPED and not out.relay_energized
    assert "ZeroDivisionError" in rig.core.reasons["exception"]


def test_warn_zone_slows_one_step_and_never_speeds_back_up():
    rig = Rig()
    rig.running(2.0)
    n_before = len(rig.belt_commands())
    warn = rig.core.stop_distance_mm() + rig.cfg.limits.warn_margin_mm
    out = rig.approach(warn - 30)
    assert out.state is State.RUNNING and out.warning
    assert [e.code for e in rig.events("warn")] == ["warn_zone"]
    slowdowns = rig.belt_commands()[n_before:]
    assert [c.belt_speed_mps for c in slowdowns] == [pytest.approx(kmh(2.0 - rig.cfg.safety.warn_slowdown_kmh))]
    rig.follow(1.0)  # still in the zone: no second step
    assert len(rig.belt_commands()) == n_before + 1
    rig.approach(900)
    rig.follow(3.0)
    assert not rig.last.warning
    assert len(rig.belt_commands()) == n_before + 1, "leaving the zone raises no speed"
    assert rig.core.commanded_mps == pytest.approx(kmh(1.7))


def test_speed_request_above_the_cap_is_refused_with_the_cap():
    rig = Rig()
    rig.running(1.5)
    out = rig.command(K.SET_SPEED, 2.5)
    assert not out.reply.ok and out.reply.code == "invalid"
    assert "2 km/h" in out.reply.message and "speed_kmh" in out.reply.message
    assert rig.core.target_mps == pytest.approx(kmh(1.5))


@pytest.mark.parametrize("value", ["fast", None, float("inf"), True, -1, 0.1])
def test_bad_speed_values_are_refused_naming_the_range(value):
    rig = Rig()
    rig.running(1.5)
    out = rig.command(K.SET_SPEED, value)
    assert not out.reply.ok and "from 0.5 to 2 km/h" in out.reply.message
    assert rig.core.target_mps == pytest.approx(kmh(1.5))


def test_commands_that_go_need_a_therapist_but_anyone_may_stop():
    rig = Rig()
    rig.healthy()
    assert rig.command(K.RESET, authorized=False).reply.code == "unauthorized"
    rig.ready()
    assert rig.command(K.START, 1.0, authorized=False).reply.code == "unauthorized"
    rig.command(K.START, 1.0)
    rig.follow(3)
    assert rig.command(K.SET_SPEED, 1.5, authorized=False).reply.code == "unauthorized"
    assert rig.command(K.SET_SPEED, 0.8, authorized=False).reply.ok, "slowing down needs no login"
    assert rig.command(K.SET_MODE, "forward", authorized=False).reply.code == "unauthorized"
    out = rig.command(K.STOP, authorized=False, actor="visitor")
    assert out.reply.ok and out.state is State.STOPPING
    out = rig.command(K.ESTOP, authorized=False, actor="visitor")
    assert out.state is State.STOPPED and "visitor" in rig.core.reasons["estop_command"]


def test_command_without_an_actor_is_refused():
    rig = Rig()
    rig.healthy()
    out = rig.command(K.RESET, actor=" ")
    assert not out.reply.ok and out.reply.code == "invalid" and out.state is State.STOPPED


def test_controlled_stop_ramps_down_to_ready_without_opening_the_relay():
    rig = Rig()
    rig.running(2.0)
    out = rig.command(K.STOP)
    assert out.state is State.STOPPING and out.belt.action is BeltAction.AUTO_STOP and out.relay_energized
    rig.follow(0.5)
    assert rig.last.state is State.READY and rig.last.relay_energized


def test_controlled_stop_just_after_the_start_ends_only_on_two_standing_readings_after_the_stop():
    """The belt is still speeding up when STOP comes: its last reading (0.1 mph) is below the
    standing threshold, but the next ones, measured before the treadmill had the stop (one of
    them delayed past a poll period by a stall), are not. READY on any of those would make the
    next faster reading a 'belt moving without a start' trip."""
    rig = Rig()
    rig.ready()
    assert rig.command(K.START, 1.5).reply.ok
    rig.t += 0.05
    rig.all_sensors()
    rig.belt(0.0447)  # one count of 0.1 mph: below the standing threshold
    out = rig.command(K.STOP)
    assert out.state is State.STOPPING
    rig.t += 0.002
    assert rig.belt(0.0447).state is State.STOPPING, "a reading measured before the stop reached the belt"
    rig.t += 0.06  # a poll in flight at the stop, its answer delayed by a stall past one poll period
    rig.all_sensors()
    assert rig.belt(0.0447).state is State.STOPPING, "one standing reading after the settle time is not enough"
    rig.t += 0.001
    assert rig.belt(0.0894).state is State.STOPPING and not rig.core.reasons
    for speed in (0.0447, 0.0):
        rig.t += 0.05
        rig.all_sensors()
        out = rig.belt(speed)
    assert out.state is State.READY and out.relay_energized and not rig.core.reasons
    rig.t += 0.05
    rig.all_sensors()
    assert rig.belt(0.0).state is State.READY


def test_controlled_stop_that_does_not_stop_the_belt_trips():
    rig = Rig()
    rig.running(2.0)
    rig.command(K.STOP)
    rig.advance(10.0)  # the belt keeps going: advance() feeds the old speed
    assert rig.last.state is State.STOPPED and "stop_timeout" in rig.core.reasons


def test_belt_started_at_the_console_while_ready_trips():
    rig = Rig()
    rig.ready()
    out = rig.belt(kmh(1.0))
    assert out.state is State.STOPPED and "belt_unbidden" in rig.core.reasons


def test_mode_changes_only_while_the_belt_stands():
    rig = Rig()
    rig.running(1.0)
    out = rig.command(K.SET_MODE, "forward")
    assert not out.reply.ok and out.reply.code == "conflict" and rig.core.mode.value == "reverse"
    rig.command(K.STOP)
    rig.follow(3)
    assert rig.last.state is State.READY
    assert rig.command(K.SET_MODE, "forward").reply.ok and rig.core.mode.value == "forward"
    out = rig.command(K.SET_MODE, "sideways")
    assert out.reply.code == "invalid" and '"reverse" or "forward"' in out.reply.message


def test_tighter_limits_apply_at_once_while_running():
    rig = Rig()
    rig.running(2.0)
    out = rig.command(K.SET_LIMITS, {"reverse_cap_kmh": 1.5})
    assert out.reply.ok
    assert out.belt.action is BeltAction.SET_SPEED and out.belt.belt_speed_mps == pytest.approx(kmh(1.5))
    rig.advance(0.3)  # the belt still runs at 2.0 km/h while it slows: no E-stop for that
    assert rig.last.state is State.RUNNING
    rig.follow(1.0)
    assert rig.last.state is State.RUNNING and rig.speed_mps == pytest.approx(kmh(1.5))
    out = rig.command(K.SET_LIMITS, {"base_stop_mm": 260}, authorized=False, actor="visitor")
    assert out.reply.ok and rig.core.limits.base_stop_mm == 260


def test_looser_limits_wait_for_a_standing_belt():
    rig = Rig()
    rig.running(1.5)
    before = rig.core.limits
    out = rig.command(K.SET_LIMITS, {"base_stop_mm": 220})
    assert out.reply.code == "conflict" and rig.core.limits == before
    rig.command(K.STOP)
    rig.follow(3)
    assert rig.command(K.SET_LIMITS, {"base_stop_mm": 220}, authorized=False).reply.code == "unauthorized"
    assert rig.command(K.SET_LIMITS, {"base_stop_mm": 220}).reply.ok
    assert rig.core.limits == dataclasses.replace(before, base_stop_mm=220)


@pytest.mark.parametrize("change, words", [
    # One range per limit: its own within the installer's ceilings.
    ({"reverse_cap_kmh": 2.5}, "[limits] reverse_cap_kmh = 2.5: must be a number from 0.5 to 2.2 km/h"),
    ({"base_stop_mm": 150}, "must be a number from 200 to 600 mm"),
    ({"warn_margin_mm": "big"}, "[limits] warn_margin_mm = 'big': must be a number from 100 to 500 mm"),
    ({"top_speed": 3}, "option 'top_speed' is not valid in section [limits]"),
    ({"warn_margin_mm": 350}, "beyond [safety] sensor_reach_mm = 800"),
    ({}, "no limit given"),
    ("fast", "must be a table"),
])
def test_bad_limits_are_refused_and_nothing_changes(change, words):
    rig = Rig()
    rig.ready()
    before = rig.core.limits
    out = rig.command(K.SET_LIMITS, change)
    assert not out.reply.ok and out.reply.code == "invalid"
    assert words in out.reply.message
    assert rig.core.limits == before


def test_speed_sensor_link_enforces_the_cap_by_tripping():
    base = Rig().cfg
    cfg = dataclasses.replace(base, treadmill=dataclasses.replace(base.treadmill, protocol="speed-sensor"))
    rig = Rig(cfg)
    rig.ready()
    rig.command(K.START, 2.0)
    assert rig.belt_commands() == [], "a read-only link gets no commands"
    rig.speed_mps = kmh(2.3)
    rig.advance(1.2)
    assert rig.last.state is State.STOPPED and "overspeed" in rig.core.reasons


def test_trip_reasons_stay_latched_until_reset():
    rig = Rig()
    rig.running(1.0)
    rig.estop(True)
    rig.estop(False)
    rig.speed_mps = 0
    rig.advance(1.0)
    assert rig.last.state is State.STOPPED and "estop" in rig.core.reasons
    assert rig.command(K.RESET).reply.ok
    assert rig.core.reasons == {}


def test_cap_in_km_per_hour_matches_the_mode():
    rig = Rig()
    assert rig.core.cap_mps * KMH_PER_MPS == pytest.approx(2.0)


def test_reset_is_refused_while_the_belt_still_brakes_after_a_trip():
    rig = Rig()
    rig.running(2.0)
    rig.estop(True)
    rig.estop(False)
    rig.belt(kmh(1.3))  # still braking
    out = rig.command(K.RESET)
    assert not out.reply.ok and "still moves at 1.30 km/h" in out.reply.message
    rig.belt(0.0)
    assert rig.command(K.RESET).reply.ok


def test_a_link_fault_newer_than_the_reopen_is_kept():
    rig = Rig()
    rig.running(1.0)
    rig._keep(rig.core.on_link_fault("BD", rig.t))
    rig.speed_mps = 0
    reopen_started = rig.t + 0.01
    rig.t += 0.02
    rig._keep(rig.core.on_link_fault("no answer after the reopen", rig.t))
    rig._keep(rig.core.on_link_reopened(reopen_started, rig.t + 0.01))
    assert rig.core.belt.t_fault is not None and "after the reopen" in rig.core.belt.fault_message


def test_an_older_estop_sample_never_overwrites_a_newer_one():
    rig = Rig()
    rig.running(1.0)
    rig._keep(rig.core.on_estop(True, rig.t))
    rig._keep(rig.core.on_estop(False, rig.t - 0.005))  # a stale "closed" edge from the queue
    assert rig.core.estop_open


def test_two_quick_cap_cuts_do_not_turn_into_an_emergency_stop():
    rig = Rig()
    rig.running(2.0)
    assert rig.command(K.SET_LIMITS, {"reverse_cap_kmh": 1.5}).reply.ok
    rig.speed_mps = kmh(1.9)  # still slowing
    rig.advance(0.3)
    assert rig.command(K.SET_LIMITS, {"reverse_cap_kmh": 1.0}).reply.ok
    rig.speed_mps = kmh(1.85)
    out = rig.advance(0.05)
    assert out.state is State.RUNNING, rig.core.reasons


def test_a_belt_creeping_in_ready_trips():
    rig = Rig()
    rig.ready()
    out = rig.belt(0.07)  # 0.25 km/h: below 0.1 m/s, above the standing threshold
    assert out.state is State.STOPPED and "belt_unbidden" in rig.core.reasons


@pytest.mark.parametrize("value", [10 ** 400, -(10 ** 400), 10 ** 12])
def test_huge_numbers_are_refused_as_out_of_range_not_an_exception(value):
    rig = Rig()
    rig.running(1.5)
    out = rig.command(K.SET_SPEED, value, authorized=False, actor="visitor")
    assert out.state is State.RUNNING and out.reply.code in ("invalid", "unauthorized")
    out = rig.command(K.SET_LIMITS, {"base_stop_mm": value})
    assert out.state is State.RUNNING and out.reply.code == "invalid" and "base_stop_mm" in out.reply.message


# ---- a session's end: ramp-down, and a patient's prescription ----------------------------

def test_finish_ramps_the_belt_down_at_the_ramp_rate_then_stops_under_control():
    rig = Rig()
    rig.running(2.0)
    out = rig.command(K.FINISH, authorized=False, actor="session timer")
    assert out.reply.ok and out.state is State.RUNNING and out.relay_energized
    speeds = []
    while rig.last.state is State.RUNNING:
        rig.follow(0.1)
        speeds.append(rig.core.commanded_mps)
        assert len(speeds) < 100, "the ramp-down never ended"
    # 2.0 -> 0.5 km/h at 0.5 km/h/s takes about 3 s, never faster, never rising.
    assert 2.8 <= len(speeds) * 0.1 <= 3.3
    assert all(b <= a for a, b in zip(speeds, speeds[1:]))
    sent = [b.belt_speed_mps for b in rig.belt_commands() if b.action is BeltAction.SET_SPEED]
    assert sent[-1] == pytest.approx(kmh(0.6), abs=kmh(0.11))
    assert rig.belt_commands()[-1].action is BeltAction.AUTO_STOP
    rig.follow(1.0)
    assert rig.last.state is State.READY and rig.last.relay_energized and not rig.events("trip")
    assert [e.code for e in rig.events("state")][-3:] == ["ramp_down", "STOPPING", "READY"]


def test_during_a_ramp_down_a_faster_speed_is_refused_and_a_trip_ends_it():
    rig = Rig()
    rig.running(2.0)
    rig.command(K.FINISH)
    out = rig.command(K.SET_SPEED, 1.5)
    assert out.reply.code == "conflict" and "ramping down" in out.reply.message
    assert rig.command(K.SET_SPEED, 0.5).reply.ok
    rig.estop(True)
    assert rig.last.state is State.STOPPED and not rig.core.ramping_down


def test_finish_on_a_read_only_speed_link_is_refused_rather_than_an_abrupt_stop():
    cfg = example_config()
    rig = Rig(dataclasses.replace(cfg, treadmill=dataclasses.replace(cfg.treadmill, protocol="speed-sensor")))
    rig.ready()
    rig.command(K.START, 1.0)
    out = rig.command(K.FINISH)
    assert out.reply.code == "conflict" and "console" in out.reply.message and out.relay_energized


def test_finish_while_standing_changes_nothing():
    rig = Rig()
    rig.ready()
    out = rig.command(K.FINISH, authorized=False)
    assert out.reply.ok and out.state is State.READY and not rig.core.ramping_down


PRESCRIPTION = {"mode": "reverse", "patient_id": "P-7",
                "limits": {"reverse_cap_kmh": 1.2, "forward_cap_kmh": 1.2, "base_stop_mm": 300,
                           "warn_margin_mm": 200}}


def test_a_tighter_prescription_applies_at_once_on_a_moving_belt():
    rig = Rig()
    rig.running(2.0)
    out = rig.command(K.APPLY_PRESCRIPTION, PRESCRIPTION, authorized=False)
    assert out.reply.ok and "P-7" in out.reply.message
    assert rig.core.limits.reverse_cap_kmh == 1.2 and rig.core.limits.base_stop_mm == 300
    assert out.belt.action is BeltAction.SET_SPEED and out.belt.belt_speed_mps == pytest.approx(kmh(1.2))
    event = rig.events("limits")[-1]
    assert event.figures["patient_id"] == "P-7" and event.figures["mode"] == "reverse"


def test_a_prescription_that_loosens_or_changes_mode_waits_for_a_standing_belt_all_or_nothing():
    rig = Rig()
    rig.running(1.0)
    before = rig.core.limits
    forward = {**PRESCRIPTION, "mode": "forward", "limits": {"forward_cap_kmh": 1.0}}
    for value in (forward, {**PRESCRIPTION, "limits": {"base_stop_mm": 220}}):
        out = rig.command(K.APPLY_PRESCRIPTION, value)
        assert out.reply.code == "conflict" and "stands" in out.reply.message
        assert rig.core.limits == before and rig.core.mode.value == "reverse"
    rig.command(K.STOP)
    rig.follow(3)
    assert rig.command(K.APPLY_PRESCRIPTION, forward, authorized=False).reply.code == "unauthorized"
    assert rig.command(K.APPLY_PRESCRIPTION, forward).reply.ok
    assert rig.core.mode.value == "forward" and rig.core.limits.forward_cap_kmh == 1.0


@pytest.mark.parametrize("value, words", [
    ({**PRESCRIPTION, "mode": "sideways"}, '[prescription] mode = \'sideways\': must be "reverse" or "forward"'),
    ({**PRESCRIPTION, "limits": {"reverse_cap_kmh": 2.5}},
     "reverse_cap_kmh = 2.5: must be a number from 0.5 to 2.2 km/h"),
    ({**PRESCRIPTION, "patient_id": ""}, "[prescription] patient_id"),
    ({"mode": "reverse"}, 'must be an object with "mode", "limits" and "patient_id"'),
    ({**PRESCRIPTION, "confirmed": "yes"}, "[prescription] confirmed = 'yes': must be true or false"),
    ({**PRESCRIPTION, "granted": True}, 'must be an object with "mode", "limits" and "patient_id"'),
])
def test_a_bad_prescription_is_refused_naming_the_field_and_nothing_changes(value, words):
    rig = Rig()
    rig.ready()
    before = (rig.core.limits, rig.core.mode)
    out = rig.command(K.APPLY_PRESCRIPTION, value)
    assert out.reply.code == "invalid" and words in out.reply.message, out.reply.message
    assert (rig.core.limits, rig.core.mode) == before


def test_a_deeply_nested_command_value_is_refused_and_trips_nothing():
    rig = Rig()
    rig.healthy()
    assert rig.command(K.RESET).state is State.READY
    deep: object = {"base_stop_mm": 300}
    for _ in range(3000):
        deep = {"limits": deep}
    out = rig.command(K.SET_LIMITS, deep)
    assert not out.reply.ok and out.reply.code == "invalid"
    assert out.state is State.READY and out.relay_energized and "exception" not in rig.core.reasons


def test_a_start_with_the_patient_inside_the_warn_zone_is_refused_and_nothing_moves():
    rig = Rig()
    rig.gap_mm = 600.0
    rig.ready()
    out = rig.command(K.START, 2.0)
    assert not out.reply.ok and out.reply.code == "conflict" and "inside the warn zone" in out.reply.message
    assert out.state is State.READY and out.belt.action is BeltAction.NONE and rig.core.target_mps == 0.0


def test_a_sample_from_a_sensor_the_config_does_not_name_trips():
    rig = Rig()
    rig.running(1.0)
    out = rig.raw_distance("middle", 900.0)
    assert out.state is State.STOPPED and not out.relay_energized
    assert [e.code for e in out.events if e.kind == "trip"] == ["sensor_unknown"]


def test_an_implausible_belt_speed_trips_and_is_not_taken_as_the_speed():
    rig = Rig()
    rig.running(1.0)
    before = rig.core.belt.speed_mps
    out = rig.belt(-1.0)
    assert out.state is State.STOPPED and [e.code for e in out.events if e.kind == "trip"] == ["belt_implausible"]
    assert rig.core.belt.speed_mps == before


def test_a_stop_on_a_read_only_speed_link_opens_the_safety_circuit():
    base = Rig().cfg
    rig = Rig(dataclasses.replace(base, treadmill=dataclasses.replace(base.treadmill, protocol="speed-sensor")))
    rig.ready()
    assert rig.command(K.START, 1.0).reply.ok
    rig.speed_mps = kmh(1.0)
    rig.advance(0.5)
    out = rig.command(K.STOP, actor="ann")
    assert out.reply.ok and out.reply.message == "stopped by the safety circuit"
    assert out.state is State.STOPPED and not out.relay_energized and "stop_command" in rig.core.reasons
