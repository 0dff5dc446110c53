"""Shared fixtures: every test that touches gpiozero gets a MockFactory and leaves no global state."""

from __future__ import annotations

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from tests.clinic.fixtures import clinic_db, clinic_empty_db, postgres  # noqa: F401 - for every test dir


@pytest.fixture
def mock_factory():
    """A fresh MockFactory; Device.pin_factory is restored afterwards."""
    saved = Device.pin_factory
    factory = MockFactory(pin_class=MockPWMPin)
    try:
        yield factory
    finally:
        factory.reset()
        factory.close()
        Device.pin_factory = saved
