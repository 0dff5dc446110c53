"""Hardware-in-the-loop fixtures: the real controller on simulated hardware (sim/bench.py)."""

from __future__ import annotations

import dataclasses

import pytest
from gpiozero import Device

from controller.config import ClinicConfig
from sim.bench import SimBench, sim_config


@pytest.fixture
def make_bench(tmp_path):
    """Build (and always close) benches; keyword arguments go to SimBench and the config."""
    benches: list[SimBench] = []
    saved = Device.pin_factory

    def make(protocol: str = "trackmaster", start_gap_mm: float = 1100.0, byte_time: bool = False,
             accel_mps2: float = 1.0, reverse_belt: bool = False, sway_mm: float = 0.0, sway_hz: float = 0.25,
             noise_mm: float = 0.0, quick_ramp: bool = True, clinic: ClinicConfig | None = None,
             **safety) -> SimBench:
        cfg = sim_config(tmp_path / f"state{len(benches)}", protocol=protocol)
        cfg = dataclasses.replace(cfg, treadmill=dataclasses.replace(
            cfg.treadmill, reverse_mode_carries="away_from_edge" if reverse_belt else "toward_edge"))
        if quick_ramp:
            # A quicker ramp than the clinic's keeps each scenario short; the rules are the same.
            safety = {"speed_ramp_kmh_per_s": 2.0, **safety}
        cfg = dataclasses.replace(cfg, safety=dataclasses.replace(cfg.safety, **safety))
        if clinic is not None:  # a treadmill that belongs to a clinic record
            cfg = dataclasses.replace(cfg, clinic=clinic)
        bench = SimBench(cfg, state_dir=tmp_path / f"state{len(benches)}", start_gap_mm=start_gap_mm,
                         byte_time=byte_time, accel_mps2=accel_mps2, sway_mm=sway_mm, sway_hz=sway_hz,
                         noise_mm=noise_mm)
        benches.append(bench)
        return bench.start()

    try:
        yield make
    finally:
        for bench in benches:
            bench.close()
        Device.pin_factory = saved


@pytest.fixture
def bench(make_bench) -> SimBench:
    """One started bench on the TrackMaster dialect."""
    return make_bench()
