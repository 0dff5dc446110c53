"""Two rules of the safety core: no reset inside the warn zone, and no belt faster than commanded.

The belt of the override tests is a treadmill in miniature: it takes a speed command after a
link latency, floors it to 0.1 mph, speeds up and brakes at limited rates, and reports its speed
to the nearest 0.1 mph, as the emulator (hardware/sim) and a TrackMaster do.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from controller.safety.types import BeltAction, CommandKind as K, State
from tests.unit.rig import Rig, kmh

MPS_PER_MPH = 0.44704
TENTH_MPH = MPS_PER_MPH / 10


# ---- reset refused inside the warn zone at standstill ------------------------------------------


def _standing_at(rig: Rig, gap_mm: float):
    """The belt stands and the patient stands at gap_mm, both sensors seeing it."""
    rig.speed_mps = 0.0
    rig.gap_mm = gap_mm
    return rig.healthy()


def test_reset_is_refused_while_the_patient_stands_inside_the_warn_zone_and_says_so():
    rig = Rig()
    stop_mm = rig.cfg.limits.base_stop_mm
    warn_mm = stop_mm + rig.cfg.limits.warn_margin_mm
    # Outside the stop distance at standstill (250 mm), inside the warn zone (450 mm): the case seen.
    _standing_at(rig, stop_mm + 17)
    assert not rig.core.causes(), "no cause persists: only the new rule refuses"
    out = rig.command(K.RESET)
    assert not out.reply.ok and out.reply.code == "conflict"
    assert out.state is State.STOPPED and not out.relay_energized
    assert f"patient {stop_mm + 17:.0f} mm from the rear edge is inside the warn zone ({warn_mm:.0f} mm)" \
        in out.reply.message
    assert "step forward, then reset" in out.reply.message
    assert [e.code for e in rig.events("refused")] == ["reset"]
    # On the line still counts as inside; a step forward beyond it lets the reset through.
    _standing_at(rig, warn_mm)
    assert not rig.command(K.RESET).reply.ok
    _standing_at(rig, warn_mm + 10)
    out = rig.command(K.RESET)
    assert out.reply.ok and out.state is State.READY and out.relay_energized


def test_after_a_stop_zone_trip_the_reset_names_the_warn_zone_and_waits_for_a_step_forward():
    rig = Rig()
    rig.running(1.0)
    out = rig.approach(rig.core.stop_distance_mm() - 5)
    assert out.state is State.STOPPED and "stop_zone" in rig.core.reasons
    rig.speed_mps = 0.0
    rig.advance(2.0)  # the belt stands; the patient stays where the trip left them
    out = rig.command(K.RESET)
    assert not out.reply.ok and "inside the warn zone" in out.reply.message
    assert out.reply.message.count("mm from the rear edge") == 1, "one message for the gap, not two"
    _standing_at(rig, 700)
    assert rig.command(K.RESET).reply.ok


def test_with_no_patient_in_view_the_reset_is_allowed_as_before():
    rig = Rig()
    rig.estop(False)
    rig.belt()
    for s in rig.cfg.sensors:
        rig.raw_distance(s.id, 8190, status=11)
    assert rig.core.nearest() == (None, None)
    out = rig.command(K.RESET)
    assert out.reply.ok and out.state is State.READY
    assert not rig.command(K.START, 1.0).reply.ok, "the start still wants a patient in view"


def test_the_warn_zone_of_the_reset_is_the_standstill_one_whatever_the_last_speed():
    rig = Rig()
    rig.running(2.0)  # the warn zone at 2 km/h is far wider than at standstill
    rig.command(K.STOP)
    rig.follow(3.0)
    assert rig.last.state is State.READY
    rig.estop(True)
    rig.estop(False)
    zone = rig.core.reset_warn_zone_mm()
    assert zone == pytest.approx(rig.cfg.limits.base_stop_mm + rig.cfg.limits.warn_margin_mm)
    _standing_at(rig, zone + 5)
    assert rig.command(K.RESET).reply.ok


# ---- console override: belt faster than commanded ----------------------------------------------


class Treadmill:
    """A belt that obeys SET_SPEED after ``latency_s``, floored to 0.1 mph; reports to the nearest 0.1 mph."""

    def __init__(self, rig: Rig, *, accel_mps2: float = 1.0, latency_s: float = 0.06):
        self.rig = rig
        self.accel = accel_mps2
        self.decel = rig.cfg.treadmill.decel_mps2
        self.latency_s = latency_s
        self.v = rig.core.commanded_mps
        self.set_mps = self.v
        self.pending: list[tuple[float, float]] = []
        self.console_mps: float | None = None  # a console that keeps pushing (a key held down)
        self.seen = len(rig.outs)

    def take_commands(self) -> None:
        for out in self.rig.outs[self.seen:]:
            if out.belt.action is BeltAction.SET_SPEED:
                floored = math.floor(round(out.belt.belt_speed_mps / TENTH_MPH, 9)) * TENTH_MPH
                self.pending.append((self.rig.t + self.latency_s, floored))
            elif out.belt.action is BeltAction.AUTO_STOP:
                self.pending.append((self.rig.t + self.latency_s, 0.0))
        self.seen = len(self.rig.outs)

    def console(self, speed_mps: float) -> None:
        """Someone at the console sets a speed, once."""
        self.set_mps = speed_mps

    def run(self, dt_s: float, gap_mm: float | None = None) -> None:
        """dt_s of 10 ms steps: belt reading, both sensors, a tick; the belt follows its set speed
        (and the patient walks toward gap_mm, if given)."""
        rig = self.rig
        end = rig.t + dt_s
        while rig.t < end - 1e-9 and rig.last.state is not State.STOPPED:
            rig.t += 0.01
            self.take_commands()
            while self.pending and self.pending[0][0] <= rig.t:
                self.set_mps = self.pending.pop(0)[1]
            if self.console_mps is not None:
                self.set_mps = max(self.set_mps, self.console_mps)
            step = (self.accel if self.set_mps > self.v else self.decel) * 0.01
            self.v = min(self.set_mps, self.v + step) if self.set_mps > self.v else max(self.set_mps, self.v - step)
            rig.speed_mps = round(self.v / TENTH_MPH) * TENTH_MPH
            rig.belt()
            if gap_mm is not None:  # the patient moves there a few mm a step, both sensors seeing it
                rig.gap_mm += max(-3.0, min(3.0, gap_mm - rig.gap_mm))
            rig.all_sensors()
            rig.tick()
        self.take_commands()


def _overrides(rig: Rig) -> list:
    return [e for e in rig.events("warn") if e.code == "console_override"]


def _running(speed_kmh: float) -> tuple[Rig, Treadmill]:
    rig = Rig()
    rig.running(speed_kmh)
    belt = Treadmill(rig)
    belt.run(1.0)
    assert rig.last.state is State.RUNNING and not _overrides(rig)
    return rig, belt


def test_a_console_push_under_the_cap_is_a_warning_and_the_commanded_speed_is_reasserted():
    rig, belt = _running(1.5)
    n_before = len(rig.belt_commands())
    belt.console(kmh(1.9))  # the demo's "console pushes speed up": 1.5 -> 1.9 km/h, cap 2.0
    belt.run(1.5)
    assert rig.last.state is State.RUNNING, "corrected at once: no trip"
    warns = _overrides(rig)
    assert len(warns) == 1
    assert "faster than the commanded 1.50 km/h" in warns[0].message and "belt at 1." in warns[0].message
    resent = rig.belt_commands()[n_before:]
    assert resent and all(c.action is BeltAction.SET_SPEED and c.belt_speed_mps == pytest.approx(kmh(1.5))
                          for c in resent)
    assert belt.v == pytest.approx(kmh(1.5), abs=TENTH_MPH)
    assert not rig.last.warning, "the warning ends with the override"
    assert not rig.events("trip")


def test_a_warning_flag_shows_while_the_belt_runs_faster_than_commanded():
    rig, _ = _running(1.5)
    rig.speed_mps = kmh(1.9)
    out = rig.belt()
    assert out.warning and out.belt.action is BeltAction.SET_SPEED
    assert out.belt.belt_speed_mps == pytest.approx(kmh(1.5))
    assert [e.code for e in out.events] == ["console_override"]


def test_a_console_that_keeps_pushing_trips_after_the_grace_time_resending_meanwhile():
    rig, belt = _running(1.5)
    n_before = len(rig.belt_commands())
    belt.console_mps = kmh(1.9)
    t_push = rig.t
    belt.run(3.0)
    assert rig.last.state is State.STOPPED and "overspeed" in rig.core.reasons
    assert "faster than the commanded 1.50 km/h" in rig.core.reasons["overspeed"]
    trip = rig.events("trip")[-1]
    assert trip.code == "overspeed"
    warns = _overrides(rig)
    assert len(warns) == 1, "one warning per episode"
    grace = rig.cfg.safety.overspeed_grace_s
    assert trip.t_mono - warns[0].t_mono == pytest.approx(grace, abs=0.011)
    assert trip.t_mono - t_push <= grace + 0.5  # the belt needs a moment to pass the tolerance
    resent = [c for c in rig.belt_commands()[n_before:] if c.action is BeltAction.SET_SPEED]
    # At once and every OVERSPEED_RESEND_S (0.25 s) while it lasts: about four in the grace time.
    assert 4 <= len(resent) <= 5
    assert all(c.belt_speed_mps <= kmh(1.5) + 1e-9 for c in resent)


def test_two_pushes_are_two_episodes_each_warned_once():
    rig, belt = _running(1.5)
    belt.console(kmh(1.9))
    belt.run(1.5)
    belt.console(kmh(1.9))
    belt.run(1.5)
    assert len(_overrides(rig)) == 2 and rig.last.state is State.RUNNING


@pytest.mark.parametrize("slowdown", ["warn_zone", "speed_down", "ramp_down", "cap_cut"])
def test_a_normal_slowdown_is_never_an_override(slowdown):
    rig, belt = _running(2.0)
    if slowdown == "warn_zone":
        warn_mm = rig.core.stop_distance_mm() + rig.cfg.limits.warn_margin_mm
        belt.run(2.0, gap_mm=warn_mm - 30)
        assert [e.code for e in rig.events("warn")] == ["warn_zone"]
    elif slowdown == "speed_down":
        assert rig.command(K.SET_SPEED, 0.5).reply.ok  # 2.0 -> 0.5 km/h: the belt brakes for 0.4 s
        belt.run(2.0)
    elif slowdown == "ramp_down":
        assert rig.command(K.FINISH).reply.ok
        belt.run(5.0)
        assert rig.last.state in (State.STOPPING, State.READY)
    else:
        assert rig.command(K.SET_LIMITS, {"reverse_cap_kmh": 0.5}).reply.ok
        belt.run(2.0)
    assert not _overrides(rig)
    assert not rig.events("trip")
    assert not [e for e in rig.events("warn") if e.code == "overspeed"]


def test_without_the_braking_allowance_the_speed_down_would_have_looked_like_an_override():
    """The slowdown test above is not vacuous: the belt does run faster than commanded + tolerance."""
    rig, belt = _running(2.0)
    assert rig.command(K.SET_SPEED, 0.5).reply.ok
    fastest_over = 0.0
    for _ in range(60):
        belt.run(0.01)
        fastest_over = max(fastest_over, rig.core.belt.speed_mps - rig.core.commanded_mps)
    assert fastest_over > rig.cfg.safety.overspeed_tolerance_kmh / 3.6
    assert not _overrides(rig)


def test_a_belt_still_speeding_up_after_the_start_is_no_override():
    rig = Rig()
    rig.ready()
    assert rig.command(K.START, 2.0).reply.ok
    belt = Treadmill(rig, accel_mps2=0.5)
    belt.run(6.0)
    assert rig.last.state is State.RUNNING and not _overrides(rig)
    assert belt.v == pytest.approx(kmh(2.0), abs=TENTH_MPH)


def test_a_read_only_link_keeps_the_cap_rule_only():
    base = Rig().cfg
    cfg = dataclasses.replace(base, treadmill=dataclasses.replace(base.treadmill, protocol="speed-sensor"))
    rig = Rig(cfg)
    rig.ready()
    assert rig.command(K.START, 1.5).reply.ok
    rig.speed_mps = kmh(1.9)  # commanded speed means nothing here: under the cap + tolerance is fine
    rig.advance(2.0)
    assert rig.last.state is State.RUNNING and not rig.events("warn") and not rig.last.warning
    assert rig.belt_commands() == []
    rig.speed_mps = kmh(2.3)
    rig.advance(1.2)
    assert rig.last.state is State.STOPPED and "overspeed" in rig.core.reasons
