"""Register-level VL53L0X model on a simulated I2C bus, for the real Adafruit driver.

``SimI2C`` duck-types ``busio.I2C`` (and ``smbus()`` gives an smbus2-like view
of the same bus), so ``adafruit_vl53l0x.VL53L0X`` runs unchanged over it.
``SimVL53L0X`` answers that driver's traffic: identity, the SPAD handshake,
reference calibration, timing budget registers, continuous ranging and the
address change, and injects faults on demand.

XSHUT: call ``bind_xshut(factory, pin, chip)`` on a gpiozero ``MockFactory``
*before* the driver opens the pin. It creates the pin as a watched mock pin
(hardware/sim/pins.py) whose level powers the chip, as the real XSHUT line does.
"""

from __future__ import annotations

import errno
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gpiozero.pins.mock import MockFactory, MockPin

from hardware.sim.pins import watch_pin
from hardware.vl53l0x_regs import (
    DEFAULT_ADDRESS,
    MODEL_ID,
    MODEL_ID_REGISTER,
    NO_TARGET_MM,
    RANGE_STATUS_MASK,
    RANGE_STATUS_NO_TARGET,
    RANGE_STATUS_SHIFT,
    RANGE_STATUS_VALID,
    RESULT_RANGE_STATUS,
)

DistanceFn = Callable[[], float | None]
Buffer = bytes | bytearray | memoryview

FAULT_KINDS = frozenset(
    {"i2c_error", "hang", "no_target", "invalid_status", "phantom", "wrong_chip", "absent"}
)

_PAGE = 0xFF
_SYSRANGE_START = 0x00
_SYSTEM_SEQUENCE_CONFIG = 0x01
_SYSTEM_INTERRUPT_CLEAR = 0x0B
_RESULT_INTERRUPT_STATUS = 0x13
_RESULT_RANGE_MM = 0x1E  # big-endian u16 at 0x1E/0x1F (RESULT_RANGE_STATUS + 10)
_I2C_SLAVE_DEVICE_ADDRESS = 0x8A
_INTERRUPT_NEW_SAMPLE = 0x04
# Reference SPAD count 5, aperture type: any plausible value passes the driver.
_SPAD_INFO = 0x85

# Power-on register values that the driver reads before writing them.
_BOOT_REGISTERS = {
    (0, _SYSTEM_SEQUENCE_CONFIG): 0xFF, (0, 0x45): 0x20,  # 0x44/45: min count rate (9.7)
    (0, 0x46): 0x25,  # MSRC timeout (macro periods - 1)
    (0, 0x50): 0x06, (0, 0x51): 0x00, (0, 0x52): 0x96,  # pre-range VCSEL period, timeout
    (0, 0x70): 0x04, (0, 0x71): 0x01, (0, 0x72): 0xFE,  # final range VCSEL period, timeout
    (0, 0x84): 0x11, (0, _I2C_SLAVE_DEVICE_ADDRESS): DEFAULT_ADDRESS,
    **{(0, reg): 0xFF for reg in range(0xB0, 0xB6)},  # reference SPAD map
    (0, MODEL_ID_REGISTER): MODEL_ID, (0, 0xC1): 0xAA, (0, 0xC2): 0x10,  # model id, type, revision
    (1, 0x91): 0x3C,  # "stop variable" read during init
}


def _io_error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def _decode_timeout(value: int) -> float:
    # Register format: LSByte * 2^MSByte + 1 (macro periods).
    return float(value & 0xFF) * math.pow(2.0, (value & 0xFF00) >> 8) + 1


def _mclks_to_us(timeout_mclks: float, vcsel_period_pclks: int) -> int:
    macro_period_ns = ((2304 * vcsel_period_pclks * 1655) + 500) // 1000
    return int(((timeout_mclks * macro_period_ns) + (macro_period_ns // 2)) // 1000)


@dataclass(frozen=True, slots=True)
class SimMeasurement:
    """One ranging result the model produced (for tests to inspect)."""

    t_mono: float
    distance_mm: int
    range_status: int


class SimVL53L0X:
    """One VL53L0X: a paged register file with ranging that runs in real monotonic time.

    Measurements are computed lazily when the bus touches the chip, so no thread
    is needed; ``distance_fn`` (or ``set_distance``) is read at measurement time.
    """

    def __init__(
        self, *, distance_mm: float | None = 500.0, distance_fn: DistanceFn | None = None,
        powered: bool = True, boot_time_s: float = 0.001, max_range_mm: int = 2000,
        history_len: int = 256, lock: threading.RLock | None = None,
    ) -> None:
        self._lock = lock if lock is not None else threading.RLock()
        self.distance_fn = distance_fn
        self._distance_mm = distance_mm
        self.boot_time_s = boot_time_s
        self.max_range_mm = max_range_mm
        #: Values reported by the "phantom", "invalid_status" and "wrong_chip" faults.
        self.phantom_distance_mm = 150
        self.invalid_range_status = 6
        self.wrong_model_id = 0x00
        self._faults: set[str] = set()
        self._history: deque[SimMeasurement] = deque(maxlen=history_len)
        self._powered = powered  # a chip powered at construction has already booted
        self._boot_done_t = 0.0
        self._reset_registers()

    # --- test-facing API -------------------------------------------------

    def set_distance(self, distance_mm: float | None) -> None:
        """Distance to the target in mm from now on; None means nothing in view."""
        if distance_mm is not None and not distance_mm >= 0:
            raise ValueError(f"distance_mm must be >= 0 or None, got {distance_mm!r}")
        with self._lock:
            self._distance_mm = distance_mm

    def set_power(self, on: bool) -> None:
        """Drive XSHUT: off leaves the bus; on boots at 0x29 with power-on registers."""
        with self._lock:
            if on and not self._powered:
                self._reset_registers()
                self._boot_done_t = time.monotonic() + self.boot_time_s
            self._powered = bool(on)

    def inject_fault(self, kind: str) -> None:
        """Start a fault: one of FAULT_KINDS; several may be active at once."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {sorted(FAULT_KINDS)}, got {kind!r}")
        with self._lock:
            self._faults.add(kind)

    def clear_faults(self) -> None:
        """End every injected fault."""
        with self._lock:
            self._faults.clear()

    @property
    def faults(self) -> frozenset[str]:
        """The faults now active."""
        with self._lock:
            return frozenset(self._faults)

    # Single attribute reads below need no lock.

    @property
    def address(self) -> int:
        """The 7-bit address the chip answers at while powered."""
        return self._address

    @property
    def powered(self) -> bool:
        """True while XSHUT holds the chip on."""
        return self._powered

    @property
    def continuous(self) -> bool:
        """True while back-to-back continuous ranging runs."""
        return self._mode == "continuous"

    @property
    def history(self) -> list[SimMeasurement]:
        """Recent measurements, oldest first (bounded)."""
        with self._lock:
            return list(self._history)

    @property
    def timing_budget_us(self) -> int:
        """Measurement period from the registers, computed as the driver's getter does."""
        with self._lock:
            return self._timing_budget_us()

    # --- bus side (called by SimI2C with its lock held) ------------------

    def answers(self, address: int, now: float) -> bool:
        """True if the chip ACKs ``address`` at time ``now``."""
        booted = self._powered and now >= self._boot_done_t
        return booted and "absent" not in self._faults and self._address == address

    def i2c_write(self, data: bytes, now: float) -> None:
        """A write transaction: register index, then values with auto-increment."""
        self._begin_transaction(now)
        if not data:
            return  # address-only probe
        self._index = data[0]
        for value in data[1:]:
            self._write_reg(self._index, value, now)
            self._index = (self._index + 1) & 0xFF

    def i2c_read(self, length: int, now: float) -> bytes:
        """A read transaction of ``length`` bytes from the current index."""
        self._begin_transaction(now)
        out = bytearray()
        for _ in range(length):
            out.append(self._read_reg(self._index))
            self._index = (self._index + 1) & 0xFF
        return bytes(out)

    # --- internals --------------------------------------------------------

    def _reset_registers(self) -> None:
        self._regs: dict[tuple[int, int], int] = dict(_BOOT_REGISTERS)  # (page, reg)
        self._page = self._index = self._interrupt_status = 0
        self._address = DEFAULT_ADDRESS
        self._mode = "idle"  # idle, single or continuous
        self._period_s, self._next_result_t = 0.0, math.inf

    def _begin_transaction(self, now: float) -> None:
        if "i2c_error" in self._faults:
            raise _io_error(errno.EIO)
        self._advance(now)

    def _advance(self, now: float) -> None:
        # Catch up on measurements due since the last transaction; only the most
        # recent one is computed, so a slow reader sees the latest value.
        if self._mode == "idle" or "hang" in self._faults or now < self._next_result_t:
            return
        if self._mode == "continuous":
            missed = math.floor((now - self._next_result_t) / self._period_s)
            t_result = self._next_result_t + missed * self._period_s
            self._next_result_t = t_result + self._period_s
        else:
            t_result = self._next_result_t
            self._mode = "idle"
            self._next_result_t = math.inf
        self._measure(t_result)

    def _measure(self, t_mono: float) -> None:
        if "no_target" in self._faults:
            distance_mm, status = NO_TARGET_MM, RANGE_STATUS_NO_TARGET
        elif "phantom" in self._faults:
            distance_mm, status = int(self.phantom_distance_mm), RANGE_STATUS_VALID
        else:
            true_mm = self.distance_fn() if self.distance_fn is not None else self._distance_mm
            if true_mm is None or true_mm > self.max_range_mm:
                distance_mm, status = NO_TARGET_MM, RANGE_STATUS_NO_TARGET
            else:
                distance_mm, status = max(0, int(round(true_mm))), RANGE_STATUS_VALID
        if "invalid_status" in self._faults and distance_mm != NO_TARGET_MM:
            status = self.invalid_range_status
        self._regs[(0, RESULT_RANGE_STATUS)] = (status & RANGE_STATUS_MASK) << RANGE_STATUS_SHIFT
        self._regs[(0, _RESULT_RANGE_MM)] = (distance_mm >> 8) & 0xFF
        self._regs[(0, _RESULT_RANGE_MM + 1)] = distance_mm & 0xFF
        self._interrupt_status = _INTERRUPT_NEW_SAMPLE
        self._history.append(SimMeasurement(t_mono, distance_mm, status))

    def _write_reg(self, reg: int, value: int, now: float) -> None:
        if reg == _PAGE:
            self._page = value
            return
        self._regs[(self._page, reg)] = value
        if self._page == 0:
            if reg == _SYSRANGE_START:
                self._start_ranging(value, now)
            elif reg == _SYSTEM_INTERRUPT_CLEAR and value & 0x01:
                self._interrupt_status = 0
            elif reg == _I2C_SLAVE_DEVICE_ADDRESS:
                self._address = value & 0x7F
        elif self._page == 7 and reg == 0x83 and value == 0x00:
            # SPAD info handshake: the driver polls 0x83 until non-zero.
            self._regs[(7, 0x83)] = 0x10

    def _read_reg(self, reg: int) -> int:
        if reg == _PAGE:
            return self._page
        if self._page == 0:
            if reg == _SYSRANGE_START:
                return self._regs.get((0, reg), 0) & ~0x01  # start bit self-clears
            if reg == _RESULT_INTERRUPT_STATUS:
                return self._interrupt_status
            if reg == MODEL_ID_REGISTER and "wrong_chip" in self._faults:
                return self.wrong_model_id
        elif self._page == 7 and reg == 0x92:
            return _SPAD_INFO
        return self._regs.get((self._page, reg), 0)

    def _start_ranging(self, value: int, now: float) -> None:
        if value & 0x02:  # back-to-back continuous mode
            self._mode = "continuous"
            self._period_s = self._timing_budget_us() / 1e6
            self._next_result_t = now + self._period_s
        elif value & 0x01:
            if self._regs.get((0, _SYSTEM_SEQUENCE_CONFIG)) in (0x01, 0x02):
                # VHV or phase reference calibration: done at once, no range result.
                self._mode = "idle"
                self._interrupt_status = _INTERRUPT_NEW_SAMPLE
            else:  # single shot; also how the driver stops continuous mode
                self._mode = "single"
                self._period_s = self._timing_budget_us() / 1e6
                self._next_result_t = now + self._period_s

    def _timing_budget_us(self) -> int:
        def reg(r: int) -> int:
            return self._regs.get((0, r), 0)

        sequence = reg(_SYSTEM_SEQUENCE_CONFIG)
        tcc, dss, msrc = (sequence >> 4) & 1, (sequence >> 3) & 1, (sequence >> 2) & 1
        pre_range, final_range = (sequence >> 6) & 1, (sequence >> 7) & 1
        pre_vcsel_pclks = ((reg(0x50) + 1) & 0xFF) << 1
        final_vcsel_pclks = ((reg(0x70) + 1) & 0xFF) << 1
        msrc_us = _mclks_to_us((reg(0x46) + 1) & 0xFF, pre_vcsel_pclks)
        pre_mclks = _decode_timeout((reg(0x51) << 8) | reg(0x52))
        pre_us = _mclks_to_us(pre_mclks, pre_vcsel_pclks)
        final_mclks = _decode_timeout((reg(0x71) << 8) | reg(0x72))
        if pre_range:
            final_mclks -= pre_mclks
        final_us = _mclks_to_us(final_mclks, final_vcsel_pclks)
        budget_us = 1910 + 960  # start and end overhead
        budget_us += (msrc_us + 590) * tcc + (pre_us + 660) * pre_range
        budget_us += (final_us + 550) * final_range
        budget_us += 2 * (msrc_us + 690) if dss else (msrc_us + 660) * msrc
        return budget_us


class SimI2C:
    """A simulated I2C bus with the ``busio.I2C`` methods; one lock serialises it.

    An address nobody ACKs raises OSError(EREMOTEIO), as Linux i2c-dev does on a Pi.
    Two chips at one address both take writes, and reads return the wired-AND.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._user_lock = threading.Lock()  # busio's try_lock()/unlock()
        self._chips: list[SimVL53L0X] = []

    def add_chip(
        self, *, distance_mm: float | None = 500.0, distance_fn: DistanceFn | None = None,
        powered: bool = True, boot_time_s: float = 0.001, max_range_mm: int = 2000,
        history_len: int = 256,
    ) -> SimVL53L0X:
        """Put a new VL53L0X on the bus (at 0x29 while powered) and return it."""
        chip = SimVL53L0X(
            distance_mm=distance_mm, distance_fn=distance_fn, powered=powered,
            boot_time_s=boot_time_s, max_range_mm=max_range_mm, history_len=history_len,
            lock=self._lock,
        )
        with self._lock:
            self._chips.append(chip)
        return chip

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

    def writeto(self, address: int, buffer: Buffer, *, start: int = 0,
                end: int | None = None) -> None:
        """Write ``buffer[start:end]`` to ``address`` and stop."""
        data = bytes(memoryview(buffer)[start:end])
        with self._lock:
            now = time.monotonic()
            for chip in self._targets(address, now):
                chip.i2c_write(data, now)

    def readfrom_into(self, address: int, buffer: bytearray, *, start: int = 0,
                      end: int | None = None) -> None:
        """Read into ``buffer[start:end]`` from ``address``."""
        with self._lock:
            self._read_locked(address, buffer, start, end, time.monotonic())

    def writeto_then_readfrom(
        self, address: int, buffer_out: Buffer, buffer_in: bytearray, *, out_start: int = 0,
        out_end: int | None = None, in_start: int = 0, in_end: int | None = None,
    ) -> None:
        """Write then read with a repeated start; nothing else runs in between."""
        with self._lock:
            self.writeto(address, buffer_out, start=out_start, end=out_end)
            self._read_locked(address, buffer_in, in_start, in_end, time.monotonic())

    def deinit(self) -> None:
        """Nothing to release; present because busio.I2C has it."""

    def __enter__(self) -> SimI2C:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.deinit()

    def _targets(self, address: int, now: float) -> list[SimVL53L0X]:
        chips = [chip for chip in self._chips if chip.answers(address, now)]
        if not chips:
            raise _io_error(errno.EREMOTEIO)
        return chips

    def _read_locked(self, address: int, buffer: bytearray, start: int, end: int | None,
                     now: float) -> None:
        stop = len(buffer) if end is None else end
        length = stop - start
        data = bytearray(b"\xff" * length)  # open-drain: idle bus reads ones
        for chip in self._targets(address, now):
            for i, byte in enumerate(chip.i2c_read(length, now)):
                data[i] &= byte
        buffer[start:stop] = data


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
            raise _io_error(errno.EBADF)
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


def bind_xshut(factory: MockFactory, pin: int | str, chip: SimVL53L0X) -> MockPin:
    """Create ``pin`` on ``factory`` as the chip's XSHUT line; call before the driver opens it.

    The breakout pulls XSHUT up, so the chip stays on until something drives the pin low.
    """
    mock_pin = watch_pin(factory, pin, chip.set_power)
    if mock_pin.function == "input":
        mock_pin.drive_high()
    chip.set_power(bool(mock_pin.state))
    return mock_pin
