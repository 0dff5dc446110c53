"""Properties of the safety core over arbitrary input sequences (hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, event, given, settings, strategies as st

from controller.safety.approach import WINDOW
from controller.safety.core import SafetyCore
from controller.safety.inputs import RANGE_STATUS_VALID
from controller.safety.types import BeltAction, Command, CommandKind as K, State
from tests.unit.rig import example_config, kmh

CFG = example_config()
SENSORS = [s.id for s in CFG.sensors]
OFFSET = {s.id: s.mount_offset_mm for s in CFG.sensors}
#: Spacing of the samples a healthy burst feeds: close enough that the oldest is fresh.
SAMPLE_STEP_S = 0.005

# Mostly short steps (sensors go stale after 66 ms), sometimes a long silence.
dt = st.one_of(st.floats(0.0, 0.03), st.floats(0.0, 0.03), st.floats(0.0, 0.03), st.floats(0.0, 0.5))
distance = st.tuples(st.just("distance"), dt, st.sampled_from(SENSORS),
                     st.one_of(st.floats(-50, 1500), st.sampled_from([8190, 8191]), st.just(float("nan"))),
                     st.sampled_from([RANGE_STATUS_VALID] * 6 + [0, 4, 5]))
belt = st.tuples(st.just("belt"), dt, st.one_of(st.floats(0, 1.0), st.just(-1.0)))
tick = st.tuples(st.just("tick"), dt)
estop = st.tuples(st.just("estop"), dt, st.booleans())
sensor_fault = st.tuples(st.just("sensor_fault"), dt, st.sampled_from(SENSORS))
link_fault = st.tuples(st.just("link_fault"), dt)
reopened = st.tuples(st.just("reopened"), dt)
speed_value = st.one_of(st.floats(0.0, 3.0), st.just(None), st.text(max_size=3))
limits_value = st.dictionaries(st.sampled_from(["reverse_cap_kmh", "forward_cap_kmh", "base_stop_mm",
                                                "warn_margin_mm", "bogus"]),
                               st.one_of(st.floats(0, 700), st.text(max_size=2)), max_size=3)
command = st.one_of(
    st.tuples(st.just("command"), dt, st.sampled_from([K.ESTOP, K.STOP, K.RESET]), st.none(), st.booleans()),
    st.tuples(st.just("command"), dt, st.just(K.START), st.floats(0.3, 3.0), st.booleans()),
    st.tuples(st.just("command"), dt, st.just(K.SET_SPEED), speed_value, st.booleans()),
    st.tuples(st.just("command"), dt, st.just(K.SET_MODE), st.sampled_from(["reverse", "forward", "x"]),
              st.booleans()),
    st.tuples(st.just("command"), dt, st.just(K.SET_LIMITS), limits_value, st.booleans()),
    st.tuples(st.just("command"), dt, st.just(K.FINISH), st.none(), st.booleans()),
    st.tuples(st.just("command"), dt, st.just(K.APPLY_PRESCRIPTION),
              st.fixed_dictionaries({"mode": st.sampled_from(["reverse", "forward", "x"]), "limits": limits_value,
                                     "patient_id": st.sampled_from(["P1", ""])}), st.booleans()),
)
# Healthy inputs are weighted up so that sequences reach READY and RUNNING often.
healthy_burst = st.tuples(st.just("healthy"), dt, st.floats(400, 1200), st.floats(0, 0.7))
# Bring-up: healthy inputs, a therapist's reset and start, in one go.
bring_up = st.tuples(st.just("bring_up"), dt, st.floats(600, 1400), st.floats(0.5, 2.2))
# Walk: the patient creeps a few mm while the belt follows the commanded speed.
walk = st.tuples(st.just("walk"), st.floats(0.005, 0.03), st.floats(-8, 12))
action = st.one_of(walk, walk, walk, walk, healthy_burst, healthy_burst, bring_up, command, command, distance, belt,
                   tick, estop, sensor_fault, link_fault, reopened)


def _apply(core: SafetyCore, t: float, a: tuple, gap: list):
    kind = a[0]
    if kind == "walk":
        gap[0] = min(1400.0, max(-50.0, gap[0] - a[2]))
        outs = [core.on_belt_speed(core.commanded_mps, t)]
        outs += [core.on_distance(s, gap[0] + OFFSET[s], RANGE_STATUS_VALID, t) for s in SENSORS]
        return outs + [core.on_tick(t)]
    if kind == "distance":
        return [core.on_distance(a[2], a[3], a[4], t)]
    if kind == "belt":
        return [core.on_belt_speed(a[2], t)]
    if kind == "tick":
        return [core.on_tick(t)]
    if kind == "estop":
        return [core.on_estop(a[2], t)]
    if kind == "sensor_fault":
        return [core.on_sensor_fault(a[2], "EIO", t)]
    if kind == "link_fault":
        return [core.on_link_fault("BD", t)]
    if kind == "reopened":
        return [core.on_link_reopened(t, t)]
    if kind in ("healthy", "bring_up"):
        gap[0] = a[2]
        speed_mps = a[3] if kind == "healthy" else core.commanded_mps
        outs = [core.on_estop(False, t), core.on_belt_speed(speed_mps, t)]
        # A patient standing there for the samples the closing-speed estimate fits, all fresh.
        for k in range(WINDOW - 1, -1, -1):
            outs += [core.on_distance(s, a[2] + OFFSET[s], RANGE_STATUS_VALID, t - k * SAMPLE_STEP_S)
                     for s in SENSORS]
        if kind == "bring_up":
            outs.append(core.on_command(Command(K.RESET, "ann", True), t))
            outs.append(core.on_command(Command(K.START, "ann", True, a[3]), t))
        return outs
    return [core.on_command(Command(a[2], "ann", a[4], a[3]), t)]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(action, min_size=1, max_size=120))
def test_invariants_hold_over_any_input_sequence(actions):
    core = SafetyCore(CFG, 0.0)
    t = 0.0
    last_human_mps = 0.0
    seen = set()
    gap = [1000.0]
    for a in actions:
        t += a[1]
        before = core.state
        stop_before = core.stop_distance_mm()
        outs = _apply(core, t, a, gap)
        out = outs[-1]
        seen.add(core.state)
        for o in outs:
            # The relay is never energized in STOPPED.
            assert not (o.state is State.STOPPED and o.relay_energized)
        # No path out of STOPPED without a reset.
        if before is State.STOPPED and core.state is not State.STOPPED:
            resets = [o for o in outs if o.reply is not None and o.reply.ok and o.state is State.READY]
            assert resets and (a[0] == "bring_up" or (a[0] == "command" and a[2] is K.RESET))
        # A fresh in-zone sample de-energizes the relay in the same step. The sample itself may
        # change the stop distance (it completes or breaks the closing-speed fit): inside both counts.
        if a[0] == "distance" and a[4] == RANGE_STATUS_VALID and a[3] == a[3] \
                and 30 <= a[3] < 8190 and a[3] - OFFSET[a[2]] <= min(stop_before, core.stop_distance_mm()):
            assert not out.relay_energized
        # A reset is accepted only with no patient in view or one beyond the warn zone at standstill.
        if before is State.STOPPED and core.state is not State.STOPPED:
            _, nearest_mm = core.nearest()
            assert nearest_mm is None or nearest_mm > core.reset_warn_zone_mm()
        if any(o.reply is not None and o.reply.ok for o in outs) and (
                a[0] == "bring_up" or (a[0] == "command" and a[2] in (K.START, K.SET_SPEED))):
            last_human_mps = core.target_mps
        # The controller never asks for more than the last human-set speed or the cap.
        for o in outs:
            if o.belt.action is BeltAction.SET_SPEED:
                assert o.belt.belt_speed_mps <= last_human_mps + 1e-9
                assert o.belt.belt_speed_mps <= core.cap_mps + 1e-9
        assert core.commanded_mps <= max(last_human_mps, 0.0) + 1e-9
    event(f"reached {sorted({s.value for s in seen})}")


@settings(max_examples=100, deadline=None)
@given(st.floats(0.0, 2.2), st.floats(250, 600))
def test_start_never_commands_above_the_requested_speed(speed_kmh, base_stop_mm):
    core = SafetyCore(CFG, 0.0)
    core.on_estop(False, 0.01)
    core.on_belt_speed(0.0, 0.01)
    for s in SENSORS:
        core.on_distance(s, 1400, RANGE_STATUS_VALID, 0.01)
    core.on_command(Command(K.RESET, "ann", True), 0.02)
    out = core.on_command(Command(K.START, "ann", True, speed_kmh), 0.03)
    if out.reply.ok:
        assert core.state is State.RUNNING
        assert out.belt.belt_speed_mps <= kmh(speed_kmh) + 1e-9
    else:
        assert core.state is State.READY and out.belt.action is BeltAction.NONE


# Each step: the patient walks, and now and then someone asks for a speed.
drift_back = st.tuples(st.just("walk"), st.floats(0.005, 0.03), st.floats(-3, 15))
running_step = st.tuples(drift_back, st.one_of(st.none(), st.none(), st.none(),
                                         st.tuples(st.floats(0.3, 2.5), st.booleans())))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.floats(800, 1200), st.floats(0.5, 2.0), st.lists(running_step, min_size=60, max_size=300))
def test_a_running_belt_is_never_sped_up_by_the_controller(start_gap_mm, speed_kmh, steps):
    core = SafetyCore(CFG, 0.0)
    gap = [start_gap_mm]
    _apply(core, 0.01, ("bring_up", 0.0, start_gap_mm, speed_kmh), gap)
    assert core.state is State.RUNNING
    last_human_mps = previous_mps = core.target_mps
    t = 0.01
    warned = False
    for walk_action, request in steps:
        t += walk_action[1]
        outs = _apply(core, t, walk_action, gap)
        if request is not None:
            out = core.on_command(Command(K.SET_SPEED, "ann", request[1], request[0]), t)
            if out.reply.ok:
                last_human_mps = core.target_mps
            outs.append(out)
        warned = warned or any(o.warning for o in outs)
        for o in outs:  # the last output is the request's: checked against the speed it set
            if o.belt.action is BeltAction.SET_SPEED:
                limit = last_human_mps if o is outs[-1] else max(last_human_mps, previous_mps)
                assert o.belt.belt_speed_mps <= limit + 1e-9
        previous_mps = last_human_mps
    event("warn zone entered" if warned else "no warning")
    event(f"ended {core.state.value}")


# Each step of a running belt: the belt follows the commands, or someone at the console pushes it
# faster (once, or holding the key), and now and then a therapist (or anyone) asks for a speed.
console_step = st.tuples(
    st.floats(0.005, 0.03),
    st.one_of(st.just(None), st.just(None), st.tuples(st.floats(0.1, 1.2), st.booleans())),
    st.one_of(st.none(), st.none(), st.none(), st.none(), st.tuples(st.floats(0.3, 2.5), st.booleans())),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.floats(0.5, 2.0), st.lists(console_step, min_size=20, max_size=300))
def test_after_a_console_override_the_belt_is_never_commanded_above_the_last_human_set_speed(speed_kmh, steps):
    core = SafetyCore(CFG, 0.0)
    gap = [1000.0]
    t = 0.01
    _apply(core, t, ("bring_up", 0.0, gap[0], speed_kmh), gap)
    assert core.state is State.RUNNING
    belt_mps = core.commanded_mps
    push_mps: float | None = None
    overridden = False
    #: When a held push began that must trip: above any speed the controller may still ramp to, plus
    #: the tolerance, with no request since. It must trip once the reference has settled (the window
    #: of one link timeout, the braking from the cap at decel) and the grace time has passed.
    must_trip_from: float | None = None
    settle_s = CFG.treadmill.link_timeout_s + core.cap_mps / CFG.treadmill.decel_mps2
    must_trip_within = settle_s + CFG.safety.overspeed_grace_s + 0.05
    for dt_s, console, request in steps:
        t += dt_s
        outs = []
        if request is not None:
            must_trip_from = None
            out = core.on_command(Command(K.SET_SPEED, "ann", request[1], request[0]), t)
            outs.append(out)
            if out.reply.ok:
                assert core.last_human_mps == core.target_mps
        if console is not None:
            push_mps, held = belt_mps + kmh(console[0]), console[1]
            overridden = True
            belt_mps = push_mps
            if not held:
                push_mps = None
                must_trip_from = None
            elif push_mps > core.target_mps + kmh(CFG.safety.overspeed_tolerance_kmh) + 1e-6:
                must_trip_from = t if must_trip_from is None else must_trip_from
        elif push_mps is not None:
            belt_mps = push_mps  # the key is held: the belt stays pushed
        else:
            # The belt follows the last command within one step (a fast belt).
            sent = [o.belt for o in outs if o.belt.action is not BeltAction.NONE]
            belt_mps = core.commanded_mps if core.state is State.RUNNING else 0.0
            if sent and sent[-1].action is BeltAction.AUTO_STOP:
                belt_mps = 0.0
        outs.append(core.on_belt_speed(belt_mps, t))
        outs += [core.on_distance(s, gap[0] + OFFSET[s], RANGE_STATUS_VALID, t) for s in SENSORS]
        outs.append(core.on_tick(t))
        for o in outs:
            if o.belt.action is BeltAction.SET_SPEED:
                assert o.belt.belt_speed_mps <= core.last_human_mps + 1e-9
                assert o.belt.belt_speed_mps <= core.cap_mps + 1e-9
        assert core.commanded_mps <= core.last_human_mps + 1e-9
        if core.state is State.STOPPED:
            break
        assert must_trip_from is None or t - must_trip_from <= must_trip_within, \
            "a console that keeps pushing must trip"
    event("console override" if overridden else "no override")
    event(f"ended {core.state.value}")
