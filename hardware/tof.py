"""VL53L0X time-of-flight sensors: bring-up through XSHUT, and one reader thread.

Uses the real ``adafruit_vl53l0x`` driver in continuous mode, always with a
finite ``io_timeout_s``, and smbus2 for the identity probe. The reader thread
hands each result to ``on_reading`` as a timestamped ``RangeReading`` with the
device range status (the Adafruit driver returns raw mm without it), and every
failure to ``on_fault``; nothing it does can raise into the caller.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import adafruit_vl53l0x
from adafruit_bus_device.i2c_device import I2CDevice
from gpiozero import DigitalOutputDevice, Factory, GPIOZeroError

from hardware import HardwareError, PinConfigError, RangeReading, SensorFault, SensorNotFound
from hardware.gpio_rules import PIN_RULE, bcm_number, pin_clashes
from hardware.vl53l0x_regs import (
    ADDRESS_RANGE,
    DEFAULT_ADDRESS,
    MODEL_ID,
    MODEL_ID_REGISTER,
    RESULT_RANGE_STATUS,
    TIMING_BUDGET_MS_RANGE,
    range_status_of,
)

log = logging.getLogger(__name__)

_STATUS_INDEX = bytes([RESULT_RANGE_STATUS])
#: The datasheet boot time is 1.2 ms; the margin covers a loaded Linux scheduler.
BOOT_TIMEOUT_S = 0.1
BOOT_POLL_S = 0.001
#: After a result, data_ready is not polled for this share of the sensor's period (no result can come
#: sooner). It saves most of the I2C polling and adds nothing to the reading latency.
QUIET_SHARE = 0.75
#: Pause before retrying a sensor that just failed, so a dead bus is not hammered.
FAULT_BACKOFF_S = 0.02
JOIN_TIMEOUT_S = 1.0


class SMBusLike(Protocol):
    """The part of smbus2.SMBus the identity probe uses."""

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        """Read one register byte; OSError if nobody answers."""

    def close(self) -> None:
        """Release the bus handle."""


@dataclass(frozen=True, slots=True)
class TofSpec:
    """One sensor as configured: id, target I2C address, XSHUT pin, timing budget."""

    sensor_id: str
    address: int
    xshut_pin: int | str | None
    timing_budget_ms: int

    def __post_init__(self) -> None:
        if not self.sensor_id:
            raise ValueError("sensor_id must be a non-empty string")
        low_address, high_address = ADDRESS_RANGE
        if not isinstance(self.address, int) or not low_address <= self.address <= high_address:
            raise ValueError(
                f"address of sensor {self.sensor_id!r} must be a 7-bit I2C address "
                f"in 0x{low_address:02x}..0x{high_address:02x}, got {self.address!r}"
            )
        if self.xshut_pin is not None and bcm_number(self.xshut_pin) is None:
            raise ValueError(
                f"xshut_pin of sensor {self.sensor_id!r} {PIN_RULE}, got {self.xshut_pin!r}"
            )
        low_ms, high_ms = TIMING_BUDGET_MS_RANGE
        budget = self.timing_budget_ms
        is_int = isinstance(budget, int) and not isinstance(budget, bool)
        if not is_int or not low_ms <= budget <= high_ms:
            raise ValueError(
                f"timing_budget_ms of sensor {self.sensor_id!r} must be an integer "
                f"in {low_ms}..{high_ms}, got {budget!r}"
            )


@dataclass(frozen=True, slots=True)
class TofStats:
    """Counters of one sensor since open()."""

    readings: int
    faults: int


@dataclass(slots=True)
class _Sensor:
    # Reader-thread state of one open sensor.
    spec: TofSpec
    device: adafruit_vl53l0x.VL53L0X
    status_reg: I2CDevice
    period_s: float
    stale_after_s: float
    last_data_t: float = 0.0
    retry_at_t: float = 0.0
    #: No result can be ready before this (a share of the period after the last one): not polled till then.
    quiet_until_t: float = 0.0
    stale_reported: bool = False
    readings: int = 0
    faults: int = 0
    status_buf: bytearray = field(default_factory=lambda: bytearray(1))


def _where(spec: TofSpec, address: int) -> str:
    return f"ToF sensor {spec.sensor_id!r} at 0x{address:02X}"


class TofArray:
    """Brings VL53L0X sensors up at distinct addresses and reads them in one thread.

    Callbacks run in the reader thread and must be quick (a queue put).
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
        self._sensors: list[_Sensor] = []
        self._pins: dict[str, DigitalOutputDevice] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._opened = False
        self._closed = False
        self._close_lock = threading.Lock()

    # --- lifecycle --------------------------------------------------------

    def open(self) -> None:
        """Power every sensor down, then bring each up, verify it and start ranging.

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
        except BaseException:
            self._release_hardware(stop_ranging=True)
            self._sensors.clear()
            self._closed = True
            raise

    def start(self) -> None:
        """Start the daemon reader thread "tof-reader"; returns at once."""
        if not self._sensors or self._closed:
            raise RuntimeError("TofArray.start() needs a successful open() and no close()")
        if self._thread is not None:
            raise RuntimeError("TofArray.start() was already called")
        now = time.monotonic()
        for sensor in self._sensors:
            sensor.last_data_t = now  # silence is measured from here
        self._thread = threading.Thread(target=self._run, name="tof-reader", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the reader, stop ranging, drive XSHUT low and release pins; safe twice."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(JOIN_TIMEOUT_S + self._io_timeout_s)
        reader_alive = thread is not None and thread.is_alive()
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
        return {s.spec.sensor_id: TofStats(s.readings, s.faults) for s in self._sensors}

    @property
    def sensor_periods_s(self) -> dict[str, float]:
        """Measurement period per sensor id, as read back from the sensor."""
        return {s.spec.sensor_id: s.period_s for s in self._sensors}

    @property
    def reader_thread(self) -> threading.Thread | None:
        """The reader thread once started (for supervision and tests)."""
        return self._thread

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
        self._sensors.sort(key=lambda s: order[s.spec.sensor_id])

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

    def _init_sensor(self, spec: TofSpec, address: int) -> _Sensor:
        at = address
        try:
            device = adafruit_vl53l0x.VL53L0X(self._i2c, address, io_timeout_s=self._io_timeout_s)
            if spec.address != address:
                device.set_address(spec.address)
                at = spec.address
            device.measurement_timing_budget = spec.timing_budget_ms * 1000
            period_s = device.measurement_timing_budget / 1e6
            device.start_continuous()
        except Exception as exc:  # the driver raises OSError, RuntimeError, ValueError
            raise SensorNotFound(
                f"{_where(spec, at)} on I2C bus {self._bus_number} failed to initialise: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return _Sensor(
            spec=spec,
            device=device,
            status_reg=I2CDevice(self._i2c, spec.address, probe=False),
            period_s=period_s,
            stale_after_s=2 * period_s + self._io_timeout_s,
        )

    def _release_hardware(self, *, stop_ranging: bool) -> None:
        # Each step on its own, so one failure does not keep the others from running.
        if stop_ranging:
            for sensor in self._sensors:
                try:
                    sensor.device.stop_continuous()
                except Exception as exc:  # best effort; XSHUT low follows anyway
                    where = _where(sensor.spec, sensor.spec.address)
                    log.warning("%s: stop_continuous failed: %s", where, exc)
        for sensor_id, pin in self._pins.items():
            try:
                pin.off()
                pin.close()
            except Exception as exc:  # keep releasing the other pins
                log.warning("ToF sensor %r: releasing XSHUT failed: %s", sensor_id, exc)
        self._pins.clear()

    # --- reader thread ------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            for sensor in self._sensors:
                self._poll(sensor)
            # Sleep until the first sensor whose next result may be ready; at least one poll interval.
            now = time.monotonic()
            next_t = min((max(s.quiet_until_t, s.retry_at_t) for s in self._sensors), default=now)
            self._stop.wait(max(self._poll_interval_s, min(next_t - now, self._poll_interval_s * 10)))

    def _poll(self, sensor: _Sensor) -> None:
        now = time.monotonic()
        if now >= sensor.retry_at_t and now >= sensor.quiet_until_t:
            try:
                if sensor.device.data_ready:
                    self._read(sensor)
                    return
            except Exception as exc:  # nothing may escape the reader thread
                sensor.retry_at_t = now + FAULT_BACKOFF_S
                self._fault(sensor, f"read failed: {type(exc).__name__}: {exc}")
        silence_s = time.monotonic() - sensor.last_data_t
        if silence_s > sensor.stale_after_s and not sensor.stale_reported:
            sensor.stale_reported = True
            self._fault(
                sensor,
                f"no data for {silence_s * 1000:.0f} ms "
                f"(limit {sensor.stale_after_s * 1000:.0f} ms)",
            )

    def _read(self, sensor: _Sensor) -> None:
        # Status first: range() clears the interrupt, after which the next result may land.
        with sensor.status_reg:
            sensor.status_reg.write_then_readinto(_STATUS_INDEX, sensor.status_buf)
        range_status = range_status_of(sensor.status_buf[0])
        distance_mm = sensor.device.range  # continuous mode: latest result, clears interrupt
        t_mono = time.monotonic()
        sensor.last_data_t = t_mono
        sensor.quiet_until_t = t_mono + QUIET_SHARE * sensor.period_s
        sensor.stale_reported = False
        sensor.readings += 1
        reading = RangeReading(sensor.spec.sensor_id, distance_mm, range_status, t_mono)
        try:
            self._on_reading(reading)
        except Exception:  # a consumer bug must not stop the sensors
            log.exception("on_reading callback failed for %r", reading)

    def _fault(self, sensor: _Sensor, message: str) -> None:
        sensor.faults += 1
        fault = SensorFault(
            sensor.spec.sensor_id,
            f"{_where(sensor.spec, sensor.spec.address)}: {message}",
            time.monotonic(),
        )
        try:
            self._on_fault(fault)
        except Exception:  # a consumer bug must not stop the sensors
            log.exception("on_fault callback failed for %r", fault)
