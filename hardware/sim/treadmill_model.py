"""The emulated treadmill's control board: answers TrackMaster/Woodway frames, runs the disconnect stop.

No I/O and no locking: ``hardware.sim.treadmill`` serves it on a pty and holds
its lock around every call.
"""

from __future__ import annotations

import math

from hardware import belt_protocol as proto
from hardware.sim.belt_physics import BeltPhysics

#: Woodway's C3 answers a 4-byte firmware revision (pywoodway reads it big-endian).
WOODWAY_FW_REV = (1, 2, 3, 4)
#: Highest elevation accepted by A4, in tenths of percent (TrackMaster: 25 %).
MAX_ELEVATION_TENTHS = 250


class TreadmillModel:
    """Belt status, set speed, elevation and physics of one treadmill; not thread-safe."""

    def __init__(
        self,
        dialect: str,
        *,
        accel_mps2: float,
        decel_mps2: float,
        max_speed_mps: float,
        disconnect_timeout_s: float,
        now_mono: float,
        reaction_s: float = 0.0,
    ) -> None:
        if not (math.isfinite(max_speed_mps) and max_speed_mps > 0.0):
            raise ValueError(f"max_speed_mps must be > 0 m/s, got {max_speed_mps!r}")
        if not (math.isfinite(disconnect_timeout_s) and disconnect_timeout_s > 0.0):
            raise ValueError(f"disconnect_timeout_s must be > 0 s, got {disconnect_timeout_s!r}")
        if not (math.isfinite(reaction_s) and 0.0 <= reaction_s <= 2.0):
            raise ValueError(f"reaction_s must be within [0, 2] s, got {reaction_s!r}")
        self.dialect = dialect
        #: From the safety circuit opening to the belt starting to brake (relay drop-out and drive).
        self.reaction_s = float(reaction_s)
        self.max_speed_mps = float(max_speed_mps)
        self.disconnect_timeout_s = float(disconnect_timeout_s)
        self.physics = BeltPhysics(accel_mps2=accel_mps2, decel_mps2=decel_mps2)
        self.physics.advance(now_mono)
        self.status = proto.STATUS_STOPPED
        self.elevation_tenths = 0
        #: Acknowledge A3 but ignore it (a fault on demand).
        self.runaway = False
        #: Someone holds the console's speed-up key: A3 is obeyed, then the console pushes back up to this.
        self.console_hold_mps: float | None = None
        self.last_byte_t = now_mono
        self.disconnect_stop_t: float | None = None
        #: The safety-key circuit (our relay in series): open cuts the motor drive.
        self.safety_circuit_closed = True

    def heard_byte(self, now_mono: float) -> None:
        """Any byte from the host feeds the disconnect stop, as polls do on a real belt."""
        self.last_byte_t = now_mono

    def check_disconnect_stop(self, now_mono: float) -> bool:
        """Stop the belt if A0 armed the disconnect stop and the host went quiet; True when it fires."""
        if self.status != proto.STATUS_STARTED_DISCONNECT_STOP:
            return False
        if now_mono - self.last_byte_t <= self.disconnect_timeout_s:
            return False
        self._stop_belt()
        self.disconnect_stop_t = now_mono
        return True

    def console_speed(self, speed_mps: float, now_mono: float) -> None:
        """The console's buttons: set the target speed, starting the belt if it stood."""
        if not (math.isfinite(speed_mps) and 0.0 <= speed_mps <= self.max_speed_mps):
            raise ValueError(f"speed_mps must be within [0, {self.max_speed_mps:.2f}] m/s, got {speed_mps!r}")
        self.physics.advance(now_mono)
        self.physics.set_speed_mps = float(speed_mps)
        if self.status == proto.STATUS_STOPPED and speed_mps > 0.0:
            self._start_belt(proto.STATUS_STARTED)

    def console_hold(self, speed_mps: float | None, now_mono: float) -> None:
        """A console that keeps pushing: set this speed now and after every A3 (None: let go)."""
        if speed_mps is None:
            self.console_hold_mps = None
            return
        self.console_speed(speed_mps, now_mono)
        self.console_hold_mps = float(speed_mps)

    def answer(self, frame: bytes, now_mono: float) -> bytes:
        """The reply to one complete input command or status request."""
        self.physics.advance(now_mono)
        code, data = frame[0], frame[1:]
        ack = bytes([proto.answer_code(code)])
        if code == proto.START_BELT_DISCONNECT_STOP:
            self._start_belt(proto.STATUS_STARTED_DISCONNECT_STOP)
            self.last_byte_t = now_mono
            return ack
        if code == proto.START_BELT or (code == proto.WOODWAY_START_BELT and self.dialect == "woodway"):
            self._start_belt(proto.STATUS_STARTED)
            return ack
        if code == proto.STOP_BELT:
            self._stop_belt()
            return ack
        if code == proto.AUTO_STOP:
            self._stop_belt(clear_speed=True)
            self.elevation_tenths = 0
            return ack
        if code == proto.SET_SPEED:
            return self._set_speed(data)
        if code == proto.SET_ELEVATION:
            # Half-percent steps only, as the TrackMaster manual says.
            if not data.isdigit() or data[-1:] not in (b"0", b"5") or int(data) > MAX_ELEVATION_TENTHS:
                return bytes([proto.DATA_OUT_OF_RANGE])
            self.elevation_tenths = int(data)
            return ack
        return self._status_answer(code)

    def _status_answer(self, code: int) -> bytes:
        answer = bytes([proto.answer_code(code)])
        if code == proto.BELT_STATUS:
            return answer + bytes([self.status])
        if code == proto.ACTUAL_SPEED:
            velocity_mps = self.physics.velocity_mps
            tenths = proto.mps_to_tenths_mph_nearest(velocity_mps)
            reversed_belt = velocity_mps < 0 or (velocity_mps == 0 and self.physics.reversed_belt)
            return answer + proto.encode_speed_field(tenths, self.dialect, reversed_belt=reversed_belt)
        if code in (proto.ACTUAL_ELEVATION, proto.SET_ELEVATION_STATUS):
            return answer + f"{self.elevation_tenths:04d}".encode("ascii")
        if code == proto.SET_SPEED_STATUS:
            if self.dialect == "woodway":
                return answer + bytes(WOODWAY_FW_REV)
            tenths = proto.mps_to_tenths_mph_nearest(self.physics.set_speed_mps)
            return answer + proto.encode_speed_field(tenths, self.dialect)
        return bytes([proto.ILLEGAL_COMMAND])

    def _set_speed(self, data: bytes) -> bytes:
        try:
            tenths, reversed_belt = proto.decode_speed_field(data, self.dialect)
        except ValueError:
            return bytes([proto.DATA_OUT_OF_RANGE])
        speed_mps = proto.tenths_mph_to_mps(tenths)
        if speed_mps > self.max_speed_mps + 1e-9:
            return bytes([proto.DATA_OUT_OF_RANGE])
        if not self.runaway:
            self.physics.set_speed_mps = speed_mps
            self.physics.reversed_belt = reversed_belt
            if self.console_hold_mps is not None:
                self.physics.set_speed_mps = max(speed_mps, self.console_hold_mps)
        return bytes([proto.answer_code(proto.SET_SPEED)])

    def set_safety_circuit(self, closed: bool, now_mono: float) -> None:
        """Open: after the reaction time the belt brakes to a stop; starts are ignored until it closes again."""
        self.physics.advance(now_mono)
        was_closed, self.safety_circuit_closed = self.safety_circuit_closed, bool(closed)
        if not closed:
            self.status = proto.STATUS_STOPPED
            if was_closed:
                self.physics.cut_drive(now_mono + self.reaction_s)
        elif self.physics.cut_at is not None:
            # Closed again within the reaction time: the board has stopped the belt all the same, and a
            # start from here on must run it.
            self.physics.cut_drive(now_mono)
        self.physics.advance(now_mono)  # applies a cut that is due (at once for a zero reaction time)

    def _start_belt(self, status: int) -> None:
        if not self.safety_circuit_closed:
            return
        self.status = status
        self.physics.running = True

    def _stop_belt(self, clear_speed: bool = False) -> None:
        self.status = proto.STATUS_STOPPED
        if self.physics.cut_at is None:  # a pending cut of the drive decides when the belt brakes
            self.physics.running = False
            if clear_speed:
                self.physics.set_speed_mps = 0.0
