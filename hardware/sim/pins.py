"""Mock pins that tell a listener about every level change: the wires of the simulation.

gpiozero's MockPin records levels but calls nobody; the simulated parts (a sensor's
XSHUT, the treadmill's safety circuit) need to follow the level the moment it changes.
"""

from __future__ import annotations

from typing import Callable

from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin


class _WatchedMixin:
    """Calls ``listener(level)`` after each change of the pin's level."""

    listener: Callable[[bool], None] | None = None

    def _change_state(self, value: float) -> bool:
        changed = super()._change_state(value)  # type: ignore[misc]
        if self.listener is not None:
            self.listener(bool(value))
        return changed


class WatchedPin(_WatchedMixin, MockPin):
    """A MockPin with a level listener."""


class WatchedPWMPin(_WatchedMixin, MockPWMPin):
    """A MockPWMPin with a level listener (for factories that make PWM pins)."""


def watch_pin(factory: MockFactory, pin: int | str, listener: Callable[[bool], None]) -> MockPin:
    """Create ``pin`` on ``factory`` with a level listener; call before any device opens it."""
    pin_class = WatchedPWMPin if issubclass(factory.pin_class, MockPWMPin) else WatchedPin
    mock_pin = factory.pin(pin, pin_class=pin_class)
    if not isinstance(mock_pin, _WatchedMixin):
        raise ValueError(f"pin {pin!r} already exists as {type(mock_pin).__name__}: "
                         "watch it before anything opens the pin")
    mock_pin.listener = listener
    return mock_pin
