"""Command rules of the safety core: who may do what, and in which state.

Stop is always allowed; go needs authority (principle 2). Looser limits and
mode changes need a standing belt; tighter limits apply at once (principle 6).
A refused command changes nothing and says why, naming the field and range.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from controller.config import KMH_PER_MPS, LIMIT_TIGHTER_SIGN, Limits, ceiling_errors, limits_reach_errors
from controller.fields import FieldError, Num, check_table, is_number
from controller.safety.inputs import Cause
from controller.safety.types import (
    ANYONE_COMMANDS, STANDING_STATES, Command, CommandKind, Event, Mode, Reply, State,
)

if TYPE_CHECKING:
    from controller.safety.core import SafetyCore


def _ok(message: str) -> Reply:
    return Reply(True, "ok", message)


def _conflict(message: str) -> Reply:
    return Reply(False, "conflict", message)


class CommandHandler:
    """Mixin for :class:`SafetyCore` holding the command rules."""

    def _handle_command(self: "SafetyCore", cmd: Command) -> Reply:
        if not isinstance(cmd.actor, str) or not cmd.actor.strip():
            return Reply(False, "invalid", "every command needs the acting person's name",
                         (FieldError("command", "actor", cmd.actor, "must be a non-empty name"),))
        if cmd.kind not in ANYONE_COMMANDS and not cmd.authorized and not self._is_tightening(cmd):
            return Reply(False, "unauthorized", f"{cmd.kind.value} needs a logged-in therapist")
        handler = {
            CommandKind.ESTOP: self._cmd_estop, CommandKind.STOP: self._cmd_stop,
            CommandKind.RESET: self._cmd_reset, CommandKind.START: self._cmd_start,
            CommandKind.SET_SPEED: self._cmd_set_speed, CommandKind.SET_MODE: self._cmd_set_mode,
            CommandKind.SET_LIMITS: self._cmd_set_limits, CommandKind.FINISH: self._cmd_finish,
            CommandKind.APPLY_PRESCRIPTION: self._cmd_apply_prescription,
        }[cmd.kind]
        return handler(cmd)

    def _is_tightening(self: "SafetyCore", cmd: Command) -> bool:
        """Lowering the speed or tightening limits needs no authority."""
        if cmd.kind is CommandKind.SET_SPEED:
            v = self._speed_arg(cmd.value, [])
            return v is not None and v <= self.target_mps
        if cmd.kind is CommandKind.SET_LIMITS:
            new = self._limits_arg(cmd.value, [])
            return new is not None and not self._loosens(new)
        if cmd.kind is CommandKind.FINISH:
            return True
        if cmd.kind is CommandKind.APPLY_PRESCRIPTION:
            parsed = self._prescription_arg(cmd.value, [])
            return parsed is not None and parsed[0] is self.mode and not self._loosens(parsed[1])
        return False

    def _belt_standing(self: "SafetyCore") -> bool:
        return self.state in STANDING_STATES and not self.belt.moving(self.now)

    # ---- each command ---------------------------------------------------------------

    def _cmd_estop(self: "SafetyCore", cmd: Command) -> Reply:
        self._momentary.append(Cause("estop_command", f"E-stop pressed on the dashboard by {cmd.actor}", False))
        return _ok("stopped: E-stop")

    def _cmd_stop(self: "SafetyCore", cmd: Command) -> Reply:
        if self.state is not State.RUNNING:
            return _ok(f"belt already {self.state.value.lower()}")
        if not self.can_command:
            # A read-only speed link cannot slow the belt: open the safety circuit instead.
            self._momentary.append(Cause("stop_command", f"stop requested by {cmd.actor} "
                                          "(speed-sensor link: stopping by the safety circuit)", False))
            return _ok("stopped by the safety circuit")
        self.controlled_stop(f"controlled stop requested by {cmd.actor}", cmd.actor)
        return _ok("stopping")

    def _cmd_finish(self: "SafetyCore", cmd: Command) -> Reply:
        if self.state is not State.RUNNING:
            return _ok(f"belt already {self.state.value.lower()}")
        if not self.can_command:
            # Opening the safety circuit would be an abrupt stop, not a ramp-down.
            return _conflict("a read-only speed link cannot ramp the belt down: slow and stop it at the "
                             "treadmill's console")
        self.ramping_down = True
        self.target_mps = min(self.target_mps, self.cfg.safety.min_speed_kmh / KMH_PER_MPS)
        self._events.append(Event(self.now, "state", "ramp_down", f"ramping down to a stop for {cmd.actor}",
                                  cmd.actor, {"from_mps": round(self.commanded_mps, 3)}))
        return _ok("ramping down to a stop")

    def _cmd_reset(self: "SafetyCore", cmd: Command) -> Reply:
        if self.state is not State.STOPPED:
            return _conflict(f"nothing to reset: the controller is {self.state.value}")
        blocking = [c for c in self.causes() if c.persistent]
        if self.belt.is_fresh(self.now) and self.belt.moving(self.now):
            blocking.append(Cause("belt_moving", f"the belt still moves at "
                                  f"{self.belt.speed_mps * KMH_PER_MPS:.2f} km/h: wait for it to stand"))
        if any(c.code == "link_fault" for c in blocking):
            self._reconnect = True
        if blocking:
            return _conflict("reset refused while the cause persists: " + "; ".join(c.message for c in blocking))
        cleared = ", ".join(self.reasons)
        self.reasons = {}
        self._set_state(State.READY, f"reset by {cmd.actor} (cleared: {cleared})", cmd.actor)
        return _ok("ready")

    def _cmd_start(self: "SafetyCore", cmd: Command) -> Reply:
        errors: list[FieldError] = []
        v = self.target_mps or self.cfg.safety.min_speed_kmh / KMH_PER_MPS
        if cmd.value is not None:
            v = self._speed_arg(cmd.value, errors)
            if v is None:
                return Reply(False, "invalid", str(errors[0]), tuple(errors))
        if self.state is not State.READY:
            return _conflict(f"start needs READY; the controller is {self.state.value}"
                             + (": " + "; ".join(self.reasons.values()) if self.reasons else ""))
        v = min(v, self.cap_mps)
        sid, gap = self.nearest()
        if gap is None:
            return _conflict("no patient in view of the sensors: start refused")
        warn_at = self.stop_distance_mm(v) + self.limits.warn_margin_mm
        if gap <= warn_at:
            return _conflict(f"patient {gap:.0f} mm from the rear edge is inside the warn zone "
                             f"({warn_at:.0f} mm at {v * KMH_PER_MPS:.1f} km/h): step forward first")
        self.target_mps = self.last_human_mps = v
        self.ramping_down = False
        self.commanded_mps = min(v, self.cfg.safety.min_speed_kmh / KMH_PER_MPS)
        self._send_speed(self.commanded_mps)
        self._last_ramp_t = self.now
        self._set_state(State.RUNNING, f"started by {cmd.actor} towards {v * KMH_PER_MPS:.1f} km/h", cmd.actor)
        return _ok("running")

    def _cmd_set_speed(self: "SafetyCore", cmd: Command) -> Reply:
        errors: list[FieldError] = []
        v = self._speed_arg(cmd.value, errors)
        if v is None:
            return Reply(False, "invalid", str(errors[0]), tuple(errors))
        if self.ramping_down and v > self.target_mps:
            return _conflict("the belt is ramping down to end the session: a faster speed is refused")
        self.target_mps = self.last_human_mps = v
        if v < self.commanded_mps:
            self.commanded_mps = v
            if self.state is State.RUNNING:
                self._send_speed(v)
        return _ok(f"speed set to {v * KMH_PER_MPS:.1f} km/h")

    def _cmd_set_mode(self: "SafetyCore", cmd: Command) -> Reply:
        try:
            mode = Mode(cmd.value)
        except ValueError:
            err = FieldError("command", "mode", cmd.value, 'must be "reverse" or "forward"')
            return Reply(False, "invalid", str(err), (err,))
        if not self._belt_standing():
            return _conflict("the mode changes only while the belt stands (STOPPED or READY, speed 0)")
        self.mode = mode
        self.target_mps = min(self.target_mps, self.cap_mps)
        self._events.append(Event(self.now, "state", "mode", f"mode set to {mode.value} by {cmd.actor}",
                                  cmd.actor, {"mode": mode.value}))
        return _ok(f"mode {mode.value}")

    def _cmd_set_limits(self: "SafetyCore", cmd: Command) -> Reply:
        errors: list[FieldError] = []
        new = self._limits_arg(cmd.value, errors)
        if new is None:
            return Reply(False, "invalid", "; ".join(str(e) for e in errors), tuple(errors))
        if self._loosens(new) and not self._belt_standing():
            return _conflict("looser limits apply only while the belt stands; tighter ones apply at once")
        self._apply_limits(new, cmd.actor, f"limits changed by {cmd.actor}", {}, self.cap_mps)
        return _ok("limits applied")

    def _cmd_apply_prescription(self: "SafetyCore", cmd: Command) -> Reply:
        errors: list[FieldError] = []
        parsed = self._prescription_arg(cmd.value, errors)
        if parsed is None:
            return Reply(False, "invalid", "; ".join(str(e) for e in errors), tuple(errors))
        mode, new, patient = parsed
        if (mode is not self.mode or self._loosens(new)) and not self._belt_standing():
            return _conflict(f"patient {patient}'s prescription changes the mode or loosens the limits: it applies "
                             "only while the belt stands (STOPPED or READY, speed 0)")
        old_cap = self.cap_mps
        self.mode = mode
        self._apply_limits(new, cmd.actor, f"prescription of patient {patient} applied by {cmd.actor}",
                           {"mode": mode.value, "patient_id": patient}, old_cap)
        return _ok(f"patient {patient}: {mode.value} mode, cap {new.cap_kmh(mode.value):g} km/h, "
                   f"stop {new.base_stop_mm:g} mm, warn margin {new.warn_margin_mm:g} mm")

    def _apply_limits(self: "SafetyCore", new: Limits, actor: str, message: str, extra: dict,
                      old_cap: float) -> None:
        """Install already-checked limits; a lower cap on a moving belt keeps the overspeed grace."""
        old = self.limits
        self.limits = new
        if self.cap_mps < old_cap:
            within_grace = self.now - self.cap_lowered_t < self.cfg.safety.overspeed_grace_s
            # A second cut inside the grace time keeps the first one's reference: the belt is still slowing.
            self.prev_cap_mps = max(self.prev_cap_mps, old_cap) if within_grace else old_cap
            self.cap_lowered_t = self.now
        if self.target_mps > self.cap_mps:
            self.target_mps = self.cap_mps
        if self.commanded_mps > self.cap_mps:
            self.commanded_mps = self.cap_mps
            if self.state is State.RUNNING:
                self._send_speed(self.commanded_mps)
        self._events.append(Event(self.now, "limits", "limits", message, actor,
                                  {"old": dataclasses.asdict(old), "new": dataclasses.asdict(new), **extra}))

    # ---- argument checks ------------------------------------------------------------

    def _speed_arg(self: "SafetyCore", value: Any, errors: list[FieldError]) -> float | None:
        """A requested speed in km/h → m/s, within [min speed, cap] of the present mode."""
        cap_kmh = self.limits.cap_kmh(self.mode.value)
        lo = self.cfg.safety.min_speed_kmh
        if is_number(value) and value > cap_kmh:
            errors.append(FieldError("command", "speed_kmh", value,
                                     f"is above the {self.mode.value} cap {cap_kmh:g} km/h; "
                                     f"allowed {lo:g} to {cap_kmh:g} km/h"))
            return None
        spec = Num(lo, max(lo, cap_kmh), "km/h")
        reason = spec.check(value)
        if reason:
            errors.append(FieldError("command", "speed_kmh", value, reason))
            return None
        return float(value) / KMH_PER_MPS

    def _limits_arg(self: "SafetyCore", value: Any, errors: list[FieldError]) -> Limits | None:
        """A (partial) limits table checked against ranges, ceilings and sensor reach."""
        if isinstance(value, dict) and not value:
            errors.append(FieldError("limits", "", value, "no limit given"))
            return None
        new = check_table(Limits, "limits", value, errors, base=self.limits)
        if new is None:
            return None
        more = ceiling_errors(new, self.cfg.ceilings) + limits_reach_errors(new, self.cfg.treadmill, self.cfg.sensors)
        floor = self.cfg.safety.min_speed_kmh
        more += [FieldError("limits", key, getattr(new, key), f"must be at least [safety] min_speed_kmh = {floor:g}")
                 for key in ("reverse_cap_kmh", "forward_cap_kmh") if getattr(new, key) < floor]
        if more:
            errors += more
            return None
        return new

    def _prescription_arg(self: "SafetyCore", value: Any,
                          errors: list[FieldError]) -> tuple[Mode, Limits, str] | None:
        """A patient's {"mode", "limits", "patient_id"}, each part checked like its own command."""
        if not isinstance(value, dict) or set(value) != {"mode", "limits", "patient_id"}:
            errors.append(FieldError("prescription", "", value, 'must be an object with "mode", "limits" '
                                     'and "patient_id"'))
            return None
        patient = value["patient_id"]
        if not isinstance(patient, str) or not 0 < len(patient) <= 16:
            errors.append(FieldError("prescription", "patient_id", patient, "must be a patient id, 1 to 16 characters"))
        try:
            mode = Mode(value["mode"])
        except ValueError:
            errors.append(FieldError("prescription", "mode", value["mode"], 'must be "reverse" or "forward"'))
            mode = None
        new = self._limits_arg(value["limits"], errors)
        if errors or mode is None or new is None:
            return None
        return mode, new, patient

    def _loosens(self: "SafetyCore", new: Limits) -> bool:
        for key, sign in LIMIT_TIGHTER_SIGN.items():
            if sign * (getattr(new, key) - getattr(self.limits, key)) < 0:
                return True
        return False

