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

logger = logging.getLogger(__name__)

#: Pin factory names accepted in the config, and the gpiozero class behind each.
FACTORY_CLASSES: dict[str, tuple[str, str]] = {
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory"),
    "pigpio": ("gpiozero.pins.pigpio", "PiGPIOFactory"),
    "native": ("gpiozero.pins.native", "NativeFactory"),
    "mock": ("gpiozero.pins.mock", "MockFactory"),
}

ESTOP_BOUNCE_MIN_MS = 0.0  # 0 disables debouncing
#: Longer debouncing would delay the E-stop edge; the level is polled every tick anyway.
ESTOP_BOUNCE_MAX_MS = 10.0
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
    allowed = ", ".join(FACTORY_CLASSES)
    if name not in FACTORY_CLASSES:
        raise PinConfigError(
            f"[gpio] pin_factory = {name!r}: unknown pin factory; allowed: {allowed}")
    module_name, class_name = FACTORY_CLASSES[name]
    try:
        factory_class = getattr(importlib.import_module(module_name), class_name)
        if name == "mock":
            # PWM-capable mock pins, so any device class can be tried in the demo.
            from gpiozero.pins.mock import MockPWMPin
            return factory_class(pin_class=MockPWMPin)
        return factory_class()
    # Backends fail in their own ways (ImportError, OSError, RuntimeError,
    # lgpio.error, pigpio connection errors); all mean "this factory is unusable".
    except Exception as exc:
        raise PinConfigError(
            f"[gpio] pin_factory = {name!r}: could not load it "
            f"({type(exc).__name__}: {exc}); allowed: {allowed}") from exc


def _pin_key(pin: PinName) -> str:
    """A comparison key for the common spellings of one BCM pin (17, "17", "GPIO17", "BCM17")."""
    text = str(pin).strip().upper()
    for prefix in ("GPIO", "BCM"):
        if text.startswith(prefix) and text[len(prefix):].isdigit():
            return f"GPIO{int(text[len(prefix):])}"
    if text.isdigit():
        return f"GPIO{int(text)}"
    return text


@dataclass(frozen=True, slots=True, kw_only=True)
class GpioSpec:
    """Which pin does what, validated on construction; pins are BCM ints or gpiozero names."""

    relay_pin: PinName
    #: True: pin high energizes the relay. No default: a wrong guess would invert "off".
    relay_active_high: bool
    heartbeat_pin: PinName
    estop_pin: PinName
    #: 0 disables debouncing; the upper bound keeps the E-stop edge prompt.
    estop_bounce_ms: float = 5.0
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
            if not _is_pin_name(value):
                raise PinConfigError(
                    f"[gpio] {field_name} = {value!r}: must be a GPIO number (int >= 0) "
                    f"or a gpiozero pin name such as 'GPIO17' or 'BOARD11'")
        if not isinstance(self.relay_active_high, bool):
            raise PinConfigError(
                f"[gpio] relay_active_high = {self.relay_active_high!r}: must be true or false")
        bounce_ms = self.estop_bounce_ms
        if (isinstance(bounce_ms, bool) or not isinstance(bounce_ms, int | float)
                or not math.isfinite(bounce_ms)
                or not ESTOP_BOUNCE_MIN_MS <= bounce_ms <= ESTOP_BOUNCE_MAX_MS):
            raise PinConfigError(
                f"[gpio] estop_bounce_ms = {bounce_ms!r}: must be between "
                f"{ESTOP_BOUNCE_MIN_MS:g} and {ESTOP_BOUNCE_MAX_MS:g} ms (0 = no debounce)")
        seen: dict[str, str] = {}
        for field_name, pin in self.configured_pins().items():
            key = _pin_key(pin)
            if key in seen:
                raise PinConfigError(
                    f"[gpio] {seen[key]} and {field_name} both use pin {pin!r}: "
                    f"each signal needs its own pin")
            seen[key] = field_name

    def configured_pins(self) -> dict[str, PinName]:
        """Field name -> pin for every pin that is set, in declaration order."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name.endswith("_pin") and getattr(self, f.name) is not None
        }


def _is_pin_name(value: object) -> bool:
    """True for an int >= 0 (not bool) or a non-empty string without blanks."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, str) and bool(value) and not any(c.isspace() for c in value)


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
            self._check_physical_pins_distinct()
            # The relay is claimed first, so it is driven off before anything else happens.
            self._relay = self._claim("relay_pin", lambda pin: OutputDevice(
                pin, active_high=spec.relay_active_high, initial_value=False,
                pin_factory=pin_factory))
            self._heartbeat = self._claim("heartbeat_pin", self._new_output)
            bounce_s = spec.estop_bounce_ms / 1000.0 if spec.estop_bounce_ms > 0 else None
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

    def _check_physical_pins_distinct(self) -> None:
        """Resolve every pin on this board, so 17 and "BOARD11" are seen to be the same pin."""
        try:
            board_info = self._factory.board_info
        except Exception as exc:  # backend-specific failures; all mean "cannot map pins"
            raise PinConfigError(
                f"[gpio] pin_factory: cannot read the board's pin map: {exc}") from exc
        owner_by_pin: dict[str, str] = {}
        for field_name, pin in self._spec.configured_pins().items():
            matches = [info.name for _header, info in board_info.find_pin(pin)]
            if not matches:
                raise PinConfigError(
                    f"[gpio] {field_name} = {pin!r}: not a valid pin name on this board")
            physical = matches[0]
            if physical in owner_by_pin:
                raise PinConfigError(
                    f"[gpio] {owner_by_pin[physical]} and {field_name} both use "
                    f"{physical}: each signal needs its own pin")
            owner_by_pin[physical] = field_name

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
            logger.exception("%s callback failed", name)

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

    @property
    def reset_pressed(self) -> bool:
        """True while the reset button is held; False without one or after close."""
        if self._closed or self._reset is None:
            return False
        try:
            return bool(self._reset.is_active)
        except DeviceClosed:
            return False

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
            logger.error("safe_off: lock busy for %.1f s; acting without it",
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
                    logger.exception("safe_off: could not switch off %s", field_name)
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
                logger.exception("could not release %s", field_name)

    def __enter__(self) -> PanelIO:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
