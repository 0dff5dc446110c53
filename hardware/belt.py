"""Serial drivers for the belt: TrackMaster/Woodway treadmills and read-only speed sensors.

Each driver owns one worker thread, ``belt-link``, which alone touches the port.
The decision thread only stores requests in a lock-protected slot and returns
at once; readings and faults come back through the ``on_reading`` and
``on_fault`` callbacks, called from the worker thread.

A fault (no answer, BD/BE/BF, a vanished port, too much garbage, any bug in the
worker) is latched: one ``on_fault`` call, then no readings and no commands
until the owner calls ``reopen()``.
"""

from __future__ import annotations

import logging
import math
import numbers
import threading
import time

import serial

from hardware import LinkError
from hardware import belt_protocol as proto
from hardware.belt_link import (
    BeltLinkStats,
    FaultCallback,
    ReadingCallback,
    SerialFactory,
    SerialLink,
)

__all__ = ["BeltLinkStats", "SpeedSensorBelt", "TrackMasterBelt"]

log = logging.getLogger(__name__)


def _check_speed_request(belt_speed_mps: float, max_speed_mps: float) -> float:
    """The caller's request as a float, or ValueError naming the argument and range."""
    if isinstance(belt_speed_mps, bool) or not isinstance(belt_speed_mps, numbers.Real):
        raise TypeError(f"belt_speed_mps must be a number in m/s, got {belt_speed_mps!r}")
    speed_mps = float(belt_speed_mps)
    if not math.isfinite(speed_mps) or not 0.0 <= speed_mps <= max_speed_mps:
        raise ValueError(f"belt_speed_mps must be within [0, {max_speed_mps:.3f}] m/s, got {belt_speed_mps!r}")
    return speed_mps


class TrackMasterBelt(SerialLink):
    """TrackMaster/Woodway treadmill: polls C1, starts with A0 only, sets speed with A3, stops with AA."""

    can_command = True

    def __init__(
        self,
        port: str,
        *,
        dialect: str,
        on_reading: ReadingCallback,
        on_fault: FaultCallback,
        baudrate: int = 4800,
        ack_timeout_s: float = 0.1,
        poll_hz: float = 20.0,
        reverse_belt: bool = False,
        serial_factory: SerialFactory = serial.Serial,
    ) -> None:
        proto.check_dialect(dialect)
        # The answer must come well inside A0's 500 ms disconnect-stop window.
        if not (math.isfinite(ack_timeout_s) and 0.0 < ack_timeout_s <= 0.4):
            raise ValueError(f"ack_timeout_s must be within (0, 0.4] s, got {ack_timeout_s!r}")
        # At least two polls per 500 ms window keep A0's disconnect stop fed.
        if not (math.isfinite(poll_hz) and 4.0 <= poll_hz <= 200.0):
            raise ValueError(f"poll_hz must be within [4, 200] Hz, got {poll_hz!r}")
        super().__init__(
            port, on_reading=on_reading, on_fault=on_fault, baudrate=baudrate, serial_factory=serial_factory
        )
        self.dialect = dialect
        self.ack_timeout_s = float(ack_timeout_s)
        self.poll_period_s = 1.0 / poll_hz
        self.reverse_belt = bool(reverse_belt)
        self.max_speed_mps = proto.max_speed_mps(dialect)
        self._request_lock = threading.Lock()
        self._pending_stop = False
        self._pending_speed_mps: float | None = None
        self._belt_started = False
        self._next_poll_t = 0.0
        #: Set when a queued AA has been sent (answered or not): stop_then_close() waits on it.
        self._stop_sent = threading.Event()

    @property
    def belt_started(self) -> bool:
        """True after an acknowledged A0 until AA, a fault or reopen()."""
        return self._belt_started

    def request_speed(self, belt_speed_mps: float) -> bool:
        """Queue a speed (m/s; under 0.1 mph means AA, stop); never blocks. False if faulted or closed."""
        speed_mps = _check_speed_request(belt_speed_mps, self.max_speed_mps)
        with self._request_lock:
            if self._closed or self._faulted:
                return False
            self._pending_speed_mps = speed_mps
        self._wake.set()
        return True

    def request_stop(self) -> bool:
        """Queue AA (auto stop), replacing a pending speed; never blocks. False if faulted or closed."""
        with self._request_lock:
            if self._closed or self._faulted:
                return False
            self._pending_stop = True
            self._pending_speed_mps = None
            self._stop_sent.clear()
        self._wake.set()
        return True

    def stop_then_close(self, timeout_s: float = 0.5) -> bool:
        """Send AA and wait (at most ``timeout_s``) for it to go out, then close; True if it went out."""
        sent = self.request_stop() and self._stop_sent.wait(timeout_s)
        self.close()
        return sent

    def _reset_session(self) -> None:
        with self._request_lock:
            self._pending_stop = False
            self._pending_speed_mps = None
        # After a reconnect the belt state is unknown: the next speed starts with A0 again.
        self._belt_started = False

    def _on_latched_fault(self) -> None:
        # A request queued before the fault must not run after a reset.
        with self._request_lock:
            self._pending_stop = False
            self._pending_speed_mps = None

    def _start_session(self) -> None:
        super()._start_session()
        self._next_poll_t = time.monotonic()

    def _step(self) -> None:
        with self._request_lock:
            stop_waiting = self._pending_stop
        if stop_waiting:  # a stop goes before a poll that is due: sooner, and every later reading follows it
            self._send_pending()
            return
        now = time.monotonic()
        if now >= self._next_poll_t:
            next_t = self._next_poll_t + self.poll_period_s
            # Late (a slow exchange): restart the cadence rather than burst to catch up.
            self._next_poll_t = next_t if next_t > now else now + self.poll_period_s
            self._poll()
        elif not self._send_pending():
            self._idle_until(self._next_poll_t)

    def _take_pending(self) -> tuple[bool, float | None]:
        with self._request_lock:
            self._wake.clear()
            stop, speed_mps = self._pending_stop, self._pending_speed_mps
            self._pending_stop = False
            if not stop:
                self._pending_speed_mps = None
        # A speed queued after a stop stays pending: the stop goes out first.
        return stop, (None if stop else speed_mps)

    def _send_pending(self) -> bool:
        stop, speed_mps = self._take_pending()
        if not stop and speed_mps is None:
            return False
        if stop or proto.mps_to_tenths_mph_floor(speed_mps) == 0:
            if self._command(bytes([proto.AUTO_STOP])):
                self._belt_started = False
            if stop:
                self._stop_sent.set()
            return True
        if not self._belt_started:
            # A0 only: the treadmill stops by itself if this process stops talking.
            if not self._command(bytes([proto.START_BELT_DISCONNECT_STOP])):
                return True
            self._belt_started = True
        self._command(proto.set_speed_frame(speed_mps, self.dialect, reversed_belt=self.reverse_belt))
        return True

    def _command(self, frame: bytes) -> bool:
        self.stats.commands += 1
        log.debug("-> %s on %s", proto.describe_frame(frame), self.port)
        if self._exchange(frame, 0) is None:
            return False
        self.stats.acks += 1
        return True

    def _poll(self) -> None:
        self.stats.polls += 1
        answer = self._exchange(bytes([proto.ACTUAL_SPEED]), proto.DATA_LEN)
        if answer is None:
            return
        data, t_mono = answer
        tenths_mph, _reversed = proto.decode_speed_field(data, self.dialect)
        self._deliver(proto.tenths_mph_to_mps(tenths_mph), t_mono)

    def _exchange(self, frame: bytes, data_len: int) -> tuple[bytes, float] | None:
        """Send one frame and wait for its answer; None after a latched fault."""
        port = self._serial
        if port is None:
            raise LinkError(f"serial port {self.port} is not open")
        # Whatever arrived since the last exchange is unasked: a BD or noise. That includes bytes
        # that followed the last answer: a frame among them is not an answer to this request.
        if port.in_waiting:
            self._rx += port.read(port.in_waiting)
        if self._rx:
            self._process_unsolicited()
            if self._faulted:
                return None
        port.write(frame)
        deadline = time.monotonic() + self.ack_timeout_s
        expected = proto.answer_code(frame[0])
        while True:
            data = self._scan_for_answer(expected, data_len, frame)
            if self._faulted:
                return None
            if data is not None:
                return data, time.monotonic()
            if time.monotonic() >= deadline:
                self._fault(
                    f"treadmill on {self.port} did not answer {proto.describe_frame(frame)} "
                    f"within {self.ack_timeout_s * 1000:.0f} ms (expected {expected:02X})"
                )
                return None
            self._rx += self._read_some()

    def _scan_for_answer(self, expected: int, data_len: int, frame: bytes) -> bytes | None:
        """Find ``expected`` + data in the receive buffer, skipping (and counting) garbage."""
        rx = self._rx
        i = 0
        while i < len(rx):
            code = rx[i]
            if code in proto.ERROR_NAMES:
                self._count_garbage(i)
                del rx[: i + 1]
                self._fault_error_code(code, frame)
                return None
            if code == expected:
                end = i + 1 + data_len
                if end > len(rx):
                    break  # frame incomplete: keep it and read on
                data = bytes(rx[i + 1 : end])
                if data_len == 0 or proto.is_speed_field(data, self.dialect):
                    self._count_garbage(i)
                    del rx[:end]
                    self._garbage_since_valid = 0
                    return data
                # A corrupted frame: its code byte was noise; resync on the next byte.
            i += 1
        self._count_garbage(i)
        del rx[:i]
        return None

    def _process_unsolicited(self) -> None:
        rx = self._rx
        for i, code in enumerate(rx):
            if code in proto.ERROR_NAMES:
                self._count_garbage(i)
                del rx[: i + 1]
                self._fault_error_code(code, None)
                return
        self._count_garbage(len(rx))
        rx.clear()

    def _fault_error_code(self, code: int, frame: bytes | None) -> None:
        what = proto.describe_code(code)
        if frame is not None:
            message = f"treadmill on {self.port} answered {what} to {proto.describe_frame(frame)}"
        elif code == proto.MASTER_TIMEOUT:
            message = (
                f"treadmill on {self.port} sent {what}: its disconnect stop halted the belt "
                f"because no command arrived for 500 ms"
            )
        else:
            message = f"treadmill on {self.port} sent {what} unasked"
        if code == proto.MASTER_TIMEOUT:
            self._belt_started = False
        self._fault(message)

    def _idle_until(self, until_t: float) -> None:
        while not self._stop.is_set() and not self._wake.is_set() and not self._faulted:
            if time.monotonic() >= until_t:
                return
            chunk = self._read_some()
            if chunk:
                self._rx += chunk
                self._process_unsolicited()


class SpeedSensorBelt(SerialLink):
    """Read-only DIY belt-speed sensor: one ASCII signed integer (mm/s) per line, 10 Hz or more."""

    can_command = False

    def __init__(
        self,
        port: str,
        *,
        on_reading: ReadingCallback,
        on_fault: FaultCallback,
        baudrate: int = 4800,
        stale_timeout_s: float = 0.3,
        serial_factory: SerialFactory = serial.Serial,
    ) -> None:
        if not (math.isfinite(stale_timeout_s) and 0.0 < stale_timeout_s <= 5.0):
            raise ValueError(f"stale_timeout_s must be within (0, 5] s, got {stale_timeout_s!r}")
        super().__init__(
            port, on_reading=on_reading, on_fault=on_fault, baudrate=baudrate, serial_factory=serial_factory
        )
        self.stale_timeout_s = float(stale_timeout_s)
        self._last_valid_t = 0.0
        self._skip_to_newline = False

    def request_speed(self, belt_speed_mps: float) -> bool:
        """A sensor cannot command the belt: does nothing, returns False."""
        return False

    def request_stop(self) -> bool:
        """A sensor cannot command the belt: does nothing, returns False."""
        return False

    def stop_then_close(self, timeout_s: float = 0.5) -> bool:
        """Nothing to send: just close. Returns False (no stop went out)."""
        self.close()
        return False

    def _start_session(self) -> None:
        super()._start_session()
        self._last_valid_t = time.monotonic()
        self._skip_to_newline = False

    def _step(self) -> None:
        silent_s = time.monotonic() - self._last_valid_t
        if silent_s > self.stale_timeout_s:
            # Garbage never refreshes this clock, so endless garbage ends here too.
            self._fault(
                f"speed sensor on {self.port} sent no valid speed line for {silent_s * 1000:.0f} ms "
                f"(limit {self.stale_timeout_s * 1000:.0f} ms)"
            )
            return
        chunk = self._read_some()
        if chunk:
            self._feed(chunk, time.monotonic())

    def _feed(self, chunk: bytes, t_mono: float) -> None:
        rx = self._rx
        rx += chunk
        while not self._faulted:
            newline = rx.find(b"\n")
            if newline < 0:
                if len(rx) > proto.SENSOR_MAX_LINE_BYTES:
                    self._garbage_line(len(rx), rx)
                    rx.clear()
                    self._skip_to_newline = True
                return
            line = bytes(rx[:newline])
            del rx[: newline + 1]
            if self._skip_to_newline:
                self._skip_to_newline = False
                self._count_garbage(len(line) + 1)
                continue
            try:
                speed_mm_s = proto.parse_sensor_line(line)
            except ValueError:
                self._garbage_line(len(line) + 1, line)
                continue
            self._last_valid_t = t_mono
            self._deliver(abs(speed_mm_s) / 1000.0, t_mono)

    def _garbage_line(self, n_bytes: int, line: bytes | bytearray) -> None:
        self.stats.garbage_lines += 1
        log.debug("garbage line from speed sensor on %s: %r", self.port, bytes(line[:32]))
        self._count_garbage(n_bytes)
