"""The GPIO panel (gpiozero): safety relay, heartbeat, E-stop input, reset button, buzzer, lamps.

The pin factory is always named explicitly (``make_pin_factory``); gpiozero's
own default, which falls back from one backend to the next with only a
warning, is never used. Every output is born off; the relay first.
"""

from __future__ import annotations

import importlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from types import TracebackType
from typing import TypeVar

from gpiozero import DigitalInputDevice, DigitalOutputDevice, OutputDevice
from gpiozero.devices import GPIODevice
from gpiozero.exc import DeviceClosed
from gpiozero.pins import Factory

from hardware import HardwareError, PinConfigError
from hardware.gpio_rules import (
    ESTOP_BOUNCE_MS_DEFAULT,
    ESTOP_BOUNCE_MS_RANGE,
    PIN_FACTORY_CLASSES,
    PIN_RULE,
    bcm_number,
    pin_clashes,
)

log = logging.getLogger(__name__)

#: The reset button is a "go" input, so a generous debounce costs nothing.
RESET_BOUNCE_S = 0.02
#: safe_off() waits this long for a caller holding the lock, then acts anyway:
#: a stuck caller must never keep the relay energized.
SAFE_OFF_LOCK_TIMEOUT_S = 0.1

PinName = int | str
_DeviceT = TypeVar("_DeviceT", bound=GPIODevice)

_REQUIRED_PIN_FIELDS = ("relay_pin", "heartbeat_pin", "estop_pin")
_OPTIONAL_PIN_FIELDS = (
    "reset_pin", "buzzer_pin", "lamp_green_pin", "lamp_amber_pin", "lamp_red_pin",
)
_LAMP_FIELDS = ("lamp_green_pin", "lamp_amber_pin", "lamp_red_pin")


def make_pin_factory(name: str) -> Factory:
    """Instantiate the gpiozero pin factory *name*; PinConfigError if unknown or it fails to load."""
    allowed = ", ".join(PIN_FACTORY_CLASSES)
    if name not in PIN_FACTORY_CLASSES:
        raise PinConfigError(
            f"[gpio] pin_factory = {name!r}: unknown pin factory; allowed: {allowed}")
    module_name, _, class_name = PIN_FACTORY_CLASSES[name].partition(":")
    try:
        factory_class = getattr(importlib.import_module(module_name), class_name)
        if name == "mock":
            # PWM-capable mock pins, so any device class can be tried in the demo; gpiozero
            # finds the class by this name, so the product never imports its mock pins.
            return factory_class(pin_class="mockpwmpin")
        return factory_class()
    # Backends fail in their own ways (ImportError, OSError, RuntimeError,
    # lgpio.error, pigpio connection errors); all mean "this factory is unusable".
    except Exception as exc:
        raise PinConfigError(
            f"[gpio] pin_factory = {name!r}: could not load it "
            f"({type(exc).__name__}: {exc}); allowed: {allowed}") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class GpioSpec:
    """Which pin does what, validated on construction by ``hardware.gpio_rules``, as the config is."""

    relay_pin: PinName
    #: True: pin high energizes the relay. No default: a wrong guess would invert "off".
    relay_active_high: bool
    heartbeat_pin: PinName
    estop_pin: PinName
    #: Within ESTOP_BOUNCE_MS_RANGE.
    estop_bounce_ms: float = ESTOP_BOUNCE_MS_DEFAULT
    reset_pin: PinName | None = None
    buzzer_pin: PinName | None = None
    lamp_green_pin: PinName | None = None
    lamp_amber_pin: PinName | None = None
    lamp_red_pin: PinName | None = None

    def __post_init__(self) -> None:
        for field_name in _REQUIRED_PIN_FIELDS + _OPTIONAL_PIN_FIELDS:
            value = getattr(self, field_name)
            if value is None and field_name in _OPTIONAL_PIN_FIELDS:
                continue
            if bcm_number(value) is None:
                raise PinConfigError(f"[gpio] {field_name} = {value!r}: {PIN_RULE}")
        if not isinstance(self.relay_active_high, bool):
            raise PinConfigError(
                f"[gpio] relay_active_high = {self.relay_active_high!r}: must be true or false")
        bounce_ms = self.estop_bounce_ms
        low_ms, high_ms = ESTOP_BOUNCE_MS_RANGE
        if (isinstance(bounce_ms, bool) or not isinstance(bounce_ms, int | float)
                or not math.isfinite(bounce_ms) or not low_ms <= bounce_ms <= high_ms):
            raise PinConfigError(
                f"[gpio] estop_bounce_ms = {bounce_ms!r}: must be between {low_ms:g} and {high_ms:g} ms")
        pins = self.configured_pins()
        clashes = pin_clashes(pins.items())
        if clashes:
            field_name, first_user = clashes[0]
            raise PinConfigError(
                f"[gpio] {first_user} and {field_name} both use pin {pins[field_name]!r}: "
                f"each signal needs its own pin")

    def configured_pins(self) -> dict[str, PinName]:
        """Field name -> pin for every pin that is set, in declaration order."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name.endswith("_pin") and getattr(self, f.name) is not None
        }


class PanelIO:
    """Owns every GPIO device of the panel; all outputs are born off, the relay first.

    Threads: the control loop calls the setters; gpiozero's event thread calls
    ``on_estop_change`` and ``on_reset_pressed``. Callbacks must return quickly.
    """

    def __init__(self, spec: GpioSpec, *, pin_factory: Factory) -> None:
        if pin_factory is None:
            # None would make gpiozero pick its default factory, with silent fallback.
            raise PinConfigError(
                "[gpio] pin_factory: a pin factory is required (see make_pin_factory)")
        self._spec = spec
        self._factory = pin_factory
        # Reentrant: safe_off() may run from a signal handler on a thread that holds it.
        self._lock = threading.RLock()
        self._closed = False
        self._devices: list[tuple[str, GPIODevice]] = []
        #: Called as (estop_open, time.monotonic()) on every E-stop edge (edges only:
        #: the state at start-up is read from estop_open).
        self.on_estop_change: Callable[[bool, float], None] | None = None
        #: Called with time.monotonic() when the reset button is pressed.
        self.on_reset_pressed: Callable[[float], None] | None = None
        self._buzzer: DigitalOutputDevice | None = None
        self._lamps: dict[str, DigitalOutputDevice] = {}
        self._reset: DigitalInputDevice | None = None
        try:
            # The relay is claimed first, so it is driven off before anything else happens.
            self._relay = self._claim("relay_pin", lambda pin: OutputDevice(
                pin, active_high=spec.relay_active_high, initial_value=False,
                pin_factory=pin_factory))
            self._heartbeat = self._claim("heartbeat_pin", self._new_output)
            bounce_s = spec.estop_bounce_ms / 1000.0
            # Normally-closed contact to ground with pull-up: closed (healthy) = low =
            # "active"; pressed or a broken wire = high = inactive = open.
            self._estop = self._claim("estop_pin", lambda pin: DigitalInputDevice(
                pin, pull_up=True, bounce_time=bounce_s, pin_factory=pin_factory))
            self._estop.when_activated = self._on_estop_contact_closed
            self._estop.when_deactivated = self._on_estop_contact_opened
            if spec.reset_pin is not None:
                self._reset = self._claim("reset_pin", lambda pin: DigitalInputDevice(
                    pin, pull_up=True, bounce_time=RESET_BOUNCE_S, pin_factory=pin_factory))
                self._reset.when_activated = self._on_reset_button
            if spec.buzzer_pin is not None:
                self._buzzer = self._claim("buzzer_pin", self._new_output)
            for field_name in _LAMP_FIELDS:
                if getattr(spec, field_name) is not None:
                    self._lamps[field_name] = self._claim(field_name, self._new_output)
        except BaseException:
            # Release what was claimed so a corrected config can be retried in-process.
            self._close_devices()
            raise

    # -- construction helpers -------------------------------------------------

    def _new_output(self, pin: PinName) -> DigitalOutputDevice:
        """An active-high output that starts off."""
        return DigitalOutputDevice(pin, initial_value=False, pin_factory=self._factory)

    def _claim(self, field_name: str, build: Callable[[PinName], _DeviceT]) -> _DeviceT:
        """Build the device for *field_name*; any claim failure names the config field."""
        pin = getattr(self._spec, field_name)
        try:
            device = build(pin)
        # Pin in use, bad name, or a backend error: all are config problems for the installer.
        except Exception as exc:
            raise PinConfigError(
                f"[gpio] {field_name} = {pin!r}: {type(exc).__name__}: {exc}") from exc
        self._devices.append((field_name, device))
        return device

    # -- event thread callbacks -----------------------------------------------

    def _on_estop_contact_closed(self) -> None:
        self._call_back("on_estop_change", (False, time.monotonic()))

    def _on_estop_contact_opened(self) -> None:
        self._call_back("on_estop_change", (True, time.monotonic()))

    def _on_reset_button(self) -> None:
        self._call_back("on_reset_pressed", (time.monotonic(),))

    def _call_back(self, name: str, values: tuple[bool | float, ...]) -> None:
        """Call the user callback *name*, if set, logging instead of raising."""
        callback = getattr(self, name)
        if callback is None:
            return
        try:
            callback(*values)
        # An exception escaping into gpiozero's event thread could end edge delivery
        # for every pin; the loop still polls estop_open each tick.
        except Exception:
            log.exception("%s callback failed", name)

    # -- inputs ----------------------------------------------------------------

    @property
    def spec(self) -> GpioSpec:
        """The validated pin assignment this panel was built from."""
        return self._spec

    @property
    def estop_open(self) -> bool:
        """True when the E-stop circuit is open (pressed or broken wire); True once closed."""
        if self._closed:
            return True
        try:
            # A plain level read: never waits on a lock or an event.
            return not self._estop.is_active
        except DeviceClosed:
            return True

    # -- outputs ---------------------------------------------------------------

    @property
    def relay_energized(self) -> bool:
        """True while the safety relay is commanded energized (circuit may run)."""
        if self._closed:
            return False
        try:
            return bool(self._relay.is_active)
        except DeviceClosed:
            return False

    def set_relay(self, energized: bool) -> None:
        """Energize (True) or drop (False) the safety relay; dropping is always allowed."""
        if not isinstance(energized, bool):
            raise TypeError(f"energized must be a bool, not {type(energized).__name__}")
        with self._lock:
            if self._closed:
                if energized:
                    raise HardwareError("cannot energize the relay: PanelIO is closed")
                return
            if energized:
                self._relay.on()
            else:
                self._relay.off()

    def toggle_heartbeat(self) -> None:
        """Flip the heartbeat output; the control loop calls this once per tick."""
        with self._lock:
            if self._closed:
                raise HardwareError("cannot toggle the heartbeat: PanelIO is closed")
            self._heartbeat.toggle()

    def set_buzzer(self, on: bool) -> None:
        """Sound or silence the buzzer; a no-op without one."""
        with self._lock:
            if self._closed:
                if on:
                    raise HardwareError("cannot sound the buzzer: PanelIO is closed")
                return
            if self._buzzer is not None:
                self._buzzer.value = bool(on)

    def set_lamps(self, green: bool, amber: bool, red: bool) -> None:
        """Set the three status lamps; lamps that are not fitted are skipped."""
        with self._lock:
            if self._closed:
                if green or amber or red:
                    raise HardwareError("cannot light the lamps: PanelIO is closed")
                return
            wanted = {"lamp_green_pin": green, "lamp_amber_pin": amber, "lamp_red_pin": red}
            for field_name, lamp in self._lamps.items():
                lamp.value = bool(wanted[field_name])

    # -- shutdown --------------------------------------------------------------

    def safe_off(self) -> tuple[str, ...]:
        """Relay off first, then buzzer and lamps, each on its own; returns the failures."""
        got_lock = self._lock.acquire(timeout=SAFE_OFF_LOCK_TIMEOUT_S)
        if not got_lock:
            log.error("safe_off: lock busy for %.1f s; acting without it",
                         SAFE_OFF_LOCK_TIMEOUT_S)
        try:
            if self._closed:
                return ()
            steps: list[tuple[str, Callable[[], None]]] = [("relay_pin", self._relay.off)]
            if self._buzzer is not None:
                steps.append(("buzzer_pin", self._buzzer.off))
            steps.extend((name, lamp.off) for name, lamp in self._lamps.items())
            failures: list[str] = []
            for field_name, turn_off in steps:
                # Like Klipper's shutdown handlers: one failing output never stops the rest.
                try:
                    turn_off()
                except Exception as exc:
                    log.exception("safe_off: could not switch off %s", field_name)
                    failures.append(f"{field_name}: {type(exc).__name__}: {exc}")
            return tuple(failures)
        finally:
            if got_lock:
                self._lock.release()

    def close(self) -> None:
        """safe_off(), then release every pin; safe to call more than once."""
        with self._lock:
            if self._closed:
                return
            self.safe_off()
            self._closed = True
            self._close_devices()

    def _close_devices(self) -> None:
        """Close devices in reverse claim order, each on its own."""
        while self._devices:
            field_name, device = self._devices.pop()
            try:
                device.close()
            except Exception:
                log.exception("could not release %s", field_name)

    def __enter__(self) -> PanelIO:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
