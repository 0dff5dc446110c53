"""Form errors a therapist can act on: every bad field named in one answer, each with its bare ``key``,
in plain words with one range, and a reach refusal that names the largest cap these distances allow."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.config import Ceilings, limits_reach_errors, reach_errors
from controller.safety.checks import check_limits, check_prescription, limit_ranges
from controller.therapy.patients import check_patient, describe_fields
from tests.hil.test_sessions import PATIENT
from tests.unit.rig import example_config

#: Words no therapist should meet in a form error: Python's type names and the config's section names.
TECHNICAL = re.compile(r"\b(float|int|str|bool|NoneType|got)\b|\[ceilings\]")


def _limits_errors(value, cfg=None):
    cfg = cfg or example_config()
    errors: list = []
    assert check_limits(value, cfg.limits, cfg, errors) is None
    return errors


def test_every_bad_limit_is_named_at_once_with_its_key_and_one_plain_range():
    errors = _limits_errors({"reverse_cap_kmh": 9, "forward_cap_kmh": "fast", "base_stop_mm": 150,
                             "warn_margin_mm": 99.5, "turbo": 1})
    by_key = {e.key: e for e in errors}
    assert set(by_key) == {"turbo", "reverse_cap_kmh", "forward_cap_kmh", "base_stop_mm", "warn_margin_mm"}
    # Each limit's one range is its own within the installer's ceilings (2.2 km/h, 200 mm, 100 mm).
    assert by_key["reverse_cap_kmh"].message == "must be a number from 0.5 to 2.2 km/h"
    assert by_key["forward_cap_kmh"].message == "must be a number from 0.5 to 2.2 km/h"
    assert by_key["base_stop_mm"].message == "must be a number from 200 to 600 mm"
    assert by_key["warn_margin_mm"].message == "must be a number from 100 to 500 mm"
    for e in errors:
        assert e.as_dict()["key"] == e.key and e.as_dict()["field"] == f"[limits] {e.key}"
        assert not TECHNICAL.search(e.message), e.message


def test_a_cap_below_the_minimum_speed_is_worded_as_the_same_one_range():
    cfg = example_config()
    cfg = dataclasses.replace(cfg, safety=dataclasses.replace(cfg.safety, min_speed_kmh=0.8))
    (error,) = _limits_errors({"reverse_cap_kmh": 0.6}, cfg)
    assert error.key == "reverse_cap_kmh" and error.message == "must be a number from 0.8 to 2.2 km/h"
    assert limit_ranges(cfg)["reverse_cap_kmh"] == {"min": 0.8, "max": 2.2, "unit": "km/h"}


def test_the_reach_check_runs_beside_a_refused_cap_when_the_distances_are_fine():
    # A base stop of 300 mm is fine on its own; with it the forward cap of 2.2 km/h is beyond reach.
    errors = _limits_errors({"reverse_cap_kmh": 9, "base_stop_mm": 300})
    assert [e.key for e in errors] == ["reverse_cap_kmh", "forward_cap_kmh"]
    assert errors[0].message == "must be a number from 0.5 to 2.2 km/h"
    assert errors[1].message.startswith("with these distances the forward cap can be at most ")
    assert "[safety] sensor_reach_mm = 800" in errors[1].message


def test_the_reach_check_waits_for_a_refused_distance():
    # Its figures would be made of a value already refused: only the distance is named.
    errors = _limits_errors({"base_stop_mm": 50, "warn_margin_mm": 450})
    assert [e.key for e in errors] == ["base_stop_mm"]


def test_valid_limits_still_pass_unchanged():
    cfg = example_config()
    errors: list = []
    new = check_limits({"reverse_cap_kmh": 1.5, "warn_margin_mm": 150}, cfg.limits, cfg, errors)
    assert errors == []
    assert new == dataclasses.replace(cfg.limits, reverse_cap_kmh=1.5, warn_margin_mm=150.0)


def test_a_prescription_names_every_bad_part_at_once():
    cfg = example_config()
    errors: list = []
    value = {"patient_id": "", "mode": "sideways", "limits": {"reverse_cap_kmh": 9, "base_stop_mm": 1}}
    assert check_prescription(value, cfg.limits, cfg, errors) is None
    assert [e.field for e in errors] == ["[prescription] patient_id", "[prescription] mode",
                                         "[limits] reverse_cap_kmh", "[limits] base_stop_mm"]
    assert [e.key for e in errors] == ["patient_id", "mode", "reverse_cap_kmh", "base_stop_mm"]


def test_a_patient_profile_names_every_bad_field_at_once_including_the_reach():
    # A blank name and a fractional count do not hide that the sensors cannot guard these distances.
    bad = {**PATIENT, "display_name": "", "sessions_per_day": 1.5, "target_min": 0,
           "speed_cap_kmh": 2.0, "base_stop_mm": 600, "warn_margin_mm": 500}
    patient, errors = check_patient(bad, example_config())
    assert patient is None
    by_key = {e.key: e.message for e in errors}
    assert set(by_key) == {"display_name", "sessions_per_day", "target_min", "speed_cap_kmh"}
    assert by_key["sessions_per_day"] == "must be a whole number from 1 to 4"
    assert by_key["target_min"] == "must be a number from 1 to 60 min"
    assert by_key["speed_cap_kmh"].startswith("with these distances no reverse cap fits, not even 0.5 km/h: shorten ")
    for message in by_key.values():
        assert not TECHNICAL.search(message), message


def test_a_patients_cap_is_checked_against_the_range_of_its_mode_beside_other_errors():
    cfg = example_config()
    cfg = dataclasses.replace(cfg, ceilings=dataclasses.replace(cfg.ceilings, max_forward_cap_kmh=2.6))
    _, errors = check_patient({**PATIENT, "speed_cap_kmh": 2.4, "target_min": 99}, cfg)
    assert {e.key: e.message for e in errors} == {
        "speed_cap_kmh": "must be a number from 0.5 to 2.2 km/h in reverse mode",
        "target_min": "must be a number from 1 to 60 min"}
    assert describe_fields(cfg)["speed_cap_kmh"]["by_mode"] == {"reverse": {"min": 0.5, "max": 2.2},
                                                               "forward": {"min": 0.5, "max": 2.6}}
    # An invalid mode: the widest range, and the mode's own error.
    _, errors = check_patient({**PATIENT, "mode": "sideways", "speed_cap_kmh": 2.7}, cfg)
    assert {e.key: e.message for e in errors} == {"mode": 'must be one of "reverse", "forward"',
                                                  "speed_cap_kmh": "must be a number from 0.5 to 2.6 km/h"}


# --- the reach refusal names the fix ---------------------------------------------------------------

SUGGESTED = re.compile(r"the (reverse|forward) cap can be at most ([0-9.]+) km/h")
SHORTEN = re.compile(r"the base stop distance to at most ([0-9.]+) mm")
SHORTEN_BOTH = re.compile(r"the base stop distance plus the warn margin to at most ([0-9.]+) mm")


def _wide_config(approach_mps: float, reach_mm: float, carries: str, protocol: str):
    """The example with ceilings wide open (caps up to 6 km/h), so the reach alone decides."""
    cfg = example_config()
    return dataclasses.replace(
        cfg, ceilings=Ceilings(max_reverse_cap_kmh=6.0, max_forward_cap_kmh=6.0, min_base_stop_mm=100,
                               min_warn_margin_mm=50),
        safety=dataclasses.replace(cfg.safety, approach_speed_mps=approach_mps, sensor_reach_mm=reach_mm),
        treadmill=dataclasses.replace(cfg.treadmill, reverse_mode_carries=carries, protocol=protocol))


def _reach_error(cfg, key, limits):
    errors: list = []
    check_limits(limits, cfg.limits, cfg, errors)
    return next((e for e in errors if e.key == key), None)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cap=st.integers(5, 60).map(lambda k: k / 10), base=st.integers(100, 600), warn=st.integers(50, 500),
       approach=st.sampled_from([1.6, 2.0, 2.5]), reach=st.sampled_from([600.0, 800.0, 1000.0, 1200.0]),
       belt=st.sampled_from([("toward_edge", "trackmaster"), ("away_from_edge", "woodway")]),
       mode=st.sampled_from(["reverse", "forward"]))
def test_the_suggested_cap_is_the_largest_that_passes(cap, base, warn, approach, reach, belt, mode):
    cfg = _wide_config(approach, reach, *belt)
    key = f"{mode}_cap_kmh"
    limits = {key: cap, "base_stop_mm": base, "warn_margin_mm": warn}
    error = _reach_error(cfg, key, limits)
    if error is None:
        return
    assert "[safety] sensor_reach_mm" in error.message
    found = SUGGESTED.search(error.message)
    if found:
        assert found.group(1) == mode
        best = float(found.group(2))
        assert best < cap
        # At the suggested cap the limits pass; 0.1 km/h more fails on the sensors' reach.
        assert _reach_error(cfg, key, {**limits, key: best}) is None
        above = _reach_error(cfg, key, {**limits, key: round(best + 0.1, 1)})
        assert above is not None and "sensor_reach_mm" in above.message
        return
    # Not even the minimum speed fits: the message says what to shorten, and shortening it that much works.
    floor = cfg.safety.min_speed_kmh
    assert f"no {mode} cap fits, not even {floor:g} km/h" in error.message
    if "no distance is short enough" in error.message:
        return
    alone, both = SHORTEN.search(error.message), SHORTEN_BOTH.search(error.message)
    assert alone or both, error.message
    new_base = min(float(alone.group(1)) if alone else base, float(both.group(1)) - warn if both else base)
    assert new_base < base
    fixed = reach_errors(floor, floor, new_base, warn, cfg.treadmill, cfg.safety, cfg.sensor_period_s,
                         cfg.max_mount_offset_mm)
    assert not [e for e in fixed if e.key == key], fixed


@pytest.mark.parametrize("base, warn, mode, fix", [
    (250, 200, "reverse", None),  # the example's own distances: 2.2 km/h is within reach
    (250, 400, "reverse", "the reverse cap can be at most 1.1 km/h"),
    (300, 200, "forward", "the forward cap can be at most 2 km/h"),
    (400, 300, "reverse", "the reverse cap can be at most 0.7 km/h"),  # 805 mm at 0.8, 795 mm at 0.7
    (600, 500, "reverse", "no reverse cap fits, not even 0.5 km/h: shorten the base stop distance to at most "
                          "457 mm, and the base stop distance plus the warn margin to at most 724 mm"),
])
def test_the_fix_on_the_example_config(base, warn, mode, fix):
    cfg = example_config()
    key = f"{mode}_cap_kmh"
    error = _reach_error(cfg, key, {key: 2.2, "base_stop_mm": base, "warn_margin_mm": warn})
    if fix is None:
        assert error is None
        return
    assert error.message.startswith(f"with these distances {fix}; at 2.2 km/h the "), error.message


def test_the_config_loader_keeps_the_reach_figures_naming_the_settings():
    cfg = example_config()
    limits = dataclasses.replace(cfg.limits, warn_margin_mm=400)
    (rev, fwd) = limits_reach_errors(limits, cfg.treadmill, cfg.safety, cfg.sensors)
    assert str(rev) == ("[limits] reverse_cap_kmh = 2.0: with these distances the reverse cap can be at most "
                        "1.1 km/h; at 2 km/h the warn zone would end 946 mm from the sensor (stop 506 mm + warn "
                        "margin 400 mm + mount offset 40 mm), beyond [safety] sensor_reach_mm = 800")
    assert fwd.key == "forward_cap_kmh" and math.isclose(fwd.value, 2.2)
