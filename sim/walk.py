"""A patient walking on the belt for minutes, fed to the pure safety core in simulated time.

The real-time bench (``sim.bench``) runs the drivers; this runs the decisions alone, as fast as
the core computes, so a long walk takes seconds. Each sensor delivers a sample every period
(staggered, as the controller starts them) with uniform noise, the treadmill reports its speed at
the poll rate, and the core also steps at its next deadline, as the controller's loop wakes. The patient keeps a steady gap and sways
with each step; a lurch adds a speed toward the edge for a while.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field

from controller.config import KMH_PER_MPS, Config, stop_distance_mm
from controller.safety.core import SafetyCore
from controller.safety.types import Command, CommandKind, EventKind, State


@dataclass
class Walk:
    """What one simulated walk did."""

    speed_kmh: float
    minutes: float
    walking_gap_mm: float
    trips: list[tuple[float, str, float | None]] = field(default_factory=list)
    warn_episodes: int = 0
    min_gap_mm: float = math.inf
    #: The gap the controller read in the input that tripped.
    trip_gap_mm: float | None = None
    #: The patient's true gap then (without the sensor's noise).
    true_trip_gap_mm: float | None = None
    #: The closing speed of the situation at the trip: the belt's (if it carries toward the edge) plus the lurch.
    trip_closing_mps: float | None = None
    #: The approach-speed rule for a lurch's trip: its stop distance, and that less one sensor period of travel.
    approach_stop_mm: float | None = None
    least_trip_gap_mm: float | None = None

    @property
    def warn_episodes_per_min(self) -> float:
        """Warn episodes per minute of walking."""
        return self.warn_episodes / self.minutes if self.minutes else 0.0


def approach_rule_mm(cfg: Config, belt_speed_mps: float, closing_mps: float) -> tuple[float, float]:
    """Where the approach-speed rule wants a trip: the stop distance for this belt speed and closing
    speed, and that less one sensor period of travel (the tripping sample may come a period late)."""
    t = cfg.treadmill
    rule = stop_distance_mm(belt_speed_mps, cfg.limits.base_stop_mm, cfg.sensor_period_s, t.reaction_time_s,
                            t.decel_mps2, closing_mps)
    return rule, rule - 1000.0 * closing_mps * cfg.sensor_period_s


def walking_gap_mm(cfg: Config, speed_kmh: float, margin_mm: float, toward: bool = True) -> float:
    """Where a patient walks: the warn distance of a patient carried at this speed, plus a margin."""
    core = SafetyCore(cfg, 0.0)
    v = speed_kmh / KMH_PER_MPS
    return core.stop_distance_mm(v, v if toward else 0.0) + cfg.limits.warn_margin_mm + margin_mm


def walk(cfg: Config, speed_kmh: float, minutes: float, *, sway_mm: float = 40.0, sway_hz: float = 1.0,
         noise_mm: float = 15.0, margin_mm: float = 120.0, seed: int = 0,
         lurch: tuple[float, float, float] | None = None) -> Walk:
    """Walk at ``speed_kmh`` for ``minutes``; ``lurch`` = (start s, speed m/s, duration s) toward the edge.

    The walk ends at the first trip. The belt follows the commanded speed; the patient keeps
    pace with it, so only sway, noise and a lurch move the gap.
    """
    rng = random.Random(seed)
    core = SafetyCore(cfg, 0.0)
    toward = cfg.treadmill.carries_toward_edge(core.mode.value)
    gap0 = walking_gap_mm(cfg, speed_kmh, margin_mm, toward)
    result = Walk(speed_kmh, minutes, gap0)
    offsets = {s.id: s.mount_offset_mm for s in cfg.sensors}
    periods = {s.id: s.period_s for s in cfg.sensors}
    poll_s = 1.0 / cfg.treadmill.poll_hz
    # How far a lurch has brought the patient, integrated event by event: the patient stops
    # stepping (the belt carries them, if it carries toward the edge) and stumbles on top of it.
    lurch_mm = [0.0, 0.0]  # (distance, time of the last update)

    def gap_at(t: float) -> float:
        if lurch is not None:
            start, speed, duration = lurch
            begin, end_t = max(start, lurch_mm[1]), min(start + duration, t)
            if end_t > begin:
                lurch_mm[0] += 1000.0 * ((belt_mps if toward else 0.0) + speed) * (end_t - begin)
            lurch_mm[1] = max(lurch_mm[1], t)
        return gap0 + sway_mm * math.sin(2 * math.pi * sway_hz * t) - lurch_mm[0]

    # Bring-up: the patient stands at the walking gap; the belt stands; a therapist resets and starts.
    t = 0.0
    core.on_estop(False, t)
    for k in range(8):
        t = k * min(periods.values())
        core.on_belt_speed(0.0, t)
        for sid in offsets:
            core.on_distance(sid, gap0 + offsets[sid], 11, t)
    t += 0.01
    core.on_command(Command(CommandKind.RESET, "therapist", True), t)
    reply = core.on_command(Command(CommandKind.START, "therapist", True, speed_kmh), t).reply
    if reply is None or not reply.ok:
        raise RuntimeError(f"start refused at {gap0:.0f} mm: {reply}")
    t_walk = t
    belt_mps = 0.0
    end = t + 60.0 * minutes
    # The schedule of inputs: (time, order, kind, sensor id).
    # "deadline": the core's next deadline, where the loop would wake with no input.
    queue: list[tuple[float, int, str, str]] = [(t + poll_s, 1, "belt", "")]
    for i, sid in enumerate(sorted(offsets)):
        queue.append((t + periods[sid] * (1 + i / len(offsets)), 2 + i, "sensor", sid))
    heapq.heapify(queue)
    in_warn = False
    deadline_queued = float("inf")
    while queue:
        t, order, kind, sid = heapq.heappop(queue)
        if t > end:
            break
        gap = gap_at(t - t_walk)
        result.min_gap_mm = min(result.min_gap_mm, gap)
        if kind == "deadline":
            deadline_queued = float("inf") if t >= deadline_queued else deadline_queued
            out = core.on_tick(t)
        elif kind == "belt":
            # The treadmill follows the last command within a poll, at its own acceleration.
            target = core.commanded_mps if core.state in (State.RUNNING, State.STOPPING) else 0.0
            step = 1.0 * poll_s
            belt_mps = min(target, belt_mps + step) if target > belt_mps else max(target, belt_mps - step)
            out = core.on_belt_speed(belt_mps, t)
            heapq.heappush(queue, (t + poll_s, order, kind, sid))
        else:
            reading = gap + offsets[sid] + rng.uniform(-noise_mm, noise_mm)
            out = core.on_distance(sid, reading, 11, t)
            heapq.heappush(queue, (t + periods[sid], order, kind, sid))
        deadline = core.next_deadline()
        if deadline < deadline_queued:
            heapq.heappush(queue, (deadline, 0, "deadline", ""))
            deadline_queued = deadline
        if core.in_warn and not in_warn:
            result.warn_episodes += 1
        in_warn = core.in_warn
        for event in out.events:
            if event.kind == EventKind.TRIP:
                f = event.figures
                result.trips.append((t - t_walk, event.code, f.get("gap_mm")))
                result.trip_gap_mm = f.get("gap_mm")
                result.true_trip_gap_mm = gap
                if lurch is not None:
                    v = f.get("belt_speed_mps") or 0.0
                    closing = (v if toward else 0.0) + lurch[1]
                    result.trip_closing_mps = closing
                    result.approach_stop_mm, result.least_trip_gap_mm = approach_rule_mm(cfg, v, closing)
                return result
    return result
