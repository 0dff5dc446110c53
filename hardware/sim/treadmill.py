"""A TrackMaster/Woodway treadmill (or a DIY belt-speed sensor) served on a real pseudo-terminal.

The driver under test opens ``emulator.port`` (``/dev/pts/N``) with pyserial,
exactly as it opens ``/dev/ttyUSB0`` on the clinic's Pi. Faults come on demand
(``silence``, ``garbage``, ``runaway``, ``console_speed``, ``console_hold``, ``force_reply``,
``unplug``/``replug``), as in OctoPrint's virtual printer. One thread,
``treadmill-emulator``, owns the pty; the control board (answers, disconnect
stop, physics) is ``treadmill_model.TreadmillModel``.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import random
import select
import threading
import time
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

from hardware import belt_protocol as proto
from hardware.sim.treadmill_model import TreadmillModel

log = logging.getLogger(__name__)

EMULATOR_DIALECTS = ("trackmaster", "woodway", "speed-sensor")
#: Default top speeds: TrackMaster 15 mph, Woodway 29.9 mph, a sensor reads what it sees.
DEFAULT_MAX_SPEED_MPS = {"trackmaster": 15.0 * proto.MPS_PER_MPH, "woodway": 29.9 * proto.MPS_PER_MPH,
                         "speed-sensor": 10.0}
#: Longest the serving thread sleeps: the disconnect stop and line cadence are this precise.
SERVE_SLICE_S = 0.005
#: A4/A3 data must follow its command byte within this time, or the partial frame is dropped.
PARTIAL_FRAME_TIMEOUT_S = 0.2
#: Noise never contains answer codes (B0..BF, D0..DF): a stray BD would be a real fault.
NOISE_BYTES = bytes(b for b in range(256) if not (0xB0 <= b <= 0xBF or 0xD0 <= b <= 0xDF))
NOISE_LINES = (b"#\n", b"12x4\n", b"speed?\n", b"\xff\xfe\xfd\n", b"--5\n", b"\n")
NOISE_PERIOD_S = 0.02
CONTROL_TIMEOUT_S = 2.0

SpeedListener = Callable[[float, float], None]


@dataclass(frozen=True, slots=True)
class SerialEvent:
    """One frame the emulator received or sent, with its monotonic time."""

    t_mono: float
    frame: bytes

    def __str__(self) -> str:
        return proto.describe_frame(self.frame)


class TreadmillEmulator:
    """Treadmill on a pty: A0/A1/A2/A3/A4/A9/AA, C0..C4, a 500 ms disconnect stop, belt physics."""

    def __init__(
        self,
        dialect: str = "trackmaster",
        *,
        link_path: str | os.PathLike[str] | None = None,
        baudrate: int = 4800,
        byte_time: bool = False,
        accel_mps2: float = 0.5,
        decel_mps2: float = 1.0,
        max_speed_mps: float | None = None,
        line_rate_hz: float = 20.0,
        disconnect_timeout_s: float = 0.5,
        on_speed: SpeedListener | None = None,
        seed: int = 0,
        log_len: int = 4096,
        reaction_s: float = 0.0,
    ) -> None:
        if dialect not in EMULATOR_DIALECTS:
            raise ValueError(f"dialect must be one of {', '.join(EMULATOR_DIALECTS)}, got {dialect!r}")
        if not (math.isfinite(line_rate_hz) and 0.0 < line_rate_hz <= 1000.0):
            raise ValueError(f"line_rate_hz must be within (0, 1000] Hz, got {line_rate_hz!r}")
        if baudrate <= 0:
            raise ValueError(f"baudrate must be > 0, got {baudrate!r}")
        self.dialect = dialect
        self.link_path = os.fspath(link_path) if link_path is not None else None
        self.baudrate = int(baudrate)
        self.byte_time_s = 10.0 / self.baudrate if byte_time else 0.0  # 8N1: 10 bits a byte
        self.max_speed_mps = DEFAULT_MAX_SPEED_MPS[dialect] if max_speed_mps is None else float(max_speed_mps)
        self.line_period_s = 1.0 / line_rate_hz
        self.port: str | None = None
        self._on_speed = on_speed
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._model = TreadmillModel(dialect, accel_mps2=accel_mps2, decel_mps2=decel_mps2,
                                     max_speed_mps=self.max_speed_mps, disconnect_timeout_s=disconnect_timeout_s,
                                     now_mono=time.monotonic(), reaction_s=reaction_s)
        self._silent = False
        self._garbage = False
        self._garbage_within = False
        self._forced_reply: int | None = None
        self._commands: deque[SerialEvent] = deque(maxlen=log_len)
        self._replies: deque[SerialEvent] = deque(maxlen=log_len)
        self._frame = bytearray()
        self._frame_t = 0.0
        self._next_line_t = 0.0
        self._next_noise_t = 0.0
        self._notified_speed_mps = 0.0
        self._master_fd: int | None = None
        self._slave_fd: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._control: queue.Queue[tuple[str, threading.Event, list[OSError]]] = queue.Queue()
        self._closed = False

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Open the pty (and the link symlink) and serve it from a thread."""
        if self._closed:
            raise RuntimeError("emulator was closed")
        if self._thread is not None:
            return self
        self._plug()
        self._thread = threading.Thread(target=self._serve, name="treadmill-emulator", daemon=True)
        self._thread.start()
        log.info("%s emulator serving %s", self.dialect, self.port)
        return self

    def close(self) -> None:
        """Stop serving and close the pty; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(CONTROL_TIMEOUT_S)
        self._unplug_now()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close()

    # ---- observation -------------------------------------------------------------------

    @property
    def belt_speed_mps(self) -> float:
        """Actual belt speed magnitude now (m/s)."""
        with self._lock:
            return abs(self._model.physics.advance(time.monotonic()))

    @property
    def belt_velocity_mps(self) -> float:
        """Actual belt velocity now (m/s); negative while a Woodway belt runs reversed."""
        with self._lock:
            return self._model.physics.advance(time.monotonic())

    @property
    def set_speed_mps(self) -> float:
        """The speed the treadmill was last told to hold (A3 or the console), m/s."""
        with self._lock:
            return self._model.physics.set_speed_mps

    @property
    def belt_status(self) -> int:
        """D0 status byte: ord('1') stopped, ord('2') started with disconnect stop, ord('3') started."""
        with self._lock:
            return self._model.status

    @property
    def disconnect_stop_t_mono(self) -> float | None:
        """When the disconnect stop last fired (monotonic), or None."""
        with self._lock:
            return self._model.disconnect_stop_t

    @property
    def last_byte_t_mono(self) -> float:
        """When the last byte from the host arrived: the disconnect stop's timer runs from here."""
        with self._lock:
            return self._model.last_byte_t

    @property
    def plugged(self) -> bool:
        """False between unplug() and replug()."""
        return self._master_fd is not None

    def commands(self, *, include_status_requests: bool = True) -> list[SerialEvent]:
        """Frames received so far (oldest first); C0..CF polls left out on request."""
        with self._lock:
            events = list(self._commands)
        if include_status_requests:
            return events
        return [e for e in events if not 0xC0 <= e.frame[0] <= 0xCF]

    def replies(self) -> list[SerialEvent]:
        """Frames sent so far (answers and unasked BD), without injected noise."""
        with self._lock:
            return list(self._replies)

    # ---- faults on demand -------------------------------------------------------------

    def silence(self, on: bool = True) -> None:
        """Stop answering (a dead TX line); commands are still received and obeyed."""
        self._silent = bool(on)

    def garbage(self, on: bool = True, *, within_frames: bool = False) -> None:
        """Send random noise between frames; with ``within_frames`` also inside them (corrupting)."""
        self._garbage = bool(on)
        self._garbage_within = bool(on) and within_frames

    def runaway(self, on: bool = True) -> None:
        """Acknowledge A3 with B3 but ignore it: the belt keeps its old speed."""
        with self._lock:
            self._model.runaway = bool(on)

    def force_reply(self, code: int | None) -> None:
        """Answer every command with this byte (e.g. 0xBD, 0xBE, 0xBF); None restores normal answers."""
        self._forced_reply = code

    def console_speed(self, speed_mps: float) -> None:
        """Someone at the console sets the target speed (starts the belt if it stood)."""
        with self._lock:
            self._model.console_speed(speed_mps, time.monotonic())

    def console_hold(self, speed_mps: float | None) -> None:
        """Someone holds the console at this speed: it is set now and again after every A3 (the
        A3 is acknowledged and obeyed, then overruled); None lets go."""
        with self._lock:
            self._model.console_hold(speed_mps, time.monotonic())

    def safety_circuit(self, closed: bool) -> None:
        """The safety-key circuit that our relay sits in: open brakes the belt to a stop."""
        with self._lock:
            self._model.set_safety_circuit(closed, time.monotonic())

    @property
    def safety_circuit_closed(self) -> bool:
        """Whether the motor may run."""
        with self._lock:
            return self._model.safety_circuit_closed

    def unplug(self) -> None:
        """Close the pty: the port vanishes (and the link symlink with it)."""
        self._control_request("unplug")

    def replug(self) -> None:
        """Open a fresh pty (a new /dev/pts/N) and point the link symlink at it."""
        self._control_request("replug")

    # ---- pty ---------------------------------------------------------------------------

    def _control_request(self, action: str) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._do_control(action)
            return
        # The serving thread owns the fds: closing one under its select() could hit a reused fd.
        done, errors = threading.Event(), []
        self._control.put((action, done, errors))
        if not done.wait(CONTROL_TIMEOUT_S):
            raise RuntimeError(f"emulator did not {action} within {CONTROL_TIMEOUT_S} s")
        if errors:
            raise errors[0]

    def _do_control(self, action: str) -> None:
        if action == "unplug":
            self._unplug_now()
        elif not self.plugged:
            self._plug()

    def _plug(self) -> None:
        master_fd, slave_fd = os.openpty()
        tty.setraw(slave_fd)
        # A driver that stopped reading must never block the emulator's writes.
        os.set_blocking(master_fd, False)
        # Holding the slave open keeps master reads from failing (EIO) while no driver is connected.
        self._master_fd, self._slave_fd = master_fd, slave_fd
        self.port = os.ttyname(slave_fd)
        if self.link_path is not None:
            tmp_path = f"{self.link_path}.tmp{os.getpid()}"
            os.symlink(self.port, tmp_path)
            os.replace(tmp_path, self.link_path)
        log.info("emulator plugged in at %s", self.port)

    def _unplug_now(self) -> None:
        if self._master_fd is None:
            return
        for fd in (self._master_fd, self._slave_fd):
            if fd is not None:
                os.close(fd)
        self._master_fd = self._slave_fd = None
        self._frame.clear()
        if self.link_path is not None and os.path.islink(self.link_path):
            os.unlink(self.link_path)
        log.info("emulator unplugged from %s", self.port)

    # ---- serving thread ----------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                self._serve_once()
        except Exception:  # noqa: BLE001 - log the emulator's own bug; the driver will see silence
            log.exception("treadmill emulator crashed")

    def _serve_once(self) -> None:
        while not self._control.empty():
            action, done, errors = self._control.get_nowait()
            try:
                self._do_control(action)
            except OSError as exc:  # handed to the caller of unplug()/replug()
                errors.append(exc)
            done.set()
        fd = self._master_fd
        if fd is None:
            self._stop.wait(SERVE_SLICE_S)
        else:
            readable, _, _ = select.select([fd], [], [], SERVE_SLICE_S)
            if readable:
                try:
                    data = os.read(fd, 1024)
                except (BlockingIOError, InterruptedError):
                    data = b""
                if self.byte_time_s:
                    time.sleep(len(data) * self.byte_time_s)
                for byte in data:
                    self._receive_byte(byte, time.monotonic())
        self._tick(time.monotonic())

    def _tick(self, now: float) -> None:
        with self._lock:
            speed_mps = abs(self._model.physics.advance(now))
            partial_expired = bool(self._frame) and now - self._frame_t > PARTIAL_FRAME_TIMEOUT_S
            fire = self._model.check_disconnect_stop(now)
        if partial_expired:
            log.info("emulator dropped partial frame %s", proto.describe_frame(bytes(self._frame)))
            self._record(self._commands, bytes(self._frame), now)
            self._frame.clear()
        if fire:
            log.warning("emulator disconnect stop: no command for %.0f ms, belt stopping, sending BD",
                           self._model.disconnect_timeout_s * 1000)
            self._send(bytes([proto.MASTER_TIMEOUT]), now)
        if self.dialect == "speed-sensor" and now >= self._next_line_t:
            next_t = self._next_line_t + self.line_period_s
            # Late (a slow tick): restart the cadence rather than burst to catch up.
            self._next_line_t = next_t if next_t > now else now + self.line_period_s
            self._emit_sensor_line(now)
        elif self._garbage and self.dialect != "speed-sensor" and now >= self._next_noise_t:
            self._next_noise_t = now + NOISE_PERIOD_S
            self._write(self._noise(1))
        if self._on_speed is not None and speed_mps != self._notified_speed_mps:
            self._notified_speed_mps = speed_mps
            self._on_speed(speed_mps, now)

    def _emit_sensor_line(self, now: float) -> None:
        with self._lock:
            velocity_mps = self._model.physics.velocity_mps
        line = proto.encode_sensor_line(round(velocity_mps * 1000.0))
        if self._garbage:
            if self._garbage_within:
                line = line[:1] + b"x" + line[1:]
            else:
                self._write(self._rng.choice(NOISE_LINES))
        self._send(line, now)

    def _receive_byte(self, byte: int, now: float) -> None:
        with self._lock:
            self._model.heard_byte(now)
        if self.dialect == "speed-sensor":
            self._record(self._commands, bytes([byte]), now)
            return
        if self._frame:
            self._frame.append(byte)
            if len(self._frame) == 1 + proto.DATA_LEN:
                frame = bytes(self._frame)
                self._frame.clear()
                self._handle_frame(frame, now)
        elif byte in proto.COMMANDS_WITH_DATA:
            self._frame.append(byte)
            self._frame_t = now
        else:
            self._handle_frame(bytes([byte]), now)

    def _handle_frame(self, frame: bytes, now: float) -> None:
        self._record(self._commands, frame, now)
        forced = self._forced_reply
        if forced is not None:
            reply = bytes([forced])
        else:
            with self._lock:
                reply = self._model.answer(frame, now)
        self._send(reply, now)

    # ---- output ------------------------------------------------------------------------

    def _noise(self, n_bytes: int) -> bytes:
        return bytes(self._rng.choice(NOISE_BYTES) for _ in range(n_bytes))

    def _send(self, frame: bytes, now: float) -> None:
        if self._silent:
            return
        self._record(self._replies, frame, now)
        if self._garbage and self.dialect != "speed-sensor":
            noisy = self._noise(self._rng.randint(1, 3)) + frame[:1]
            if self._garbage_within and len(frame) > 1:
                noisy += self._noise(1)
            frame = noisy + frame[1:]
        self._write(frame)

    def _write(self, payload: bytes) -> None:
        fd = self._master_fd
        if fd is None or self._silent:
            return
        if self.byte_time_s:
            time.sleep(len(payload) * self.byte_time_s)
        try:
            os.write(fd, payload)
        except BlockingIOError:
            # Nobody reads the port and the pty buffer is full: a real UART drops bytes too.
            log.debug("emulator dropped %d bytes: pty buffer full", len(payload))

    def _record(self, log: deque[SerialEvent], frame: bytes, now: float) -> None:
        with self._lock:
            log.append(SerialEvent(now, frame))
