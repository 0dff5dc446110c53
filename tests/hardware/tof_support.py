"""Helpers of the ToF tests: what the reader hands over, and the timing figures read from it."""

from __future__ import annotations

import bisect
import itertools
import threading
import time

from gpiozero.pins.mock import MockFactory

from hardware import RangeReading, SensorFault
from hardware.sim.vl53l0x import SimI2C, SimVL53L0X, bind_gpio1, bind_xshut
from hardware.tof import TofSpec

IO_TIMEOUT_S = 0.05
#: Threads of the ToF driver and its model: none may outlive a test.
OWN_THREADS = ("tof-reader", "sim-vl53l0x-clock")


class Recorder:
    """Collects what the reader thread hands over, with the time each arrived (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readings: list[RangeReading] = []
        self._arrived: list[float] = []
        self._faults: list[SensorFault] = []

    def on_reading(self, reading: RangeReading) -> None:
        with self._lock:
            self._readings.append(reading)
            self._arrived.append(time.monotonic())

    def on_fault(self, fault: SensorFault) -> None:
        with self._lock:
            self._faults.append(fault)

    def readings(self, sensor_id: str | None = None) -> list[RangeReading]:
        with self._lock:
            return [r for r in self._readings if sensor_id in (None, r.sensor_id)]

    def arrivals(self, sensor_id: str | None = None) -> list[tuple[RangeReading, float]]:
        """(reading, time.monotonic() when the callback got it), oldest first."""
        with self._lock:
            return [(r, t) for r, t in zip(self._readings, self._arrived)
                    if sensor_id in (None, r.sensor_id)]

    def faults(self, containing: str = "") -> list[SensorFault]:
        with self._lock:
            return [f for f in self._faults if containing in f.message]


def offsets_in_periods(first: list[float], second: list[float], period_s: float) -> list[float]:
    """For each time in ``second``, how long after the latest earlier time in ``first``, in periods."""
    out = []
    for t in second:
        i = bisect.bisect_right(first, t) - 1
        if i >= 0:
            out.append((t - first[i]) / period_s)
    return out


def share_within(values: list[float], low: float, high: float) -> float:
    """The share of ``values`` in low..high: timing assertions allow a few late stamps on a busy machine."""
    return sum(1 for value in values if low <= value <= high) / len(values)


def wrapped(offset: float) -> float:
    """An offset in periods folded into -0.5..0.5 (0: in phase)."""
    return offset - round(offset)


def longest_gap_in_periods(stamps: list[float], period_s: float) -> float:
    """The longest time between consecutive stamps, in periods."""
    return max(later - earlier for earlier, later in itertools.pairwise(stamps)) / period_s


#: XSHUT and GPIO1 pins of the sensors wire_sensors() wires, in order.
XSHUT_PINS = (5, 6, 13)
INTERRUPT_PINS = (17, 27, 22)


def wire_sensors(bus: SimI2C, factory: MockFactory, sensor_ids: list[str], *, budget_ms: int = 20,
                 interrupt: bool = True, period_scales: dict[str, float] | None = None,
                 ) -> tuple[list[TofSpec], dict[str, SimVL53L0X]]:
    """Chips on ``bus`` with XSHUT (and GPIO1 when ``interrupt``) bound, and their specs at 0x30, 0x31..."""
    specs, chips = [], {}
    for i, sensor_id in enumerate(sensor_ids):
        scale = (period_scales or {}).get(sensor_id, 1.0)
        chip = bus.add_chip(distance_mm=300 + 100 * i, period_scale=scale)
        bind_xshut(factory, XSHUT_PINS[i], chip)
        if interrupt:
            bind_gpio1(factory, INTERRUPT_PINS[i], chip)
        specs.append(TofSpec(sensor_id, 0x30 + i, XSHUT_PINS[i], budget_ms,
                             interrupt_pin=INTERRUPT_PINS[i] if interrupt else None))
        chips[sensor_id] = chip
    return specs, chips
