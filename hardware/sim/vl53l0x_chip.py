"""The VL53L0X register model: one simulated chip for the real Adafruit driver (SimI2C carries its traffic).

``SimVL53L0X`` answers that driver's traffic: identity, the SPAD handshake,
reference calibration, timing budget registers, continuous ranging and the
address change, and injects faults on demand. It drives its GPIO1 interrupt
output from its registers once ``hardware.sim.vl53l0x.bind_gpio1`` gives it a pin.

Model assumptions not verified on a real chip: with the GPIO1 function off (the
power-on value of SYSTEM_INTERRUPT_CONFIG_GPIO) the output is released to the
pull-up; writing the back-to-back start while already ranging continuously
restarts the period (the next result comes one period after the write).
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

from gpiozero.pins.mock import MockPin

from hardware.vl53l0x_regs import (
    DEFAULT_ADDRESS,
    GPIO_ACTIVE_HIGH_BIT,
    GPIO_HV_MUX_ACTIVE_HIGH,
    INTERRUPT_NEW_SAMPLE,
    INTERRUPT_STATUS_MASK,
    MODEL_ID,
    MODEL_ID_REGISTER,
    NO_TARGET_MM,
    RANGE_STATUS_MASK,
    RANGE_STATUS_NO_TARGET,
    RANGE_STATUS_SHIFT,
    RANGE_STATUS_VALID,
    RESULT_INTERRUPT_STATUS,
    RESULT_RANGE_STATUS,
    SYSTEM_INTERRUPT_CLEAR,
    SYSTEM_INTERRUPT_CONFIG_GPIO,
)

DistanceFn = Callable[[], float | None]

#: "gpio1_broken": the GPIO1 wire is cut, so the pull-up holds the line high whatever the chip does;
#: "gpio1_stuck_low": the line is held low (a short to ground, a chip output stuck).
FAULT_KINDS = frozenset(
    {"i2c_error", "hang", "no_target", "invalid_status", "phantom", "wrong_chip", "absent",
     "gpio1_broken", "gpio1_stuck_low"}
)

_PAGE = 0xFF
_SYSRANGE_START = 0x00
_SYSTEM_SEQUENCE_CONFIG = 0x01
_RESULT_RANGE_MM = 0x1E  # big-endian u16 at 0x1E/0x1F (RESULT_RANGE_STATUS + 10)
_I2C_SLAVE_DEVICE_ADDRESS = 0x8A
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


def io_error(code: int) -> OSError:
    """The OSError Linux i2c-dev raises for ``code`` (errno)."""
    return OSError(code, os.strerror(code))


def _decode_timeout(value: int) -> float:
    # Register format: LSByte * 2^MSByte + 1 (macro periods).
    return float(value & 0xFF) * math.pow(2.0, (value & 0xFF00) >> 8) + 1


def _mclks_to_us(timeout_mclks: float, vcsel_period_pclks: int) -> int:
    macro_period_ns = ((2304 * vcsel_period_pclks * 1655) + 500) // 1000
    return int(((timeout_mclks * macro_period_ns) + (macro_period_ns // 2)) // 1000)


def _checked_scale(scale: float) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf:
        raise ValueError(f"period_scale must be a finite number > 0, got {scale!r}")
    return float(scale)


@dataclass(frozen=True, slots=True)
class SimMeasurement:
    """One ranging result the model produced (for tests to inspect)."""

    t_mono: float
    distance_mm: int
    range_status: int
    #: How long the final range step fired the emitter, ending at ``t_mono``.
    final_range_s: float = 0.0


class SimVL53L0X:
    """One VL53L0X: a paged register file with ranging that runs in real monotonic time.

    Measurements are computed lazily when the bus touches the chip (or, with GPIO1
    bound, when the bus's clock thread wakes for them); ``distance_fn`` (or
    ``set_distance``) is read at measurement time. ``period_scale`` stretches every
    measurement, as a real chip's oscillator runs a few percent off.
    """

    def __init__(
        self, *, distance_mm: float | None = 500.0, distance_fn: DistanceFn | None = None,
        powered: bool = True, boot_time_s: float = 0.001, max_range_mm: int = 2000,
        history_len: int = 256, period_scale: float = 1.0, lock: threading.RLock | None = None,
        on_schedule: Callable[[], None] | None = None,
    ) -> None:
        self._lock = lock if lock is not None else threading.RLock()
        #: Called (lock held) when a GPIO1-bound chip's next result time may have moved.
        self._on_schedule = on_schedule
        self._period_scale = _checked_scale(period_scale)
        self._gpio1: MockPin | None = None
        # Serialises driving the GPIO1 pin, so the level read last is the level driven last.
        self._gpio1_lock = threading.RLock()
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
            self._schedule_changed()
        self.drive_gpio1()

    def inject_fault(self, kind: str) -> None:
        """Start a fault: one of FAULT_KINDS; several may be active at once."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {sorted(FAULT_KINDS)}, got {kind!r}")
        with self._lock:
            self._faults.add(kind)
        self.drive_gpio1()

    def clear_faults(self) -> None:
        """End every injected fault; GPIO1 returns to the level the registers call for."""
        with self._lock:
            self._faults.clear()
            self._schedule_changed()  # a hung chip catches up at once
        self.drive_gpio1()

    @property
    def period_scale(self) -> float:
        """Actual measurement period over the register-derived timing budget (1.0: exact)."""
        return self._period_scale

    @period_scale.setter
    def period_scale(self, scale: float) -> None:
        # The measurement under way ends when it was due; the new scale applies from the next one.
        scale = _checked_scale(scale)
        with self._lock:
            if self._powered:
                self.advance(time.monotonic())
            self._period_scale = scale
            if self._mode != "idle":
                self._period_s, self._final_range_s = self._scaled_timing_s()
            self._schedule_changed()
        self.drive_gpio1()

    def attach_gpio1(self, pin: MockPin) -> None:
        """Drive ``pin`` as this chip's GPIO1 from now on (``bind_gpio1`` calls this)."""
        with self._lock:
            self._gpio1 = pin
            self._schedule_changed()
        self.drive_gpio1()

    @property
    def gpio1_bound(self) -> bool:
        """True once a pin follows this chip's interrupt output."""
        return self._gpio1 is not None

    @property
    def gpio1_level(self) -> bool:
        """The level on the GPIO1 wire now (True: high), faults included."""
        with self._lock:
            return self._line_level()

    def emitter_windows(self) -> list[tuple[float, float]]:
        """(start, end) monotonic times of the final range step of each recent result, oldest first.

        In back-to-back mode a measurement fills the whole period, and the emitter fires in
        its pre-range and final range steps; the final range step (the one the distance comes
        from) is taken to end at the result time. At a short budget it is the shorter step
        (about 3 of 20.6 ms, with about 8 ms of pre-range before it).
        """
        with self._lock:
            return [(m.t_mono - m.final_range_s, m.t_mono) for m in self._history]

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
            return self._timing_us()[0]

    # --- bus side (called by SimI2C; with its lock held unless said) ------

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

    def advance(self, now: float) -> None:
        """Catch up on measurements due by ``now`` (lock held): the bus, or its clock, calls this.

        Only the most recent one is computed, so a slow reader sees the latest value.
        """
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

    def next_result_due(self) -> float:
        """When the bus's clock must next advance this chip (lock held); inf if nothing is coming."""
        if not self._powered or self._mode == "idle" or "hang" in self._faults:
            return math.inf
        return self._next_result_t

    def drive_gpio1(self) -> None:
        """Drive the GPIO1 pin to the level the chip calls for; never call with the bus lock held.

        The pin's edge callbacks run in the calling thread, so they must be free to use the bus.
        Whoever changes the chip's state calls this afterwards; reading the level under the pin
        lock makes the last caller's view win.
        """
        pin = self._gpio1
        if pin is None:
            return
        with self._gpio1_lock:
            with self._lock:
                level = self._line_level()
            if pin.function == "input" and bool(pin.state) != level:
                if level:
                    pin.drive_high()
                else:
                    pin.drive_low()

    # --- internals --------------------------------------------------------

    def _reset_registers(self) -> None:
        self._regs: dict[tuple[int, int], int] = dict(_BOOT_REGISTERS)  # (page, reg)
        self._page = self._index = self._interrupt_status = 0
        self._address = DEFAULT_ADDRESS
        self._mode = "idle"  # idle, single or continuous
        self._period_s, self._final_range_s, self._next_result_t = 0.0, 0.0, math.inf

    def _schedule_changed(self) -> None:
        # Lock held. Only chips with GPIO1 bound are clocked; the others stay lazy.
        if self._gpio1 is not None and self._on_schedule is not None:
            self._on_schedule()

    def _line_level(self) -> bool:
        # Lock held. The wire: faults first, then the pull-up while the chip drives nothing.
        if "gpio1_stuck_low" in self._faults:
            return False
        if "gpio1_broken" in self._faults or not self._powered:
            return True
        source = self._regs.get((0, SYSTEM_INTERRUPT_CONFIG_GPIO), 0) & INTERRUPT_STATUS_MASK
        if source != INTERRUPT_NEW_SAMPLE:
            return True  # GPIO1 function off (or a threshold mode, not modelled): released
        asserted = self._interrupt_status & INTERRUPT_STATUS_MASK != 0
        active_high = bool(self._regs.get((0, GPIO_HV_MUX_ACTIVE_HIGH), 0) & GPIO_ACTIVE_HIGH_BIT)
        return asserted == active_high

    def _begin_transaction(self, now: float) -> None:
        if "i2c_error" in self._faults:
            raise io_error(errno.EIO)
        self.advance(now)

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
        self._interrupt_status = INTERRUPT_NEW_SAMPLE
        self._history.append(SimMeasurement(t_mono, distance_mm, status, self._final_range_s))

    def _write_reg(self, reg: int, value: int, now: float) -> None:
        if reg == _PAGE:
            self._page = value
            return
        self._regs[(self._page, reg)] = value
        if self._page == 0:
            if reg == _SYSRANGE_START:
                self._start_ranging(value, now)
            elif reg == SYSTEM_INTERRUPT_CLEAR and value & 0x01:
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
            if reg == RESULT_INTERRUPT_STATUS:
                return self._interrupt_status
            if reg == MODEL_ID_REGISTER and "wrong_chip" in self._faults:
                return self.wrong_model_id
        elif self._page == 7 and reg == 0x92:
            return _SPAD_INFO
        return self._regs.get((self._page, reg), 0)

    def _start_ranging(self, value: int, now: float) -> None:
        if value & 0x02:  # back-to-back continuous mode
            # Also while already ranging continuously: the measurement under way is dropped and
            # the period starts afresh (the model's assumption; TofArray re-phases through it).
            self._mode = "continuous"
            self._period_s, self._final_range_s = self._scaled_timing_s()
            self._next_result_t = now + self._period_s
            self._schedule_changed()
        elif value & 0x01:
            if self._regs.get((0, _SYSTEM_SEQUENCE_CONFIG)) in (0x01, 0x02):
                # VHV or phase reference calibration: done at once, no range result.
                self._mode = "idle"
                self._interrupt_status = INTERRUPT_NEW_SAMPLE
            else:  # single shot; also how the driver stops continuous mode
                self._mode = "single"
                self._period_s, self._final_range_s = self._scaled_timing_s()
                self._next_result_t = now + self._period_s
                self._schedule_changed()

    def _scaled_timing_s(self) -> tuple[float, float]:
        # (period, final range step) as the chip's own oscillator runs them.
        budget_us, final_range_us = self._timing_us()
        return budget_us * self._period_scale / 1e6, final_range_us * self._period_scale / 1e6

    def _timing_us(self) -> tuple[int, int]:
        """(timing budget, final range timeout) in µs from the registers, as the driver adds them up."""
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
        return budget_us, final_us * final_range
