"""The safety core: pure decisions, no I/O, no threads, no clocks of its own.

Each ``on_*`` call takes one timestamped input, re-evaluates every rule and
returns :class:`Outputs`. The relay is energized only in READY, RUNNING and
STOPPING, and any present cause trips to STOPPED in the same step. STOPPED is
latched: only a reset by a therapist leaves it, and only once no cause persists.

Commands: stop is always allowed; go needs authority. Looser limits and mode
changes need a standing belt; tighter limits apply at once. A refused command
changes nothing and says why, naming the field and range (the checks are the
free functions of :mod:`controller.safety.checks`).
"""

from __future__ import annotations

import collections
import dataclasses

from controller.config import KMH_PER_MPS, Config, Limits, stop_distance_mm
from controller.fields import FieldError, jsonable
from controller.safety.checks import check_limits, check_mode, check_prescription, check_speed, loosens
from controller.safety.inputs import MOVING_MPS, BeltTrack, Cause, SensorTrack
from controller.safety.types import (
    ANYONE_COMMANDS, BELT_ACTIVE_STATES, NO_BELT_COMMAND, RELAY_ON_STATES, STANDING_STATES, BeltAction,
    BeltCommand, Command, CommandKind, Event, EventKind, Mode, Outputs, Reply, State,
)

#: A correction for overspeed is re-sent this often while the overspeed lasts.
OVERSPEED_RESEND_S = 0.25
#: A warn episode ends this far beyond where it began, so noise at the line gives one step.
WARN_HYSTERESIS_MM = 20.0
#: A deadline is looked at this long after the limit it stands for (each rule changes strictly after it).
DEADLINE_AFTER_S = 0.0002


def _ok(message: str) -> Reply:
    return Reply(True, "ok", message)


def _conflict(message: str) -> Reply:
    return Reply(False, "conflict", message)


class SafetyCore:
    """The state machine and its command rules. Build one per controller run; it starts STOPPED."""

    def __init__(self, cfg: Config, t_mono: float, limits: Limits | None = None,
                 mode: Mode = Mode.REVERSE):
        self.cfg = cfg
        self.limits = limits or cfg.limits
        self.mode = mode
        self.can_command = cfg.treadmill.can_command
        self.state = State.STOPPED
        self.reasons: dict[str, str] = {"startup": "controller started: the belt stays stopped until a reset"}
        self.sensors = {s.id: SensorTrack(s) for s in cfg.sensors}
        self.belt = BeltTrack(cfg.treadmill.link_timeout_s)
        self.estop_open = True  # unknown counts as pressed until the input is read
        self.estop_t = float("-inf")
        self.now = t_mono
        #: Timestamp of the input being decided on (a sample's read time, a tick's time).
        self.input_t = t_mono
        #: Last speed a person asked for; the controller never commands more.
        self.target_mps = 0.0
        #: Speed most recently sent to the treadmill (ramps up to target).
        self.commanded_mps = 0.0
        self.last_human_mps = 0.0
        #: Speed last put on the wire (commanded ramps continuously; the wire in 0.1 km/h steps).
        self.sent_mps = 0.0
        self.in_warn = False
        #: Gap beyond which the present warn episode ends (set when it begins).
        self.warn_exit_mm = 0.0
        #: Since when the belt runs above the cap + tolerance (states and links without a commanded speed).
        self.overspeed_since: float | None = None
        #: Since when the belt runs faster than commanded + tolerance (RUNNING on a link that commands).
        self.override_since: float | None = None
        self.overspeed_sent_t = -1e9
        #: The commanded reference (see _commanded_reference): (held until, m/s) with falling speeds,
        #: the intercept of the part older than the window, and what the last step left held.
        self._ref_window: collections.deque[tuple[float, float]] = collections.deque()
        self._ref_fold = float("-inf")
        self._ref_held: float | None = None
        self.stop_deadline: float | None = None
        #: A controlled stop ends on the second standing reading received from this time on
        #: (one poll after the stop): a reading measured before the treadmill had the stop
        #: command (a belt still speeding up from its start, a poll delayed by a stall) cannot
        #: end it early. The link sends a stop before its next poll, so the second is after it.
        self.stop_settle_t: float | None = None
        self.standing_readings = 0
        #: After a cap is lowered on a moving belt, gross overspeed is judged against the
        #: old cap for one grace time, while the belt slows (an E-stop would be a fall risk).
        self.prev_cap_mps = 0.0
        self.cap_lowered_t = -1e9
        self.trip_count = 0
        #: When the present RUNNING period began (the session timer), None when standing.
        self.running_since: float | None = None
        #: A FINISH is under way: the belt slows at the ramp rate, then stops under control.
        self.ramping_down = False
        self._last_ramp_t = t_mono
        self._events: list[Event] = []
        self._belt_cmd = NO_BELT_COMMAND
        self._reconnect = False
        self._momentary: list[Cause] = []
        #: This input's closing speed (measured, used), estimated once per step.
        self._closing: tuple[float | None, float] | None = None

    # ---- inputs -------------------------------------------------------------------

    def on_distance(self, sensor_id: str, distance_mm: float, range_status: int, t_mono: float) -> Outputs:
        """A distance sample became available."""
        track = self.sensors.get(sensor_id)
        if track is None:
            self._momentary.append(Cause("sensor_unknown", f"sample from unknown sensor {sensor_id!r}", False))
        else:
            track.update(distance_mm, range_status, t_mono, self.cfg.safety.obstruction_mm)
        return self._step(t_mono)

    def on_sensor_fault(self, sensor_id: str, message: str, t_mono: float) -> Outputs:
        """A sensor read failed (I2C error, timeout)."""
        track = self.sensors.get(sensor_id)
        if track is not None:
            track.fault(message, t_mono)
        return self._step(t_mono)

    def on_belt_speed(self, belt_speed_mps: float, t_mono: float) -> Outputs:
        """The treadmill reported its actual speed."""
        if not self.belt.update(belt_speed_mps, t_mono):
            self._momentary.append(Cause("belt_implausible", f"implausible belt speed {belt_speed_mps!r} m/s", False))
        elif self.state is State.STOPPING and t_mono >= (self.stop_settle_t or 0.0):
            self.standing_readings = self.standing_readings + 1 if self.belt.speed_mps < MOVING_MPS else 0
        return self._step(t_mono)

    def on_link_fault(self, message: str, t_mono: float) -> Outputs:
        """The serial link failed; it stays failed until reconnected on a reset."""
        self.belt.fault(message, t_mono)
        return self._step(t_mono)

    def on_link_reopened(self, reopen_started_t: float, t_mono: float) -> Outputs:
        """The driver reopened the port after a reset asked for it; a fault newer than the reopen stays."""
        if self.belt.t_fault is not None and self.belt.t_fault < reopen_started_t:
            self.belt.clear_fault()
        return self._step(t_mono)

    def on_estop(self, estop_open: bool, t_mono: float) -> Outputs:
        """The E-stop input changed (open = pressed or wire broken); a sample older than the last is ignored."""
        if t_mono >= self.estop_t:
            self.estop_open = bool(estop_open)
            self.estop_t = t_mono
        return self._step(t_mono)

    def on_tick(self, t_mono: float) -> Outputs:
        """The fixed tick: notices silence and ramps speed."""
        return self._step(t_mono)

    def on_command(self, command: Command, t_mono: float) -> Outputs:
        """A person's request; the reply says what happened."""
        self._advance(t_mono)
        # The ramp runs up to now under the speed asked for until now: the loop steps the core only for
        # inputs and deadlines, and a command changes what the ramp aims at from now on.
        self._ramp()
        reply = self._handle_command(command)
        self._events.append(Event(self.now, EventKind.COMMAND if reply.ok else EventKind.REFUSED, command.kind.value,
                                  reply.message, command.actor,
                                  {"value": command.value if reply.ok else jsonable(command.value)}
                                  if command.value is not None else {}))
        return self._step(t_mono, reply)

    def on_exception(self, message: str, t_mono: float) -> Outputs:
        """The loop caught an exception: trip with it as the reason."""
        self._momentary.append(Cause("exception", f"internal error: {message}", False))
        return self._step(t_mono)

    # ---- derived figures ----------------------------------------------------------

    @property
    def cap_mps(self) -> float:
        """Speed cap of the present mode."""
        return self.limits.cap_kmh(self.mode.value) / KMH_PER_MPS

    def speed_for_distance_mps(self) -> float:
        """The speed the stop distance is computed for: the larger of measured and commanded."""
        return max(self.belt.speed_mps if self.belt.t_sample is not None else 0.0, self.commanded_mps)

    def carries_toward_edge(self) -> bool:
        """Whether the belt carries the patient toward the rear edge in the present mode."""
        return self.cfg.treadmill.carries_toward_edge(self.mode.value)

    def closing_speed_mps(self) -> tuple[float | None, float]:
        """(measured, used): how fast the gap to the edge closes (m/s), the belt's carry included.

        Measured: the largest estimate of the fresh sensors that see the patient, None when
        any of them has none (too few samples, a hole, a fit off any line). Used: the measured
        one, or ``[safety] approach_speed_mps`` when there is none: never zero.
        """
        cached = self._closing
        return cached if cached is not None else self._measure_closing()

    def _measure_closing(self) -> tuple[float | None, float]:
        fallback = self.cfg.safety.approach_speed_mps
        measured: float | None = None
        for track in self.sensors.values():
            if track.gap_mm is None or not track.is_fresh(self.now):
                continue
            estimate = track.closing.estimate(self.now)
            if estimate is None:
                return None, fallback
            measured = estimate if measured is None else max(measured, estimate)
        if measured is None:
            return None, fallback
        return measured, measured

    def approach_mps(self) -> float:
        """The patient's own closing speed the stop distance takes: none while the belt stands
        (opening the circuit cannot help then), the used closing speed while it runs."""
        if self.state not in BELT_ACTIVE_STATES and not self.belt.moving(self.now):
            return 0.0
        return self.closing_speed_mps()[1]

    def stop_distance_mm(self, belt_speed_mps: float | None = None, approach_mps: float | None = None) -> float:
        """Stop distance at a belt speed (default: the present one) and a patient's closing speed
        (default: :meth:`approach_mps`); the belt adds its speed only when it carries toward the edge."""
        v = self.speed_for_distance_mps() if belt_speed_mps is None else belt_speed_mps
        approach = self.approach_mps() if approach_mps is None else approach_mps
        t = self.cfg.treadmill
        v_close = max(v if self.carries_toward_edge() else 0.0, approach)
        return stop_distance_mm(v, self.limits.base_stop_mm, self.cfg.sensor_period_s,
                                t.reaction_time_s, t.decel_mps2, v_close)

    def nearest(self) -> tuple[str | None, float | None]:
        """The nearest fresh valid reading (sensor id, gap mm): it governs."""
        best: tuple[str | None, float | None] = (None, None)
        for sid, track in self.sensors.items():
            if track.gap_mm is not None and track.is_fresh(self.now):
                if best[1] is None or track.gap_mm < best[1]:
                    best = (sid, track.gap_mm)
        return best

    def figures(self) -> dict:
        """The figures behind a decision, for the event log."""
        v = self.speed_for_distance_mps()
        t = self.cfg.treadmill
        sid, gap = self.nearest()
        measured, _ = self.closing_speed_mps()
        approach = self.approach_mps()
        v_close = max(v if self.carries_toward_edge() else 0.0, approach)
        stop = self.stop_distance_mm(v, approach)
        return {
            "sensor": sid, "gap_mm": None if gap is None else round(gap, 1),
            "stop_distance_mm": round(stop, 1), "warn_distance_mm": round(stop + self.limits.warn_margin_mm, 1),
            "base_stop_mm": self.limits.base_stop_mm,
            "closing_speed_mps": None if measured is None else round(measured, 3),
            "closing_speed_fallback": measured is None and approach > 0.0,
            "v_close_mps": round(v_close, 3), "carries_toward_edge": self.carries_toward_edge(),
            "reaction_term_mm": round(1000 * v_close * (self.cfg.sensor_period_s + t.reaction_time_s), 1),
            "braking_term_mm": round(1000 * v * v / (2 * t.decel_mps2), 1),
            "belt_speed_mps": round(self.belt.speed_mps, 3), "commanded_mps": round(self.commanded_mps, 3),
            "cap_kmh": self.limits.cap_kmh(self.mode.value), "mode": self.mode.value,
            "input_t_mono": self.input_t,
        }

    # ---- rules --------------------------------------------------------------------

    def causes(self) -> list[Cause]:
        """Every present reason the circuit must be open."""
        now = self.now
        out: list[Cause] = []
        if self.estop_open:
            out.append(Cause("estop", "E-stop input open: button pressed or its wire broken"))
        out += self.belt.causes(now)
        belt_moving = self.state in BELT_ACTIVE_STATES or self.belt.moving(now)
        for track in self.sensors.values():
            out += track.causes(now, belt_moving)
        out += self._zone_causes()
        out += self._speed_causes()
        return out

    def disagreement_allowance_mm(self) -> float:
        """How far apart the nearest and the farthest fresh reading may be because of the patient's
        motion alone: staggered sensors sample at different instants, and the gap moves by its closing
        speed times the time between those two samples. The speed is the largest measured one (either
        way: a step forward opens the gap as fast) of the fresh sensors that have one, or ``[safety]
        approach_speed_mps`` when none has. At most half the tolerance: a sensor that reads wrong
        cannot widen the rule by much, however its samples fall."""
        fresh = [tr for tr in self.sensors.values() if tr.gap_mm is not None and tr.is_fresh(self.now)]
        if len(fresh) < 2:
            return 0.0
        near = min(fresh, key=lambda tr: tr.gap_mm)  # type: ignore[arg-type, return-value]
        far = max(fresh, key=lambda tr: tr.gap_mm)  # type: ignore[arg-type, return-value]
        estimates = [abs(e) for tr in fresh if (e := tr.closing.estimate(self.now)) is not None]
        v = max(estimates) if estimates else self.cfg.safety.approach_speed_mps
        dt = abs(far.t_sample - near.t_sample)  # type: ignore[operator]  # fresh: sampled
        return min(1000.0 * v * dt, self.cfg.safety.sensor_disagree_mm / 2)

    def _zone_causes(self) -> list[Cause]:
        fresh = [(sid, tr.gap_mm) for sid, tr in self.sensors.items()
                 if tr.gap_mm is not None and tr.is_fresh(self.now)]
        out = []
        if len(fresh) > 1:
            gaps = [g for _, g in fresh]
            spread = max(gaps) - min(gaps)
            tolerance = self.cfg.safety.sensor_disagree_mm
            if spread > tolerance:
                allowance = self.disagreement_allowance_mm()
                if spread > tolerance + allowance:
                    out.append(Cause("sensors_disagree", f"sensors disagree by {spread:.0f} mm "
                                     f"(tolerance {tolerance:.0f} mm + {allowance:.0f} mm the patient moves "
                                     "between their samples)"))
        sid, gap = self.nearest()
        if gap is not None:
            stop = self.stop_distance_mm()
            if gap <= stop:
                out.append(Cause("stop_zone", f"patient {gap:.0f} mm from the rear edge, inside the "
                                 f"stop distance {stop:.0f} mm (sensor {sid})"))
        return out

    def _speed_causes(self) -> list[Cause]:
        out = []
        if not self.belt.is_fresh(self.now):
            return out
        v = self.belt.speed_mps
        cap = self.cap_mps
        sc = self.cfg.safety
        gross_ref = cap
        if self.now - self.cap_lowered_t < sc.overspeed_grace_s:
            gross_ref = max(cap, self.prev_cap_mps)
        if v > gross_ref * sc.gross_overspeed_factor:
            out.append(Cause("gross_overspeed", f"belt at {v * KMH_PER_MPS:.2f} km/h, more than "
                             f"{sc.gross_overspeed_factor:g} x the cap {cap * KMH_PER_MPS:.2f} km/h"))
        elif self.overspeed_since is not None and self.now - self.overspeed_since >= sc.overspeed_grace_s:
            out.append(Cause("overspeed", f"belt at {v * KMH_PER_MPS:.2f} km/h, above the cap "
                             f"{cap * KMH_PER_MPS:.2f} km/h for {sc.overspeed_grace_s:g} s"))
        elif self.override_since is not None and self.now - self.override_since >= sc.overspeed_grace_s:
            out.append(Cause("overspeed", f"belt at {v * KMH_PER_MPS:.2f} km/h, faster than the commanded "
                             f"{min(self.commanded_mps, self.target_mps, cap) * KMH_PER_MPS:.2f} km/h "
                             f"(+ {sc.overspeed_tolerance_kmh:g} km/h) for {sc.overspeed_grace_s:g} s: "
                             "not corrected (console override or a drive that ignores the speed command)"))
        if self.state is State.READY and v >= MOVING_MPS:
            out.append(Cause("belt_unbidden", f"belt moving at {v * KMH_PER_MPS:.2f} km/h without a start "
                             "from the controller"))
        if self.state is State.STOPPING and self.stop_deadline is not None and self.now > self.stop_deadline:
            out.append(Cause("stop_timeout", "the controlled stop did not stop the belt in time", False))
        return out

    # ---- when to look again ---------------------------------------------------------

    def next_deadline(self) -> float:
        """The earliest time after ``now`` at which a rule's outcome can change with no new input
        (``inf`` if none): a sensor or the belt reading going stale, an overspeed's grace time, the
        re-sent correction of a console override, the old cap's grace after a lowered cap, a
        controlled stop's time limit, the next 0.1 km/h step of a ramp. The loop wakes then (or on
        the next input, whichever comes first) instead of on a blind tick. tests/unit/test_deadlines.py
        checks that the decisions come as with a 1 ms tick, no later.

        One clock-dependent figure has no deadline of its own: the console override's commanded
        reference, which falls with time after a lowered command. It is judged against the belt's
        speed, which changes only with a reading, so each input judges it afresh (a sensor sample
        every 16 ms with two staggered sensors); its trip waits out the overspeed grace (1 s) anyway.
        """
        now = self.now
        sc = self.cfg.safety
        candidates = [tr.t_sample + 2.0 * tr.cfg.period_s for tr in self.sensors.values()
                      if tr.t_sample is not None]
        if self.belt.t_sample is not None:
            candidates.append(self.belt.t_sample + self.belt.timeout_s)
        for since in (self.overspeed_since, self.override_since):
            if since is not None:
                candidates.append(since + sc.overspeed_grace_s)
        if self.override_since is not None:
            candidates.append(self.overspeed_sent_t + OVERSPEED_RESEND_S)
        candidates.append(self.cap_lowered_t + sc.overspeed_grace_s)
        if self.stop_deadline is not None:
            candidates.append(self.stop_deadline)
        ramp_t = self._next_ramp_step_t()
        if ramp_t is not None:
            candidates.append(ramp_t)
        # Each rule changes strictly after its limit (a sample exactly two periods old is fresh):
        # look just after it. A limit already past has been acted on in this step.
        future = [t + DEADLINE_AFTER_S for t in candidates if t + DEADLINE_AFTER_S > now]
        return min(future, default=float("inf"))

    def _next_ramp_step_t(self) -> float | None:
        """When the ramp puts its next 0.1 km/h step (or its end) on the wire, None if no ramp runs."""
        if self.state is not State.RUNNING or not self.can_command:
            return None
        rate = self.cfg.safety.speed_ramp_kmh_per_s / KMH_PER_MPS
        step = 0.1 / KMH_PER_MPS
        if self.ramping_down:
            floor = self.cfg.safety.min_speed_kmh / KMH_PER_MPS
            goal = max(floor, self.sent_mps - step)
            return self.now + max(0.0, self.commanded_mps - goal) / rate
        if self.commanded_mps >= self.target_mps or (self.in_warn and not self.carries_toward_edge()):
            return None
        goal = min(self.target_mps, self.sent_mps + step)
        return self.now + max(0.0, goal - self.commanded_mps) / rate

    # ---- the step -----------------------------------------------------------------

    def _advance(self, t_mono: float) -> None:
        self.input_t = t_mono
        # A new input: the closing speed is estimated again, once, when first asked for.
        self._closing = None
        # Samples are stamped in their reader threads and may trail the last tick.
        if t_mono > self.now:
            self.now = t_mono

    def _step(self, t_mono: float, reply: Reply | None = None) -> Outputs:
        self._advance(t_mono)
        # Estimated once per step, on the decision thread; other threads only ever read it.
        self._closing = self._measure_closing()
        self._track_overspeed()
        causes = self.causes() + self._momentary
        self._momentary = []
        if causes and self.state is not State.STOPPED:
            self.trip(causes)
        elif causes:
            self._note_reasons(causes)
        if self.state is State.STOPPING and not self.belt.moving(self.now) \
                and self.standing_readings >= 2:
            self._set_state(State.READY, "controlled stop complete: belt standing")
        self._update_warn()
        self._ramp()
        # Held from now until the next step: the commanded reference takes it then.
        self._ref_held = self._commanded_now() if self.can_command and self.state is State.RUNNING else None
        out = Outputs(state=self.state, relay_energized=self.state in RELAY_ON_STATES,
                      warning=self.in_warn or self.overspeed_since is not None or self.override_since is not None,
                      belt=self._belt_cmd,
                      events=tuple(self._events), reply=reply, reconnect_link=self._reconnect)
        self._events.clear()
        self._belt_cmd = NO_BELT_COMMAND
        self._reconnect = False
        return out

    def trip(self, causes: list[Cause]) -> None:
        """Latch STOPPED with these reasons, drop the relay and stop the belt. Idempotent."""
        # The figures behind the decision, before the trip changes them.
        figures = {**self.figures(), "from_state": self.state.value}
        self.state = State.STOPPED
        self.running_since = None
        self.ramping_down = False
        self.trip_count += 1
        self.target_mps = min(self.target_mps, self.cap_mps)
        self.commanded_mps = 0.0
        self.stop_deadline = None
        self._send_stop()
        for c in causes:
            self.reasons.setdefault(c.code, c.message)
        self._events.append(Event(self.now, EventKind.TRIP, causes[0].code,
                                  "; ".join(c.message for c in causes), figures=figures))

    def _note_reasons(self, causes: list[Cause]) -> None:
        for c in causes:
            if c.code not in self.reasons:
                self.reasons[c.code] = c.message
                self._events.append(Event(self.now, EventKind.FAULT, c.code, c.message, figures=self.figures()))

    def _set_state(self, state: State, message: str, actor: str = "") -> None:
        self._events.append(Event(self.now, EventKind.STATE, state.value, message, actor,
                                  {"from_state": self.state.value}))
        if state is State.RUNNING and self.state is not State.RUNNING:
            self.running_since = self.now
        elif state is State.READY:
            self.running_since = None
        self.state = state

    def _track_overspeed(self) -> None:
        commanding = self.can_command and self.state is State.RUNNING
        ref = self._commanded_reference(commanding)
        if not commanding:
            self.override_since = None
        if not self.belt.is_fresh(self.now):
            return
        if commanding:
            # Commanded speed means something: the belt may not run faster than it (a console override).
            self.overspeed_since = None
            self._track_override(ref)
            return
        threshold = self.cap_mps + self.cfg.safety.overspeed_tolerance_kmh / KMH_PER_MPS
        if self.belt.speed_mps <= threshold:
            self.overspeed_since = None
            return
        if self.overspeed_since is None:
            self.overspeed_since = self.now
            self._events.append(Event(self.now, EventKind.WARN, "overspeed", f"belt at "
                                      f"{self.belt.speed_mps * KMH_PER_MPS:.2f} km/h above the cap: slowing",
                                      figures=self.figures()))

    def _track_override(self, ref: float) -> None:
        """RUNNING on a link that commands: a belt faster than the commanded reference (+ tolerance) is a
        console override. Warn once an episode, re-assert the commanded speed at once and every
        OVERSPEED_RESEND_S while it lasts; ``cause:overspeed`` trips after the grace time."""
        v = self.belt.speed_mps
        if v <= ref + self.cfg.safety.overspeed_tolerance_kmh / KMH_PER_MPS:
            self.override_since = None
            return
        commanded = min(self.commanded_mps, self.target_mps, self.cap_mps)
        if self.override_since is None:
            self.override_since = self.now
            self._events.append(Event(self.now, EventKind.WARN, "console_override",
                                      f"belt at {v * KMH_PER_MPS:.2f} km/h, faster than the commanded "
                                      f"{commanded * KMH_PER_MPS:.2f} km/h (console override?): re-asserting "
                                      f"{commanded * KMH_PER_MPS:.2f} km/h", figures=self.figures()))
        if self.now - self.overspeed_sent_t >= OVERSPEED_RESEND_S:
            self.commanded_mps = commanded
            self._send_speed(commanded)
            self.overspeed_sent_t = self.now

    def _commanded_reference(self, commanding: bool) -> float:
        """The speed the belt may run at, as far as the commands go (m/s): the highest speed put on the
        wire (or ramped to) within the last link timeout (a reading may show the belt as it was that
        long ago), then falling no faster than the treadmill brakes (``decel_mps2``). A belt slowing
        after a lowered command (warn zone, speed down, ramp-down) stays under it.

        Sliding-window maximum of the commanded speed, each entry stamped with the time it held until;
        an entry older than the window goes into ``_ref_fold``, the intercept K of K - decel*t.
        Not commanding (not RUNNING, a read-only link): forgotten, -inf.
        """
        if not commanding:
            self._ref_window.clear()
            self._ref_fold = float("-inf")
            self._ref_held = None
            return float("-inf")
        now = self.now
        decel = self.cfg.treadmill.decel_mps2
        lag = self.cfg.treadmill.link_timeout_s
        held = self._commanded_now()
        if self._ref_held is not None:
            held = max(held, self._ref_held)  # the value the last step left held until now
        window = self._ref_window
        while window and window[-1][1] <= held:
            window.pop()
        window.append((now, held))
        while window[0][0] < now - lag:
            t_end, v = window.popleft()
            self._ref_fold = max(self._ref_fold, v + decel * (t_end + lag))
        return max(window[0][1], self._ref_fold - decel * now)

    def _commanded_now(self) -> float:
        return max(self.commanded_mps, self.sent_mps)

    def _update_warn(self) -> None:
        _, gap = self.nearest()
        if gap is None:
            self.in_warn = self.in_warn and self.state in BELT_ACTIVE_STATES
            return
        warn_mm = self.stop_distance_mm() + self.limits.warn_margin_mm
        if self.in_warn:
            # The slowdown shrinks the warn distance: the episode ends only past where it began.
            self.in_warn = gap <= self.warn_exit_mm
            return
        if gap > warn_mm:
            return
        self.in_warn = True
        self.warn_exit_mm = warn_mm + WARN_HYSTERESIS_MM
        self._events.append(Event(self.now, EventKind.WARN, "warn_zone", f"patient {gap:.0f} mm from the rear edge, "
                                  f"inside the warn distance {warn_mm:.0f} mm", figures=self.figures()))
        # A belt carrying the patient away from the edge is slowed for no one: a patient stepping
        # back at a steady cadence would reach the edge faster. The buzzer alone warns then.
        if self.state is State.RUNNING and self.can_command and self.carries_toward_edge():
            step = self.cfg.safety.warn_slowdown_kmh / KMH_PER_MPS
            floor = self.cfg.safety.min_speed_kmh / KMH_PER_MPS
            # One step down, never below the slowest useful speed (unless already there).
            self.target_mps = max(self.target_mps - step, min(floor, self.target_mps))
            self.commanded_mps = min(self.commanded_mps, self.target_mps)
            self._send_speed(self.commanded_mps)

    def controlled_stop(self, message: str, actor: str = "") -> None:
        """Tell the treadmill to stop under its own braking and wait for the belt to stand (STOPPING)."""
        v = self.speed_for_distance_mps()
        self.ramping_down = False
        self.target_mps = self.commanded_mps = 0.0
        self._send_stop()
        self.stop_deadline = self.now + 2.0 + 2.0 * v / self.cfg.treadmill.decel_mps2
        self.stop_settle_t = self.now + 1.0 / self.cfg.treadmill.poll_hz
        self.standing_readings = 0
        self._set_state(State.STOPPING, message, actor)

    def _ramp_down(self, dt: float) -> None:
        floor = self.cfg.safety.min_speed_kmh / KMH_PER_MPS
        new = max(floor, self.commanded_mps - self.cfg.safety.speed_ramp_kmh_per_s / KMH_PER_MPS * dt)
        if new <= floor:
            self.controlled_stop("ramp-down complete: stopping the belt")
            return
        # Send in steps of 0.1 km/h, as on the way up.
        if self.sent_mps - new >= 0.1 / KMH_PER_MPS:
            self._send_speed(new)
        self.commanded_mps = new

    def _ramp(self) -> None:
        dt = self.now - self._last_ramp_t
        self._last_ramp_t = self.now
        if self.ramping_down and self.state is State.RUNNING:
            self._ramp_down(dt)
            return
        if self.state is not State.RUNNING or not self.can_command or self.commanded_mps >= self.target_mps:
            return
        if self.in_warn and not self.carries_toward_edge():
            # A belt carrying the patient away is neither slowed nor sped up in the warn zone.
            return
        step = self.cfg.safety.speed_ramp_kmh_per_s / KMH_PER_MPS * dt
        new = min(self.target_mps, self.commanded_mps + step)
        # Send in steps of 0.1 km/h: the treadmill's own resolution is 0.1 mph.
        if new >= self.target_mps or new - self.sent_mps >= 0.1 / KMH_PER_MPS:
            self._send_speed(new)
        self.commanded_mps = new

    def _send_speed(self, belt_speed_mps: float) -> None:
        if self.can_command:
            self._belt_cmd = BeltCommand(BeltAction.SET_SPEED, belt_speed_mps)
            self.sent_mps = belt_speed_mps

    def _send_stop(self) -> None:
        if self.can_command:
            self._belt_cmd = BeltCommand(BeltAction.AUTO_STOP)
            self.sent_mps = 0.0

    # ---- commands: stop is always allowed, go needs authority ----------------------

    def _handle_command(self, cmd: Command) -> Reply:
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

    def _is_tightening(self, cmd: Command) -> bool:
        """Lowering the speed or tightening limits needs no authority."""
        if cmd.kind is CommandKind.SET_SPEED:
            v = check_speed(cmd.value, self.mode, self.limits, self.cfg.safety.min_speed_kmh, [])
            return v is not None and v <= self.target_mps
        if cmd.kind is CommandKind.SET_LIMITS:
            new = check_limits(cmd.value, self.limits, self.cfg, [])
            return new is not None and not loosens(new, self.limits)
        if cmd.kind is CommandKind.FINISH:
            return True
        if cmd.kind is CommandKind.APPLY_PRESCRIPTION:
            parsed = check_prescription(cmd.value, self.limits, self.cfg, [])
            return parsed is not None and parsed[0] is self.mode and not loosens(parsed[1], self.limits)
        return False

    def _belt_standing(self) -> bool:
        return self.state in STANDING_STATES and not self.belt.moving(self.now)

    # ---- each command ---------------------------------------------------------------

    def _cmd_estop(self, cmd: Command) -> Reply:
        self._momentary.append(Cause("estop_command", f"E-stop pressed on the dashboard by {cmd.actor}", False))
        return _ok("stopped: E-stop")

    def _cmd_stop(self, cmd: Command) -> Reply:
        if self.state is not State.RUNNING:
            return _ok(f"belt already {self.state.value.lower()}")
        if not self.can_command:
            # A read-only speed link cannot slow the belt: open the safety circuit instead.
            self._momentary.append(Cause("stop_command", f"stop requested by {cmd.actor} "
                                          "(speed-sensor link: stopping by the safety circuit)", False))
            return _ok("stopped by the safety circuit")
        self.controlled_stop(f"controlled stop requested by {cmd.actor}", cmd.actor)
        return _ok("stopping")

    def _cmd_finish(self, cmd: Command) -> Reply:
        if self.state is not State.RUNNING:
            return _ok(f"belt already {self.state.value.lower()}")
        if not self.can_command:
            # Opening the safety circuit would be an abrupt stop, not a ramp-down.
            return _conflict("a read-only speed link cannot ramp the belt down: slow and stop it at the "
                             "treadmill's console")
        self.ramping_down = True
        self.target_mps = min(self.target_mps, self.cfg.safety.min_speed_kmh / KMH_PER_MPS)
        self._events.append(Event(self.now, EventKind.STATE, "ramp_down", f"ramping down to a stop for {cmd.actor}",
                                  cmd.actor, {"from_mps": round(self.commanded_mps, 3)}))
        return _ok("ramping down to a stop")

    def _cmd_reset(self, cmd: Command) -> Reply:
        if self.state is not State.STOPPED:
            return _conflict(f"nothing to reset: the controller is {self.state.value}")
        blocking = [c for c in self.causes() if c.persistent]
        if self.belt.is_fresh(self.now) and self.belt.moving(self.now):
            blocking.append(Cause("belt_moving", f"the belt still moves at "
                                  f"{self.belt.speed_mps * KMH_PER_MPS:.2f} km/h: wait for it to stand"))
        in_warn = self._reset_warn_zone_cause()
        if in_warn is not None:
            # It says what the stop zone says, and what to do: the stop zone's own message would repeat it.
            blocking = [c for c in blocking if c.code != "stop_zone"] + [in_warn]
        if any(c.code == "link_fault" for c in blocking):
            self._reconnect = True
        if blocking:
            return _conflict("reset refused while the cause persists: " + "; ".join(c.message for c in blocking))
        cleared = ", ".join(self.reasons)
        self.reasons = {}
        self._set_state(State.READY, f"reset by {cmd.actor} (cleared: {cleared})", cmd.actor)
        return _ok("ready")

    def reset_warn_zone_mm(self) -> float:
        """The warn zone a reset must find the patient beyond: the stop distance of a standing belt
        (no belt speed, no approach: the patient stands) plus the warn margin."""
        return self.stop_distance_mm(0.0, 0.0) + self.limits.warn_margin_mm

    def _reset_warn_zone_cause(self) -> Cause | None:
        """Reset refused while the nearest fresh gap is inside the warn zone at standstill: a patient
        standing there trips again as soon as they sway back, or the belt starts. No one in view: None
        (a start refuses that itself)."""
        _, gap = self.nearest()
        if gap is None:
            return None
        warn_mm = self.reset_warn_zone_mm()
        if gap > warn_mm:
            return None
        return Cause("reset_in_warn_zone", f"patient {gap:.0f} mm from the rear edge is inside the warn zone "
                     f"({warn_mm:.0f} mm): ask them to step forward, then reset")

    def _cmd_start(self, cmd: Command) -> Reply:
        errors: list[FieldError] = []
        v = self.target_mps or self.cfg.safety.min_speed_kmh / KMH_PER_MPS
        if cmd.value is not None:
            v = check_speed(cmd.value, self.mode, self.limits, self.cfg.safety.min_speed_kmh, errors)
            if v is None:
                return Reply(False, "invalid", str(errors[0]), tuple(errors))
        if self.state is not State.READY:
            return _conflict(f"start needs READY; the controller is {self.state.value}"
                             + (": " + "; ".join(self.reasons.values()) if self.reasons else ""))
        v = min(v, self.cap_mps)
        sid, gap = self.nearest()
        if gap is None:
            return _conflict("no patient in view of the sensors: start refused")
        # The belt is about to run: the patient's own approach counts from the first step.
        warn_at = self.stop_distance_mm(v, self.closing_speed_mps()[1]) + self.limits.warn_margin_mm
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

    def _cmd_set_speed(self, cmd: Command) -> Reply:
        errors: list[FieldError] = []
        v = check_speed(cmd.value, self.mode, self.limits, self.cfg.safety.min_speed_kmh, errors)
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

    def _cmd_set_mode(self, cmd: Command) -> Reply:
        errors: list[FieldError] = []
        mode = check_mode(cmd.value, "command", errors)
        if mode is None:
            return Reply(False, "invalid", str(errors[0]), tuple(errors))
        if not self._belt_standing():
            return _conflict("the mode changes only while the belt stands (STOPPED or READY, speed 0)")
        self.mode = mode
        self.target_mps = min(self.target_mps, self.cap_mps)
        self._events.append(Event(self.now, EventKind.STATE, "mode", f"mode set to {mode.value} by {cmd.actor}",
                                  cmd.actor, {"mode": mode.value}))
        return _ok(f"mode {mode.value}")

    def _cmd_set_limits(self, cmd: Command) -> Reply:
        errors: list[FieldError] = []
        new = check_limits(cmd.value, self.limits, self.cfg, errors)
        if new is None:
            return Reply(False, "invalid", "; ".join(str(e) for e in errors), tuple(errors))
        if loosens(new, self.limits) and not self._belt_standing():
            return _conflict("looser limits apply only while the belt stands; tighter ones apply at once")
        self._apply_limits(new, cmd.actor, f"limits changed by {cmd.actor}", {}, self.cap_mps)
        return _ok("limits applied")

    def _cmd_apply_prescription(self, cmd: Command) -> Reply:
        errors: list[FieldError] = []
        parsed = check_prescription(cmd.value, self.limits, self.cfg, errors)
        if parsed is None:
            return Reply(False, "invalid", "; ".join(str(e) for e in errors), tuple(errors))
        mode, new, patient = parsed
        if (mode is not self.mode or loosens(new, self.limits)) and not self._belt_standing():
            return _conflict(f"patient {patient}'s prescription changes the mode or loosens the limits: it applies "
                             "only while the belt stands (STOPPED or READY, speed 0)")
        old_cap = self.cap_mps
        self.mode = mode
        confirmed = cmd.value.get("confirmed", False)
        self._apply_limits(new, cmd.actor, f"prescription of patient {patient} applied by {cmd.actor}"
                           + (", who confirmed its looser values" if confirmed else ""),
                           {"mode": mode.value, "patient_id": patient, "confirmed": confirmed}, old_cap)
        return _ok(f"patient {patient}: {mode.value} mode, cap {new.cap_kmh(mode.value):g} km/h, "
                   f"stop {new.base_stop_mm:g} mm, warn margin {new.warn_margin_mm:g} mm")

    def _apply_limits(self, new: Limits, actor: str, message: str, extra: dict,
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
        self._events.append(Event(self.now, EventKind.LIMITS, "limits", message, actor,
                                  {"old": dataclasses.asdict(old), "new": dataclasses.asdict(new), **extra}))
