"""Hardware drivers: time-of-flight sensors, the treadmill's serial link, GPIO.

Drivers hand over plain, timestamped samples (``time.monotonic()``) through
callbacks; they never import ``controller`` or ``web``. Each driver takes its
bus, port or pin factory as a keyword so tests can pass simulated ones.
"""

from __future__ import annotations

from dataclasses import dataclass


class HardwareError(Exception):
    """Root of every error a driver raises on purpose."""


class SensorNotFound(HardwareError, OSError):
    """A VL53L0X did not answer at its address, or answered with the wrong identity."""


class LinkError(HardwareError, OSError):
    """The treadmill's serial link failed (no port, no answer, protocol fault)."""


class PinConfigError(HardwareError, ValueError):
    """A GPIO pin or pin factory named in the config could not be used."""


@dataclass(frozen=True, slots=True)
class RangeReading:
    """One ranging result from one sensor, read when it became available."""

    sensor_id: str
    distance_mm: int
    #: Device range status from RESULT_RANGE_STATUS; valid is ``vl53l0x_regs.RANGE_STATUS_VALID``.
    range_status: int
    #: When the result became available: its GPIO1 edge for a sensor with an interrupt pin,
    #: the moment it was read for a polled one.
    t_mono: float


@dataclass(frozen=True, slots=True)
class SensorFault:
    """A sensor could not be read (I2C error, timeout); the reader goes on trying."""

    sensor_id: str
    message: str
    t_mono: float


@dataclass(frozen=True, slots=True)
class BeltReading:
    """Actual belt speed reported by the treadmill or a speed sensor (m/s, >= 0)."""

    belt_speed_mps: float
    t_mono: float


@dataclass(frozen=True, slots=True)
class LinkFault:
    """The serial link to the treadmill failed; latched until the driver is reopened."""

    message: str
    t_mono: float
