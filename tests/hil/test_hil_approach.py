"""The patient's own motion on the bench: a lurch, a step back off a belt that carries away, a swaying walk.

The trip must come where the approach-speed rule puts it: the stop distance computed with the
closing speed of the situation, less one sensor period of the patient's travel (the sample that
trips may come up to a period after the line is crossed).
"""

from __future__ import annotations

import dataclasses

import pytest

from controller.config import KMH_PER_MPS
from sim.bench import SimBench, sim_config, wait_until
from sim.walk import approach_rule_mm, walking_gap_mm
from tests.hil.helpers import on_a_calm_machine, trips, wait_tripped
from tests.waiting import holds_for

#: Where the patient walks: this far beyond the warn line of a patient carried at the belt's speed.
WALKING_MARGIN_MM = 120.0


def _approach_trip(bench: SimBench, closing_of_belt: float, own_mps: float) -> tuple[dict, float]:
    """The trip, and the least gap the approach-speed rule allows for it."""
    assert wait_tripped(bench, 5.0), f"no trip: {bench.controller.status.get('reasons')}"
    trip = trips(bench)[-1]
    f = trip["figures"]
    assert trip["code"] == "stop_zone", trip
    v_belt = f["belt_speed_mps"]
    _, least_mm = approach_rule_mm(bench.cfg, v_belt, closing_of_belt * v_belt + own_mps)
    return f, least_mm


@pytest.mark.parametrize("belt_kmh, lurch_mps", [(0.5, 0.8), (1.0, 0.8), (1.5, 0.8), (1.5, 1.2)])
def test_lurch_toward_the_edge_trips_at_the_approach_speed_distance(make_bench, tmp_path, belt_kmh, lurch_mps):
    gap0 = walking_gap_mm(sim_config(tmp_path), belt_kmh, WALKING_MARGIN_MM)
    bench = make_bench(start_gap_mm=gap0)
    bench.reset_and_start(belt_kmh)
    assert bench.wait_sensors_sampled()
    carried_mm = bench.controller.loop.core.stop_distance_mm()
    # The patient stops stepping (the belt carries them) and stumbles toward the edge on top of it.
    bench.patient.set_drift(10.0)
    bench.patient.lurch(lurch_mps, 3.0)
    figures, least_mm = _approach_trip(bench, 1.0, lurch_mps)
    assert figures["gap_mm"] >= least_mm, (figures, least_mm)
    assert figures["gap_mm"] > carried_mm, "the belt's speed alone would have tripped later"
    assert figures["closing_speed_mps"] > lurch_mps and not figures["closing_speed_fallback"]


@pytest.mark.parametrize("belt_kmh", [0.8, 1.2, 1.6])
def test_stepping_back_off_a_belt_that_carries_away_trips_at_the_approach_speed_distance(make_bench, tmp_path,
                                                                                         belt_kmh):
    step_back_mps = 0.4
    probe = sim_config(tmp_path, protocol="woodway")
    probe = dataclasses.replace(probe, treadmill=dataclasses.replace(probe.treadmill,
                                                                     reverse_mode_carries="away_from_edge"))
    gap0 = walking_gap_mm(probe, belt_kmh, WALKING_MARGIN_MM, toward=False)
    bench = make_bench(protocol="woodway", reverse_belt=True, start_gap_mm=gap0)
    bench.reset_and_start(belt_kmh)
    assert bench.emulator.belt_velocity_mps < 0, "the belt runs reversed: it carries the patient away"
    assert bench.wait_sensors_sampled()
    n_buzz = len(bench.buzzer_history)
    target_mps = bench.controller.loop.core.target_mps
    # The patient steps back faster than the belt carries them away, at a steady cadence.
    bench.patient.set_drift(step_back_mps)
    figures, least_mm = _approach_trip(bench, 0.0, step_back_mps)
    assert figures["gap_mm"] >= least_mm, (figures, least_mm)
    assert not figures["carries_toward_edge"]
    # On the way through the warn zone the buzzer sounded and the belt was not slowed.
    assert any(on for _, on in bench.buzzer_history[n_buzz:])
    assert figures["commanded_mps"] == pytest.approx(target_mps, abs=0.001)


def test_a_swaying_noisy_walk_on_the_bench_neither_trips_nor_warns(make_bench, tmp_path):
    belt_kmh = 1.0
    gap0 = walking_gap_mm(sim_config(tmp_path), belt_kmh, WALKING_MARGIN_MM)
    # Run again (twice at most) only if a stall of this shared machine starved a sensor reader.
    on_a_calm_machine(lambda: make_bench(start_gap_mm=gap0, sway_mm=40.0, sway_hz=1.0, noise_mm=15.0),
                      lambda bench: swaying_walk(bench, belt_kmh))


def swaying_walk(bench, belt_kmh: float) -> None:
    bench.reset_and_start(belt_kmh)
    assert wait_until(lambda: bench.emulator.belt_speed_mps >= belt_kmh / KMH_PER_MPS - 0.05, 3.0)
    n_buzz = len(bench.buzzer_history)
    holds_for(lambda: bench.relay_energized and bench.controller.status["state"] == "RUNNING", 15.0,
              "running without a trip")
    assert not any(on for _, on in bench.buzzer_history[n_buzz:]), "the warn zone held still"
