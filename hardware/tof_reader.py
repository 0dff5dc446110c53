"""The ToF reader thread: polls some sensors, takes others on their GPIO1 edge, keeps them in their slots.

``TofArray`` (hardware.tof) brings the sensors up and hands them over; ``TofReader`` runs
the "tof-reader" thread over them. Each result goes to ``on_reading`` as a timestamped
``RangeReading`` with the device range status, and every failure to ``on_fault``; nothing
it does can raise into the caller.

- Every result is taken the same way (``TofReader._take_result``): one read of the result block
  from the interrupt status through the range, and, only if a new sample waits, one write that
  clears the interrupt.
- Polled sensors (no ``interrupt_pin``): the result block is polled once a result can be due,
  and a reading is stamped when it is read.
- Interrupt sensors: the falling edge of GPIO1 stamps the moment the sample became ready and
  wakes the reader, which takes the result. When an edge is overdue, a watchdog asks over I2C: a
  sample waiting with the line idle is a broken wire, one waiting twice with the line low
  and no edge a line stuck low. Either withholds the sensor's readings (the fault stands
  until a later sample) while the interrupt is still cleared every period, so a mended
  wire brings the readings back by itself.
- Phase control: after each sample the reader compares the sensors' phases with their
  slots (hardware.tof_timing) and, if one must be held back, restarts its continuous
  ranging at the right instant, as one of its timed tasks.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import adafruit_vl53l0x
from adafruit_bus_device.i2c_device import I2CDevice
from gpiozero import DigitalInputDevice

from hardware import RangeReading, SensorFault
from hardware.tof_timing import (
    SampleClock,
    missed_result_t,
    phase_errors_s,
    rephase_delay_s,
    slot_offsets_s,
)
from hardware.vl53l0x_regs import (
    INTERRUPT_STATUS_MASK,
    RESULT_INTERRUPT_STATUS,
    RESULT_RANGE_STATUS,
    SYSTEM_INTERRUPT_CLEAR,
    range_status_of,
)

log = logging.getLogger(__name__)

# Interrupt status and range status are neighbours: one 2-byte read gets both.
_INTERRUPT_STATUS_INDEX = bytes([RESULT_INTERRUPT_STATUS])
#: The range (big-endian) sits 10 bytes past the range status, where the driver's ``range`` reads it.
_RANGE_OFFSET = RESULT_RANGE_STATUS + 10 - RESULT_INTERRUPT_STATUS
#: One read from the interrupt status through the range: the whole result in one I2C transaction, as
#: ST's API reads its result block; then one write clears the interrupt. Two transactions a sample,
#: where the driver's ``data_ready`` and ``range`` and a status read take four.
_RESULT_BLOCK_LEN = _RANGE_OFFSET + 2
_CLEAR_INTERRUPT = bytes([SYSTEM_INTERRUPT_CLEAR, 0x01])
#: After a result, a polled sensor is not asked again for this share of the sensor's period (no result can come
#: sooner). It saves most of the I2C polling and adds nothing to the reading latency.
QUIET_SHARE = 0.75
#: Pause before retrying a sensor that just failed, so a dead bus is not hammered.
FAULT_BACKOFF_S = 0.02
#: With no edge for this share of its period after a sensor's last sample, the reader asks over I2C.
EDGE_WATCHDOG_SHARE = 1.3
#: A sample waiting while the line reads idle is looked at again this share of a period later
#: before it counts as a broken wire: the edge may still be on its way through the GPIO layer.
EDGE_CONFIRM_SHARE = 0.15
#: A sensor whose result is overdue (none waiting at the watchdog) is asked again this much later.
OVERDUE_RECHECK_SHARE = 0.25
#: Phase control waits for this many samples of each sensor after a restart before it judges again.
SETTLE_SAMPLES = 2
#: A planned restart still runs up to this many times the largest delay after the sample.
LATE_RESTART_SHARE = 1.5
#: Values of ``TofArray.timing[...]["interrupt_fault"]``.
INTERRUPT_NO_EDGE = "no_edge"
INTERRUPT_STUCK_LOW = "stuck_low"


def where(sensor_id: str, address: int) -> str:
    """How messages name a sensor: "ToF sensor 'left' at 0x30"."""
    return f"ToF sensor {sensor_id!r} at 0x{address:02X}"


@dataclass(frozen=True, slots=True)
class TofStats:
    """Counters of one sensor since open()."""

    readings: int
    faults: int


@dataclass(slots=True)
class ReaderSensor:
    """One open sensor as the reader thread keeps it: its driver, its timing and its counters."""

    sensor_id: str
    address: int
    device: adafruit_vl53l0x.VL53L0X
    status_reg: I2CDevice
    period_s: float
    stale_after_s: float
    clock: SampleClock
    last_data_t: float = 0.0
    retry_at_t: float = 0.0
    #: No result can be ready before this (a share of the period after the last one): not polled till then.
    quiet_until_t: float = 0.0
    stale_reported: bool = False
    readings: int = 0
    faults: int = 0
    # Interrupt-driven sensors only: the GPIO1 input (active low) and its pin's name.
    interrupt: DigitalInputDevice | None = None
    interrupt_pin: str = ""
    #: Written by the edge callback (gpiozero's thread), read by the reader: the latest edge time.
    edge_t: float | None = None
    seen_edge_t: float | None = None
    #: When the sample last handed over became ready (its edge); the watchdog counts from here.
    last_sample_t: float = 0.0
    check_at_t: float = math.inf
    #: A sample waited with the line idle at the last look: one more look decides.
    edge_suspect: bool = False
    #: The last watchdog look recovered a sample with no edge: a second one means a stuck line.
    edge_missed: bool = False
    interrupt_fault: str | None = None
    irq_buf: bytearray = field(default_factory=lambda: bytearray(2))
    result_buf: bytearray = field(default_factory=lambda: bytearray(_RESULT_BLOCK_LEN))
    # Phase control.
    restart_at_t: float = math.inf
    #: A restart that could not run by then is dropped: it would hold the sensor back too long.
    restart_by_t: float = math.inf
    rephases: int = 0
    phase_error_s: float | None = None


class TofReader:
    """The "tof-reader" thread over open sensors; callbacks run in it and must be quick (a queue put).

    ``stagger`` spreads the sensors' results evenly over a period, else keeps them in
    phase; ``phase_control`` False leaves them free-running (sensors of different budgets).
    """

    def __init__(
        self,
        sensors: Sequence[ReaderSensor],
        *,
        on_reading: Callable[[RangeReading], None],
        on_fault: Callable[[SensorFault], None],
        poll_interval_s: float,
        stagger: bool,
        phase_control: bool,
    ) -> None:
        self._sensors = list(sensors)
        self._on_reading = on_reading
        self._on_fault = on_fault
        self._poll_interval_s = poll_interval_s
        self._stagger = stagger
        self._phase_control = phase_control and len(self._sensors) > 1
        self._stop = threading.Event()
        #: Set by edge callbacks and stop(): the reader waits on it instead of a fixed tick.
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        for sensor in self._sensors:
            if sensor.interrupt is not None:
                sensor.interrupt.when_activated = self._edge_callback(sensor)

    @property
    def thread(self) -> threading.Thread | None:
        """The reader thread once started."""
        return self._thread

    def start(self) -> None:
        """Start the daemon thread "tof-reader"; silence is measured from now."""
        now = time.monotonic()
        for sensor in self._sensors:
            sensor.last_data_t = now
            sensor.last_sample_t = now
        self._thread = threading.Thread(target=self._run, name="tof-reader", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float) -> bool:
        """Stop the thread and wait up to ``timeout_s``; True if it is gone (or never ran)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        return thread is None or not thread.is_alive()

    def stats(self) -> dict[str, TofStats]:
        """Readings and faults reported per sensor id."""
        return {s.sensor_id: TofStats(s.readings, s.faults) for s in self._sensors}

    def timing(self) -> dict[str, dict[str, object]]:
        """Per sensor id: periods, phase error, re-phases, read mode and wire fault (see TofArray.timing)."""
        return {
            s.sensor_id: {
                "period_s": s.period_s,
                "measured_period_s": s.clock.measured_period_s,
                "phase_error_s": s.phase_error_s if self._phase_control else None,
                "rephases": s.rephases,
                "interrupt": s.interrupt is not None,
                "interrupt_fault": s.interrupt_fault,
            }
            for s in self._sensors
        }

    def _edge_callback(self, sensor: ReaderSensor) -> Callable[[], None]:
        def on_edge() -> None:
            # gpiozero's thread: stamp the moment the sample became ready, wake the reader, no more.
            sensor.edge_t = time.monotonic()
            self._wake.set()

        return on_edge

    # --- thread ---------------------------------------------------------------

    def _run(self) -> None:
        for sensor in self._sensors:
            if sensor.interrupt is not None:
                self._arm(sensor)
        while not self._stop.is_set():
            for sensor in self._sensors:
                if sensor.interrupt is None:
                    self._poll(sensor)
                else:
                    self._service(sensor)
                if time.monotonic() >= sensor.restart_at_t:
                    self._restart(sensor)
            self._wake.wait(self._idle_s())
            self._wake.clear()  # edges are found by their stamps, so none is lost here

    def _idle_s(self) -> float:
        # Until the next thing to do: a polled sensor's next poll (as before: one poll interval
        # at least), an interrupt sensor's watchdog or silence limit, a restart. Edges wake sooner.
        now = time.monotonic()
        idle_s = math.inf
        polled = [s for s in self._sensors if s.interrupt is None]
        if polled:
            next_t = min(max(s.quiet_until_t, s.retry_at_t) for s in polled)
            idle_s = max(self._poll_interval_s, min(next_t - now, self._poll_interval_s * 10))
        for sensor in self._sensors:
            next_t = sensor.restart_at_t
            if sensor.interrupt is not None:
                next_t = min(next_t, max(sensor.check_at_t, sensor.retry_at_t))
                if not sensor.stale_reported:
                    next_t = min(next_t, sensor.last_data_t + sensor.stale_after_s)
            idle_s = min(idle_s, next_t - now)
        return max(0.0, idle_s)

    def _poll(self, sensor: ReaderSensor) -> None:
        now = time.monotonic()
        if now >= sensor.retry_at_t and now >= sensor.quiet_until_t:
            try:
                result = self._take_result(sensor)
                if result is not None:
                    t_mono = time.monotonic()
                    sensor.quiet_until_t = t_mono + QUIET_SHARE * sensor.period_s
                    self._deliver(sensor, *result, t_mono, measured=True)
                    return
            except Exception as exc:  # nothing may escape the reader thread
                sensor.retry_at_t = now + FAULT_BACKOFF_S
                self._fault(sensor, f"read failed: {type(exc).__name__}: {exc}")
        self._check_stale(sensor)

    def _check_stale(self, sensor: ReaderSensor) -> None:
        silence_s = time.monotonic() - sensor.last_data_t
        if silence_s > sensor.stale_after_s and not sensor.stale_reported:
            sensor.stale_reported = True
            self._fault(
                sensor,
                f"no data for {silence_s * 1000:.0f} ms "
                f"(limit {sensor.stale_after_s * 1000:.0f} ms)",
            )

    def _deliver(self, sensor: ReaderSensor, distance_mm: int, range_status: int, t_ready: float,
                 *, measured: bool) -> None:
        # Hand a sample over, then let it steer the phase (a hand-over is never delayed by that).
        sensor.last_data_t = time.monotonic()
        sensor.last_sample_t = t_ready
        sensor.check_at_t = t_ready + EDGE_WATCHDOG_SHARE * sensor.clock.period_s
        sensor.stale_reported = False
        sensor.readings += 1
        reading = RangeReading(sensor.sensor_id, distance_mm, range_status, t_ready)
        try:
            self._on_reading(reading)
        except Exception:  # a consumer bug must not stop the sensors
            log.exception("on_reading callback failed for %r", reading)
        if measured:  # an estimated ready time would only blur the clock
            sensor.clock.add(t_ready)
            self._steer_phase(sensor)

    def _fault(self, sensor: ReaderSensor, message: str) -> None:
        sensor.faults += 1
        fault = SensorFault(
            sensor.sensor_id,
            f"{where(sensor.sensor_id, sensor.address)}: {message}",
            time.monotonic(),
        )
        try:
            self._on_fault(fault)
        except Exception:  # a consumer bug must not stop the sensors
            log.exception("on_fault callback failed for %r", fault)

    # --- interrupt-driven sensors -------------------------------------------

    def _read_interrupt_status(self, sensor: ReaderSensor) -> tuple[bool, int]:
        """(a new sample waits, its range status) in one I2C transaction."""
        with sensor.status_reg:
            sensor.status_reg.write_then_readinto(_INTERRUPT_STATUS_INDEX, sensor.irq_buf)
        ready = sensor.irq_buf[0] & INTERRUPT_STATUS_MASK != 0
        return ready, range_status_of(sensor.irq_buf[1])

    def _take_result(self, sensor: ReaderSensor) -> tuple[int, int] | None:
        """(range mm, range status) of a waiting sample, its interrupt cleared; None if none waits."""
        buf = sensor.result_buf
        with sensor.status_reg:
            sensor.status_reg.write_then_readinto(_INTERRUPT_STATUS_INDEX, buf)
            if buf[0] & INTERRUPT_STATUS_MASK == 0:
                return None
            sensor.status_reg.write(_CLEAR_INTERRUPT)
        return (buf[_RANGE_OFFSET] << 8) | buf[_RANGE_OFFSET + 1], range_status_of(buf[1])

    def _arm(self, sensor: ReaderSensor) -> None:
        # Edges and samples from before the reader ran are old: clear them so the next edge is fresh.
        sensor.seen_edge_t = sensor.edge_t
        sensor.check_at_t = sensor.last_sample_t + EDGE_WATCHDOG_SHARE * sensor.period_s
        try:
            self._take_result(sensor)  # a sample from before: cleared, not handed over
        except Exception as exc:  # nothing may escape the reader thread
            sensor.retry_at_t = time.monotonic() + FAULT_BACKOFF_S
            self._fault(sensor, f"read failed: {type(exc).__name__}: {exc}")

    def _service(self, sensor: ReaderSensor) -> None:
        now = time.monotonic()
        if now >= sensor.retry_at_t:
            edge_t = sensor.edge_t
            try:
                if edge_t is not None and edge_t != sensor.seen_edge_t:
                    sensor.seen_edge_t = edge_t
                    self._on_edge(sensor, edge_t)
                elif now >= sensor.check_at_t:
                    self._watchdog(sensor, now)
            except Exception as exc:  # nothing may escape the reader thread
                sensor.retry_at_t = now + FAULT_BACKOFF_S
                # A sample may be left waiting with the line low: the watchdog picks it up.
                sensor.check_at_t = sensor.retry_at_t
                self._fault(sensor, f"read failed: {type(exc).__name__}: {exc}")
        self._check_stale(sensor)

    def _on_edge(self, sensor: ReaderSensor, edge_t: float) -> None:
        sensor.edge_suspect = sensor.edge_missed = False
        result = self._take_result(sensor)
        if result is None:
            return  # its sample was already taken (by the watchdog): no duplicate
        distance_mm, range_status = result
        if sensor.interrupt_fault is not None:
            # The line works again, but this sample may have waited while it did not: drop it,
            # and hand over from the next edge on.
            log.info("%s: interrupt_pin %s gives edges again",
                     where(sensor.sensor_id, sensor.address), sensor.interrupt_pin)
            sensor.interrupt_fault = None
            sensor.last_data_t = time.monotonic()
            sensor.last_sample_t = edge_t
            sensor.check_at_t = edge_t + EDGE_WATCHDOG_SHARE * sensor.clock.period_s
            return
        self._deliver(sensor, distance_mm, range_status, edge_t, measured=True)

    def _watchdog(self, sensor: ReaderSensor, now: float) -> None:
        # No edge for EDGE_WATCHDOG_SHARE of a period: ask the sensor whether a sample waits.
        ready, range_status = self._read_interrupt_status(sensor)
        if sensor.edge_t != sensor.seen_edge_t:
            return  # the edge came while we asked: handled on the next pass
        period_s = sensor.clock.period_s
        if sensor.interrupt_fault is not None:
            # Keep clearing the interrupt, so that once the wire is fixed edges come again.
            if ready:
                self._take_result(sensor)
                sensor.last_data_t = time.monotonic()
            sensor.check_at_t = now + period_s
            return
        if not ready:
            # Hung or late: the silence limit reports a hung sensor; look again soon.
            sensor.edge_suspect = False
            sensor.check_at_t = now + OVERDUE_RECHECK_SHARE * period_s
            return
        pin = sensor.interrupt_pin
        waited_ms = (now - sensor.last_sample_t) * 1000
        if not sensor.interrupt.is_active:
            if not sensor.edge_suspect:
                sensor.edge_suspect = True
                sensor.check_at_t = now + EDGE_CONFIRM_SHARE * period_s
                return
            self._interrupt_fault(
                sensor, INTERRUPT_NO_EDGE,
                f"interrupt_pin {pin} gave no falling edge for {waited_ms:.0f} ms while a sample "
                f"waits (I2C answers): check the GPIO1 wire",
            )
            return
        sensor.edge_suspect = False
        if sensor.edge_missed:
            self._interrupt_fault(
                sensor, INTERRUPT_STUCK_LOW,
                f"interrupt_pin {pin} gave no falling edge for {waited_ms:.0f} ms and reads low "
                f"with a sample waiting, again after the last one was read: interrupt line stuck "
                f"low; check the GPIO1 wire for a short to ground",
            )
            return
        # The line is low with a sample waiting but no edge was seen: a missed edge. Take the
        # sample once; if it happens again with no edge in between, the line is stuck.
        sensor.edge_missed = True
        result = self._take_result(sensor)  # status and range of one and the same sample
        if result is None:
            return
        distance_mm, range_status = result
        t_ready = missed_result_t(sensor.last_sample_t, period_s, now)
        log.warning("%s: interrupt_pin %s: a sample waited with no edge; read it",
                    where(sensor.sensor_id, sensor.address), pin)
        self._deliver(sensor, distance_mm, range_status, t_ready, measured=False)

    def _interrupt_fault(self, sensor: ReaderSensor, kind: str, message: str) -> None:
        # Readings are withheld from here (the fault stands until a later sample), but the
        # interrupt is read and cleared every period so a mended wire brings the edges back.
        sensor.edge_suspect = sensor.edge_missed = False
        sensor.interrupt_fault = kind
        self._fault(sensor, message)
        self._take_result(sensor)
        sensor.last_data_t = time.monotonic()
        sensor.check_at_t = sensor.last_data_t + sensor.clock.period_s

    # --- phase control ------------------------------------------------------

    def _steer_phase(self, sensor: ReaderSensor) -> None:
        # Right after ``sensor``'s sample: if it must be held back to keep its slot, restart it
        # a little later (a timed task of this thread: a restart never blocks the reader long).
        if not self._phase_control or any(s.restart_at_t < math.inf for s in self._sensors):
            return
        now = time.monotonic()
        latest_t = [s.clock.latest_t for s in self._sensors]
        periods_s = [s.clock.period_s for s in self._sensors]
        if any(t is None or now - t > 1.5 * p for t, p in zip(latest_t, periods_s)):
            return  # a sensor is silent or new: nothing to compare with
        count = len(self._sensors)
        period_s = sum(periods_s) / count
        offsets_s = slot_offsets_s(period_s, count, stagger=self._stagger)
        errors_s = phase_errors_s(latest_t, periods_s, offsets_s)
        for s, error_s in zip(self._sensors, errors_s):
            s.phase_error_s = error_s
        if any(s.clock.samples_since_restart < SETTLE_SAMPLES for s in self._sensors):
            return
        # Tolerance: an eighth of the slot spacing, but above the jitter of polled read times.
        tolerance_s = period_s / (8 * count)
        if any(s.interrupt is None for s in self._sensors):
            tolerance_s = max(tolerance_s, self._poll_interval_s)
        max_delay_s = period_s / (2 * count)  # half a slot
        index = self._sensors.index(sensor)
        delay_s = rephase_delay_s(
            errors_s, periods_s, index, tolerance_s=tolerance_s, max_delay_s=max_delay_s
        )
        if delay_s is None:
            return
        if now > latest_t[index] + max_delay_s:
            return  # too late in this period: the next sample gets another chance
        sensor.restart_at_t = max(latest_t[index] + delay_s, now)
        # A reader held up past this would hold the sensor back too long: the restart is dropped.
        sensor.restart_by_t = latest_t[index] + LATE_RESTART_SHARE * max_delay_s

    def _restart(self, sensor: ReaderSensor) -> None:
        # Restart continuous ranging: the next result comes one period from now.
        sensor.restart_at_t = math.inf
        if time.monotonic() > sensor.restart_by_t:
            return  # the reader was held up: the next sample plans again
        try:
            sensor.device.start_continuous()
        except Exception as exc:  # nothing may escape the reader thread
            sensor.retry_at_t = time.monotonic() + FAULT_BACKOFF_S
            self._fault(sensor, f"re-phase failed: {type(exc).__name__}: {exc}")
            return
        now = time.monotonic()
        sensor.rephases += 1
        sensor.clock.restarted()
        sensor.quiet_until_t = now + QUIET_SHARE * sensor.period_s
        sensor.check_at_t = max(sensor.check_at_t, now + EDGE_WATCHDOG_SHARE * sensor.clock.period_s)
