"""HIL: when sensor results come, and when the decision thread wakes.

The sensors start staggered (their results half a period apart) and are read on
their GPIO1 falling edge; a sensor whose clock drifts is re-phased, and a broken
GPIO1 wire is a sensor fault. The decision thread wakes for inputs and deadlines
only, and toggles the heartbeat at most 7/4 of an edge interval apart, one per
interval on average, whether inputs come or not.

Result times come from the register models' own history (when each result was
ready), heartbeat edges from the heartbeat pin's recorded changes: neither goes
through the controller. Run with -s to see the measured figures.
"""

from __future__ import annotations

import bisect
import itertools
import statistics
import time

import pytest

from controller.loop import HEARTBEAT_EARLY_SHARE
from controller.safety.core import DEADLINE_AFTER_S
from controller.safety.types import CommandKind as K
from sim.bench import wait_until
from tests.hil.helpers import (
    on_a_calm_machine,
    relay_opened_at,
    reset_when_healthy,
    trips,
    wait_tripped,
)
from tests.waiting import expect, holds_for

#: Scheduling slack on top of every deadline (a shared 2-core CI machine).
SLACK_S = 0.005
#: An input's hop from its producer thread to the decision thread, on a loaded machine.
INPUT_HOP_S = 0.010
#: How late the decision thread may wake for a heartbeat edge on a loaded machine.
WAKE_SLACK_S = 0.030
#: 3 % fast, as a real VL53L0X oscillator may run.
FAST_SCALE = 0.97
RUN_KMH = 1.5


def report(what: str, value: str) -> None:
    print(f"\n[timing] {what}: {value}")


def ready(bench) -> None:
    """Reset a freshly started bench into READY (the patient stepped forward first if needed)."""
    bench.step_patient_forward()
    reply = reset_when_healthy(bench, 3.0)
    assert reply.ok, reply
    expect(lambda: bench.controller.status.get("state") == "READY", 1.0, "READY")


def start_belt(bench, speed_kmh: float) -> None:
    """Reset and start the belt; a refusal or a belt that never got going fails (a stall that tripped
    the controller on the way is then told apart by ``on_a_calm_machine``)."""
    try:
        bench.reset_and_start(speed_kmh)
    except RuntimeError as exc:
        raise AssertionError(str(exc)) from exc


def result_times(chip, since_t: float) -> list[float]:
    """When the chip's results were ready, from ``since_t`` on, oldest first."""
    return [m.t_mono for m in chip.history if m.t_mono >= since_t]


def wait_results(bench, sensor_id: str, since_t: float, count: int) -> None:
    """Wait (deadline: three times the nominal time) until a chip has given ``count`` results."""
    period_s = bench.controller.tof.sensor_periods_s[sensor_id]
    expect(lambda: len(result_times(bench.chips[sensor_id], since_t)) >= count, 3 * count * period_s,
           f"{count} results of sensor {sensor_id!r}")


def offsets_in_periods(first_t: list[float], second_t: list[float], period_s: float) -> list[float]:
    """For each result of the second sensor, how long after the first sensor's latest result it came
    (in periods, wrapped into 0..1)."""
    out = []
    for t in second_t:
        i = bisect.bisect_right(first_t, t) - 1
        if i >= 0:
            out.append(((t - first_t[i]) % period_s) / period_s)
    return out


def largest_gap_in_periods(times: list[float], period_s: float) -> float:
    return max(b - a for a, b in itertools.pairwise(times)) / period_s


def assert_staggered(bench, since_t: float, *, median_within: float, share_within_020: float) -> None:
    """The sensors' results come about half a period apart, and neither skips a result."""
    left, right = bench.cfg.sensors[0].id, bench.cfg.sensors[1].id
    period_s = bench.controller.tof.sensor_periods_s[left]
    left_t = result_times(bench.chips[left], since_t)
    right_t = result_times(bench.chips[right], since_t)
    offsets = offsets_in_periods(left_t, right_t, period_s)
    assert len(offsets) >= 30, offsets
    median = statistics.median(offsets)
    near = sum(abs(o - 0.5) <= 0.2 for o in offsets) / len(offsets)
    gaps = {left: largest_gap_in_periods(left_t, period_s), right: largest_gap_in_periods(right_t, period_s)}
    report("offset between the sensors' results",
           f"median {median:.3f} P, {near:.0%} within 0.5 +- 0.2 P, range {min(offsets):.3f}..{max(offsets):.3f} P "
           f"over {len(offsets)} results; largest gap between two results "
           + ", ".join(f"{sid} {gap:.2f} P" for sid, gap in gaps.items()))
    assert abs(median - 0.5) <= median_within
    assert near >= share_within_020
    for sid, gap in gaps.items():
        assert gap <= 1.6, f"sensor {sid!r} went {gap:.2f} periods without a result"


# ---- staggered start and phase control --------------------------------------------------


def test_staggered_sensors_deliver_their_results_half_a_period_apart(make_bench):
    def scenario(bench):
        ready(bench)
        t0 = time.monotonic()
        for s in bench.cfg.sensors:
            wait_results(bench, s.id, t0, 45)
        assert_staggered(bench, t0, median_within=0.1, share_within_020=0.9)
        timing = bench.controller.tof.timing
        for s in bench.cfg.sensors:
            assert timing[s.id]["interrupt"] is True, "read on the GPIO1 edge (interrupt_pin is set)"
            assert timing[s.id]["interrupt_fault"] is None
        assert bench.controller.status["state"] == "READY"

    on_a_calm_machine(make_bench, scenario)


def test_sensor_with_a_fast_clock_is_rephased_into_its_slot_without_a_trip(make_bench):
    fast_id = "right"

    def scenario(bench):
        ready(bench)
        chip = bench.chips[fast_id]
        nominal_s = bench.controller.tof.sensor_periods_s[fast_id]
        rephases_before = {sid: t["rephases"] for sid, t in bench.controller.tof.timing.items()}
        trip_count = bench.controller.status["trip_count"]
        chip.period_scale = FAST_SCALE  # the next measurement on
        t0 = time.monotonic()
        # About 3.5 s: the fast clock gains a whole period in 33 periods, so without
        # re-phasing it would pass through the other sensor's slot three times.
        wait_results(bench, fast_id, t0, 110)
        status = bench.controller.status
        assert status["state"] == "READY", status["reasons"]
        assert status["trip_count"] == trip_count and not trips(bench), "no stale or disagreement trip"
        assert bench.relay_energized
        timing = bench.controller.tof.timing
        rephased = {sid: t["rephases"] - rephases_before[sid] for sid, t in timing.items()}
        measured_s = timing[fast_id]["measured_period_s"]
        report("re-phases in the drift window", f"{rephased}; {fast_id} measured period "
               f"{measured_s * 1000:.2f} ms (nominal {nominal_s * 1000:.2f} ms x {FAST_SCALE})")
        # Every 2-4 periods it is held back a few ms: about 20 in the window.
        assert rephased[fast_id] >= 5
        assert measured_s == pytest.approx(FAST_SCALE * nominal_s, rel=0.01)
        assert_staggered(bench, t0, median_within=0.15, share_within_020=0.85)

    on_a_calm_machine(make_bench, scenario)


# ---- a broken or shorted interrupt wire ------------------------------------------------------

WIRE_FAULTS = [
    # (fault kind, what the message says, "interrupt_fault" value). A broken wire is noticed from
    # the last sample before the break: no edge for 1.3 periods while a sample waits, looked at
    # again 0.15 periods later. A line stuck low hides no sample at first: the first result after
    # it is read without an edge, and the second one that comes so is the fault.
    ("gpio1_broken", "no falling edge", "no_edge"),
    ("gpio1_stuck_low", "stuck low", "stuck_low"),
]


@pytest.mark.parametrize("kind,says,interrupt_fault", WIRE_FAULTS, ids=[f[0] for f in WIRE_FAULTS])
def test_broken_interrupt_wire_trips_within_two_periods_and_blocks_the_reset_until_mended(
        make_bench, kind, says, interrupt_fault):
    def scenario(bench):
        start_belt(bench, RUN_KMH)
        sensor = bench.cfg.sensors[0]
        pin = f"GPIO{sensor.interrupt_pin}"
        chip = bench.chips[sensor.id]
        period_s = bench.controller.tof.sensor_periods_s[sensor.id]
        # Just after a result, so the next one is a period away: the fault meets no result half signalled.
        t_wait = time.monotonic()
        expect(lambda: result_times(chip, t_wait), 1.0, "a result")
        t_inject = time.monotonic()
        chip.inject_fault(kind)
        assert wait_tripped(bench, 1.0)
        opened = relay_opened_at(bench, after_t=t_inject)
        assert opened is not None
        if kind == "gpio1_broken":
            what = "the last result before the break"
            ref_t = max(t for t in result_times(chip, t_wait) if t <= t_inject)
        else:
            what, ref_t = "the first result after it", min(result_times(chip, t_inject))
        limit_s = 2 * period_s + DEADLINE_AFTER_S + SLACK_S + INPUT_HOP_S
        report(f"{kind} on {sensor.id}: {what} -> relay open", f"{(opened - ref_t) * 1000:.1f} ms "
               f"(limit {limit_s * 1000:.1f} ms, period {period_s * 1000:.1f} ms)")
        assert opened - ref_t <= limit_s
        trip = trips(bench)[-1]
        assert trip["code"] == f"sensor_fault:{sensor.id}"
        assert pin in trip["message"] and "check the GPIO1 wire" in trip["message"] and says in trip["message"]
        assert bench.controller.tof.timing[sensor.id]["interrupt_fault"] == interrupt_fault

        assert wait_until(lambda: bench.emulator.belt_speed_mps == 0.0, 3.0), "the belt stops"
        reply = bench.command(K.RESET)
        assert not reply.ok and reply.code == "conflict", "refused while the wire is broken"
        assert f"sensor {sensor.id}" in reply.message and pin in reply.message
        assert bench.controller.tof.timing[sensor.id]["interrupt_fault"] == interrupt_fault, "the fault stands"

        chip.clear_faults()  # the wire mended: edges come again, and the readings with them
        expect(lambda: bench.controller.tof.timing[sensor.id]["interrupt_fault"] is None
               and bench.controller.status["sensors"][sensor.id]["fresh"], 1.0, "fresh readings again")
        bench.step_patient_forward()
        reply = reset_when_healthy(bench, 3.0)
        assert reply.ok, reply
        expect(lambda: bench.controller.status.get("state") == "READY", 1.0, "READY")

    on_a_calm_machine(make_bench, scenario, expected=("sensor_fault:left",))


# ---- the decision thread: woken by inputs and deadlines, the heartbeat on its pace -------------

#: The most the decision thread may wake per second while READY: both sensors (about 30 results a
#: second each) and the belt (20 readings a second) give it about 80 inputs, and the heartbeat edges
#: ride on them. A fixed 1 ms tick would be 1000.
MAX_WAKEUPS_PER_S = 100


def heartbeat_window(bench, window_s: float) -> dict:
    """Watch the heartbeat for ``window_s``, the external watchdog relay closed all along; its figures."""
    loop = bench.controller.loop
    states = bench.heartbeat_pin.states  # one entry per change, each stamped with the time since the last
    n0, wakeups0, t0 = len(states), loop.wakeups, time.monotonic()
    holds_for(bench.watchdog.is_closed, window_s, "the external watchdog relay closed")
    n1, wakeups1, t1 = len(states), loop.wakeups, time.monotonic()
    interval_s = loop.edge_interval_s
    gaps_s = [state.timestamp for state in states[n0:n1]]
    return {"edges": n1 - n0, "per_interval": (n1 - n0) / ((t1 - t0) / interval_s), "gaps_s": gaps_s,
            "wakeups": wakeups1 - wakeups0, "wakeups_per_s": (wakeups1 - wakeups0) / (t1 - t0)}


def assert_heartbeat_pace(bench, what: str, w: dict) -> None:
    interval_s = bench.controller.loop.edge_interval_s
    longest_s = (1 + HEARTBEAT_EARLY_SHARE) * interval_s + WAKE_SLACK_S  # 7/4 of an interval + slack
    report(f"heartbeat, {what}", f"{w['edges']} edges, {w['per_interval']:.2f} per interval of "
           f"{interval_s * 1000:.0f} ms, {min(w['gaps_s']) * 1000:.1f}..{max(w['gaps_s']) * 1000:.1f} ms apart "
           f"(limit {longest_s * 1000:.1f} ms); {w['wakeups_per_s']:.0f} wake-ups/s")
    assert 0.6 <= w["per_interval"] <= 1.3
    assert max(w["gaps_s"]) <= longest_s
    assert longest_s < bench.watchdog.hold_time_s


def test_heartbeat_keeps_its_pace_with_inputs_and_on_deadlines_alone(make_bench):
    def scenario(bench):
        ready(bench)
        assert_heartbeat_pace(bench, "READY, sensors and belt reporting", heartbeat_window(bench, 2.0))
        assert bench.controller.status["state"] == "READY"

        # Both sensors fall silent: the controller rightly trips on them, but its loop is healthy,
        # so the heartbeat goes on (the watchdog relay is for a hung loop, not for a stale input).
        for chip in bench.chips.values():
            chip.inject_fault("hang")
        assert wait_tripped(bench, 1.0)
        assert trips(bench)[-1]["code"].startswith("sensor_stale:"), trips(bench)
        assert_heartbeat_pace(bench, "sensors silent", heartbeat_window(bench, 1.5))

        # And the treadmill too: no input at all, so every wake-up is a deadline of the loop's own.
        bench.emulator.silence(True)
        expect(lambda: "link_fault" in bench.controller.status["reasons"], 1.0, "the link fault")
        w = heartbeat_window(bench, 1.5)
        assert_heartbeat_pace(bench, "no input at all", w)
        assert w["wakeups"] <= 1.25 * w["edges"] + 2, "woken for the heartbeat edges, not on a faster tick"

    on_a_calm_machine(make_bench, scenario, expected=("sensor_stale:left", "sensor_stale:right"))


def test_decision_thread_wakes_for_inputs_and_deadlines_not_on_a_tick(make_bench):
    def scenario(bench):
        ready(bench)
        loop = bench.controller.loop
        t0, wakeups0 = time.monotonic(), loop.wakeups
        for s in bench.cfg.sensors:
            wait_results(bench, s.id, t0, 60)
        t1, wakeups1 = time.monotonic(), loop.wakeups
        results = sum(len(result_times(chip, t0)) for chip in bench.chips.values())
        rate = (wakeups1 - wakeups0) / (t1 - t0)
        report("decision thread while READY", f"{rate:.0f} wake-ups/s, {results / (t1 - t0):.0f} sensor "
               f"results/s (limit {MAX_WAKEUPS_PER_S}/s)")
        assert rate < MAX_WAKEUPS_PER_S
        assert bench.controller.status["state"] == "READY"

    on_a_calm_machine(make_bench, scenario)
