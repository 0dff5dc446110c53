"""A seeded storm of hardware faults against the real controller on simulated hardware.

Every kind of running fault the simulated hardware can produce is injected, in a
random order drawn from one seed, between normal running, controlled stops (some
with noise on the serial line between frames, which must not trip) and resets:
sensor faults (I2C errors, a hung sensor, no target, an invalid status, a phantom
reading, a sensor gone from the bus, two sensors disagreeing), the patient
crossing the stop line, serial faults (silence, corrupted frames, BD, BE, BF, the
port vanishing), a runaway belt and gross overspeed, the E-stop pressed or its
wire broken, an exception in the decision path, a hung decision loop (the
watchdog relay's job) and a controller restart. (A wrong chip at a sensor's
address is a start-up fault, found by the identity probe: tests/hardware.)

For each fault the storm measures, from the pin and circuit histories, how long
the relay (or the safety circuit) took to open, against that fault's deadline,
and checks the trip's cause. A late trip is excused only when a separate process
saw the machine stall (or its threads denied the CPU) for at least as long as it was late, and
at most ``MAX_DISTURBED`` of them (machine.py).
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from controller.assembly import Controller
from controller.config import KMH_PER_MPS
from controller.safety.core import DEADLINE_AFTER_S
from controller.safety.types import CommandKind as K
from sim.bench import STALE_INPUT_TRIPS, SimBench, sim_config, wait_until
from hardware import belt_protocol as proto
from tests.reliability.machine import StallWatch, most_delayed_s, production_priority, run_delays

#: The emulated treadmill's acceleration (m/s^2).
ACCEL_MPS2 = 1.0
#: Scheduling slack on every deadline, as in the HIL scenarios.
SLACK_S = 0.005
#: An input's hop from its producer thread to the decision thread, on a loaded machine.
INPUT_HOP_S = 0.010
#: At most this share of faults may be late, and only during a stall the watcher saw.
MAX_DISTURBED = 0.03
#: The threads on a trip's path: a late trip is excused by the CPU time they were denied meanwhile.
TRIP_PATH_THREADS = ("decision", "tof-reader", "belt-link")


@dataclass
class Fault:
    """One kind of fault: how to cause it, end it, its deadline and the trip codes that name it."""

    name: str
    weight: float
    inject: Callable[["Storm"], None]
    clear: Callable[["Storm"], None]
    deadline_s: Callable[["Storm"], float]
    codes: tuple[str, ...]
    running: bool | None = None      # True: only while the belt runs; None: either
    #: How long after injection the fault's deadline starts, if not at once (e.g. until the belt passes the cap).
    arming_s: Callable[["Storm"], float] | None = None
    opens: str = "relay"             # "relay", or "circuit" (the watchdog relay opens the safety circuit)


@dataclass
class Outcome:
    """What one injected fault did."""

    index: int
    fault: str
    running: bool
    t_inject: float
    latency_s: float | None
    deadline_s: float
    trip_codes: tuple[str, ...] = ()
    trip_id: int | None = None       # the trip's row in the event log
    disturbed_by_stall_s: float = 0.0
    cycle_s: float = 0.0


class StormFailure(AssertionError):
    pass


# ---- the faults -----------------------------------------------------------------------------


def _chip(storm: "Storm"):
    return storm.bench.chips[storm.sensor]


def _sensor_deadline(storm: "Storm") -> float:
    return 2 * storm.bench.cfg.sensor_period_s + DEADLINE_AFTER_S + SLACK_S


def _link_deadline(storm: "Storm") -> float:
    return storm.bench.cfg.treadmill.link_timeout_s + DEADLINE_AFTER_S + SLACK_S


def _input_deadline(storm: "Storm") -> float:
    # An input (an E-stop edge) is decided on when it arrives.
    return INPUT_HOP_S + SLACK_S


def _next_sample_deadline(storm: "Storm") -> float:
    # The step of the next sensor sample raises: the staggered sensors deliver one every half period,
    # and re-phasing may delay one by up to half a slot more.
    return storm.bench.cfg.sensor_period_s + SLACK_S


def _sensor_fault(kind: str) -> Callable[["Storm"], None]:
    def inject(storm: "Storm") -> None:
        if kind == "phantom":
            _chip(storm).phantom_distance_mm = storm.bench.cfg.safety.obstruction_mm / 2
        _chip(storm).inject_fault(kind)
    return inject


def _clear_sensor(storm: "Storm") -> None:
    for chip in storm.bench.chips.values():
        chip.clear_faults()


def _disagree(storm: "Storm") -> None:
    s = storm.bench.cfg.sensors[1]
    tol = storm.bench.cfg.safety.sensor_disagree_mm
    patient = storm.bench.patient
    storm.bench.chips[s.id].distance_fn = lambda: patient.gap_mm + s.mount_offset_mm + tol + 60


def _agree(storm: "Storm") -> None:
    s = storm.bench.cfg.sensors[1]
    storm.bench.chips[s.id].distance_fn = storm.bench.patient.sensor_distance_fn(s.mount_offset_mm)


def _walk_to(storm: "Storm", gap_mm: Callable[[], float], step_mm: float = 140.0) -> None:
    """Move the patient in steps both sensors see before the next one (as a patient moves, not a jump).

    A jump of more than the sensors' tolerance would reach one sensor a period before the
    other: they would disagree, and that trip would come first.
    """
    patient = storm.bench.patient
    if storm.bench.emulator.belt_speed_mps > 0 and gap_mm() < patient.gap_mm:
        # On a moving belt the patient stops stepping and the belt carries them there: a jump toward
        # the edge would be an approach faster than any person's, and its closing speed would trip first.
        # The target is asked again as they go: a belt still speeding up moves the stop line out.
        patient.set_drift(10.0)
        wait_until(lambda: patient.gap_mm <= gap_mm(), 10.0, poll_s=0.001)
        patient.set_drift(0.0)
        storm.bench.wait_sensors_sampled()
        return
    target = gap_mm()
    while abs(patient.gap_mm - target) > 1e-6:
        delta = max(-step_mm, min(step_mm, target - patient.gap_mm))
        patient.set_gap(patient.gap_mm + delta)
        storm.bench.wait_sensors_sampled()


def _step_into_zone(storm: "Storm") -> None:
    """Walk to 70 mm outside the stop line, then step inside it: 10 mm on a standing belt, 50 mm on a
    moving one (its slowdown in the warn zone shrinks the stop distance by up to ~25 mm per sensor period)."""
    _walk_to(storm, lambda: storm.stop_mm() + 70)
    moving = storm.bench.emulator.belt_speed_mps > 0
    inside_mm = storm.stop_mm() - (50 if moving else 10)
    # The crossing: the decision thread may trip before this thread runs again after the step.
    storm.crossed_t = time.monotonic()
    storm.bench.patient.set_gap(inside_mm)


def _step_back_out(storm: "Storm") -> None:
    storm.bench.patient.set_gap(storm.bench.start_gap_mm)


def _runaway(gross: bool) -> Callable[["Storm"], None]:
    def inject(storm: "Storm") -> None:
        cap_kmh = storm.bench.cfg.limits.reverse_cap_kmh
        storm.bench.emulator.runaway(True)
        storm.bench.emulator.console_speed((cap_kmh * 1.5 if gross else cap_kmh + 0.4) / KMH_PER_MPS)
    return inject


def _end_runaway(storm: "Storm") -> None:
    storm.bench.emulator.runaway(False)


def _over(factor: float, tolerance: bool) -> Callable[["Storm"], float]:
    """How long the belt will take from now to pass cap x factor (+ the tolerance).

    Worked out from the emulator's physics (it speeds up at a constant rate towards the console's
    speed), not by watching it: a watching thread may be late, the physics is not.
    """
    def arming_s(storm: "Storm") -> float:
        sc = storm.bench.cfg.safety
        limit_kmh = storm.bench.cfg.limits.reverse_cap_kmh * factor + (sc.overspeed_tolerance_kmh if tolerance else 0)
        return max(0.0, (limit_kmh / KMH_PER_MPS - storm.bench.emulator.belt_speed_mps) / ACCEL_MPS2)
    return arming_s


def _poll_s(storm: "Storm") -> float:
    return 1.0 / storm.bench.cfg.treadmill.poll_hz


def _runaway_deadline(storm: "Storm") -> float:
    # From the belt passing the cap's tolerance: two polls until a reading (floored to 0.1 mph) shows it,
    # then the grace time, then the deadline step that judges it.
    return storm.bench.cfg.safety.overspeed_grace_s + 2 * _poll_s(storm) + DEADLINE_AFTER_S + SLACK_S


def _gross_deadline(storm: "Storm") -> float:
    # From the belt passing the gross limit: two polls until a reading shows it; that reading trips at once.
    return 2 * _poll_s(storm) + SLACK_S


def _break_estop_wire(storm: "Storm") -> None:
    pin = storm.bench.estop_pin
    pin.pull = pin.pull  # nothing drives the input: it goes where its pull-up takes it


def _raise_once(storm: "Storm") -> None:
    # A sensor sample is the step that always comes: the loop wakes for inputs, not on a tick.
    core = storm.bench.controller.loop.core
    real = core.on_distance

    def failing_step(*args):
        core.on_distance = real
        raise RuntimeError("injected fault in the decision path")

    core.on_distance = failing_step


def _hang_loop(storm: "Storm") -> None:
    core = storm.bench.controller.loop.core
    real = core.on_distance
    release = storm.release_loop = threading.Event()

    def hanging_step(*args):
        release.wait(5.0)
        core.on_distance = real
        return real(*args)

    core.on_distance = hanging_step


def _release_loop(storm: "Storm") -> None:
    storm.release_loop.set()
    wait_until(lambda: storm.bench.controller.status.get("state") == "STOPPED", 1.0)
    storm.bench.reset_watchdog()


def _watchdog_deadline(storm: "Storm") -> float:
    # From the hang: the last heartbeat edge came at most one edge interval before it, then the hold
    # time, then the bench's circuit poll.
    return storm.edge_s + storm.bench.watchdog.hold_time_s + 0.005 + SLACK_S


def _restart(storm: "Storm") -> None:
    bench = storm.bench
    old = bench.controller
    old.close()
    new = Controller(bench.cfg, i2c=bench.bus, pin_factory=bench.factory, port=old.port,
                     smbus=bench.bus.smbus(), state_dir=old.state_dir)
    bench.controller = new
    new.start()
    bench.estop_pin.drive_low()  # the new panel set the pull-up; the closed NC contact holds it low
    storm.restarts += 1


def _nothing(storm: "Storm") -> None:
    return None


def _restart_deadline(storm: "Storm") -> float:
    return INPUT_HOP_S + SLACK_S


FAULTS: list[Fault] = [
    Fault("sensor i2c_error", 8, _sensor_fault("i2c_error"), _clear_sensor, _sensor_deadline, ("sensor_fault:",)),
    Fault("sensor hang", 8, _sensor_fault("hang"), _clear_sensor, _sensor_deadline, ("sensor_stale:",)),
    Fault("sensor no_target", 2, _sensor_fault("no_target"), _clear_sensor, _sensor_deadline, ("no_target:",),
          running=True),
    Fault("sensor invalid_status", 8, _sensor_fault("invalid_status"), _clear_sensor, _sensor_deadline,
          ("sensor_invalid:",)),
    Fault("sensor phantom", 8, _sensor_fault("phantom"), _clear_sensor, _sensor_deadline, ("sensor_obstructed:",)),
    Fault("sensor absent", 6, _sensor_fault("absent"), _clear_sensor, _sensor_deadline, ("sensor_fault:",)),
    Fault("sensors disagree", 6, _disagree, _agree, _sensor_deadline, ("sensors_disagree",)),
    Fault("patient in stop zone", 3, _step_into_zone, _step_back_out,
          lambda s: s.bench.cfg.sensor_period_s + SLACK_S, ("stop_zone",)),
    Fault("serial silence", 3, lambda s: s.bench.emulator.silence(True), lambda s: s.bench.emulator.silence(False),
          _link_deadline, ("link_fault", "belt_stale")),
    Fault("serial garbage in frames", 3, lambda s: s.bench.emulator.garbage(True, within_frames=True),
          lambda s: s.bench.emulator.garbage(False), _link_deadline, ("link_fault", "belt_stale")),
    Fault("serial BD", 1.5, lambda s: s.bench.emulator.force_reply(proto.MASTER_TIMEOUT),
          lambda s: s.bench.emulator.force_reply(None), _link_deadline, ("link_fault",)),
    Fault("serial BE", 1, lambda s: s.bench.emulator.force_reply(proto.DATA_OUT_OF_RANGE),
          lambda s: s.bench.emulator.force_reply(None), _link_deadline, ("link_fault",)),
    Fault("serial BF", 1, lambda s: s.bench.emulator.force_reply(proto.ILLEGAL_COMMAND),
          lambda s: s.bench.emulator.force_reply(None), _link_deadline, ("link_fault",)),
    Fault("serial unplugged", 2, lambda s: s.bench.emulator.unplug(), lambda s: s.bench.emulator.replug(),
          _link_deadline, ("link_fault", "belt_stale")),
    Fault("belt runaway", 0.1, _runaway(False), _end_runaway, _runaway_deadline, ("overspeed",), running=True,
          arming_s=_over(1.0, tolerance=True)),
    Fault("belt gross overspeed", 0.5, _runaway(True), _end_runaway, _gross_deadline, ("gross_overspeed",),
          running=True, arming_s=_over(1.25, tolerance=False)),
    Fault("E-stop pressed", 8, lambda s: s.bench.press_estop(), lambda s: s.bench.release_estop(), _input_deadline,
          ("estop",)),
    Fault("E-stop wire broken", 6, _break_estop_wire, lambda s: s.bench.release_estop(), _input_deadline,
          ("estop",)),
    Fault("exception in the decision path", 6, _raise_once, _nothing, _next_sample_deadline, ("exception",)),
    Fault("decision loop hung", 1.5, _hang_loop, _release_loop, _watchdog_deadline, (), opens="circuit"),
    Fault("controller restart", 1, _restart, _nothing, _restart_deadline, ()),
]


# ---- the storm -------------------------------------------------------------------------------


class Storm:
    """Runs ``n_faults`` faults drawn from ``seed`` on one bench; ``run()`` returns the outcomes."""

    def __init__(self, seed: int, n_faults: int, state_dir: Path, running_share: float = 0.15,
                 normal_share: float = 0.02, memory_every: int = 25):
        self.seed = seed
        self.rng = random.Random(seed)
        self.n_faults = n_faults
        self.running_share = running_share
        self.normal_share = normal_share
        self.memory_every = memory_every
        cfg = sim_config(state_dir)
        # A quicker ramp than the clinic's keeps each running phase short; the rules are the same.
        cfg = dataclasses.replace(cfg, safety=dataclasses.replace(cfg.safety, speed_ramp_kmh_per_s=2.0))
        self.bench = SimBench(cfg, state_dir=state_dir, start_gap_mm=1100.0, accel_mps2=ACCEL_MPS2)
        #: The longest the decision thread waits with no input: one heartbeat edge interval.
        self.edge_s = cfg.gpio.heartbeat_period_ms / 2000.0
        self.sensor = cfg.sensors[0].id
        self.release_loop = threading.Event()
        self.restarts = 0
        self.normal_cycles = 0
        self.noisy_cycles = 0
        #: Faults run again because a machine stall tripped the controller just before them.
        self.preempted = 0
        self.outcomes: list[Outcome] = []
        self.failures: list[str] = []
        self.escaped: list[str] = []
        self.memory: list[tuple[int, float, int]] = []  # (fault index, RSS MB, gc objects)
        self.circuit_log: list[tuple[float, bool]] = []
        self.injected_exceptions = 0
        #: When the last "patient in stop zone" fault stepped over the line.
        self.crossed_t = 0.0
        self._decision_errors = 0

    # -- helpers ---------------------------------------------------------------------------

    def stop_mm(self) -> float:
        return self.bench.controller.loop.core.stop_distance_mm()

    def _record_circuit(self) -> None:
        set_circuit = self.bench.emulator.safety_circuit

        def record(closed: bool) -> None:
            self.circuit_log.append((time.monotonic(), closed))
            set_circuit(closed)

        self.bench.emulator.safety_circuit = record

    def _history(self, fault: Fault) -> list[tuple[float, bool]]:
        return self.bench.relay_history if fault.opens == "relay" else self.circuit_log

    def _opened_at(self, fault: Fault, after_t: float, since_index: int = 0) -> float | None:
        history = self._history(fault)
        for t, closed in history[since_index:]:
            if t >= after_t and not closed:
                return t
        return None

    def _belt_picture(self) -> str:
        emu = self.bench.emulator
        commands = [str(e) for e in emu.commands(include_status_requests=False)[-6:]]
        return (f"belt {emu.belt_speed_mps:.3f} m/s set {emu.set_speed_mps:.3f} status {emu.belt_status:#x} "
                f"circuit {'closed' if emu.safety_circuit_closed else 'open'} relay "
                f"{'on' if self.bench.relay_energized else 'off'} watchdog "
                f"{'closed' if self.bench.watchdog.is_closed() else 'open'}; last commands {commands}; "
                f"circuit changes {self._circuit_changes()}")

    def _circuit_changes(self, n: int = 4) -> str:
        """The last few safety-circuit changes, each with how long ago it came (did it open under A0?)."""
        now = time.monotonic()
        return ", ".join(f"{'closed' if closed else 'open'} {(now - t) * 1000:.0f} ms ago"
                         for t, closed in self.circuit_log[-n:]) or "none"

    def _tripped_by_the_machine(self, what: str) -> bool:
        """True if the controller tripped only on stale input (a machine stall); else record a failure."""
        wait_until(lambda: self._status().get("state") == "STOPPED", 0.5)
        reasons = list(self._status().get("reasons", {}))
        if reasons and all(r.startswith(STALE_INPUT_TRIPS) for r in reasons):
            return True
        self._fail(f"{what}: state {self._status().get('state')}, reasons {reasons}; {self._belt_picture()}")
        return False

    def _trips_since(self, wall_t: float) -> list[dict]:
        self.bench.controller.history.flush()
        return list(reversed(self.bench.controller.history.recent(20, kind="trip", since_wall=wall_t)))

    def _status(self) -> dict:
        return self.bench.controller.status

    def _fail(self, message: str) -> None:
        self.failures.append(f"fault #{len(self.outcomes)}: {message}")

    # -- one cycle ---------------------------------------------------------------------------

    def _ready(self) -> bool:
        """Reset until READY with the relay energized (a machine stall may trip in between: try again)."""
        bench = self.bench
        if bench.patient.gap_mm != bench.start_gap_mm:  # every cycle starts with the patient at rest
            if self._status().get("state") == "STOPPED":
                bench.patient.set_gap(bench.start_gap_mm)
            else:
                _walk_to(self, lambda: bench.start_gap_mm)
        def attempt() -> bool:
            state = self._status().get("state")
            if state in ("RUNNING", "STOPPING"):
                # The watchdog relay stopped the belt under a running controller (a machine stall of more
                # than its hold time): the belt stands, the controller does not know. Stop it the normal way.
                bench.command(K.STOP, actor="storm")
            elif state == "READY" and bench.relay_energized and bench.watchdog.is_closed() \
                    and bench.emulator.safety_circuit_closed:
                return True  # e.g. after a hung loop that resumed: the watchdog relay acted, not the controller
            if not bench.watchdog.is_closed():
                bench.reset_watchdog()  # opened by a machine stall of > hold time; an installer's reset button
            if bench.emulator.belt_speed_mps == 0.0:
                reply = bench.command(K.RESET, actor="storm")
                return reply.ok and wait_until(lambda: bench.relay_energized
                                               and self._status().get("state") == "READY", 0.5)
            return False

        if wait_until(attempt, 8.0, poll_s=0.02):
            return True
        self._fail(f"no reset accepted within 8 s: {self._status().get('reasons')}")
        return False

    def _run_belt(self) -> bool:
        bench = self.bench
        cap = bench.cfg.limits.reverse_cap_kmh
        speed = round(self.rng.uniform(0.8, cap), 1)
        reply = bench.command(K.START, speed, actor="storm")
        if not reply.ok:
            return False  # the caller tells a machine stall's trip from a real refusal
        # Inject at a random moment: while the belt ramps up, or once it runs.
        threshold = self.rng.uniform(0.1, 0.17)  # the slowest start, 0.8 km/h, runs at 0.4 mph = 0.179 m/s
        return wait_until(lambda: bench.emulator.belt_speed_mps >= threshold
                          or self._status().get("state") == "STOPPED", 3.0) \
            and self._status().get("state") == "RUNNING"

    def _normal_cycle(self) -> None:
        """Run the belt a moment and stop it the controlled way: no trip may come of it, not even with
        noise on the serial line between frames (the link resynchronizes and counts it)."""
        noise = self.rng.random() < 0.5
        try:
            if noise:
                self.bench.emulator.garbage(True, within_frames=False)
                self.noisy_cycles += 1
            self._run_and_stop()
        finally:
            self.bench.emulator.garbage(False)

    def _run_and_stop(self) -> None:
        if not self._ready():
            return
        if not self._run_belt():
            if self.bench.watchdog.is_closed():
                self._tripped_by_the_machine("a normal start")
            return
        wall0 = time.time()
        reply = self.bench.command(K.STOP, actor="storm")
        if not reply.ok:
            self._fail(f"stop refused: {reply}")
            return
        if not wait_until(lambda: self._status().get("state") == "READY" and self.bench.emulator.belt_speed_mps == 0,
                          4.0):
            codes = [e["code"] for e in self._trips_since(wall0)]
            if not codes or not all(c.startswith(STALE_INPUT_TRIPS) for c in codes):
                self._fail(f"a controlled stop did not end in READY: {self._status().get('reasons')}, trips {codes}")
        self.normal_cycles += 1

    def _inject(self, index: int, fault: Fault) -> None:
        t_cycle = time.monotonic()
        try:
            self._inject_timed(index, fault)
        finally:
            if self.outcomes and self.outcomes[-1].index == index:
                self.outcomes[-1].cycle_s = time.monotonic() - t_cycle

    def _again(self, index: int, fault: Fault, attempt: int) -> None:
        """Run a fault again that a machine stall's trip preempted (at most three times)."""
        self.preempted += 1
        if attempt >= 3:
            self._fail(f"{fault.name}: preempted by machine stalls four times in a row")
            return
        self._inject_timed(index, fault, attempt + 1)

    def _inject_timed(self, index: int, fault: Fault, attempt: int = 0) -> None:
        bench = self.bench
        if attempt:
            self.rng = random.Random(f"{self.seed}:{index}:{attempt}")
        running = fault.running if fault.running is not None else self.rng.random() < self.running_share
        if not self._ready():
            return
        if running and not self._run_belt():
            if bench.watchdog.is_closed() and not self._tripped_by_the_machine(f"{fault.name}: the belt did not start"):
                return
            return self._again(index, fault, attempt)
        if fault.name == "sensors disagree" or fault.name.startswith("sensor "):
            self.sensor = self.rng.choice([s.id for s in bench.cfg.sensors])
        wall0 = time.time()
        n_history = len(self._history(fault))
        arming_s = fault.arming_s(self) if fault.arming_s is not None else 0.0
        t_inject = time.monotonic()
        fault.inject(self)
        if fault.name == "patient in stop zone":
            t_inject = self.crossed_t
        if any(t < t_inject and not closed for t, closed in self._history(fault)[n_history:]):
            # The relay opened before the fault's moment (a machine stall tripped it meanwhile): run it again.
            fault.clear(self)
            wait_until(lambda: bench.emulator.belt_speed_mps == 0.0, 4.0)
            if self._tripped_by_the_machine(f"{fault.name}: the relay opened before the fault"):
                self._again(index, fault, attempt)
            return
        deadline_s = arming_s + fault.deadline_s(self)
        delay0 = run_delays(TRIP_PATH_THREADS)
        outcome = Outcome(index, fault.name, running, t_inject, None, deadline_s)
        self.outcomes.append(outcome)
        if fault.name == "exception in the decision path":
            self.injected_exceptions += 1
        try:
            if not wait_until(lambda: self._opened_at(fault, t_inject, n_history) is not None, deadline_s + 2.0,
                              poll_s=0.002):
                self._fail(f"{fault.name} ({'running' if running else 'READY'}): never tripped; "
                           f"state {self._status().get('state')} reasons {self._status().get('reasons')}")
                return
            opened = self._opened_at(fault, t_inject, n_history)
            outcome.latency_s = opened - t_inject
            late_s = outcome.latency_s - deadline_s
            if fault.name == "patient in stop zone" or fault.name == "belt gross overspeed":
                self._check_sample_to_relay(fault, wall0, opened)
            if late_s > 0:
                stall = max(self.longest_stall(t_inject, opened), most_delayed_s(delay0, run_delays(TRIP_PATH_THREADS)))
                if stall >= late_s:
                    outcome.disturbed_by_stall_s = stall
                else:
                    self._fail(f"{fault.name}: relay open after {outcome.latency_s * 1000:.1f} ms, deadline "
                               f"{deadline_s * 1000:.1f} ms (longest machine stall or CPU "
                               f"wait meanwhile {stall * 1000:.1f} ms)")
            self._check_cause(fault, outcome, wall0)
        finally:
            fault.clear(self)
            if not wait_until(lambda: bench.emulator.belt_speed_mps == 0.0, 4.0):
                self._fail(f"{fault.name}: the belt still runs 4 s after the trip")

    def _check_sample_to_relay(self, fault: Fault, wall0: float, opened: float) -> None:
        trips = [e for e in self._trips_since(wall0) if e["code"] in fault.codes]
        if not trips:
            return  # _check_cause reports it
        f = trips[0]["figures"]
        latency = opened - f["input_t_mono"]
        if latency > SLACK_S:
            stall = self.longest_stall(f["input_t_mono"], opened)
            if stall < latency - SLACK_S:
                self._fail(f"{fault.name}: sample -> relay {latency * 1000:.2f} ms (limit 5 ms)")

    def _check_cause(self, fault: Fault, outcome: Outcome, wall0: float) -> None:
        if fault.name == "controller restart":
            ok = wait_until(lambda: self._status().get("state") == "STOPPED"
                            and "startup" in self._status().get("reasons", []), 1.0)
            if not ok:
                self._fail(f"restarted controller not STOPPED with 'startup': {self._status()}")
            return
        if fault.name == "decision loop hung":
            return  # the hung loop cannot act: the watchdog relay's opening is the trip, measured above

        def named() -> bool:
            trips = self._trips_since(wall0)
            codes = [e["code"] for e in trips]
            outcome.trip_codes = tuple(codes)
            outcome.trip_id = trips[0]["id"] if trips else None
            reasons = self._status().get("reasons", [])
            return any(c.startswith(fault.codes) for c in codes) or any(r.startswith(fault.codes) for r in reasons)

        if not wait_until(named, 1.0, poll_s=0.01):
            # A machine stall may have tripped first: the fault's own cause then joins the reasons while it lasts.
            if outcome.trip_codes and all(c.startswith(STALE_INPUT_TRIPS) for c in outcome.trip_codes[:1]):
                outcome.disturbed_by_stall_s = max(outcome.disturbed_by_stall_s, 1e-9)
                return
            self._fail(f"{fault.name}: tripped with {outcome.trip_codes}, reasons "
                       f"{self._status().get('reasons')}; expected {fault.codes}")
        if outcome.trip_id is None and not wait_until(lambda: self._first_trip_id(outcome, wall0), 1.0, poll_s=0.01):
            self._fail(f"{fault.name}: the relay opened but no trip reached the event log within 1 s")

    def _first_trip_id(self, outcome: Outcome, wall0: float) -> bool:
        trips = self._trips_since(wall0)
        outcome.trip_id = trips[0]["id"] if trips else None
        return outcome.trip_id is not None

    def longest_stall(self, t0: float, t1: float) -> float:
        return self.stalls.stalled_s(t0, t1) if self.stalls is not None else 0.0

    # -- the whole storm ---------------------------------------------------------------------

    def _excepthook(self, args: threading.ExceptHookArgs) -> None:
        self.escaped.append(f"{args.thread.name if args.thread else '?'}: {args.exc_type.__name__}: "
                            f"{args.exc_value}")

    def run(self) -> "Storm":
        weights = [f.weight for f in FAULTS]
        self.rng = random.Random(self.seed)
        # Every kind at least twice, the rest drawn by weight; the order is shuffled.
        plan = [f for f in FAULTS for _ in range(2)]
        plan += self.rng.choices(FAULTS, weights, k=max(0, self.n_faults - len(plan)))
        self.rng.shuffle(plan)
        saved_hook = threading.excepthook
        threading.excepthook = self._excepthook
        errors = _ErrorCounter()
        logging.getLogger().addHandler(errors)
        # Hundreds of trips log hundreds of warnings; a test runner keeping them all would grow the
        # process (the figures here are for the controller). Errors still go through.
        quiet = {name: logging.getLogger(name).level for name in ("controller", "hardware")}
        for name in quiet:
            logging.getLogger(name).setLevel(logging.ERROR)
        self.stalls: StallWatch | None = None
        try:
            # The controller's threads run at its production priority (SCHED_RR), the storm's own thread too.
            with StallWatch() as self.stalls, production_priority():
                self.bench.start()
                self._record_circuit()
                for i, fault in enumerate(plan):
                    # Each fault's own choices come from the seed and its number, so that a replay with the
                    # same seed runs the same faults the same way, whatever the timing did to earlier ones.
                    self.rng = random.Random(f"{self.seed}:{i}")
                    if self.rng.random() < self.normal_share:
                        self._normal_cycle()
                    self._inject(i, fault)
                    if i % self.memory_every == 0 or i == len(plan) - 1:
                        self.memory.append((i, _rss_mb(), _controller_objects()))
                    if len(self.failures) > 20:
                        break
                self._decision_errors = errors.decision_errors
                self.trip_log = self._all_trips()
        finally:
            threading.excepthook = saved_hook
            logging.getLogger().removeHandler(errors)
            for name, level in quiet.items():
                logging.getLogger(name).setLevel(level)
            self.bench.close()
        return self

    def _all_trips(self) -> list[dict]:
        self.bench.controller.history.flush()
        return list(reversed(self.bench.controller.history.recent(None, kind="trip")))

    # -- verdicts ----------------------------------------------------------------------------

    def check(self) -> None:
        """Raise StormFailure with everything that went wrong."""
        problems = list(self.failures)
        if self.escaped:
            problems.append(f"exceptions escaped from threads: {self.escaped}")
        if self._decision_errors != self.injected_exceptions:
            problems.append(f"{self._decision_errors} exceptions in the decision path, "
                            f"{self.injected_exceptions} injected")
        disturbed = [o for o in self.outcomes if o.disturbed_by_stall_s]
        if len(disturbed) > MAX_DISTURBED * len(self.outcomes):
            problems.append(f"{len(disturbed)} of {len(self.outcomes)} faults disturbed by machine stalls")
        # A stale-input trip is right when the machine stalls, but a controller that trips on stale input
        # often is wrong: cap the faults run again for it (a regression there would be systematic).
        if self.preempted > MAX_DISTURBED * len(self.outcomes):
            problems.append(f"{self.preempted} faults run again after a stale-input trip (at most "
                            f"{MAX_DISTURBED:.0%} of {len(self.outcomes)})")
        problems += self._check_log()
        problems += self._check_memory()
        if problems:
            raise StormFailure(f"fault storm seed {self.seed}: {len(problems)} problems:\n  " + "\n  ".join(problems))

    def _check_log(self) -> list[str]:
        """Every trip seen during the storm is still in the event log at the end (across restarts), in order."""
        problems = []
        ids = {e["id"] for e in self.trip_log}
        missing = [o for o in self.outcomes if o.trip_id is not None and o.trip_id not in ids]
        if missing:
            problems.append(f"{len(missing)} trips missing from the event log: {missing[:3]}")
        tripped = sum(1 for o in self.outcomes if o.trip_id is not None)
        if len(self.trip_log) < tripped:
            problems.append(f"{len(self.trip_log)} trips in the event log for {tripped} faults that tripped")
        times = [e["t_mono"] for e in self.trip_log]  # one process: one monotonic clock across restarts
        if times != sorted(times):
            problems.append("the event log's trips are out of order")
        return problems

    def _check_memory(self) -> list[str]:
        """Flat memory: after the first tenth (warm-up), RSS and the object count stop growing."""
        if len(self.memory) < 4:
            return []
        warm = self.memory[max(1, len(self.memory) // 10)]
        end = self.memory[-1]
        problems = []
        if end[1] - warm[1] > 8.0:
            problems.append(f"RSS grew {end[1] - warm[1]:.1f} MB from fault {warm[0]} to {end[0]}: {self.memory}")
        if end[2] - warm[2] > 2000:
            problems.append(f"gc objects grew by {end[2] - warm[2]} from fault {warm[0]} to {end[0]}")
        return problems

    def summary(self) -> dict:
        by_fault: dict[str, dict] = {}
        for o in self.outcomes:
            d = by_fault.setdefault(o.fault, {"n": 0, "tripped": 0, "worst_ms": 0.0, "least_margin_ms": 1e9,
                                              "cycle_s": 0.0})
            d["n"] += 1
            d["cycle_s"] = round(d["cycle_s"] + o.cycle_s, 2)
            if o.latency_s is not None:
                d["tripped"] += 1
                d["worst_ms"] = round(max(d["worst_ms"], o.latency_s * 1000), 2)
                d["least_margin_ms"] = round(min(d["least_margin_ms"], (o.deadline_s - o.latency_s) * 1000), 2)
        return {"seed": self.seed, "faults": len(self.outcomes),
                "tripped": sum(1 for o in self.outcomes if o.latency_s is not None),
                "disturbed_by_machine_stalls": sum(1 for o in self.outcomes if o.disturbed_by_stall_s),
                "normal_cycles": self.normal_cycles, "with_serial_noise": self.noisy_cycles, "restarts": self.restarts, "preempted": self.preempted,
                "trips_in_log": len(getattr(self, "trip_log", [])),
                "trips_seen": sum(1 for o in self.outcomes if o.trip_id is not None), "by_fault": by_fault,
                "memory": self.memory[-1] if self.memory else None}


class _ErrorCounter(logging.Handler):
    """Counts the loop's 'exception in the decision path' log records."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.decision_errors = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "exception in the decision path" in record.getMessage():
            self.decision_errors += 1


#: Records the simulation keeps on purpose (every MockPin change, the emulator's serial log) and the
#: storm's own results: they grow with the storm and are not the controller's memory.
_RECORDINGS = ("PinState", "SerialEvent", "Outcome")


def _controller_objects() -> int:
    """Objects the garbage collector tracks, less the simulation's recordings."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o).__name__ not in _RECORDINGS)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
