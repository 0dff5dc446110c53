"""Value types of the safety core: states, commands, outputs, events. No I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping

from controller.fields import FieldError


class State(enum.Enum):
    """Controller states. STOPPED is latched and is where every start begins."""

    STOPPED = "STOPPED"
    READY = "READY"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"


#: States in which the safety circuit may be closed (relay energized).
RELAY_ON_STATES = frozenset({State.READY, State.RUNNING, State.STOPPING})
#: States in which the controller expects the belt to move.
BELT_ACTIVE_STATES = frozenset({State.RUNNING, State.STOPPING})
#: States in which looser limits and mode changes may be applied (with a standing belt).
STANDING_STATES = frozenset({State.STOPPED, State.READY})


class Mode(enum.Enum):
    """Walking mode; reverse is the therapy mode with the low cap."""

    REVERSE = "reverse"
    FORWARD = "forward"


class CommandKind(enum.Enum):
    """What a person can ask of the controller."""

    ESTOP = "estop"
    STOP = "stop"
    RESET = "reset"
    START = "start"
    SET_SPEED = "set_speed"
    SET_MODE = "set_mode"
    SET_LIMITS = "set_limits"
    #: Ramp the belt down to the slowest speed, then a controlled stop (a session's end).
    FINISH = "finish"
    #: A patient's mode and limits together, all or nothing: {"mode", "limits", "patient_id"[, "confirmed"]}.
    APPLY_PRESCRIPTION = "apply_prescription"


#: Commands anyone may give: stop is always allowed, go needs authority.
ANYONE_COMMANDS = frozenset({CommandKind.ESTOP, CommandKind.STOP})


@dataclass(frozen=True)
class Command:
    """A person's request. ``authorized`` is True for a logged-in therapist or the panel's reset key."""

    kind: CommandKind
    actor: str
    authorized: bool = False
    #: SET_SPEED / START: speed_kmh (float); SET_MODE: "reverse"/"forward"; SET_LIMITS: dict;
    #: APPLY_PRESCRIPTION: {"mode": str, "limits": dict, "patient_id": str}.
    value: Any = None


class BeltAction(enum.Enum):
    """What to tell the treadmill over the link."""

    NONE = "none"
    SET_SPEED = "set_speed"
    AUTO_STOP = "auto_stop"


@dataclass(frozen=True)
class BeltCommand:
    """A command for the belt driver (which never blocks the caller)."""

    action: BeltAction = BeltAction.NONE
    belt_speed_mps: float = 0.0


NO_BELT_COMMAND = BeltCommand()


class EventKind(enum.StrEnum):
    """What an event records; stored and sent as its value."""

    TRIP = "trip"
    WARN = "warn"
    STATE = "state"
    COMMAND = "command"
    REFUSED = "refused"
    LIMITS = "limits"
    FAULT = "fault"


#: Events logged at WARNING: something stopped the belt or was refused. A tuple, not a set:
#: an event read back from storage has a plain string kind, equal to the member but not
#: hashed like it.
ALERT_EVENT_KINDS = (EventKind.TRIP, EventKind.REFUSED, EventKind.FAULT)


@dataclass(frozen=True)
class Event:
    """Something worth recording: a trip, a warning, a state change, a command."""

    t_mono: float
    kind: EventKind
    code: str
    message: str
    actor: str = ""
    figures: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """The answer to a command. ``code``: ok | unauthorized | invalid | conflict."""

    ok: bool
    code: str
    message: str
    errors: tuple[FieldError, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form for the IPC and HTTP layers."""
        out: dict[str, Any] = {"ok": self.ok, "code": self.code, "message": self.message}
        if self.errors:
            out["errors"] = [e.as_dict() for e in self.errors]
        return out


@dataclass(frozen=True)
class Outputs:
    """Everything a step decides; the loop applies it at once."""

    state: State
    relay_energized: bool
    warning: bool
    belt: BeltCommand = NO_BELT_COMMAND
    events: tuple[Event, ...] = ()
    reply: Reply | None = None
    #: The treadmill link was faulted and a reset asked for it: reopen the port.
    reconnect_link: bool = False
