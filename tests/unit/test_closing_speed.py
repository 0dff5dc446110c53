"""The patient's own closing speed: its estimate, its fallback, and what it does to the stop distance."""

from __future__ import annotations

import copy
import dataclasses
import math
import random

import pytest
from hypothesis import given, settings, strategies as st

from controller.config import KMH_PER_MPS, stop_distance_mm
from controller.safety.approach import OUTLIER_MM, WINDOW, ClosingSpeed
from controller.safety.core import SafetyCore
from controller.safety.types import BeltAction, CommandKind as K, EventKind, State
from tests.unit.rig import Rig, example_config, kmh

PERIOD_S = 0.033
FALLBACK_MPS = 1.6


def _fit(samples: list[tuple[float, float]]) -> float | None:
    est = ClosingSpeed(PERIOD_S)
    for t, gap in samples:
        est.add(t, gap)
    return est.estimate(samples[-1][0])


def test_steady_walking_with_sway_and_noise_gives_a_small_closing_speed():
    """±40 mm of sway at 1 Hz is at most 0.25 m/s; ±15 mm of noise moves a 4-sample slope by at most 0.36 m/s."""
    rng = random.Random(7)
    sway_mps = 2 * math.pi * 1.0 * 0.040
    bound = sway_mps + 0.36 + 1e-9
    samples = [(k * PERIOD_S, 700 + 40 * math.sin(2 * math.pi * k * PERIOD_S) + rng.uniform(-15, 15))
               for k in range(3000)]
    estimates = [_fit(samples[k - WINDOW + 1:k + 1]) for k in range(WINDOW - 1, len(samples))]
    assert None not in estimates
    assert max(abs(e) for e in estimates) <= bound
    assert max(estimates) > 0.3, "the noise really was there"


def test_a_lurch_is_measured_within_three_sensor_periods():
    speed_mps = 1.2
    steady = [(k * PERIOD_S, 700.0) for k in range(10)]
    onset = steady[-1][0]
    ramp = [(onset + k * PERIOD_S, 700.0 - 1000 * speed_mps * k * PERIOD_S) for k in range(1, 5)]
    after = [_fit((steady + ramp[:n])[-WINDOW:]) for n in range(1, 5)]
    assert after[0] < after[1] < speed_mps - 1e-6, "two periods in, the estimate is still catching up"
    assert after[2] == pytest.approx(speed_mps) and after[3] == pytest.approx(speed_mps)


def test_an_estimate_needs_a_full_window_of_fresh_consecutive_samples():
    est = ClosingSpeed(PERIOD_S)
    for k in range(WINDOW - 1):
        est.add(k * PERIOD_S, 700.0)
    assert est.estimate((WINDOW - 2) * PERIOD_S) is None, "too few samples"
    est.add((WINDOW - 1) * PERIOD_S, 700.0)
    assert est.estimate((WINDOW - 1) * PERIOD_S) == pytest.approx(0.0)
    assert est.estimate((WINDOW + 2) * PERIOD_S) is None, "the newest sample is older than two periods"
    est.add((WINDOW + 4) * PERIOD_S, 700.0)
    assert est.estimate((WINDOW + 4) * PERIOD_S) is None, "a missed sample leaves a hole the line would bridge"
    est.clear()
    assert est.estimate((WINDOW + 4) * PERIOD_S) is None


def test_a_sample_off_any_line_a_person_walks_makes_the_estimate_implausible():
    samples = [(k * PERIOD_S, 700.0) for k in range(WINDOW)]
    samples[1] = (samples[1][0], 700.0 + 2.5 * OUTLIER_MM)
    assert _fit(samples) is None
    samples[1] = (samples[1][0], 700.0 + 0.5 * OUTLIER_MM)
    assert _fit(samples) is not None


def test_a_stale_or_implausible_estimate_falls_back_to_the_approach_speed():
    rig = Rig()
    rig.running(2.0)
    measured, used = rig.core.closing_speed_mps()
    assert measured is not None and abs(measured) < 0.05 and used == measured
    carried = rig.core.stop_distance_mm()
    v = rig.core.speed_for_distance_mps()
    # One sensor's reading jumps 100 mm away and back: no line a person walks; the estimate is implausible.
    rig.t += 0.01
    rig.distance("left", rig.gap_mm + 100)
    rig.t += 0.01
    out = rig.distance("left", rig.gap_mm)
    assert rig.core.closing_speed_mps() == (None, FALLBACK_MPS)
    fallback = stop_distance_mm(v, 250, rig.cfg.sensor_period_s, 0.15, 1.0, FALLBACK_MPS)
    assert rig.core.stop_distance_mm() == pytest.approx(fallback) and fallback > carried + 50
    assert out.state is State.RUNNING, "the patient is still outside even the fallback's stop distance"
    # Fresh consecutive samples bring the measured estimate back.
    rig.advance(WINDOW * rig.cfg.sensor_period_s + 0.02)
    assert rig.core.closing_speed_mps()[0] is not None
    assert rig.core.stop_distance_mm() == pytest.approx(carried, abs=1.0)


def test_the_patients_own_approach_counts_only_while_the_belt_may_move():
    rig = Rig()
    rig.ready()
    assert rig.core.state is State.READY
    assert rig.core.approach_mps() == 0.0 and rig.core.stop_distance_mm() == 250.0
    assert rig.command(K.START, 1.0).reply.ok
    rig.follow(2.0)
    assert rig.core.approach_mps() == rig.core.closing_speed_mps()[1]


def test_a_lurch_widens_the_stop_distance_and_the_trip_records_the_closing_speed():
    rig = Rig()
    rig.running(1.0)
    carried = rig.core.stop_distance_mm()
    lurch_mps = 1.2
    out = rig.last
    n = len(rig.outs)
    while out.state is State.RUNNING:
        rig.gap_mm -= 1000 * lurch_mps * 0.01
        rig.t += 0.01
        rig.speed_mps = rig.core.commanded_mps
        rig.belt()
        rig.all_sensors()
        out = rig.tick()
    trip = next(e for o in rig.outs[n:] for e in o.events if e.kind == EventKind.TRIP)
    f = trip.figures
    assert trip.code == "stop_zone" and f["gap_mm"] > carried + 100
    assert f["closing_speed_mps"] == pytest.approx(lurch_mps, abs=0.01)
    assert f["v_close_mps"] == pytest.approx(lurch_mps, abs=0.01) and not f["closing_speed_fallback"]
    assert f["reaction_term_mm"] == pytest.approx(1000 * f["v_close_mps"] * (0.033 + 0.15), abs=1.0)


@settings(max_examples=300, deadline=None)
@given(st.floats(0.0, 0.7), st.floats(-2.0, 3.0), st.floats(0.0, 2.0), st.booleans())
def test_stop_distance_never_shrinks_when_the_closing_speed_rises(belt_mps, closing_mps, extra_mps, away):
    cfg = example_config()
    if away:
        cfg = dataclasses.replace(cfg, treadmill=dataclasses.replace(
            cfg.treadmill, protocol="woodway", reverse_mode_carries="away_from_edge"))
    core = SafetyCore(cfg, 0.0)
    lower = core.stop_distance_mm(belt_mps, closing_mps)
    higher = core.stop_distance_mm(belt_mps, closing_mps + extra_mps)
    assert higher >= lower - 1e-9
    # The braking term is the belt's whichever way it carries, and the base is never lost.
    assert lower >= 250 + 1000 * belt_mps ** 2 / 2.0 - 1e-9


# Samples near where the patient walks (900 mm), sometimes late, sometimes off any line.
samples = st.lists(st.tuples(st.floats(0.001, 0.08), st.floats(800, 1000), st.sampled_from(["left", "right"])),
                   min_size=1, max_size=40)


_RUNNING: dict[float, Rig] = {}


def _running_rig(speed_kmh: float) -> Rig:
    """A rig running at this speed: built once, copied for each example (the core is pure)."""
    if speed_kmh not in _RUNNING:
        rig = Rig()
        rig.running(speed_kmh)
        rig.outs.clear()
        _RUNNING[speed_kmh] = rig
    return copy.deepcopy(_RUNNING[speed_kmh])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([0.5, 1.0, 1.5, 2.0]), samples)
def test_a_stale_estimate_never_lowers_the_stop_distance_below_the_fallback(speed_kmh, feed):
    rig = _running_rig(speed_kmh)
    for dt, gap, sensor in feed:
        rig.t += dt
        rig.belt()
        rig.distance(sensor, gap)
        core = rig.core
        if core.state is State.STOPPED:
            break
        measured, used = core.closing_speed_mps()
        v = core.speed_for_distance_mps()
        if measured is None:
            assert used == FALLBACK_MPS
            assert core.stop_distance_mm() >= stop_distance_mm(v, 250, rig.cfg.sensor_period_s, 0.15, 1.0,
                                                               FALLBACK_MPS) - 1e-9
        assert core.stop_distance_mm() >= stop_distance_mm(v, 250, rig.cfg.sensor_period_s, 0.15, 1.0) - 1e-9


def _away_rig() -> Rig:
    cfg = example_config()
    cfg = dataclasses.replace(cfg, treadmill=dataclasses.replace(
        cfg.treadmill, protocol="woodway", reverse_mode_carries="away_from_edge"))
    return Rig(cfg)


def test_a_belt_carrying_away_only_sounds_in_the_warn_zone():
    rig = _away_rig()
    rig.running(1.2)
    assert not rig.core.carries_toward_edge()
    target = rig.core.target_mps
    n = len(rig.outs)
    # The patient steps back into the warn zone, slowly enough to stay outside the stop zone.
    warn_at = rig.core.stop_distance_mm() + rig.cfg.limits.warn_margin_mm
    rig.approach(warn_at - 20, step_mm=1.0)
    rig.advance(0.5)
    outs = rig.outs[n:]
    assert any(o.warning for o in outs) and rig.last.warning, "the buzzer sounds"
    assert rig.core.state is State.RUNNING and rig.core.target_mps == target
    assert not any(o.belt.action is BeltAction.SET_SPEED and o.belt.belt_speed_mps < target - 1e-9 for o in outs)
    assert any(e.code == "warn_zone" for o in outs for e in o.events)


def test_a_belt_carrying_toward_the_edge_is_slowed_one_step_in_the_warn_zone():
    rig = Rig()
    rig.running(1.5)
    target = rig.core.target_mps
    warn_at = rig.core.stop_distance_mm() + rig.cfg.limits.warn_margin_mm
    rig.approach(warn_at - 20, step_mm=1.0)
    assert rig.core.target_mps == pytest.approx(target - kmh(rig.cfg.safety.warn_slowdown_kmh))


def test_on_a_belt_carrying_away_the_belt_adds_nothing_to_the_closing_speed():
    rig = _away_rig()
    rig.running(1.2)
    v = rig.core.speed_for_distance_mps()
    assert v == pytest.approx(1.2 / KMH_PER_MPS, abs=0.01)
    # The patient keeps pace: only the braking term of the belt remains.
    assert rig.core.stop_distance_mm() == pytest.approx(250 + 1000 * v * v / 2.0, abs=0.5)


def test_a_belt_carrying_away_is_not_ramped_up_while_the_patient_is_in_the_warn_zone():
    rig = _away_rig()
    rig.ready()
    assert rig.command(K.START, 1.6).reply.ok
    warn_at = rig.core.stop_distance_mm(kmh(1.6)) + rig.cfg.limits.warn_margin_mm
    rig.approach(warn_at - 10, step_mm=3.0)
    assert rig.last.warning and rig.core.commanded_mps < rig.core.target_mps, "caught mid-ramp"
    held = rig.core.commanded_mps
    rig.advance(1.0)
    assert rig.core.in_warn and rig.core.commanded_mps == held
    assert not any(o.belt.action is BeltAction.SET_SPEED and o.belt.belt_speed_mps > held + 1e-9
                   for o in rig.outs[-100:])
