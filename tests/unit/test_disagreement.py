"""Two staggered sensors: the disagreement rule allows for the patient's motion between their samples."""

from __future__ import annotations

import dataclasses

import pytest

from controller.safety.types import State
from tests.unit.rig import Rig, example_config

#: A tight tolerance, so that the motion between two staggered samples matters.
TOLERANCE_MM = 30.0


def _rig() -> Rig:
    cfg = example_config()
    cfg = dataclasses.replace(cfg, safety=dataclasses.replace(cfg.safety, sensor_disagree_mm=TOLERANCE_MM))
    rig = Rig(cfg)
    rig.gap_mm = 600.0
    rig.ready()
    return rig


def _walk(rig: Rig, speed_mps: float, seconds: float, lie_mm: float = 0.0) -> None:
    """The patient moves at a steady speed (positive: away from the edge); the sensors sample in turn,
    half a period apart, as the staggered array delivers them. ``lie_mm``: the second reads that much long."""
    left, right = (s.id for s in rig.cfg.sensors)
    half = rig.cfg.sensor_period_s / 2
    end = rig.t + seconds
    turn = 0
    while rig.t < end and rig.last.state is not State.STOPPED:
        rig.t += half
        rig.gap_mm += 1000.0 * speed_mps * half
        rig.belt(0.0)
        if turn % 2 == 0:
            rig.distance(left, rig.gap_mm)
        else:
            rig.distance(right, rig.gap_mm + lie_mm)
        turn += 1


def test_a_patient_moving_between_staggered_samples_is_no_disagreement():
    rig = _rig()
    # A quick step forward: 2 m/s moves the gap 33 mm in half a 33 ms period, more than the tolerance.
    _walk(rig, 2.0, 0.3)
    assert rig.last.state is State.READY, rig.core.reasons
    assert not [e for e in rig.events("fault") + rig.events("trip") if e.code == "sensors_disagree"]
    # The allowance came from the measured speed (33 mm in half a period), held to half the tolerance.
    assert rig.core.disagreement_allowance_mm() == pytest.approx(TOLERANCE_MM / 2)


def test_a_lie_beyond_the_tolerance_and_the_motion_still_trips():
    rig = _rig()
    _walk(rig, 2.0, 0.15)
    assert rig.last.state is State.READY
    # The second sensor now reads 60 mm long: more than the 30 mm tolerance and its 15 mm allowance.
    _walk(rig, 2.0, 0.2, lie_mm=60.0)
    assert rig.last.state is State.STOPPED
    assert "sensors_disagree" in rig.core.reasons
    assert "mm the patient moves between their samples" in rig.core.reasons["sensors_disagree"]


def test_standing_still_the_allowance_is_nothing_and_the_tolerance_is_as_set():
    rig = _rig()
    _walk(rig, 0.0, 0.2)
    assert rig.core.disagreement_allowance_mm() == pytest.approx(0.0, abs=1.0)
    _walk(rig, 0.0, 0.1, lie_mm=TOLERANCE_MM + 5)
    assert rig.last.state is State.STOPPED and "sensors_disagree" in rig.core.reasons


def test_with_no_measured_speed_the_allowance_assumes_the_approach_speed():
    cfg = example_config()
    rig = Rig(cfg)
    left, right = (s.id for s in cfg.sensors)
    rig.distance(left, 800.0)
    rig.t += 0.010
    rig.distance(right, 850.0)
    # Two samples each are too few for a closing speed: the stop distance's assumed approach is used.
    assert rig.core.sensors[left].closing.estimate(rig.t) is None
    assert rig.core.disagreement_allowance_mm() == pytest.approx(1000 * cfg.safety.approach_speed_mps * 0.010)


def test_the_allowance_is_at_most_half_the_tolerance_however_the_samples_fall():
    cfg = example_config()
    rig = Rig(cfg)
    left, right = (s.id for s in cfg.sensors)
    rig.distance(left, 800.0)
    rig.t += 2 * cfg.sensor_period_s  # the other sample at the very edge of freshness
    rig.distance(right, 850.0)
    # 1.6 m/s x 66 ms would be 106 mm; the rule loosens by 75 mm at most.
    assert rig.core.disagreement_allowance_mm() == pytest.approx(cfg.safety.sensor_disagree_mm / 2)
