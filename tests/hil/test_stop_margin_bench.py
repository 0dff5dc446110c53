"""The stop-margin benchmark at two speeds: it still runs, and the belt stops the patient outside the base stop
distance."""

from __future__ import annotations

import pytest

from bench.stop_margin import bench_config, measure_speed
from controller.config import KMH_PER_MPS, load_config
from sim.bench import EXAMPLE_CONFIG

#: Allowance for one machine stall while the belt brakes: the patient model then moves on at the last speed read.
STALL_S = 0.1
#: The controller's decision tick (100 Hz): a stale sensor is noticed within it.
TICK_S = 0.01


@pytest.mark.parametrize("speed_kmh", [1.0, 3.0])
def test_stop_margin_bench_stops_the_carried_patient_outside_the_base_stop_distance(speed_kmh):
    result = measure_speed(speed_kmh, runs=1)

    cfg = result["config"]
    base_mm = cfg["base_stop_mm"]
    assert result["runs"] == 1, result["redone"]
    assert result["trip_codes"] == ["stop_zone"]
    assert result["fell"] == 0
    (run,) = result["per_run"]
    v, running_mps = run["trip_belt_speed_mps"], run["running_mps"]
    # The belt ran at the set speed (whole tenths of mph, rounded down) and never faster before the trip.
    assert speed_kmh / KMH_PER_MPS - 0.045 <= running_mps <= speed_kmh / KMH_PER_MPS
    assert 0 < v <= running_mps + 0.001
    # Tripped inside the stop distance, no later than the sensors' freshness rule allows (two periods and a tick).
    late_mm = 1000 * running_mps * (2 * cfg["sensor_period_s"] + TICK_S) + 1
    assert run["stop_distance_at_trip_mm"] - late_mm <= run["gap_at_trip_mm"] <= run["stop_distance_at_trip_mm"]
    # The belt carried the patient while it braked, and stopped them outside the base stop distance.
    assert base_mm <= run["standstill_gap_mm"] < run["gap_at_trip_mm"]
    assert base_mm <= result["min_gap_mm"] <= run["standstill_gap_mm"]
    assert result["margin_over_base_mm"] == pytest.approx(run["standstill_gap_mm"] - base_mm, abs=0.1)
    assert result["goal_met"] is True
    # The emulated treadmill spends the configured reaction time, then brakes at the configured
    # deceleration, no harder: the stop lands where the formula says (a stall can only bring the patient closer).
    assert run["predicted_gap_mm"] - 1000 * v * STALL_S - 10 <= run["standstill_gap_mm"] \
        <= run["predicted_gap_mm"] + 10


def test_stop_margin_bench_config_changes_the_example_only_as_far_as_the_speed_needs():
    example = load_config(EXAMPLE_CONFIG)
    within_cap, changes = bench_config(example.limits.reverse_cap_kmh)
    assert set(changes) == {"safety.speed_ramp_kmh_per_s"}
    assert within_cap.limits == example.limits and within_cap.sensors == example.sensors

    fast, changes = bench_config(3.0)
    assert fast.limits.reverse_cap_kmh == fast.ceilings.max_reverse_cap_kmh == 3.0
    assert changes["limits.warn_margin_mm"] == fast.limits.warn_margin_mm < example.limits.warn_margin_mm
    # The figures of the stop distance are the project's own.
    assert fast.limits.base_stop_mm == example.limits.base_stop_mm
    assert fast.treadmill == example.treadmill
    assert fast.sensor_period_s == example.sensor_period_s
