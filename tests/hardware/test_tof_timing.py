"""The pure rules of phase control: period and phase from timestamps, whom to delay and by how much."""

from __future__ import annotations

import random

import pytest

from hardware.tof_timing import (
    SampleClock,
    missed_result_t,
    phase_errors_s,
    rephase_delay_s,
    slot_offsets_s,
)

PERIOD_S = 0.020


def fed(stamps: list[float], nominal_s: float = PERIOD_S) -> SampleClock:
    clock = SampleClock(nominal_s)
    for t in stamps:
        clock.add(t)
    return clock


def test_sample_clock_uses_the_nominal_period_until_it_has_measured_one():
    clock = fed([100.0, 100.021])
    assert clock.measured_period_s is None
    assert clock.period_s == PERIOD_S
    assert clock.latest_t == pytest.approx(100.020)  # the later stamp may be late: the earlier decides


def test_sample_clock_measures_a_period_off_nominal_through_missed_samples():
    actual_s = 1.03 * PERIOD_S
    stamps = [100.0 + i * actual_s for i in range(12) if i not in (3, 7, 8)]  # three missed
    clock = fed(stamps)
    assert clock.measured_period_s == pytest.approx(actual_s, rel=1e-9)
    assert clock.latest_t == pytest.approx(stamps[-1])


def test_sample_clock_sees_through_late_timestamps():
    # Polled read times come up to 2 ms after the result: the period averages out, the phase
    # is the earliest projection.
    rng = random.Random(7)
    actual_s = 0.97 * PERIOD_S
    results = [50.0 + i * actual_s for i in range(40)]
    clock = fed([t + rng.uniform(0.0, 0.002) for t in results])
    assert clock.measured_period_s == pytest.approx(actual_s, rel=0.01)
    assert results[-1] <= clock.latest_t <= results[-1] + 0.001


def test_one_late_stamp_hardly_moves_the_measured_period():
    stamps = [20.0 + i * PERIOD_S for i in range(32)]
    stamps[-1] += 0.004  # the last edge handled 4 ms late
    clock = fed(stamps)
    assert clock.measured_period_s == pytest.approx(PERIOD_S, rel=0.003)
    assert clock.latest_t == pytest.approx(stamps[-2] + PERIOD_S, abs=1e-4)  # the others decide


def test_sample_clock_restart_keeps_the_period_and_starts_the_phase_afresh():
    clock = fed([10.0 + i * PERIOD_S for i in range(10)])
    measured_s = clock.measured_period_s
    clock.restarted()
    assert clock.samples_since_restart == 0 and clock.latest_t is None
    clock.add(10.5)  # a new phase: not an interval of the old one
    clock.add(10.5 + PERIOD_S)
    assert clock.measured_period_s == pytest.approx(measured_s)
    assert clock.samples_since_restart == 2
    assert clock.latest_t == pytest.approx(10.5 + PERIOD_S)


@pytest.mark.parametrize("periods", [1.5, 0.5, 2.3])
def test_sample_clock_drops_an_interval_that_is_no_whole_number_of_periods(periods):
    last_t = 1.0 + (1 + periods) * PERIOD_S
    clock = fed([1.0, 1.0 + PERIOD_S, last_t])
    assert clock.samples_since_restart == 1
    assert clock.latest_t == pytest.approx(last_t)


@pytest.mark.parametrize("nominal_s", [0.0, -0.02])
def test_sample_clock_needs_a_positive_period(nominal_s):
    with pytest.raises(ValueError, match="nominal_period_s must be > 0"):
        SampleClock(nominal_s)


def test_slots_spread_evenly_or_all_in_phase():
    assert slot_offsets_s(0.03, 3, stagger=True) == pytest.approx([0.0, 0.01, 0.02])
    assert slot_offsets_s(0.03, 3, stagger=False) == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(("b_at_s", "error_s"), [
    (0.010, 0.0),  # exactly half a period after A
    (0.011, 0.001),  # late
    (0.009, -0.001),  # early
    (-0.009, 0.001),  # B's latest came before A's: the same phase as 0.011
    (0.029, -0.001),  # a whole period later: the same phase as 0.009
])
def test_phase_error_is_against_the_slot_and_wrapped(b_at_s, error_s):
    offsets_s = slot_offsets_s(PERIOD_S, 2, stagger=True)
    errors = phase_errors_s([0.0, b_at_s], [PERIOD_S, PERIOD_S], offsets_s)
    assert errors == pytest.approx([0.0, error_s])


def test_an_early_sensor_is_delayed_itself():
    errors = [0.0, -0.002]
    options = {"tolerance_s": 0.001, "max_delay_s": 0.005}
    assert rephase_delay_s(errors, [PERIOD_S] * 2, 1, **options) == pytest.approx(0.002)
    assert rephase_delay_s(errors, [PERIOD_S] * 2, 0, **options) is None


def test_a_late_sensor_has_the_other_delayed_instead():
    errors = [0.0, 0.002]
    options = {"tolerance_s": 0.001, "max_delay_s": 0.005}
    assert rephase_delay_s(errors, [PERIOD_S] * 2, 0, **options) == pytest.approx(0.002)
    assert rephase_delay_s(errors, [PERIOD_S] * 2, 1, **options) is None


def test_no_restart_within_tolerance_and_never_more_than_the_largest_delay():
    options = {"tolerance_s": 0.001, "max_delay_s": 0.005}
    assert rephase_delay_s([0.0, -0.0009], [PERIOD_S] * 2, 1, **options) is None
    assert rephase_delay_s([0.0, -0.009], [PERIOD_S] * 2, 1, **options) == pytest.approx(0.005)


def test_a_sensor_running_fast_is_held_back_past_its_slot():
    # It will drift early again: starting it late by most of the tolerance spaces the restarts.
    options = {"tolerance_s": 0.001, "max_delay_s": 0.005}
    delay_s = rephase_delay_s([0.0, -0.002], [PERIOD_S, 0.97 * PERIOD_S], 1, **options)
    assert delay_s == pytest.approx(0.002 + 0.00075)


def test_a_result_found_without_an_edge_is_dated_to_the_last_whole_period():
    assert missed_result_t(10.0, 0.02, 10.026) == pytest.approx(10.02)
    assert missed_result_t(10.0, 0.02, 10.045) == pytest.approx(10.04)
    assert missed_result_t(10.0, 0.02, 10.01) == pytest.approx(10.01)  # never after now
