"""What the safety core knows of its inputs, and the conditions (causes) they raise.

A cause is a present condition that forbids a closed safety circuit. The core
trips on any cause and refuses a reset while any persists. Pure code: time is
always passed in.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from controller.config import SensorConfig
from controller.safety.approach import ClosingSpeed

# The VL53L0X's encoding as the rule reads it. hardware/vl53l0x_regs.py is its home; the pure
# core may not import hardware, so tests/unit/test_layers.py checks that the two agree.
#: Device range status (bits 6:3 of register 0x14) of a valid measurement.
RANGE_STATUS_VALID = 11
#: Range values the VL53L0X reports when nothing returns enough light; no distance reaches them.
NO_TARGET_MM = frozenset({8190, 8191})
#: Below this the belt counts as standing (one count of a 0.1 mph display is 0.045 m/s).
MOVING_MPS = 0.05


class Reading(enum.Enum):
    """How one distance sample is classified."""

    VALID = "valid"
    NO_TARGET = "no target"
    INVALID = "invalid range status"
    OBSTRUCTED = "obstructed"


@dataclass(frozen=True)
class Cause:
    """A present reason the circuit must be open. ``persistent`` causes block a reset."""

    code: str
    message: str
    persistent: bool = True


class SensorTrack:
    """The latest sample and fault of one sensor."""

    __slots__ = ("cfg", "t_sample", "reading", "distance_mm", "range_status", "gap_mm",
                 "t_fault", "fault_message", "closing")

    def __init__(self, cfg: SensorConfig):
        self.cfg = cfg
        self.t_sample: float | None = None
        self.reading = Reading.NO_TARGET
        self.distance_mm = 0.0
        self.range_status = 0
        self.gap_mm: float | None = None
        self.t_fault: float | None = None
        self.fault_message = ""
        #: How fast this sensor's gap closes, from its recent valid samples.
        self.closing = ClosingSpeed(cfg.period_s)

    def update(self, distance_mm: float, range_status: int, t_mono: float, obstruction_mm: float) -> None:
        """Classify and store a new sample."""
        self.t_sample = t_mono
        self.distance_mm = distance_mm
        self.range_status = range_status
        self.gap_mm = None
        numeric = (isinstance(distance_mm, (int, float)) and not isinstance(distance_mm, bool)
                   and math.isfinite(distance_mm))
        if numeric and int(distance_mm) in NO_TARGET_MM:
            self.reading = Reading.NO_TARGET
        elif range_status != RANGE_STATUS_VALID or not numeric or not 0 <= distance_mm < min(NO_TARGET_MM):
            self.reading = Reading.INVALID
        elif distance_mm < obstruction_mm:
            self.reading = Reading.OBSTRUCTED
        else:
            self.reading = Reading.VALID
            self.gap_mm = distance_mm - self.cfg.mount_offset_mm
            self.closing.add(t_mono, self.gap_mm)
            return
        self.closing.clear()

    def fault(self, message: str, t_mono: float) -> None:
        """Record a read failure; it counts until a later sample arrives."""
        self.t_fault = t_mono
        self.fault_message = message
        self.closing.clear()

    def is_fresh(self, now: float) -> bool:
        """A sample no older than two periods, with no fault after it."""
        return (self.t_sample is not None and now - self.t_sample <= 2.0 * self.cfg.period_s
                and not self.faulted())

    def faulted(self) -> bool:
        """A read failure no later sample has cleared (a tie counts as failed)."""
        return self.t_fault is not None and (self.t_sample is None or self.t_fault >= self.t_sample)

    def causes(self, now: float, belt_moving: bool) -> list[Cause]:
        """This sensor's present problems."""
        sid = self.cfg.id
        if self.faulted():
            return [Cause(f"sensor_fault:{sid}", f"sensor {sid}: {self.fault_message}")]
        if self.t_sample is None:
            return [Cause(f"sensor_stale:{sid}", f"sensor {sid}: no sample yet")]
        age_s = now - self.t_sample
        if age_s > 2.0 * self.cfg.period_s:
            return [Cause(f"sensor_stale:{sid}",
                          f"sensor {sid}: no sample for {age_s * 1000:.0f} ms "
                          f"(limit {2000 * self.cfg.period_s:.0f} ms, two periods)")]
        if self.reading is Reading.INVALID:
            return [Cause(f"sensor_invalid:{sid}",
                          f"sensor {sid}: invalid reading {self.distance_mm!r} mm, range status {self.range_status}")]
        if self.reading is Reading.OBSTRUCTED:
            return [Cause(f"sensor_obstructed:{sid}",
                          f"sensor {sid}: reads {self.distance_mm:.0f} mm: something covers the window")]
        if self.reading is Reading.NO_TARGET and belt_moving:
            return [Cause(f"no_target:{sid}", f"sensor {sid}: no patient in view while the belt moves")]
        return []


class BeltTrack:
    """The latest belt speed reading and link fault."""

    __slots__ = ("t_sample", "speed_mps", "t_fault", "fault_message", "timeout_s")

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.t_sample: float | None = None
        self.speed_mps = 0.0
        self.t_fault: float | None = None
        self.fault_message = ""

    def update(self, speed_mps: float, t_mono: float) -> bool:
        """Store a reading; False (and nothing stored) if it is not a plausible speed."""
        if not isinstance(speed_mps, (int, float)) or not math.isfinite(speed_mps) or not 0 <= speed_mps < 10:
            return False
        self.t_sample = t_mono
        self.speed_mps = float(speed_mps)
        return True

    def fault(self, message: str, t_mono: float) -> None:
        """Record a link fault; only a reconnect (on reset) clears it."""
        self.t_fault = t_mono
        self.fault_message = message

    def clear_fault(self) -> None:
        """Forget the fault (the link was reopened)."""
        self.t_fault = None
        self.fault_message = ""

    def is_fresh(self, now: float) -> bool:
        """A reading no older than the link timeout on a link without a fault."""
        return self.t_fault is None and self.t_sample is not None and now - self.t_sample <= self.timeout_s

    def moving(self, now: float) -> bool:
        """True unless a fresh reading says the belt stands (unknown counts as moving)."""
        return not self.is_fresh(now) or self.speed_mps >= MOVING_MPS

    def causes(self, now: float) -> list[Cause]:
        """The link's present problems."""
        if self.t_fault is not None:
            return [Cause("link_fault", f"treadmill link: {self.fault_message}")]
        if self.t_sample is None:
            return [Cause("belt_stale", "treadmill link: no speed reading yet")]
        age_s = now - self.t_sample
        if age_s > self.timeout_s:
            return [Cause("belt_stale", f"treadmill link: no speed reading for {age_s * 1000:.0f} ms "
                                        f"(limit {self.timeout_s * 1000:.0f} ms)")]
        return []
