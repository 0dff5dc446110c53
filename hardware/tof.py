"""VL53L0X time-of-flight sensors: bring-up through XSHUT, and one reader thread.

Uses the real ``adafruit_vl53l0x`` driver in continuous mode, always with a
finite ``io_timeout_s``, and smbus2 for the identity probe. The reader thread
hands each result to ``on_reading`` as a timestamped ``RangeReading`` with the
device range status (the Adafruit driver returns raw mm without it), and every
failure to ``on_fault``; nothing it does can raise into the caller.

A sensor with an ``interrupt_pin`` (its GPIO1 wire) is read on the falling edge
and stamped with the edge time; the others are polled (``hardware.tof_reader``).
Sensors start evenly spread over one period (staggered) and are kept there by
restarting one at the right instant (``hardware.tof_timing``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import adafruit_vl53l0x
from adafruit_bus_device.i2c_device import I2CDevice
from gpiozero import DigitalInputDevice, DigitalOutputDevice, Factory, GPIOZeroError

from hardware import HardwareError, PinConfigError, RangeReading, SensorFault, SensorNotFound
from hardware.gpio_rules import PIN_RULE, bcm_number, pin_clashes
from hardware.tof_reader import ReaderSensor, TofReader, TofStats, where
from hardware.tof_timing import SampleClock, slot_offsets_s
from hardware.vl53l0x_regs import (
    ADDRESS_RANGE,
    DEFAULT_ADDRESS,
    MODEL_ID,
    MODEL_ID_REGISTER,
    TIMING_BUDGET_MS_RANGE,
)

__all__ = ["SMBusLike", "TofArray", "TofSpec", "TofStats"]

log = logging.getLogger(__name__)

#: The datasheet boot time is 1.2 ms; the margin covers a loaded Linux scheduler.
BOOT_TIMEOUT_S = 0.1
BOOT_POLL_S = 0.001
JOIN_TIMEOUT_S = 1.0
#: The staggered start begins this long after the last sensor is initialised.
START_MARGIN_S = 0.002
#: Phase control runs only when the sensors' nominal periods agree this closely (same budget).
SAME_PERIOD_SHARE = 0.01


class SMBusLike(Protocol):
    """The part of smbus2.SMBus the identity probe uses."""

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        """Read one register byte; OSError if nobody answers."""

    def close(self) -> None:
        """Release the bus handle."""


@dataclass(frozen=True, slots=True)
class TofSpec:
    """One sensor as configured: id, target I2C address, XSHUT pin, timing budget, GPIO1 pin."""

    sensor_id: str
    address: int
    xshut_pin: int | str | None
    timing_budget_ms: int
    #: The pin the sensor's GPIO1 (interrupt, active low) is wired to; None: the sensor is polled.
    interrupt_pin: int | str | None = None

    def __post_init__(self) -> None:
        if not self.sensor_id:
            raise ValueError("sensor_id must be a non-empty string")
        low_address, high_address = ADDRESS_RANGE
        if not isinstance(self.address, int) or not low_address <= self.address <= high_address:
            raise ValueError(
                f"address of sensor {self.sensor_id!r} must be a 7-bit I2C address "
                f"in 0x{low_address:02x}..0x{high_address:02x}, got {self.address!r}"
            )
        for name, pin in (("xshut_pin", self.xshut_pin), ("interrupt_pin", self.interrupt_pin)):
            if pin is not None and bcm_number(pin) is None:
                raise ValueError(f"{name} of sensor {self.sensor_id!r} {PIN_RULE}, got {pin!r}")
        low_ms, high_ms = TIMING_BUDGET_MS_RANGE
        budget = self.timing_budget_ms
        is_int = isinstance(budget, int) and not isinstance(budget, bool)
        if not is_int or not low_ms <= budget <= high_ms:
            raise ValueError(
                f"timing_budget_ms of sensor {self.sensor_id!r} must be an integer "
                f"in {low_ms}..{high_ms}, got {budget!r}"
            )


def _where(spec: TofSpec, address: int) -> str:
    return where(spec.sensor_id, address)


def _pin_name(pin: int | str) -> str:
    return f"GPIO{bcm_number(pin)}"


def _sleep_until(t_mono: float) -> None:
    while (left_s := t_mono - time.monotonic()) > 0:
        time.sleep(left_s)


class TofArray:
    """Brings VL53L0X sensors up at distinct addresses and reads them in one thread.

    ``stagger`` starts the sensors evenly spread over one period and keeps them there;
    without it they start together and are kept in phase. Callbacks run in the reader
    thread and must be quick (a queue put).
    """

    def __init__(
        self,
        specs: Sequence[TofSpec],
        *,
        i2c: object,
        on_reading: Callable[[RangeReading], None],
        on_fault: Callable[[SensorFault], None],
        smbus: SMBusLike | None = None,
        bus_number: int = 1,
        pin_factory: Factory | None = None,
        io_timeout_s: float = 0.25,
        poll_interval_s: float = 0.002,
        stagger: bool = True,
    ) -> None:
        specs = tuple(specs)
        if not specs:
            raise ValueError("specs must name at least one sensor")
        if not io_timeout_s > 0:
            # The library's default 0 waits forever on a hung sensor.
            raise ValueError(f"io_timeout_s must be > 0, got {io_timeout_s!r}")
        if not poll_interval_s > 0:
            raise ValueError(f"poll_interval_s must be > 0, got {poll_interval_s!r}")
        for what, values in (
            ("sensor_id", [s.sensor_id for s in specs]),
            ("address", [s.address for s in specs]),
        ):
            if len(set(values)) != len(values):
                raise ValueError(f"{what} must differ between sensors, got {values!r}")
        xshut_pins = [(s.sensor_id, s.xshut_pin) for s in specs if s.xshut_pin is not None]
        if pin_clashes(xshut_pins):
            raise ValueError(
                f"xshut_pin must differ between sensors, got {[pin for _, pin in xshut_pins]!r}"
            )
        _check_interrupt_pins(specs)
        if len(specs) > 1 and any(s.xshut_pin is None for s in specs):
            missing = [s.sensor_id for s in specs if s.xshut_pin is None]
            raise ValueError(
                f"xshut_pin is required when there are 2 or more sensors "
                f"(they all boot at 0x{DEFAULT_ADDRESS:02X}); missing for {missing!r}"
            )
        self._specs = specs
        self._i2c = i2c
        self._on_reading = on_reading
        self._on_fault = on_fault
        self._smbus = smbus
        self._bus_number = bus_number
        self._pin_factory = pin_factory
        self._io_timeout_s = io_timeout_s
        self._poll_interval_s = poll_interval_s
        self._stagger = stagger
        self._sensors: list[ReaderSensor] = []
        self._pins: dict[str, DigitalOutputDevice] = {}
        self._reader: TofReader | None = None  # made by open(), started by start()
        self._opened = False
        self._closed = False
        self._close_lock = threading.Lock()

    # --- lifecycle --------------------------------------------------------

    def open(self) -> None:
        """Power every sensor down, bring each up and verify it, then start ranging (staggered).

        Raises SensorNotFound naming the sensor, address and bus; on any error
        everything opened so far is released.
        """
        if self._opened or self._closed:
            raise RuntimeError("TofArray.open() may be called once, before close()")
        self._opened = True
        try:
            smbus = self._smbus if self._smbus is not None else self._open_smbus()
            try:
                self._bring_up(smbus)
            finally:
                if self._smbus is None:
                    smbus.close()
            self._open_interrupts()
            phase_control = self._start_ranging()
        except BaseException:
            self._release_hardware(stop_ranging=True)
            self._sensors.clear()
            self._closed = True
            raise
        self._reader = TofReader(
            self._sensors, on_reading=self._on_reading, on_fault=self._on_fault,
            poll_interval_s=self._poll_interval_s, stagger=self._stagger,
            phase_control=phase_control,
        )
        for sensor in self._sensors:
            how = ("polled" if sensor.interrupt is None
                   else f"on interrupt_pin {sensor.interrupt_pin} edges")
            log.info("%s: ranging every %.1f ms, read %s",
                     where(sensor.sensor_id, sensor.address), sensor.period_s * 1000, how)

    def start(self) -> None:
        """Start the daemon reader thread "tof-reader"; returns at once."""
        if self._reader is None or self._closed:
            raise RuntimeError("TofArray.start() needs a successful open() and no close()")
        if self._reader.thread is not None:
            raise RuntimeError("TofArray.start() was already called")
        self._reader.start()

    def close(self) -> None:
        """Stop the reader, stop ranging, drive XSHUT low and release pins; safe twice."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        reader_alive = self._reader is not None and not self._reader.stop(
            JOIN_TIMEOUT_S + self._io_timeout_s
        )
        if reader_alive:
            log.error("tof-reader did not stop within %.1f s", JOIN_TIMEOUT_S)
        # The driver shares one class-level buffer, so only touch the bus once
        # the reader is gone.
        self._release_hardware(stop_ranging=not reader_alive)

    def __enter__(self) -> TofArray:
        if not self._opened:
            self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- state ------------------------------------------------------------

    @property
    def stats(self) -> dict[str, TofStats]:
        """Readings and faults reported per sensor id."""
        return self._reader.stats() if self._reader is not None else {}

    @property
    def sensor_periods_s(self) -> dict[str, float]:
        """Measurement period per sensor id, as read back from the sensor."""
        return {s.sensor_id: s.period_s for s in self._sensors}

    @property
    def timing(self) -> dict[str, dict[str, object]]:
        """Per sensor id: nominal and measured period, phase error, re-phases, read mode, wire fault.

        ``phase_error_s`` is against the sensor's slot relative to the first sensor (None
        until known, or without phase control); ``interrupt`` is True for a sensor read on
        its GPIO1 edge, False for a polled one; ``interrupt_fault`` is "no_edge",
        "stuck_low" or None. Plain values, for the doctor, the status and the benchmarks.
        """
        return self._reader.timing() if self._reader is not None else {}

    @property
    def reader_thread(self) -> threading.Thread | None:
        """The reader thread once started (for supervision and tests)."""
        return self._reader.thread if self._reader is not None else None

    # --- bring-up -----------------------------------------------------------

    def _open_smbus(self) -> SMBusLike:
        import smbus2  # only needed on a real Pi; tests pass a simulated bus

        try:
            return smbus2.SMBus(self._bus_number)
        except OSError as exc:
            raise SensorNotFound(
                f"cannot open I2C bus {self._bus_number} (/dev/i2c-{self._bus_number}) "
                f"for the ToF sensors: {exc}"
            ) from exc

    def _bring_up(self, smbus: SMBusLike) -> None:
        if len(self._specs) == 1 and self._specs[0].xshut_pin is None:
            spec = self._specs[0]
            self._probe_identity(smbus, spec, spec.address)
            self._sensors.append(self._init_sensor(spec, spec.address))
            return
        for spec in self._specs:
            try:
                self._pins[spec.sensor_id] = DigitalOutputDevice(
                    spec.xshut_pin, initial_value=False, pin_factory=self._pin_factory
                )
            except GPIOZeroError as exc:
                raise PinConfigError(
                    f"xshut_pin {spec.xshut_pin!r} of ToF sensor {spec.sensor_id!r} "
                    f"cannot be used: {exc}"
                ) from exc
        self._check_default_address_free(smbus)
        # A sensor that keeps 0x29 must come up last, or the next one would collide with it.
        for spec in sorted(self._specs, key=lambda s: s.address == DEFAULT_ADDRESS):
            self._pins[spec.sensor_id].on()
            self._probe_identity(smbus, spec, DEFAULT_ADDRESS)
            self._sensors.append(self._init_sensor(spec, DEFAULT_ADDRESS))
        order = {spec.sensor_id: i for i, spec in enumerate(self._specs)}
        self._sensors.sort(key=lambda s: order[s.sensor_id])

    def _check_default_address_free(self, smbus: SMBusLike) -> None:
        try:
            smbus.read_byte_data(DEFAULT_ADDRESS, MODEL_ID_REGISTER)
        except OSError:
            return  # nobody answers: every XSHUT works
        raise HardwareError(
            f"a device answers at 0x{DEFAULT_ADDRESS:02X} on I2C bus {self._bus_number} "
            "with every ToF XSHUT driven low: check the XSHUT wiring"
        )

    def _probe_identity(self, smbus: SMBusLike, spec: TofSpec, address: int) -> None:
        # Poll until the chip has booted and ACKs, within a deadline.
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while True:
            try:
                model_id = smbus.read_byte_data(address, MODEL_ID_REGISTER)
                break
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise SensorNotFound(
                        f"{_where(spec, address)} on I2C bus {self._bus_number} did not answer "
                        f"within {BOOT_TIMEOUT_S * 1000:.0f} ms ({exc}): check power, "
                        "wiring and XSHUT"
                    ) from exc
            time.sleep(BOOT_POLL_S)
        if model_id != MODEL_ID:
            raise SensorNotFound(
                f"{_where(spec, address)} on I2C bus {self._bus_number} is not a VL53L0X: "
                f"model id register 0x{MODEL_ID_REGISTER:02X} reads 0x{model_id:02X}, "
                f"expected 0x{MODEL_ID:02X}"
            )

    def _init_sensor(self, spec: TofSpec, address: int) -> ReaderSensor:
        at = address
        try:
            device = adafruit_vl53l0x.VL53L0X(self._i2c, address, io_timeout_s=self._io_timeout_s)
            if spec.address != address:
                device.set_address(spec.address)
                at = spec.address
            device.measurement_timing_budget = spec.timing_budget_ms * 1000
            period_s = device.measurement_timing_budget / 1e6
        except Exception as exc:  # the driver raises OSError, RuntimeError, ValueError
            raise SensorNotFound(
                f"{_where(spec, at)} on I2C bus {self._bus_number} failed to initialise: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        pin = spec.interrupt_pin
        return ReaderSensor(
            sensor_id=spec.sensor_id,
            address=spec.address,
            device=device,
            status_reg=I2CDevice(self._i2c, spec.address, probe=False),
            period_s=period_s,
            stale_after_s=2 * period_s + self._io_timeout_s,
            clock=SampleClock(period_s),
            interrupt_pin=_pin_name(pin) if pin is not None else "",
        )

    def _open_interrupts(self) -> None:
        specs = {spec.sensor_id: spec for spec in self._specs}
        for sensor in self._sensors:
            pin = specs[sensor.sensor_id].interrupt_pin
            if pin is None:
                continue
            try:
                # GPIO1 is active low with the breakout's pull-up (the driver configures it so).
                sensor.interrupt = DigitalInputDevice(
                    pin, pull_up=True, pin_factory=self._pin_factory
                )
            except GPIOZeroError as exc:
                raise PinConfigError(
                    f"interrupt_pin {pin!r} of ToF sensor {sensor.sensor_id!r} "
                    f"cannot be used: {exc}"
                ) from exc

    def _start_ranging(self) -> bool:
        """Start continuous ranging, staggered over one period; True if phase control can keep it.

        Every sensor is initialised first, so the starts are not spread by the bring-up's I/O.
        Phase control needs one period for all: sensors of different budgets run free.
        """
        nominal_s = [s.period_s for s in self._sensors]
        period_s = max(nominal_s)
        offsets_s = slot_offsets_s(period_s, len(self._sensors), stagger=self._stagger)
        t0 = time.monotonic() + START_MARGIN_S
        for sensor, offset_s in zip(self._sensors, offsets_s):
            _sleep_until(t0 + offset_s)
            try:
                sensor.device.start_continuous()
            except Exception as exc:  # the driver raises OSError, RuntimeError
                raise SensorNotFound(
                    f"{where(sensor.sensor_id, sensor.address)} on I2C bus {self._bus_number} "
                    f"failed to start ranging: {type(exc).__name__}: {exc}"
                ) from exc
        return max(nominal_s) - min(nominal_s) <= SAME_PERIOD_SHARE * period_s

    def _release_hardware(self, *, stop_ranging: bool) -> None:
        # Each step on its own, so one failure does not keep the others from running.
        if stop_ranging:
            for sensor in self._sensors:
                try:
                    sensor.device.stop_continuous()
                except Exception as exc:  # best effort; XSHUT low follows anyway
                    log.warning("%s: stop_continuous failed: %s",
                                where(sensor.sensor_id, sensor.address), exc)
        for sensor_id, pin in self._pins.items():
            try:
                pin.off()
                pin.close()
            except Exception as exc:  # keep releasing the other pins
                log.warning("ToF sensor %r: releasing XSHUT failed: %s", sensor_id, exc)
        self._pins.clear()
        for sensor in self._sensors:
            if sensor.interrupt is None:
                continue
            try:
                sensor.interrupt.close()  # safe twice
            except Exception as exc:  # keep releasing the other pins
                log.warning("ToF sensor %r: releasing interrupt_pin failed: %s",
                            sensor.sensor_id, exc)


def _check_interrupt_pins(specs: Sequence[TofSpec]) -> None:
    """Refuse an interrupt pin that is another sensor's interrupt pin or any XSHUT pin."""
    users = [((s.sensor_id, "xshut_pin"), s.xshut_pin) for s in specs if s.xshut_pin is not None]
    users += [((s.sensor_id, "interrupt_pin"), s.interrupt_pin)
              for s in specs if s.interrupt_pin is not None]
    pins = {user: pin for user, pin in users}
    for (sensor_id, name), (other_id, other_name) in pin_clashes(users):
        raise ValueError(
            f"{name} of sensor {sensor_id!r} ({_pin_name(pins[(sensor_id, name)])}) is already "
            f"the {other_name} of sensor {other_id!r}: every XSHUT and interrupt pin must be "
            f"a pin of its own"
        )
