"""HIL: a reset is refused while the patient stands inside the warn zone; the demo's recover leads to a reset."""

from __future__ import annotations

from controller.config import KMH_PER_MPS
from controller.safety.types import CommandKind as K
from sim.bench import wait_until
from tests.hil.helpers import on_a_calm_machine, reset_when_healthy, trips, wait_tripped


def test_after_a_stop_zone_trip_the_reset_waits_for_the_patient_to_step_forward(make_bench):
    def scenario(bench):
        bench.reset_and_start(1.5)
        bench.patient.set_drift(1.5 / KMH_PER_MPS)  # the patient stops stepping and is carried back
        assert wait_tripped(bench, 5.0)
        assert trips(bench)[-1]["code"] == "stop_zone"
        assert wait_until(lambda: bench.emulator.belt_speed_mps == 0.0, 3.0)
        bench.patient.set_drift(0.0)
        zone_mm = bench.controller.loop.core.reset_warn_zone_mm()
        assert bench.patient.gap_mm < zone_mm, "the trip left the patient inside the warn zone"
        bench.wait_sensors_sampled()
        reply = bench.command(K.RESET)
        assert not reply.ok and reply.code == "conflict"
        assert f"inside the warn zone ({zone_mm:.0f} mm)" in reply.message and "step forward" in reply.message
        assert bench.controller.status["state"] == "STOPPED" and not bench.relay_energized
        assert bench.step_patient_forward()
        assert bench.patient.gap_mm > zone_mm
        assert reset_when_healthy(bench, 3.0).ok
        assert bench.relay_energized

    on_a_calm_machine(lambda: make_bench(start_gap_mm=1000.0), scenario, expected=("stop_zone",))


def test_the_demos_drift_back_then_recover_leads_to_a_resettable_machine(make_bench):
    def scenario(bench):
        actions = bench.demo_actions()
        bench.reset_and_start(1.5)
        actions["drift_back"]()
        assert wait_tripped(bench, 5.0)
        assert trips(bench)[-1]["code"] == "stop_zone"
        assert wait_until(lambda: bench.emulator.belt_speed_mps == 0.0, 3.0)
        actions["recover"]()
        assert bench.patient.gap_mm > bench.controller.loop.core.reset_warn_zone_mm()
        assert reset_when_healthy(bench, 3.0).ok
        assert bench.command(K.START, 1.5).ok, "and it starts again"

    on_a_calm_machine(lambda: make_bench(start_gap_mm=1000.0), scenario, expected=("stop_zone",))
