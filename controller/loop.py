"""The control loop: one decision thread fed by producer threads through a queue.

Producers (sensor reader, belt link, GPIO callbacks, IPC) only put timestamped
items on a queue. The decision thread runs the core on each item at once. It
waits for nothing else than the next input or the next deadline that matters:
the core's next deadline (a sample going stale, an overspeed's grace, a ramp
step; ``SafetyCore.next_deadline``), the next heartbeat edge, a chime's next
change. So silence is noticed at its deadline, not on a blind tick. Outputs
are applied in the same thread, relay first. The heartbeat toggles from this
thread only, at the configured pace, on a healthy step: if the loop hangs, the
external watchdog relay drops.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from controller.safety.core import SafetyCore
from controller.safety.types import ANYONE_COMMANDS, BeltAction, Command, Event, EventKind, Outputs, Reply, State

log = logging.getLogger(__name__)

#: The status snapshot is rebuilt at most this often, and at once on every event (the dashboard
#: pushes at most every 50 ms; the session runner reads it for its timer).
STATUS_INTERVAL_S = 0.05
#: A heartbeat edge may come this share of its interval (half the heartbeat period) early, riding on an
#: input's wake-up instead of a wake-up of its own: one edge per interval on average, never more than
#: 7/4 intervals apart (two may come closer after a late one: harmless to a missing-pulse relay).
HEARTBEAT_EARLY_SHARE = 0.75

#: Upper bounds (s) of the decision-latency histogram exported as metrics.
LATENCY_BUCKETS_S = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01)


class OutputPort(Protocol):
    """Where decisions go: relay, heartbeat, warning buzzer, lamps."""

    def set_relay(self, energized: bool) -> None: ...
    def toggle_heartbeat(self) -> None: ...
    def set_buzzer(self, on: bool) -> None: ...
    def set_lamps(self, green: bool, amber: bool, red: bool) -> None: ...
    def safe_off(self) -> None: ...


class BeltPort(Protocol):
    """The belt driver's non-blocking command side."""

    def request_speed(self, belt_speed_mps: float) -> Any: ...
    def request_stop(self) -> Any: ...
    def reopen(self) -> Any: ...


@dataclass
class _PendingCommand:
    command: Command
    done: threading.Event
    reply: Reply | None = None
    #: The caller gave up waiting: a late "go" must not happen behind its back.
    abandoned: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class ControlLoop:
    """Runs a :class:`SafetyCore` in its own thread and applies its outputs."""

    def __init__(self, core: SafetyCore, *, outputs: OutputPort, belt: BeltPort | None = None,
                 event_sink: Callable[[Event], None] | None = None, heartbeat_period_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 on_healthy_tick: Callable[[State], None] | None = None,
                 estop_level: Callable[[], bool] | None = None):
        self.core = core
        self.outputs = outputs
        self.belt = belt
        self.event_sink = event_sink or (lambda e: None)
        period_s = heartbeat_period_s or core.cfg.gpio.heartbeat_period_ms / 1000.0
        #: Time between two heartbeat edges: the longest the thread ever waits with no input.
        self.edge_interval_s = period_s / 2.0
        self.clock = clock
        self.on_healthy_tick = on_healthy_tick
        #: Read on every wake-up besides the edge callbacks, so a missed edge cannot hide a press.
        self.estop_level = estop_level
        #: Times the decision thread woke (an input, a deadline, a heartbeat edge): a figure of its cost.
        self.wakeups = 0
        self._next_edge_t = 0.0
        self._core_deadline = float("-inf")
        self._status_t = float("-inf")
        self._limits_seen: Any = None
        self._limits_as_dict: dict[str, Any] = {}
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Set when even the trip path failed: the relay then stays off for good.
        self.broken = False
        self.relay_energized = False
        self.status: dict[str, Any] = {}
        self.steps = 0
        self.last_outputs: Outputs | None = None
        self._status_listeners: list[Callable[[dict[str, Any]], None]] = []
        # Fleet counters, touched only by the decision thread.
        self.trips_by_reason: dict[str, int] = {}
        self.sensor_faults = 0
        self.link_faults = 0
        self.latency_counts = [0] * len(LATENCY_BUCKETS_S)
        self.latency_sum_s = 0.0
        #: Buzzer pattern of a chime under way: (start time, on/off durations), decision thread only.
        self._chime: tuple[float, tuple[float, ...]] | None = None
        self._buzzer_on: bool | None = None

    # ---- producers (any thread, never block) ----------------------------------------

    def submit_distance(self, sensor_id: str, distance_mm: float, range_status: int, t_mono: float) -> None:
        """A sensor sample, stamped when it was read."""
        self._q.put((self.core.on_distance, (sensor_id, distance_mm, range_status, t_mono)))

    def submit_sensor_fault(self, sensor_id: str, message: str, t_mono: float) -> None:
        """A sensor read failure."""
        self._q.put((self._sensor_fault, (sensor_id, message, t_mono)))

    def _sensor_fault(self, sensor_id: str, message: str, t_mono: float) -> Outputs:
        self.sensor_faults += 1
        return self.core.on_sensor_fault(sensor_id, message, t_mono)

    def _link_fault(self, message: str, t_mono: float) -> Outputs:
        self.link_faults += 1
        return self.core.on_link_fault(message, t_mono)

    def submit_belt_speed(self, belt_speed_mps: float, t_mono: float) -> None:
        """A belt speed reading."""
        self._q.put((self.core.on_belt_speed, (belt_speed_mps, t_mono)))

    def submit_link_fault(self, message: str, t_mono: float) -> None:
        """A serial link failure."""
        self._q.put((self._link_fault, (message, t_mono)))

    def submit_estop(self, estop_open: bool, t_mono: float) -> None:
        """An E-stop input level."""
        self._q.put((self.core.on_estop, (estop_open, t_mono)))

    def command(self, command: Command, timeout_s: float = 1.0) -> Reply:
        """Hand a command to the decision thread and wait (in the caller's thread) for its reply."""
        pending = _PendingCommand(command, threading.Event())
        self._q.put((self._run_command, (pending,)))
        if not pending.done.wait(timeout_s):
            with pending.lock:
                if pending.reply is None:
                    pending.abandoned = True
                    if command.kind in ANYONE_COMMANDS:
                        return Reply(False, "conflict", "the controller did not answer in time; the stop stays queued")
                    return Reply(False, "conflict", "the controller did not answer in time; nothing was done")
        assert pending.reply is not None
        return pending.reply

    def submit_command(self, command: Command) -> None:
        """Hand a command over without waiting for the reply (panel buttons)."""
        self._q.put((self._run_command, (_PendingCommand(command, threading.Event()),)))

    def chime(self, pattern_s: tuple[float, ...] = (0.3, 0.2, 0.3, 0.2, 0.3)) -> None:
        """Sound the buzzer in an on/off pattern (a session's end is near); the warn buzzer still wins."""
        self._q.put((self._start_chime, (tuple(pattern_s),)))

    def _start_chime(self, pattern_s: tuple[float, ...]) -> None:
        self._chime = (self.clock(), pattern_s)
        self._update_buzzer()

    def _chime_on(self, now: float) -> bool:
        if self._chime is None:
            return False
        elapsed = now - self._chime[0]
        for i, length in enumerate(self._chime[1]):
            if elapsed < length:
                return i % 2 == 0
            elapsed -= length
        self._chime = None
        return False

    def _update_buzzer(self) -> None:
        warning = self.last_outputs.warning if self.last_outputs is not None else False
        # The chime's pattern runs (and ends) whether or not the warning drowns it.
        chime = self._chime_on(self.clock())
        on = warning or chime
        if on != self._buzzer_on:
            self.outputs.set_buzzer(on)
            self._buzzer_on = on

    def add_status_listener(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Called from the decision thread with each new status; must not block."""
        self._status_listeners.append(listener)

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start the decision thread."""
        self.outputs.set_relay(False)
        self._thread = threading.Thread(target=self._run, name="decision", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """De-energize the relay before anything else, then end the thread. Idempotent."""
        self._stop.set()  # first, so the decision thread cannot energize again
        self._force_relay_off()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        try:
            self.outputs.safe_off()
        except Exception:  # noqa: BLE001 - shutdown goes on whatever one output does
            log.exception("safe_off failed during shutdown")

    def is_alive(self) -> bool:
        """Whether the decision thread runs."""
        return self._thread is not None and self._thread.is_alive()

    # ---- the decision thread ---------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException:  # noqa: BLE001 - whatever kills this thread must leave the relay open
            log.critical("the decision thread died: relay held open until restart\n%s", traceback.format_exc())
            raise
        finally:
            self.broken = True
            self._force_relay_off()

    def _loop(self) -> None:
        self._next_edge_t = self.clock()
        while not self._stop.is_set():
            wake_t = min(self._core_deadline, self._next_edge_t, self._chime_change_t())
            wait_s = wake_t - self.clock()
            try:
                item = self._q.get(timeout=wait_s) if wait_s > 0 else self._q.get_nowait()
            except queue.Empty:
                item = None
            self.wakeups += 1
            self._wake(item)

    def _wake(self, item: tuple | None) -> None:
        """One wake-up: every queued input, the E-stop level, a deadline step if one is due, then the
        heartbeat edge if it is due (after a healthy core step), the chime and the status."""
        stepped = healthy = False
        while item is not None:
            ok = self._guarded(item[0], item[1])
            if item[0] != self._start_chime:  # a chime is no step of the core
                stepped, healthy = True, ok
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                item = None
        now = self.clock()
        edge_due = now >= self._next_edge_t - HEARTBEAT_EARLY_SHARE * self.edge_interval_s
        deadline_due = now >= self._core_deadline
        if self.estop_level is not None:
            # Besides the edge callbacks, on every wake-up: a missed edge cannot hide a press.
            self._guarded(self._read_estop, (now,))
        if deadline_due or (edge_due and not stepped):
            # A deadline of a rule, or a heartbeat edge with no input this wake-up: the core steps at
            # the present time, so the edge proves that it runs.
            healthy = self._guarded(self.core.on_tick, (now,))
        planned = self._guarded(self._plan, ())
        if not planned:
            self._core_deadline = now + self.edge_interval_s  # look again at the next edge at the latest
        healthy = healthy and planned
        if self._chime is not None:
            self._guarded(self._update_buzzer, ())
        if now - self._status_t >= STATUS_INTERVAL_S:
            healthy = self._guarded(self._publish_status, ()) and healthy
        if edge_due:
            # On the grid of edge intervals, so early edges do not add edges: one per interval on average,
            # at most one and three quarters of an interval apart.
            self._next_edge_t = max(self._next_edge_t + self.edge_interval_s, now + self.edge_interval_s / 2)
            if healthy and not self.broken and not self._stop.is_set():
                self._guarded(self._heartbeat, ())

    def _plan(self) -> None:
        # The core's next deadline; an exception here trips like one in a step.
        self._core_deadline = self.core.next_deadline()

    def _heartbeat(self) -> None:
        self.outputs.toggle_heartbeat()
        if self.on_healthy_tick is not None:
            self.on_healthy_tick(self.core.state)

    def _chime_change_t(self) -> float:
        """When the chime under way next turns the buzzer on or off (inf without a chime)."""
        if self._chime is None:
            return float("inf")
        now, t = self.clock(), self._chime[0]
        for length in self._chime[1]:
            t += length
            if t > now:
                return t
        return t

    def _guarded(self, fn: Callable[..., Outputs | None], args: tuple) -> bool:
        """Run one core step; any exception trips the relay and is logged with its traceback."""
        try:
            t0 = time.perf_counter()
            out = fn(*args)
            if out is not None:
                self._apply(out)
                self._count_latency(time.perf_counter() - t0)
            return True
        except Exception as exc:  # noqa: BLE001 - an exception anywhere must trip, not kill the loop
            self._force_relay_off()
            log.error("exception in the decision path: tripping\n%s", traceback.format_exc())
            try:
                self._apply(self.core.on_exception(f"{type(exc).__name__}: {exc}", self.clock()))
            except Exception:  # noqa: BLE001
                self.broken = True
                self._force_relay_off()
                log.critical("the trip path itself failed: relay held open until restart\n%s",
                             traceback.format_exc())
            return False

    def _read_estop(self, now: float) -> Outputs | None:
        estop_open = bool(self.estop_level())
        if estop_open == self.core.estop_open:
            return None
        return self.core.on_estop(estop_open, now)

    def _count_latency(self, seconds: float) -> None:
        self.latency_sum_s += seconds
        for i, bound in enumerate(LATENCY_BUCKETS_S):
            if seconds <= bound:
                self.latency_counts[i] += 1

    def _run_command(self, pending: _PendingCommand) -> Outputs | None:
        with pending.lock:
            if pending.abandoned and pending.command.kind not in ANYONE_COMMANDS:
                log.warning("dropped %s from %s: its caller stopped waiting", pending.command.kind.value,
                            pending.command.actor)
                return None
        try:
            out = self.core.on_command(pending.command, self.clock())
            pending.reply = out.reply
            return out
        finally:
            with pending.lock:
                if pending.reply is None:
                    pending.reply = Reply(False, "conflict", "internal error while handling the command")
            pending.done.set()

    def _apply(self, out: Outputs) -> None:
        # Once stop() began, nothing may energize again, even the step already under way.
        energize = out.relay_energized and not self.broken and not self._stop.is_set()
        if energize != self.relay_energized:
            self.outputs.set_relay(energize)
            self.relay_energized = energize
        if self.belt is not None:
            if out.belt.action is BeltAction.SET_SPEED:
                self.belt.request_speed(out.belt.belt_speed_mps)
            elif out.belt.action is BeltAction.AUTO_STOP:
                self.belt.request_stop()
            if out.reconnect_link:
                threading.Thread(target=self._reopen_link, name="belt-reopen", daemon=True).start()
        changed = self.last_outputs is None or (out.warning, out.state) != (self.last_outputs.warning,
                                                                             self.last_outputs.state)
        self.last_outputs = out
        if changed:
            self._update_buzzer()
            self.outputs.set_lamps(out.state in (State.READY, State.RUNNING) and not out.warning,
                                   out.warning, out.state is State.STOPPED)
        self.steps += 1
        for event in out.events:
            if event.kind == EventKind.TRIP:
                self.trips_by_reason[event.code] = self.trips_by_reason.get(event.code, 0) + 1
            self.event_sink(event)
        if out.events:
            self._publish_status()

    def _reopen_link(self) -> None:
        # Opening a port can block: never on the decision thread.
        started_t = self.clock()
        try:
            assert self.belt is not None
            self.belt.reopen()
        except Exception as exc:  # noqa: BLE001 - the link stays faulted; the reset stays refused
            log.warning("treadmill link reopen failed: %s", exc)
            return
        self._q.put((self.core.on_link_reopened, (started_t, self.clock())))

    def _force_relay_off(self) -> None:
        self.relay_energized = False
        try:
            self.outputs.set_relay(False)
        except Exception:  # noqa: BLE001 - the caller is already on its way to a safe state
            log.critical("could not drive the relay off\n%s", traceback.format_exc())

    def _limits_dict(self, limits: Any) -> dict[str, Any]:
        # Limits are frozen and replaced on each change: converted once per change, not per status.
        if self._limits_seen is not limits:
            self._limits_seen, self._limits_as_dict = limits, dataclasses.asdict(limits)
        return dict(self._limits_as_dict)

    def _publish_status(self) -> None:
        core = self.core
        self._status_t = self.clock()
        now = core.now
        sid, gap = core.nearest()
        stop = core.stop_distance_mm()
        status = {
            "t_mono": now, "state": core.state.value, "reasons": dict(core.reasons),
            "relay_energized": self.relay_energized, "mode": core.mode.value,
            "belt_speed_mps": core.belt.speed_mps, "commanded_mps": core.commanded_mps,
            "target_mps": core.target_mps, "cap_kmh": core.limits.cap_kmh(core.mode.value),
            "min_speed_kmh": core.cfg.safety.min_speed_kmh,
            "gap_mm": gap, "nearest_sensor": sid, "stop_distance_mm": stop,
            "warn_distance_mm": stop + core.limits.warn_margin_mm,
            "warning": self.last_outputs.warning if self.last_outputs else False,
            # Why the warning is on, for the page to say so: the patient near the edge, the belt above
            # its cap, or faster than commanded (a console override).
            "warning_causes": [name for name, on in (("warn_zone", core.in_warn),
                                                     ("overspeed", core.overspeed_since is not None),
                                                     ("console_override", core.override_since is not None)) if on],
            "estop_open": core.estop_open, "trip_count": core.trip_count,
            "link_ok": core.belt.is_fresh(now),
            "running_for_s": None if core.running_since is None else now - core.running_since,
            "sensors": {s_id: {"distance_mm": tr.distance_mm if tr.t_sample is not None else None,
                               "gap_mm": tr.gap_mm, "reading": tr.reading.value, "fresh": tr.is_fresh(now)}
                        for s_id, tr in core.sensors.items()},
            "limits": self._limits_dict(core.limits),
            "counters": {"trips_by_reason": dict(self.trips_by_reason), "sensor_faults": self.sensor_faults,
                         "link_faults": self.link_faults, "decisions": self.steps, "wakeups": self.wakeups},
            "decision_latency": {"buckets_s": list(LATENCY_BUCKETS_S), "counts": list(self.latency_counts),
                                 "count": self.steps, "sum_s": self.latency_sum_s},
        }
        self.status = status
        for listener in self._status_listeners:
            listener(status)
