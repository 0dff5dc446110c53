"""The safety core's argument checks as free functions: no core, nothing changed, every error named."""

from __future__ import annotations

import dataclasses

import pytest

from controller.config import KMH_PER_MPS
from controller.safety.checks import check_limits, check_mode, check_prescription, check_speed, loosens
from controller.safety.types import Mode
from tests.unit.rig import example_config


def test_a_speed_within_the_cap_of_the_mode_comes_back_in_metres_per_second():
    cfg = example_config()
    errors: list = []
    assert check_speed(1.5, Mode.REVERSE, cfg.limits, cfg.safety.min_speed_kmh, errors) == pytest.approx(1.5 / KMH_PER_MPS)
    assert errors == []


@pytest.mark.parametrize("value, words", [
    (2.6, "is above the reverse cap 2 km/h; allowed 0.5 to 2 km/h"),
    (0.1, "0.5"),
    ("fast", "must be a number"),
    (None, "must be a number"),
])
def test_a_speed_out_of_range_or_not_a_number_is_refused_naming_the_field_and_range(value, words):
    cfg = example_config()
    errors: list = []
    assert check_speed(value, Mode.REVERSE, cfg.limits, cfg.safety.min_speed_kmh, errors) is None
    assert len(errors) == 1 and str(errors[0]).startswith("[command] speed_kmh")
    assert words in str(errors[0])


def test_an_unknown_mode_is_refused_under_the_callers_section():
    errors: list = []
    assert check_mode("sideways", "prescription", errors) is None
    assert str(errors[0]) == "[prescription] mode = 'sideways': must be \"reverse\" or \"forward\""
    assert check_mode("forward", "command", errors) is Mode.FORWARD and len(errors) == 1


def test_partial_limits_merge_over_the_base_and_a_ceiling_breach_is_named():
    cfg = example_config()
    errors: list = []
    new = check_limits({"reverse_cap_kmh": 1.5}, cfg.limits, cfg, errors)
    assert errors == [] and new == dataclasses.replace(cfg.limits, reverse_cap_kmh=1.5)
    # A longer stop distance whose warn zone the sensors cannot see is refused by the reach rule.
    assert check_limits({"base_stop_mm": cfg.limits.base_stop_mm + 50}, cfg.limits, cfg, errors) is None
    assert "beyond [safety] sensor_reach_mm" in str(errors[-1])
    errors.clear()
    too_fast = cfg.ceilings.max_reverse_cap_kmh + 0.5
    assert check_limits({"reverse_cap_kmh": too_fast}, cfg.limits, cfg, errors) is None
    assert errors and all("reverse_cap_kmh" in str(e) for e in errors)
    assert check_limits({}, cfg.limits, cfg, errors) is None and "no limit given" in str(errors[-1])


def test_a_prescription_collects_every_error_of_its_parts():
    cfg = example_config()
    errors: list = []
    value = {"mode": "up", "limits": {"base_stop_mm": -1}, "patient_id": ""}
    assert check_prescription(value, cfg.limits, cfg, errors) is None
    fields = {(e.section, e.key) for e in errors}
    assert {("prescription", "patient_id"), ("prescription", "mode"), ("limits", "base_stop_mm")} <= fields


def test_loosening_is_any_higher_cap_or_shorter_distance():
    cfg = example_config()
    base = cfg.limits
    assert not loosens(base, base)
    assert loosens(dataclasses.replace(base, base_stop_mm=base.base_stop_mm - 1), base)
    assert loosens(dataclasses.replace(base, reverse_cap_kmh=base.reverse_cap_kmh + 0.1), base)
    assert not loosens(dataclasses.replace(base, warn_margin_mm=base.warn_margin_mm + 10), base)


def test_a_value_nested_a_thousand_levels_deep_is_refused_by_name_without_raising():
    """repr() of such a value raises RecursionError; on the decision thread that would trip the belt."""
    cfg = example_config()
    deep: object = 1.0
    for _ in range(3000):
        deep = [deep]
    errors: list = []
    assert check_speed(deep, Mode.REVERSE, cfg.limits, cfg.safety.min_speed_kmh, errors) is None
    assert str(errors[0]).startswith("[command] speed_kmh = [[[[") and "must be a number" in str(errors[0])
    assert errors[0].as_dict()["value"].startswith("[[[[")
    assert check_limits({"base_stop_mm": deep}, cfg.limits, cfg, errors) is None
    assert "[limits] base_stop_mm" in str(errors[-1])


def test_an_integer_too_long_to_print_inside_a_value_is_named_not_raised():
    errors: list = []
    cfg = example_config()
    assert check_speed([10 ** 5000], Mode.REVERSE, cfg.limits, cfg.safety.min_speed_kmh, errors) is None
    assert "too large to show" in str(errors[0])
