"""A stand-in for the controller's Unix-socket API (JSON lines), for the dashboard's tests.

A real socket server in a thread, so the dashboard's real IpcClient and
StatusHub are under test. It answers the IPC contract from a small state
machine on the example config, records every call, and refuses with the
controller's own rules (controller.safety.checks for commands; patients and
sessions in :class:`tests.web.fake_therapy.FakeTherapy`, ``fake.therapy``):
every field error it words is the controller's FieldError.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from controller.config import KMH_PER_MPS, Ceilings, Config, Limits, load_config
from controller.fields import Choice, FieldError, Num, check_value, spec_of
from controller.ipc import EVENT_KINDS, IpcServer, RequestError
from controller.safety.checks import check_limits, check_mode, check_speed, loosens
from controller.safety.types import ANYONE_COMMANDS, Mode
from tests.web.fake_therapy import FakeTherapy, invalid

EXAMPLE_CONFIG = load_config(Path(__file__).resolve().parents[2] / "systemd" / "config.example.toml")
#: The controller's ``limits`` reply: each limit's range from its field spec.
RANGES = {f.name: {"min": spec_of(f).lo, "max": spec_of(f).hi, "unit": spec_of(f).unit}
          for f in dataclasses.fields(Limits)}
#: The range the controller gives inline for an events query (controller/ipc.py).
EVENTS_LIMIT = Num(1, 500, integer=True)
#: The simulation's demo controls (sim/bench.py), which a demo controller serves.
DEMO_ACTIONS = ("drift_back", "console_speed_up", "unplug_sensor", "unplug_treadmill", "recover")
ANYONE = {kind.value for kind in ANYONE_COMMANDS}
#: As controller.loop: upper bounds of the decision latency histogram's buckets.
LATENCY_BUCKETS_S = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01)
PUSH_INTERVAL_S = 0.05


class FakeController:
    """Serves status, subscribe, events, limits, command and (optionally) demo on a Unix socket."""

    def __init__(self, *, demo: bool = False, state: str = "STOPPED"):
        self._dir = tempfile.mkdtemp(prefix="fake-ctl-")  # short path: sun_path holds 108 bytes
        self.socket_path = os.path.join(self._dir, "control.sock")
        self.lock = threading.Condition()
        self.commands: list[dict[str, Any]] = []
        self.demo_calls: list[str] = []
        self.requests: list[str] = []
        #: Every request as (method, params), in order.
        self.calls: list[tuple[str, dict[str, Any]]] = []
        #: method → the refusal its next call gets (a test's way of making the controller refuse).
        self.refusals: dict[str, RequestError] = {}
        self.events: list[dict[str, Any]] = []
        self.status = self._initial_status(demo, state)
        self.therapy = FakeTherapy(self)
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []

    # ---- lifecycle ------------------------------------------------------------------

    def start(self) -> "FakeController":
        """Bind and serve."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(self.socket_path)
        sock.listen(64)
        sock.settimeout(0.1)
        self._sock = sock
        self._spawn(self._accept_loop, "fake-ctl-accept")
        return self

    def close(self) -> None:
        """Stop serving, drop every connection, remove the socket (idempotent)."""
        self._stop.set()
        with self.lock:
            self.lock.notify_all()
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes accept() at once
            except OSError:
                pass
        for thread in self._threads:
            thread.join(2.0)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for path in (self.socket_path,):
            if os.path.exists(path):
                os.unlink(path)
        if os.path.isdir(self._dir):
            os.rmdir(self._dir)

    def _spawn(self, target: Any, name: str, arg: Any = None) -> None:
        thread = threading.Thread(target=target, name=name, args=() if arg is None else (arg,), daemon=True)
        self._threads.append(thread)
        thread.start()

    # ---- state ----------------------------------------------------------------------

    @staticmethod
    def _initial_status(demo: bool, state: str) -> dict[str, Any]:
        return {
            "seq": 1, "t_wall": time.time(), "state": state,
            "reasons": {"startup": "the controller starts STOPPED"} if state == "STOPPED" else {},
            "relay_energized": state != "STOPPED", "warning": False, "warning_causes": [], "estop_open": False, "mode": "reverse",
            "belt_speed_mps": 0.0, "commanded_mps": 0.0, "target_mps": 0.0, "cap_kmh": 2.0, "min_speed_kmh": 0.5,
            "gap_mm": 900.0, "nearest_sensor": "left", "stop_distance_mm": 250.0, "warn_distance_mm": 450.0,
            "sensors": {"left": {"distance_mm": 900.0, "gap_mm": 900.0, "reading": "ok", "fresh": True},
                        "right": {"distance_mm": 910.0, "gap_mm": 910.0, "reading": "ok", "fresh": True}},
            "link_ok": True, "running_for_s": None, "trip_count": 4,
            "limits": dataclasses.asdict(EXAMPLE_CONFIG.limits),
            "ceilings": dataclasses.asdict(EXAMPLE_CONFIG.ceilings), "units": EXAMPLE_CONFIG.display.units,
            "demo": demo, "session": None, "selected_patient": None,
            "storage": {"ok": True, "message": "history saved"},
            "sensor_timing": {s.id: {"period_s": s.period_s, "measured_period_s": s.period_s, "phase_error_s": 0.0,
                                     "rephases": 0, "interrupt": s.interrupt_pin is not None, "interrupt_fault": None}
                              for s in EXAMPLE_CONFIG.sensors},
            # Fleet counters and the decision step's latency histogram (cumulative counts), as the controller.
            "counters": {"trips_by_reason": {"stop_zone": 3, "estop": 1}, "sensor_faults": 2, "link_faults": 1,
                         "decisions": 1000, "wakeups": 900},
            "decision_latency": {"buckets_s": list(LATENCY_BUCKETS_S),
                                 "counts": [100, 400, 800, 950, 990, 998, 999, 999], "count": 1000,
                                 "sum_s": 0.3125},
        }

    def config(self) -> Config:
        """The example config with the ceilings the status shows (a test may change them with update())."""
        return dataclasses.replace(EXAMPLE_CONFIG, ceilings=Ceilings(**self.status["ceilings"]))

    def update(self, **changes: Any) -> None:
        """Change the status and push it to subscribers (a test's way of moving the patient)."""
        with self.lock:
            self.status.update(changes)
            self._bump()

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        """The params of every call of ``method`` so far."""
        with self.lock:
            return [copy.deepcopy(params) for name, params in self.calls if name == method]

    def refuse_next(self, method: str, code: str, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        """The next call of ``method`` is refused with this code, message and field errors."""
        with self.lock:
            self.refusals[method] = RequestError(code, message, errors)

    def set_storage_fault(self, message: str | None) -> None:
        """The history database cannot be written (``message`` says why), or works again (None)."""
        with self.lock:
            self.therapy.storage_fault = message
            self.status["storage"] = {"ok": message is None, "message": message or "history saved"}
            self._bump()

    def _bump(self) -> None:
        # Caller holds self.lock.
        self.status["seq"] += 1
        self.status["t_wall"] = time.time()
        self.status["cap_kmh"] = self.status["limits"][f"{self.status['mode']}_cap_kmh"]
        self.lock.notify_all()

    def _event(self, kind: str, code: str, message: str, actor: str) -> None:
        self.events.insert(0, {"id": len(self.events) + 1, "wall_time": time.time(), "t_mono": time.monotonic(),
                               "kind": kind, "code": code, "message": message, "actor": actor, "figures": {}})

    def _set_state(self, state: str, reasons: dict[str, str] | None = None) -> None:
        self.status["state"] = state
        self.status["reasons"] = reasons or {}
        self.status["relay_energized"] = state != "STOPPED"
        self.status["running_for_s"] = 0.0 if state == "RUNNING" else None
        if state != "RUNNING":
            self.status["target_mps"] = self.status["commanded_mps"] = self.status["belt_speed_mps"] = 0.0

    # ---- serving --------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()  # type: ignore[union-attr]
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self._conns.add(conn)
            self._spawn(self._serve_conn, "fake-ctl-conn", conn)

    def _serve_conn(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            while not self._stop.is_set():
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, _, buffer = buffer.partition(b"\n")
                    request = json.loads(line)
                    if request.get("method") == "subscribe":
                        conn.sendall(self._encode({"id": request.get("id"), "ok": True,
                                                   "result": {"subscribed": True}}))
                        self._push_loop(conn)
                        return
                    conn.sendall(self._encode(self._answer(request)))
        except OSError:
            return
        finally:
            with self.lock:
                self._conns.discard(conn)
            conn.close()

    def _push_loop(self, conn: socket.socket) -> None:
        """Push the status on every change and at least every PUSH_INTERVAL_S, as the controller does."""
        seq = -1
        while not self._stop.is_set():
            with self.lock:
                self.lock.wait_for(lambda: self.status["seq"] != seq or self._stop.is_set(), PUSH_INTERVAL_S)
                status = copy.deepcopy(self.status)
            seq = status["seq"]
            conn.sendall(self._encode({"push": "status", "status": status}))

    @staticmethod
    def _encode(message: dict[str, Any]) -> bytes:
        return json.dumps(message).encode() + b"\n"

    def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        method, params = request.get("method"), request.get("params") or {}
        with self.lock:
            self.requests.append(method)
            self.calls.append((method, copy.deepcopy(params)))
            refusal = self.refusals.pop(method, None)
            try:
                if refusal is not None:
                    raise refusal
                handler = {"status": self._m_status, "events": self._m_events, "limits": self._m_limits,
                           "command": self._m_command, "demo": self._m_demo, **self.therapy.handlers()}.get(method)
                if handler is None or (method == "demo" and not self.status["demo"]):
                    raise RequestError("unknown_method", f"unknown method {method!r}")
                return {"id": request.get("id"), "ok": True, "result": handler(params)}
            except RequestError as err:
                return IpcServer.error_reply(request.get("id"), err)

    def _m_status(self, params: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(self.status)

    def _m_events(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        errors: list[FieldError] = []
        limit = check_value("events", "limit", params.get("limit", 50), EVENTS_LIMIT, errors)
        kind = params.get("kind")
        if kind is not None:
            check_value("events", "kind", kind, Choice(EVENT_KINDS), errors)
        if errors:
            raise invalid(errors)
        return [e for e in self.events if kind is None or e["kind"] == kind][:limit]

    def _m_limits(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"limits": dict(self.status["limits"]), "ceilings": dict(self.status["ceilings"]),
                "mode": self.status["mode"], "units": self.status["units"], "ranges": copy.deepcopy(RANGES)}

    def _m_demo(self, params: dict[str, Any]) -> dict[str, Any]:
        action = params.get("action")
        if action not in DEMO_ACTIONS:
            raise RequestError("invalid", f"[demo] action = {action!r:.60}: must be one of {', '.join(DEMO_ACTIONS)}")
        self.demo_calls.append(action)
        return {"message": f"demo: {action}"}

    # ---- commands: the order of the safety core's (authority, the value, then the state) --------

    def _m_command(self, params: dict[str, Any]) -> dict[str, Any]:
        self.commands.append(copy.deepcopy(params))
        kind, actor, value = params.get("command"), params.get("actor"), params.get("value")
        if kind not in ANYONE and not params.get("authorized"):
            raise RequestError("unauthorized", f"{kind} needs a logged-in therapist")
        handler: Callable[[Any, str], str] | None = {
            "estop": self._c_estop, "stop": self._c_stop, "reset": self._c_reset, "start": self._c_start,
            "set_speed": self._c_speed, "set_mode": self._c_mode, "set_limits": self._c_limits}.get(kind)
        if handler is None:
            raise RequestError("invalid", f"[command] command = {kind!r}: unknown")
        message = handler(value, actor)
        self._event("command", kind, f"{kind} by {actor}", actor)
        self._bump()
        return {"ok": True, "code": "ok", "message": message}

    @staticmethod
    def _checked(check: Callable[..., Any], *args: Any) -> Any:
        """What a check of controller.safety.checks returns, or its refusal naming the field and range."""
        errors: list[FieldError] = []
        result = check(*args, errors)
        if result is None:
            raise invalid(errors)
        return result

    def _c_estop(self, value: Any, actor: str) -> str:
        self._set_state("STOPPED", {"estop_command": f"E-stop pressed on the dashboard by {actor}"})
        return "stopped: E-stop"

    def _c_stop(self, value: Any, actor: str) -> str:
        if self.status["state"] != "RUNNING":
            return f"belt already {self.status['state'].lower()}"
        self._set_state("READY")
        return "stopping"

    def _c_reset(self, value: Any, actor: str) -> str:
        if self.status["state"] != "STOPPED":
            raise RequestError("conflict", f"nothing to reset: the controller is {self.status['state']}")
        self._set_state("READY")
        return "ready"

    def _target_mps(self, value: Any) -> float:
        return self._checked(check_speed, value, Mode(self.status["mode"]), Limits(**self.status["limits"]),
                             EXAMPLE_CONFIG.safety.min_speed_kmh)

    def _c_start(self, value: Any, actor: str) -> str:
        target_mps = EXAMPLE_CONFIG.safety.min_speed_kmh / KMH_PER_MPS if value is None else self._target_mps(value)
        if self.status["state"] != "READY":
            raise RequestError("conflict", f"start needs READY; the controller is {self.status['state']}")
        self._set_state("RUNNING")
        self.status["target_mps"] = target_mps
        return "running"

    def _c_speed(self, value: Any, actor: str) -> str:
        self.status["target_mps"] = self._target_mps(value)
        return f"speed set to {value:.1f} km/h"

    def _c_mode(self, value: Any, actor: str) -> str:
        mode = self._checked(check_mode, value, "command")
        if self.status["state"] not in ("STOPPED", "READY"):
            raise RequestError("conflict", "the mode changes only while the belt stands (STOPPED or READY, speed 0)")
        self.status["mode"] = mode.value
        return f"mode {mode.value}"

    def _c_limits(self, value: Any, actor: str) -> str:
        old = Limits(**self.status["limits"])
        new = self._checked(check_limits, value, old, self.config())
        if loosens(new, old) and self.status["state"] == "RUNNING":
            raise RequestError("conflict", "looser limits apply only while the belt stands; tighter ones apply "
                                           "at once")
        self.status["limits"] = dataclasses.asdict(new)
        return "limits applied"
