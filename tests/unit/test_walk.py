"""Long walks on the pure core in simulated time: sway and sensor noise never trip, and the warn zone holds still.

CI walks WALK_MINUTES (default 2.5) at each speed, 10 minutes in all; ``make bench`` (bench.approach)
walks 10 minutes at each.
"""

from __future__ import annotations

import dataclasses
import os

import pytest

from sim.walk import walk
from tests.unit.rig import example_config

WALK_MINUTES = float(os.environ.get("WALK_MINUTES", "2.5"))
SPEEDS_KMH = (0.5, 1.0, 1.5, 2.0)


@pytest.mark.parametrize("speed_kmh", SPEEDS_KMH)
def test_walking_with_sway_and_noise_never_trips_at_any_speed(speed_kmh):
    """±40 mm of sway at 1 Hz and ±15 mm of sensor noise, a patient walking 120 mm beyond the warn line."""
    result = walk(example_config(), speed_kmh, WALK_MINUTES, sway_mm=40, sway_hz=1.0, noise_mm=15,
                  seed=int(speed_kmh * 10))
    assert result.trips == []
    assert result.warn_episodes == 0, f"{result.warn_episodes_per_min:.1f} warn episodes per minute"
    assert result.min_gap_mm < result.walking_gap_mm - 35, "the patient really swayed"


def test_a_walk_trips_when_the_patient_sways_into_the_stop_distance():
    """The same walk with a sway no patient keeps walking through: the walk can fail."""
    result = walk(example_config(), 1.0, 0.2, sway_mm=400, sway_hz=0.5, seed=1)
    assert [code for _, code, _ in result.trips] == ["stop_zone"]


def test_a_patient_stepping_back_on_a_belt_carrying_away_trips_before_the_edge():
    cfg = example_config()
    cfg = dataclasses.replace(cfg, treadmill=dataclasses.replace(
        cfg.treadmill, protocol="woodway", reverse_mode_carries="away_from_edge"))
    result = walk(cfg, 1.2, 0.3, sway_mm=0, noise_mm=0, lurch=(3.0, 0.4, 30.0))
    assert [code for _, code, _ in result.trips] == ["stop_zone"]
    assert result.trip_closing_mps == 0.4 and result.true_trip_gap_mm >= result.least_trip_gap_mm
