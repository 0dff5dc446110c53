"""bench/sensor_phase.py: a short run of every case over the register model, and the JSON it writes.

The bounds are generous: a shared, noisy machine stamps results late now and then, and 1.5 s per case
is only about 45 periods.
"""

from __future__ import annotations

import json

import pytest

from bench import common, sensor_phase


def test_offsets_fold_around_their_circular_mean():
    period = 1.0
    first = [0.0, 1.0, 2.0, 3.0]
    # In phase, the second sensor a hair early or late: near 0, not split between 0 and 1.
    assert sensor_phase.offsets_in_periods(first, [1.99, 3.01], period) == pytest.approx([-0.01, 0.01])
    # Half a period apart: near 0.5 on both sides.
    assert sensor_phase.offsets_in_periods(first, [0.45, 1.55], period) == pytest.approx([0.45, 0.55])


def test_sensor_phase_bench_writes_every_figure(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    sensor_phase.main(["--seconds", "1.5"])
    result = json.loads((tmp_path / "sensor_phase.json").read_text())
    for key in ("benchmark", "machine", "seconds_per_case", "drift", "sensors", "units", "cases"):
        assert key in result, key
    cases = result["cases"]
    assert set(cases) == {"in_phase", "staggered", "staggered_drift"}
    for name, case in cases.items():
        for field in sensor_phase.CASE_FIELDS:
            assert field in case, (name, field)
        # A stall of this shared machine may cost a sample (a "no data" fault); the figures stand.
        assert case["faults"] <= 2, (name, case)
        assert all(n >= 20 for n in case["results"].values()), (name, case["results"])
        for figures in (case, case["delivered"]):
            assert figures["offset"]["n"] >= 20, (name, figures)
            for stat in sensor_phase.STAT_FIELDS:
                assert isinstance(figures["offset"][stat], float), (name, stat)
            assert figures["union_gap"] > 0 and figures["single_gap"] > 0
        assert 0.0 <= case["emitter_overlap"] <= 1.0
    assert abs(cases["in_phase"]["offset"]["median"]) < 0.15
    assert cases["staggered"]["offset"]["median"] == pytest.approx(0.5, abs=0.15)
    assert cases["staggered_drift"]["offset"]["median"] == pytest.approx(0.5, abs=0.2)
    # Staggered, the final-range windows hardly overlap.
    assert cases["staggered"]["emitter_overlap"] < cases["in_phase"]["emitter_overlap"]
