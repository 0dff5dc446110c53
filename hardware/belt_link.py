"""Serial link lifecycle shared by the belt drivers: open, worker thread, latched fault, reopen.

The worker thread (``belt-link``) alone touches the port. A fault is latched:
one ``on_fault`` call, then no readings and no commands until ``reopen()``.
Drivers subclass ``SerialLink`` and implement ``_step()``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

import serial

from hardware import BeltReading, LinkError, LinkFault

log = logging.getLogger(__name__)

#: Serial read timeout: the worker's slice of waiting, short so it notices requests and close().
READ_SLICE_S = 0.01
#: A write that takes this long means a jammed port (5 bytes need 10 ms at 4800 baud).
WRITE_TIMEOUT_S = 0.25
JOIN_TIMEOUT_S = 2.0
#: Garbage bytes tolerated between two valid frames before the link counts as broken.
GARBAGE_LIMIT_BYTES = 64
WORKER_THREAD_NAME = "belt-link"

ReadingCallback = Callable[[BeltReading], None]
FaultCallback = Callable[[LinkFault], None]
#: Called like ``serial.Serial(port, baudrate=..., ..., exclusive=True)``.
SerialFactory = Callable[..., serial.Serial]


@dataclass(slots=True)
class BeltLinkStats:
    """Counters of one driver since construction (they survive reopen())."""

    polls: int = 0
    readings: int = 0
    commands: int = 0
    acks: int = 0
    garbage_bytes: int = 0
    garbage_lines: int = 0
    faults: int = 0


class SerialLink:
    """Port lifecycle shared by both drivers: open, worker thread, latched fault, reopen, close."""

    can_command = False

    def __init__(
        self,
        port: str,
        *,
        on_reading: ReadingCallback,
        on_fault: FaultCallback,
        baudrate: int,
        serial_factory: SerialFactory,
    ) -> None:
        self.port = str(port)
        self.baudrate = int(baudrate)
        self.stats = BeltLinkStats()
        self.last_fault: LinkFault | None = None
        self._on_reading = on_reading
        self._on_fault = on_fault
        self._serial_factory = serial_factory
        self._serial: serial.Serial | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lifecycle_lock = threading.Lock()
        self._fault_lock = threading.Lock()
        self._faulted = False
        self._closed = False
        self._rx = bytearray()
        self._garbage_since_valid = 0

    # ---- lifecycle (caller's thread) ----------------------------------------------------

    @property
    def faulted(self) -> bool:
        """True from a link fault until reopen()."""
        return self._faulted

    def open(self) -> None:
        """Open the port (8N1, finite timeouts, exclusive); LinkError naming the port on failure."""
        with self._lifecycle_lock:
            self._open_locked()

    def start(self) -> None:
        """Open the port if needed and start the ``belt-link`` worker thread."""
        with self._lifecycle_lock:
            self._open_locked()
            self._start_locked()

    def reopen(self) -> None:
        """Clear a latched fault and reconnect: the only way back after a fault."""
        if self._thread is threading.current_thread():
            # Joining itself would hang; the owner resets from its own thread.
            raise LinkError(f"reopen() of {self.port} called from the belt-link thread (an on_fault callback?)")
        with self._lifecycle_lock:
            if self._closed:
                raise LinkError(f"belt link on {self.port} was closed; build a new driver")
            self._stop_worker_locked()
            self._close_port_locked()
            # Open first: if the port is still gone, the fault stays latched.
            self._open_locked()
            self._reset_session()
            with self._fault_lock:
                self._faulted = False
            self._start_locked()
        log.info("belt link on %s reopened", self.port)

    def close(self) -> None:
        """Stop the worker and close the port; safe to call twice. Sends nothing to the belt."""
        with self._lifecycle_lock:
            self._closed = True
            self._stop_worker_locked()
            self._close_port_locked()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close()

    def _open_locked(self) -> None:
        if self._closed:
            raise LinkError(f"belt link on {self.port} was closed")
        if self._serial is not None:
            return
        try:
            port = self._serial_factory(
                self.port,
                baudrate=self.baudrate,
                bytesize=serial.EIGHTBITS,
                parity=serial.PARITY_NONE,
                stopbits=serial.STOPBITS_ONE,
                timeout=READ_SLICE_S,
                write_timeout=WRITE_TIMEOUT_S,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(f"cannot open serial port {self.port}: {exc}") from exc
        try:
            # Bytes left from an earlier session (a late answer, a BD) must not
            # be taken for answers to this session's commands.
            port.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            port.close()
            raise LinkError(f"cannot use serial port {self.port}: {exc}") from exc
        self._serial = port
        log.info("belt link opened %s at %d baud 8N1", self.port, self.baudrate)

    def _start_locked(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=WORKER_THREAD_NAME, daemon=True)
        self._thread.start()

    def _stop_worker_locked(self) -> None:
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(JOIN_TIMEOUT_S)
            if thread.is_alive():
                log.error("belt-link worker on %s did not stop within %.1f s", self.port, JOIN_TIMEOUT_S)

    def _close_port_locked(self) -> None:
        port, self._serial = self._serial, None
        if port is None:
            return
        try:
            port.close()
        except (serial.SerialException, OSError) as exc:
            # The port may already be gone (unplugged); closing is best effort.
            log.warning("closing serial port %s failed: %s", self.port, exc)

    # ---- worker thread --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._start_session()
            while not self._stop.is_set() and not self._faulted:
                self._step()
        except (serial.SerialException, OSError) as exc:
            if self._stop.is_set():
                # close() from a callback pulled the port away: shutting down, not a fault.
                log.debug("belt-link worker for %s stopped during close: %s", self.port, exc)
            else:
                self._fault_from_exception(exc)
        except Exception as exc:  # noqa: BLE001 - a bug must latch a fault, not kill the link silently
            log.exception("unexpected error in the belt-link worker for %s", self.port)
            self._fault(f"unexpected error in the belt-link worker for {self.port}: {exc!r}")

    def _fault_from_exception(self, exc: BaseException) -> None:
        if isinstance(exc, serial.SerialTimeoutException):
            self._fault(f"serial port {self.port} jammed: write did not finish within {WRITE_TIMEOUT_S} s ({exc})")
        else:
            self._fault(f"serial port {self.port} failed (unplugged or gone?): {exc}")

    def _start_session(self) -> None:
        self._rx.clear()
        self._garbage_since_valid = 0

    def _step(self) -> None:
        raise NotImplementedError

    def _reset_session(self) -> None:
        """Forget per-connection state before reopening."""

    def _on_latched_fault(self) -> None:
        """Drop per-connection requests once a fault is latched."""

    def _read_some(self) -> bytes:
        port = self._serial
        if port is None:
            raise LinkError(f"serial port {self.port} is not open")
        # At least one byte so the read waits one READ_SLICE_S instead of spinning.
        return port.read(max(1, port.in_waiting))

    def _fault(self, message: str) -> None:
        with self._fault_lock:
            if self._faulted:
                return
            self._faulted = True
            fault = LinkFault(message, time.monotonic())
            self.last_fault = fault
            self.stats.faults += 1
        log.error("%s", message)
        self._on_latched_fault()
        try:
            self._on_fault(fault)
        except Exception:  # noqa: BLE001 - the owner's bug must not hide the fault from the log
            log.exception("on_fault callback raised for %s", self.port)

    def _deliver(self, belt_speed_mps: float, t_mono: float) -> None:
        if self._faulted or self._stop.is_set():
            return
        self._garbage_since_valid = 0
        self.stats.readings += 1
        self._on_reading(BeltReading(belt_speed_mps, t_mono))

    def _count_garbage(self, n_bytes: int) -> None:
        if n_bytes <= 0:
            return
        self.stats.garbage_bytes += n_bytes
        self._garbage_since_valid += n_bytes
        log.debug("%d garbage bytes on %s", n_bytes, self.port)
        if self._garbage_since_valid > GARBAGE_LIMIT_BYTES:
            self._fault(
                f"serial port {self.port} sent {self._garbage_since_valid} bytes of garbage "
                f"without a valid frame (limit {GARBAGE_LIMIT_BYTES}): check baud rate and wiring"
            )
