"""Staggered starts and re-phasing: two sensors half a period apart, kept there despite a clock error.

Offsets are read from the readings' timestamps (edge times with interrupts, read times when polled).
A stamp can come late when the machine is busy, so the assertions are on the median and on the
share of offsets in a generous band, and on the longest gap between readings.
"""

from __future__ import annotations

import statistics

import pytest

from hardware.sim.vl53l0x import overlap_fraction
from hardware.tof import TofSpec
from tests.hardware.tof_support import (
    longest_gap_in_periods,
    offsets_in_periods,
    share_within,
    wire_sensors,
    wrapped,
)
from tests.waiting import expect

#: Results about 50 ms apart: scheduling noise on a busy machine is small beside a period.
BUDGET_MS = 50
#: Readings of the first part of a run are left out: the reader starts by clearing old samples.
SETTLE_S = 0.3


def run(make_array, specs, factory, rec, duration_s: float, **options):
    """Open and start an array, and wait until both sensors' readings span ``duration_s``."""
    array = make_array(specs, pin_factory=factory, **options)
    array.open()
    array.start()

    def spans() -> bool:
        stamps = [[r.t_mono for r in rec.readings(s.sensor_id)] for s in specs]
        return all(len(s) > 1 and s[-1] - s[0] >= duration_s for s in stamps)

    expect(spans, 2 * duration_s + 3.0, f"readings over {duration_s} s")
    return array


def stamps_after_settling(rec, sensor_id: str) -> list[float]:
    stamps = [r.t_mono for r in rec.readings(sensor_id)]
    return [t for t in stamps if t >= stamps[0] + SETTLE_S]


@pytest.mark.parametrize("interrupt", [True, False], ids=["interrupt", "polled"])
def test_two_sensors_start_half_a_period_apart(mock_factory, bus, rec, make_array, interrupt):
    specs, chips = wire_sensors(bus, mock_factory, ["left", "right"], budget_ms=BUDGET_MS,
                                interrupt=interrupt)
    array = run(make_array, specs, mock_factory, rec, 1.5)
    period_s = array.sensor_periods_s["left"]
    offsets = offsets_in_periods(stamps_after_settling(rec, "left"),
                                 stamps_after_settling(rec, "right"), period_s)
    assert len(offsets) >= 20
    assert statistics.median(offsets) == pytest.approx(0.5, abs=0.15)
    assert share_within(offsets, 0.3, 0.7) >= 0.9, offsets
    # Staggered, the emitters' final range steps overlap far less than in phase (see the model test).
    left, right = (chips[s].emitter_windows() for s in ("left", "right"))
    assert overlap_fraction(left, right) < 0.5


def test_without_stagger_sensors_run_in_phase(mock_factory, bus, rec, make_array):
    specs, _ = wire_sensors(bus, mock_factory, ["left", "right"], budget_ms=BUDGET_MS)
    array = run(make_array, specs, mock_factory, rec, 1.5, stagger=False)
    period_s = array.sensor_periods_s["left"]
    offsets = offsets_in_periods(stamps_after_settling(rec, "left"),
                                 stamps_after_settling(rec, "right"), period_s)
    assert len(offsets) >= 20
    assert share_within([wrapped(offset) for offset in offsets], -0.15, 0.15) >= 0.9, offsets


@pytest.mark.parametrize(("slow_scale", "restarted"), [(1.03, "left"), (0.97, "right")],
                         ids=["right-slow", "right-fast"])
def test_rephasing_keeps_half_a_period_despite_a_clock_error(
    mock_factory, bus, rec, make_array, slow_scale, restarted
):
    # Free-running, 3 % drifts a whole slot (half a period) in under 17 periods, under a second.
    specs, _ = wire_sensors(bus, mock_factory, ["left", "right"], budget_ms=BUDGET_MS,
                            period_scales={"right": slow_scale})
    array = run(make_array, specs, mock_factory, rec, 3.0)
    period_s = array.sensor_periods_s["left"]
    left, right = stamps_after_settling(rec, "left"), stamps_after_settling(rec, "right")
    offsets = offsets_in_periods(left, right, period_s)
    assert len(offsets) >= 45
    assert statistics.median(offsets) == pytest.approx(0.5, abs=0.1)
    assert share_within(offsets, 0.3, 0.7) >= 0.9, offsets
    for stamps in (left, right):
        assert longest_gap_in_periods(stamps, period_s) < 1.6
    timing = array.timing
    other = "right" if restarted == "left" else "left"
    # Only delays are possible: the sensor that runs ahead is the one held back.
    assert timing[restarted]["rephases"] >= 5
    assert timing[restarted]["rephases"] > timing[other]["rephases"]
    assert timing["right"]["measured_period_s"] == pytest.approx(slow_scale * period_s, rel=0.01)
    assert abs(timing["right"]["phase_error_s"]) < 0.25 * period_s  # within half a slot


def test_sensors_with_different_budgets_run_free(mock_factory, bus, rec, make_array):
    # Their periods differ: no slot could hold, so none is restarted.
    specs, _ = wire_sensors(bus, mock_factory, ["left", "right"], budget_ms=20)
    specs[1] = TofSpec("right", 0x31, specs[1].xshut_pin, 50, interrupt_pin=specs[1].interrupt_pin)
    array = run(make_array, specs, mock_factory, rec, 0.5)
    timing = array.timing
    assert [timing[s]["rephases"] for s in ("left", "right")] == [0, 0]
    assert [timing[s]["phase_error_s"] for s in ("left", "right")] == [None, None]
