"""Register-level VL53L0X model on a simulated I2C bus, for the real Adafruit driver.

``SimI2C`` duck-types ``busio.I2C`` (and ``smbus()`` gives an smbus2-like view
of the same bus), so ``adafruit_vl53l0x.VL53L0X`` runs unchanged over it. Its
chips are ``SimVL53L0X`` register models (hardware/sim/vl53l0x_chip.py).

XSHUT: call ``bind_xshut(factory, pin, chip)`` on a gpiozero ``MockFactory``
*before* the driver opens the pin. It creates the pin as a watched mock pin
(hardware/sim/pins.py) whose level powers the chip, as the real XSHUT line does.

GPIO1: ``bind_gpio1(factory, pin, chip)`` makes the pin the chip's interrupt
output, driven from its registers (source, polarity, status, clear). Results
then also come in real time without bus traffic: the bus runs one daemon thread,
"sim-vl53l0x-clock", that sleeps until the next result of a chip with GPIO1
bound. ``SimI2C.close()`` stops it.

``overlap_fraction`` compares two chips' ``emitter_windows()``: how much of the
time one fires its emitter the other fires too.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import math
import threading
import time
from collections.abc import Iterable, Iterator, Sequence

from gpiozero.pins.mock import MockFactory, MockPin

from hardware.sim.pins import driven_pin, watch_pin
from hardware.sim.vl53l0x_chip import (
    FAULT_KINDS,
    DistanceFn,
    SimMeasurement,
    SimVL53L0X,
    io_error,
)

__all__ = [
    "FAULT_KINDS", "SimI2C", "SimMeasurement", "SimSMBus", "SimVL53L0X", "bind_gpio1",
    "bind_xshut", "overlap_fraction",
]

Buffer = bytes | bytearray | memoryview
#: How long SimI2C.close() waits for the clock thread.
CLOCK_JOIN_TIMEOUT_S = 1.0


class SimI2C:
    """A simulated I2C bus with the ``busio.I2C`` methods; one lock serialises it.

    An address nobody ACKs raises OSError(EREMOTEIO), as Linux i2c-dev does on a Pi.
    Two chips at one address both take writes, and reads return the wired-AND.
    Once a chip has GPIO1 bound, the bus runs the "sim-vl53l0x-clock" thread; call
    ``close()`` (or use the bus as a context manager) to stop it.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._user_lock = threading.Lock()  # busio's try_lock()/unlock()
        self._chips: list[SimVL53L0X] = []
        self._closed = False
        self._clock_thread: threading.Thread | None = None
        self._clock_wake = threading.Event()

    def add_chip(
        self, *, distance_mm: float | None = 500.0, distance_fn: DistanceFn | None = None,
        powered: bool = True, boot_time_s: float = 0.001, max_range_mm: int = 2000,
        history_len: int = 256, period_scale: float = 1.0,
    ) -> SimVL53L0X:
        """Put a new VL53L0X on the bus (at 0x29 while powered) and return it."""
        chip = SimVL53L0X(
            distance_mm=distance_mm, distance_fn=distance_fn, powered=powered,
            boot_time_s=boot_time_s, max_range_mm=max_range_mm, history_len=history_len,
            period_scale=period_scale, lock=self._lock, on_schedule=self._wake_clock,
        )
        with self._lock:
            self._chips.append(chip)
        return chip

    @property
    def clock_thread(self) -> threading.Thread | None:
        """The thread that produces results of GPIO1-bound chips in real time, once started."""
        return self._clock_thread

    def close(self) -> None:
        """Stop the clock thread and wait for it; safe twice. The bus itself keeps working."""
        with self._lock:
            self._closed = True
            thread = self._clock_thread
        self._clock_wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(CLOCK_JOIN_TIMEOUT_S)

    def smbus(self) -> SimSMBus:
        """An smbus2.SMBus look-alike over this bus, for identity probes."""
        return SimSMBus(self)

    def try_lock(self) -> bool:
        """Claim the bus for a transaction sequence; False if someone holds it."""
        return self._user_lock.acquire(blocking=False)

    def unlock(self) -> None:
        """Release the claim taken by try_lock()."""
        self._user_lock.release()

    def scan(self) -> list[int]:
        """Addresses that ACK an empty write, sorted."""
        # A chip with an I2C fault ACKs but fails the transfer, so scan() leaves it out.
        with self._lock:
            now = time.monotonic()
            return [a for a in range(0x08, 0x78) if any(
                c.answers(a, now) and "i2c_error" not in c.faults for c in self._chips)]

    @contextlib.contextmanager
    def _transaction(self, address: int) -> Iterator[tuple[list[SimVL53L0X], float]]:
        """The chips at ``address`` and the time, under the bus lock; afterwards, with the lock
        released, the GPIO1 pins of the chips the transaction touched are driven."""
        chips: list[SimVL53L0X] = []
        try:
            with self._lock:
                now = time.monotonic()
                chips = self._targets(address, now)
                yield chips, now
        finally:
            _drive_gpio1_pins(chips)

    def writeto(self, address: int, buffer: Buffer, *, start: int = 0,
                end: int | None = None) -> None:
        """Write ``buffer[start:end]`` to ``address`` and stop."""
        data = bytes(memoryview(buffer)[start:end])
        with self._transaction(address) as (chips, now):
            _write(chips, data, now)

    def readfrom_into(self, address: int, buffer: bytearray, *, start: int = 0,
                      end: int | None = None) -> None:
        """Read into ``buffer[start:end]`` from ``address``."""
        with self._transaction(address) as (chips, now):
            _read_into(chips, buffer, start, end, now)

    def writeto_then_readfrom(
        self, address: int, buffer_out: Buffer, buffer_in: bytearray, *, out_start: int = 0,
        out_end: int | None = None, in_start: int = 0, in_end: int | None = None,
    ) -> None:
        """Write then read with a repeated start; nothing else runs in between."""
        data = bytes(memoryview(buffer_out)[out_start:out_end])
        with self._transaction(address) as (chips, now):
            _write(chips, data, now)
            _read_into(self._targets(address, now), buffer_in, in_start, in_end, now)

    def deinit(self) -> None:
        """Release the bus as busio.I2C does: here, stop the clock thread (see close())."""
        self.close()

    def __enter__(self) -> SimI2C:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.deinit()

    def _targets(self, address: int, now: float) -> list[SimVL53L0X]:
        chips = [chip for chip in self._chips if chip.answers(address, now)]
        if not chips:
            raise io_error(errno.EREMOTEIO)
        return chips

    # --- clock thread -----------------------------------------------------

    def _wake_clock(self) -> None:
        # Lock held (a chip's on_schedule hook): a GPIO1-bound chip's next result time moved.
        if self._closed:
            return
        if self._clock_thread is None:
            self._clock_thread = threading.Thread(
                target=self._run_clock, name="sim-vl53l0x-clock", daemon=True
            )
            self._clock_thread.start()
        self._clock_wake.set()

    def _run_clock(self) -> None:
        # One wake per result: sleep until the earliest result due, produce it through the
        # same advance() the bus uses, then drive the pins outside the lock.
        while True:
            self._clock_wake.clear()  # before reading the schedule: a change after it wakes us
            with self._lock:
                if self._closed:
                    return
                now = time.monotonic()
                chips = [chip for chip in self._chips if chip.gpio1_bound]
                for chip in chips:
                    if chip.next_result_due() <= now:
                        chip.advance(now)
                next_t = min((chip.next_result_due() for chip in chips), default=math.inf)
            _drive_gpio1_pins(chips)
            timeout_s = None if next_t == math.inf else max(0.0, next_t - time.monotonic())
            self._clock_wake.wait(timeout_s)


class SimSMBus:
    """The smbus2.SMBus methods the ToF driver's identity probe uses, over a SimI2C."""

    def __init__(self, bus: SimI2C) -> None:
        self._bus = bus
        self._closed = False

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        """Read one register byte."""
        return self.read_i2c_block_data(i2c_addr, register, 1)[0]

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int,
                            force: bool | None = None) -> list[int]:
        """Read ``length`` bytes starting at ``register``."""
        if self._closed:
            raise io_error(errno.EBADF)
        data = bytearray(length)
        self._bus.writeto_then_readfrom(i2c_addr, bytes([register]), data)
        return list(data)

    def close(self) -> None:
        """Close the handle; safe twice."""
        self._closed = True

    def __enter__(self) -> SimSMBus:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _write(chips: list[SimVL53L0X], data: bytes, now: float) -> None:
    for chip in chips:
        chip.i2c_write(data, now)


def _read_into(chips: list[SimVL53L0X], buffer: bytearray, start: int, end: int | None,
               now: float) -> None:
    stop = len(buffer) if end is None else end
    data = bytearray(b"\xff" * (stop - start))  # open-drain: idle bus reads ones
    for chip in chips:
        for i, byte in enumerate(chip.i2c_read(stop - start, now)):
            data[i] &= byte
    buffer[start:stop] = data


def _drive_gpio1_pins(chips: Iterable[SimVL53L0X]) -> None:
    for chip in chips:
        if chip.gpio1_bound:
            chip.drive_gpio1()


def overlap_fraction(
    windows_a: Sequence[tuple[float, float]], windows_b: Sequence[tuple[float, float]]
) -> float:
    """Share of the total time of ``windows_a`` that some window of ``windows_b`` covers (0..1).

    Windows are (start, end) times, as ``SimVL53L0X.emitter_windows()`` gives them: the share
    of A's emitter time during which B's emitter fires too. 0.0 if A has no time at all.
    """
    for start, end in (*windows_a, *windows_b):
        if not end >= start:
            raise ValueError(f"a window must end at or after its start, got ({start!r}, {end!r})")
    # B as sorted, disjoint intervals, so each A window is matched by a binary search.
    merged: list[list[float]] = []
    for start, end in sorted(windows_b):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    ends = [end for _, end in merged]
    total_s = covered_s = 0.0
    for start, end in windows_a:
        total_s += end - start
        i = bisect.bisect_right(ends, start)
        while i < len(merged) and merged[i][0] < end:
            covered_s += min(end, merged[i][1]) - max(start, merged[i][0])
            i += 1
    return covered_s / total_s if total_s > 0 else 0.0


def bind_gpio1(factory: MockFactory, pin: int | str, chip: SimVL53L0X) -> MockPin:
    """Create ``pin`` on ``factory`` as the chip's GPIO1 interrupt line; call before the driver opens it.

    The chip drives the pin from its registers (edge callbacks fire in the driving thread);
    while it drives nothing the breakout's pull-up holds the line high. With a SimI2C chip
    this starts the bus's clock thread, so results come on time without bus traffic.
    """
    mock_pin = driven_pin(factory, pin, lambda: chip.gpio1_level)
    chip.attach_gpio1(mock_pin)
    return mock_pin


def bind_xshut(factory: MockFactory, pin: int | str, chip: SimVL53L0X) -> MockPin:
    """Create ``pin`` on ``factory`` as the chip's XSHUT line; call before the driver opens it.

    The breakout pulls XSHUT up, so the chip stays on until something drives the pin low.
    """
    mock_pin = watch_pin(factory, pin, chip.set_power)
    if mock_pin.function == "input":
        mock_pin.drive_high()
    chip.set_power(bool(mock_pin.state))
    return mock_pin
