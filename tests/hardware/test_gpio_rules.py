"""The one pin-name rule (hardware/gpio_rules.py) that the config and the panel driver share."""

from __future__ import annotations

import pytest

from hardware.gpio_rules import bcm_number, pin_clashes


@pytest.mark.parametrize("name, number", [(5, 5), ("GPIO5", 5), ("gpio05", 5), ("BCM5", 5), (27, 27)])
def test_every_spelling_of_a_bcm_pin_names_its_number(name, number):
    assert bcm_number(name) == number


@pytest.mark.parametrize("name", [28, -1, True, "5", "BOARD11", "GPIO28", "GPIO5\n", "GPİO5", "GPIO٥", None])
def test_a_name_that_is_not_a_bcm_pin_is_refused(name):
    assert bcm_number(name) is None


def test_two_spellings_of_one_pin_clash_and_invalid_names_are_left_to_their_own_error():
    assert pin_clashes([("relay", 5), ("buzzer", "GPIO05"), ("lamp", "BOARD29"), ("estop", 25)]) == [("buzzer", "relay")]
