"""The session's bookkeeping on a synthetic status stream: timer, chime, finish, summary, samples."""

from __future__ import annotations

import pytest

from controller.safety.types import Event
from controller.therapy.tracker import SessionTracker


def status(t, state="RUNNING", speed_mps=0.5, gap_mm=700.0, warning=False, reasons=None, target_mps=0.5):
    return {"t_mono": t, "state": state, "belt_speed_mps": speed_mps, "gap_mm": gap_mm, "warning": warning,
            "reasons": reasons or {}, "target_mps": target_mps}


def tracker(planned_s=60.0, end_warning_s=30.0, sample_hz=10.0):
    return SessionTracker(7, "P-1", planned_s, 100.0, end_warning_s=end_warning_s, sample_hz=sample_hz,
                          started_wall=1.7e9)


def run(tr, t_from, t_to, dt=0.01, **kw):
    actions = []
    t = t_from
    while t < t_to - 1e-9:
        t = round(t + dt, 6)
        actions += [(t, a) for a in tr.feed(status(t, **kw))]
    return actions


def test_walking_time_counts_only_while_running_and_distance_integrates_the_belt():
    tr = tracker()
    run(tr, 100.0, 110.0)                                      # 10 s walking at 0.5 m/s
    run(tr, 110.0, 115.0, state="READY", speed_mps=0.0)        # 5 s paused
    assert tr.elapsed_s == pytest.approx(10.0, abs=0.02)
    assert tr.distance_m == pytest.approx(5.0, abs=0.02)
    assert tr.phase == "paused" and tr.paused_reason == "stopped"
    run(tr, 115.0, 120.0)
    assert tr.elapsed_s == pytest.approx(15.0, abs=0.03) and tr.phase == "walking"


def test_chime_at_the_warning_lead_then_finish_at_the_plan_then_end_when_the_belt_stands():
    tr = tracker(planned_s=60.0, end_warning_s=30.0)
    actions = run(tr, 100.0, 161.0)
    chimes = [t for t, a in actions if a == "chime"]
    finishes = [t for t, a in actions if a == "finish"]
    assert chimes == [pytest.approx(130.0, abs=0.03)]
    assert finishes == [pytest.approx(160.0, abs=0.03)]
    assert tr.phase == "finishing" and not tr.done
    actions = run(tr, 161.0, 164.0, speed_mps=0.2)             # ramping down: still RUNNING
    assert actions == [] and tr.phase == "finishing"
    actions = run(tr, 164.0, 165.0, state="READY", speed_mps=0.0)
    assert [a for _, a in actions] == ["end"] and tr.done and tr.completed


def test_a_trip_pauses_the_clock_counts_and_keeps_the_closest_approach():
    tr = tracker()
    run(tr, 100.0, 105.0, gap_mm=600.0)
    tr.on_event(Event(105.0, "warn", "warn_zone", "patient close", figures={"gap_mm": 420.0}))
    tr.on_event(Event(105.1, "trip", "stop_zone", "patient in zone", figures={"gap_mm": 240.0}))
    run(tr, 105.0, 108.0, state="STOPPED", speed_mps=0.0, gap_mm=100.0, reasons={"stop_zone": "x"})
    f = tr.figures()
    assert f["warnings"] == 1 and f["trips"] == 1
    # The patient stepping off while the belt stands is not an approach; the trip's own gap is.
    assert f["closest_mm"] == 240.0
    assert tr.phase == "paused" and tr.paused_reason == "tripped: stop_zone"
    assert tr.elapsed_s == pytest.approx(5.0, abs=0.02)


def test_samples_come_at_the_sampling_rate_with_their_fields():
    tr = tracker(sample_hz=10.0)
    run(tr, 100.0, 102.0, gap_mm=650.0, speed_mps=0.5, warning=True)
    first, rows = tr.take_samples()
    assert first == 0 and 19 <= len(rows) <= 21
    t_s, gap, kmh, state, warning, stop_mm, warn_mm = rows[1]
    assert gap == 650.0 and kmh == pytest.approx(1.8) and state == "RUNNING" and warning == 1
    assert all(b[0] - a[0] == pytest.approx(0.1, abs=0.011) for a, b in zip(rows, rows[1:]))
    run(tr, 102.0, 103.0)
    first, more = tr.take_samples()
    assert first == len(rows) and 9 <= len(more) <= 11


def test_a_session_ended_early_is_not_completed_and_the_snapshot_shows_the_timer():
    tr = tracker(planned_s=300.0)
    run(tr, 100.0, 130.0)
    snap = tr.snapshot()
    assert snap == {"session_id": 7, "patient_id": "P-1", "phase": "walking", "elapsed_s": pytest.approx(30.0, abs=0.1),
                    "planned_s": 300.0, "remaining_s": pytest.approx(270.0, abs=0.1), "end_warning": False,
                    "paused_reason": None}
    assert not tr.completed
    assert tr.max_kmh == pytest.approx(1.8)
