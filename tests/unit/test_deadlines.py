"""The core's next deadline: a loop that wakes only for inputs and deadlines decides as a fine tick would.

The loop no longer ticks at a fixed rate. Between two inputs it steps the core at
``SafetyCore.next_deadline()`` only. If a rule that reads the clock had no deadline, a trip or a
state change would come later (or never) than with a tick: these tests run the same input
sequences through two cores, one stepped every millisecond between inputs and one stepped only
at its deadlines, and ask for the same decisions, no later.
"""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings, strategies as st

from controller.safety.core import DEADLINE_AFTER_S, SafetyCore
from controller.safety.types import BeltAction, Command, CommandKind as K, EventKind, State
from tests.unit.rig import kmh
from tests.unit.test_safety_properties import CFG, SENSORS, _apply, action

#: The reference core steps this often between inputs.
FINE_TICK_S = 0.001


def _fine(core: SafetyCore, t_from: float, t_to: float, steps: list[float]) -> list:
    """Step ``core`` every FINE_TICK_S after ``t_from``, before ``t_to``; each step's time goes into ``steps``."""
    outs = []
    t = t_from + FINE_TICK_S
    while t < t_to:
        outs.append(core.on_tick(t))
        steps.append(t)
        t += FINE_TICK_S
    return outs


def _deadlines(core: SafetyCore, t_to: float) -> list:
    outs = []
    while (deadline := core.next_deadline()) < t_to:
        assert deadline > core.now, "a deadline lies ahead of the present"
        outs.append(core.on_tick(deadline))
    return outs


def _decisions(outs: list) -> list[tuple[float, str, str]]:
    return [(e.t_mono, e.kind, e.code) for o in outs for e in o.events
            if e.kind in (EventKind.TRIP, EventKind.STATE, EventKind.WARN, EventKind.FAULT)]


def _unseen(ticks: list[float], inputs: list[float]):
    """Whether the reference could not have taken a decision due at ``t``: its next step is an input.

    The reference steps every millisecond and at each input. A decision the lean core takes at its
    deadline, when the reference's next step is an input (which may change the outcome: an E-stop
    just after a controlled stop began, say), is one the reference never gets to take.
    """
    steps = sorted([(t, False) for t in ticks] + [(t, True) for t in inputs])

    def unseen(t: float) -> bool:
        later = [is_input for s, is_input in steps if s >= t]
        return bool(later) and later[0]
    return unseen


def _run_both(actions: list, tail_s: float = 1.0):
    fine, lean = SafetyCore(CFG, 0.0), SafetyCore(CFG, 0.0)
    gaps = ([1000.0], [1000.0])
    # The loop's first wake-up steps the core at once, before any input.
    fine_outs, lean_outs = [fine.on_tick(0.0)], [lean.on_tick(0.0)]
    # When the reference core was stepped: its ticks (the start one too) and the inputs.
    ticks, inputs = [0.0], []
    t = 0.0
    for a in actions:
        t_next = t + a[1]
        fine_outs += _fine(fine, t, t_next, ticks)
        lean_outs += _deadlines(lean, t_next)
        t = t_next
        fine_outs += _apply(fine, t, a, gaps[0])
        inputs.append(t)
        lean_outs += _apply(lean, t, a, gaps[1])
    fine_outs += _fine(fine, t, t + tail_s, ticks)
    lean_outs += _deadlines(lean, t + tail_s)
    return fine, lean, _decisions(fine_outs), _decisions(lean_outs), _unseen(ticks, inputs)


def _assert_same_and_no_later(fine_d, lean_d, unseen=lambda t: False):
    """Each of the reference's decisions is taken by the lean core too (the same kind and code), no
    later; the lean core takes no other, but for ones the reference could not see (``unseen``).
    Two decisions less than a millisecond apart may come in either order: the fine tick takes both
    in one step."""
    def by_code(decisions):
        out: dict[tuple, list[float]] = {}
        for t, kind, code in decisions:
            out.setdefault((kind, code), []).append(t)
        return out

    fine, lean = by_code(fine_d), by_code(lean_d)
    for key in fine.keys() | lean.keys():
        left = list(lean.get(key, []))
        for t_fine in fine.get(key, []):
            # The reference looks every millisecond; the deadline just after the limit.
            match = next((t for t in left if t <= t_fine + DEADLINE_AFTER_S + 1e-9), None)
            assert match is not None, (key, t_fine, lean.get(key), lean_d, fine_d)
            left.remove(match)
        assert all(unseen(t) for t in left), (key, left, lean_d, fine_d)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(action, min_size=1, max_size=50))
@example([("bring_up", 0.0, 600.0, 1.0), ("command", 0.0016827365985149648, K.FINISH, None, False),
          ("estop", 0.001953125, True)])
def test_deadline_steps_decide_as_a_fine_tick_over_any_input_sequence(actions):
    fine, lean, fine_d, lean_d, unseen = _run_both(actions)
    _assert_same_and_no_later(fine_d, lean_d, unseen)
    assert lean.state is fine.state
    assert set(lean.reasons) == set(fine.reasons)


def _running_core() -> tuple[SafetyCore, float]:
    core = SafetyCore(CFG, 0.0)
    gap = [1100.0]
    _apply(core, 0.01, ("bring_up", 0.0, 1100.0, 2.0), gap)
    assert core.state is State.RUNNING
    return core, 0.01


def test_a_silent_sensor_trips_at_its_staleness_limit_with_no_tick():
    core, t = _running_core()
    last = core.sensors[SENSORS[0]].t_sample
    # The other inputs go on; the first sensor falls silent.
    while core.state is State.RUNNING:
        deadline = core.next_deadline()
        t_input = t + 0.012
        if deadline < t_input:
            core.on_tick(deadline)
            continue
        t = t_input
        core.on_belt_speed(core.commanded_mps, t)
        core.on_distance(SENSORS[1], 1100.0, 11, t)
    assert f"sensor_stale:{SENSORS[0]}" in core.reasons
    assert core.now <= last + 2 * CFG.sensors[0].period_s + DEADLINE_AFTER_S + 1e-9


def test_a_ramp_puts_each_tenth_of_a_km_h_on_the_wire_when_it_is_due():
    core, t = _running_core()
    t_start, start_mps = t, core.commanded_mps
    rate = CFG.safety.speed_ramp_kmh_per_s / 3.6
    sent = []
    while core.state is State.RUNNING and core.commanded_mps < core.target_mps:
        t_input = t + 0.03
        steps = []
        while (deadline := core.next_deadline()) < t_input:
            steps.append((deadline, core.on_tick(deadline)))
        t = t_input
        steps += [(t, o) for o in _apply(core, t, ("walk", 0.0, 0.0), [1100.0])]
        sent += [(o.belt.belt_speed_mps, t_out) for t_out, o in steps if o.belt.action is BeltAction.SET_SPEED]
    assert core.state is State.RUNNING and core.commanded_mps == core.target_mps
    speeds = [v for v, _ in sent]
    assert len(speeds) >= 10
    for a, b in zip(speeds, speeds[1:]):
        # A step goes out just after the ramp reaches it (DEADLINE_AFTER_S later): a hair above 0.1 km/h.
        assert abs((b - a) - kmh(0.1)) < 1e-4 or b == core.target_mps, (a, b)
    # Each step went out when the ramp reached it, not at the next input 30 ms later.
    for v, t_sent in sent[:-1]:
        assert t_sent <= t_start + (v - start_mps) / rate + DEADLINE_AFTER_S + 1e-6, (v, t_sent)


def test_no_deadline_when_nothing_can_change_by_itself():
    core = SafetyCore(CFG, 0.0)
    assert core.next_deadline() == float("inf")
    core.on_command(Command(K.ESTOP, "ann", False), 0.1)
    assert core.next_deadline() == float("inf")
