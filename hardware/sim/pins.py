"""Mock pins for the wires of the simulation: watched (a part follows the level) or driven (a part sets it).

gpiozero's MockPin records levels but calls nobody; the simulated parts (a sensor's
XSHUT, the treadmill's safety circuit) need to follow the level the moment it changes.
The other way round, a sensor's interrupt output (VL53L0X GPIO1) drives an input pin,
and the input's pull-up must not override the level the sensor holds.
"""

from __future__ import annotations

from collections.abc import Callable

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


#: Level changes a driven pin remembers in ``states``: a chip's interrupt line changes twice a
#: sample, and gpiozero's mock keeps every change, which would grow without bound in a long run.
DRIVEN_STATES_KEPT = 256


class _DrivenMixin:
    """The level is set by a simulated part (``level_fn``), not by the input's pull resistor."""

    level_fn: Callable[[], bool] | None = None

    def _set_pull(self, value: str) -> None:
        super()._set_pull(value)  # type: ignore[misc]  # validates; a mock input then follows its pull
        if self.level_fn is not None and self.function == "input":  # type: ignore[attr-defined]
            # The part drives the wire; the pull only decides the level while nothing drives it.
            self.drive_to(self.level_fn())

    def _change_state(self, value: float) -> bool:
        changed = super()._change_state(value)  # type: ignore[misc]
        states = self.states  # type: ignore[attr-defined]
        if len(states) > 2 * DRIVEN_STATES_KEPT:
            del states[:-DRIVEN_STATES_KEPT]
        return changed

    def drive_to(self, level: bool) -> None:
        """Drive the input to ``level`` (edge callbacks fire as for drive_high/drive_low)."""
        if level:
            self.drive_high()  # type: ignore[attr-defined]
        else:
            self.drive_low()  # type: ignore[attr-defined]


class DrivenPin(_DrivenMixin, MockPin):
    """A MockPin driven by a simulated part's output."""


class DrivenPWMPin(_DrivenMixin, MockPWMPin):
    """A MockPWMPin driven by a simulated part's output (for factories that make PWM pins)."""


def driven_pin(factory: MockFactory, pin: int | str, level_fn: Callable[[], bool]) -> MockPin:
    """Create ``pin`` on ``factory`` as an input a simulated part drives; call before any device opens it.

    ``level_fn()`` gives the level the part drives now; it is re-applied when a device sets the
    pull, so opening the pin with ``pull_up=True`` does not override a line held low.
    """
    pin_class = DrivenPWMPin if issubclass(factory.pin_class, MockPWMPin) else DrivenPin
    mock_pin = factory.pin(pin, pin_class=pin_class)
    if not isinstance(mock_pin, _DrivenMixin):
        raise ValueError(f"pin {pin!r} already exists as {type(mock_pin).__name__}: "
                         "bind it before anything opens the pin")
    mock_pin.level_fn = level_fn
    return mock_pin
