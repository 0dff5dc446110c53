"""Therapy sessions on the simulated treadmill: timer, chime, ramp-down, summary, timeline."""

from __future__ import annotations

import dataclasses
import time

import pytest

from controller.storage import records
from controller.config import KMH_PER_MPS
from controller.safety.types import CommandKind
from sim.bench import wait_until
from controller.storage.store import HistoryStore
from hardware.belt_protocol import decode_speed_field

KMH_PER_MPH = 1.609344
from tests.hil.helpers import on_a_calm_machine, reset_when_healthy

PATIENT = {"patient_id": "P-0042", "display_name": "A.B.", "notes": "", "mode": "reverse",
           "speed_cap_kmh": 1.5, "base_stop_mm": 250, "warn_margin_mm": 200, "target_min": 20,
           "sessions_per_day": 2}
THERAPIST = {"actor": "Ann", "authorized": True}


@pytest.fixture
def session_bench(make_bench):
    """A bench whose session end warning comes 5 s before the plan (the clinic's is 30 s)."""
    def make(**kw):
        bench = make_bench(**kw)
        cfg = bench.controller.cfg
        runner = bench.controller.sessions
        runner.cfg = dataclasses.replace(cfg, sessions=dataclasses.replace(cfg.sessions, end_warning_s=5.0))
        runner.request("save", {"patient": PATIENT, "create": True, **THERAPIST})
        assert reset_when_healthy(bench).ok
        return bench
    return make


def test_a_session_chimes_then_ramps_down_at_the_plan_and_records_its_summary_and_timeline(session_bench):
    on_a_calm_machine(session_bench, session_to_the_plan)


def session_to_the_plan(bench):
    runner = bench.controller.sessions
    started_t = time.monotonic()
    reply = runner.request("start", {"patient_id": "P-0042", "planned_min": 0.25, "pain_before": 3,
                                     "speed_kmh": 1.5, **THERAPIST})
    sid = reply["session"]["session_id"]
    assert reply["session"]["status"] == "active" and reply["session"]["pain_before"] == 3
    assert bench.controller.status["limits"]["reverse_cap_kmh"] == 1.5, "the prescription was applied"
    assert wait_until(lambda: runner.snapshot and runner.snapshot["phase"] == "walking", 3.0)

    # The chime: the buzzer sounds 5 s before the plan, while the belt still runs.
    assert wait_until(lambda: any(on for _, on in bench.buzzer_history), 15.0), runner.snapshot
    elapsed_at_chime = runner.snapshot["elapsed_s"]
    assert 9.5 <= elapsed_at_chime <= 11.0 and bench.controller.status["state"] == "RUNNING"

    # At the plan: a controlled ramp-down, not an E-stop; the relay never opens.
    assert wait_until(lambda: runner.snapshot is None, 20.0), runner.snapshot
    status = bench.controller.status
    assert status["state"] == "READY" and bench.relay_energized and status["trip_count"] == 0
    assert all(energized for t, energized in bench.relay_history if t >= started_t)
    sent = [decode_speed_field(e.frame[1:], "trackmaster")[0] * 0.1 * KMH_PER_MPH
            for e in bench.emulator.commands(include_status_requests=False) if e.frame[0] == 0xA3]
    peak = sent.index(max(sent))
    assert max(sent) == pytest.approx(1.5, abs=0.1) and len(sent) - peak >= 4, "slowed in steps before the stop"
    assert sent[peak:] == sorted(sent[peak:], reverse=True)
    assert bench.emulator.commands(include_status_requests=False)[-1].frame[0] == 0xAA, "then an auto stop"

    bench.controller.history.flush()
    summary = runner.session_page(sid)["session"]
    assert summary["status"] == "completed" and summary["end_reason"] == "target reached"
    assert 15.0 <= summary["duration_s"] <= 16.5
    assert summary["max_kmh"] == pytest.approx(1.5, abs=0.17)
    assert summary["distance_m"] == pytest.approx(summary["mean_kmh"] * summary["duration_s"] / KMH_PER_MPS,
                                                  rel=0.25)
    assert summary["warnings"] == 0 and summary["trips"] == 0 and 900 <= summary["closest_mm"] <= 1200
    rows, total = bench.controller.history.read(lambda conn: records.samples(
        conn, sid, 0, 5000))
    # The timeline at 10 Hz over the whole session, the ramp-down included.
    assert total == len(rows) and total >= 5 * (summary["duration_s"] + 2)
    assert rows[0][3] == "RUNNING" and max(r[2] for r in rows) > 1.3 and rows[-1][2] < 0.8, "the ramp-down"
    assert all(0 < b[0] - a[0] <= 0.2 + 0.05 for a, b in zip(rows, rows[1:]))

    reply = runner.request("pain", {"session_id": sid, "pain_after": 5, **THERAPIST})
    assert reply["session"]["pain_after"] == 5 and reply["session"]["pain_flag"] is True
    page = runner.patient_page("P-0042")
    assert [s["session_id"] for s in page["sessions"]] == [sid]
    assert page["today"] == {"done": 1, "per_day": 2}


def test_pause_and_resume_stop_the_clock_and_a_trip_is_counted_with_its_gap(session_bench):
    on_a_calm_machine(session_bench, pause_resume_trip)


def pause_resume_trip(bench):
    runner = bench.controller.sessions
    sid = runner.request("start", {"patient_id": "P-0042", "planned_min": 5, "pain_before": 2,
                                   **THERAPIST})["session"]["session_id"]
    assert wait_until(lambda: runner.snapshot and runner.snapshot["elapsed_s"] >= 2.0, 8.0)
    runner.request("pause", THERAPIST)
    assert wait_until(lambda: bench.controller.status["state"] == "READY", 5.0)
    paused_at = runner.snapshot["elapsed_s"]
    assert runner.snapshot["phase"] == "paused" and runner.snapshot["paused_reason"] == "paused by Ann"
    assert wait_until(lambda: bench.controller.status["t_mono"] > 0 and runner.snapshot["elapsed_s"] == paused_at
                      and bench.emulator.belt_speed_mps == 0.0, 2.0)
    runner.request("resume", THERAPIST)
    assert wait_until(lambda: runner.snapshot["phase"] == "walking" and runner.snapshot["elapsed_s"] > paused_at + 1,
                      8.0)

    bench.patient.set_drift(10.0)  # carried towards the edge: warn, then trip
    assert wait_until(lambda: bench.controller.status["state"] == "STOPPED", 10.0)
    assert wait_until(lambda: runner.snapshot["paused_reason"] and
                      runner.snapshot["paused_reason"].startswith("tripped: "), 2.0), runner.snapshot
    bench.patient.set_drift(0.0)
    reply = runner.request("end", THERAPIST)
    assert reply["session"]["status"] == "ended" and reply["session"]["end_reason"] == "ended by Ann"
    bench.controller.history.flush()
    page = runner.session_page(sid)
    summary = page["session"]
    assert summary["trips"] == 1 and summary["warnings"] >= 1
    trip = next(e for e in page["events"] if e["kind"] == "trip")
    assert summary["closest_mm"] <= trip["figures"]["gap_mm"] <= 400


def test_a_session_needs_ready_and_a_therapist_and_refuses_bad_values_naming_the_field(session_bench):
    from controller.therapy.runner import SessionError
    bench = session_bench()
    runner = bench.controller.sessions
    bench.command(CommandKind.ESTOP)
    with pytest.raises(SessionError) as exc:
        runner.request("start", {"patient_id": "P-0042", "planned_min": 5, "pain_before": 2, **THERAPIST})
    assert exc.value.code == "conflict" and "reset it first" in exc.value.message
    with pytest.raises(SessionError) as exc:
        runner.request("start", {"patient_id": "P-0042", "planned_min": 5, "pain_before": 2, "actor": "x"})
    assert exc.value.code == "unauthorized"
    with pytest.raises(SessionError) as exc:
        runner.request("start", {"patient_id": "P-0042", "planned_min": 90, "pain_before": 11, **THERAPIST})
    assert exc.value.code == "invalid"
    assert "[session] planned_min = 90: must be a number from 0.25 to 60 min" in exc.value.message
    assert "[session] pain_before = 11: must be a whole number from 0 to 10" in exc.value.message
    with pytest.raises(SessionError) as exc:
        runner.request("start", {"patient_id": "P-9", "planned_min": 5, "pain_before": 1, **THERAPIST})
    assert exc.value.code == "not_found"
    assert bench.controller.history.read(lambda conn: conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]) == 0
    assert isinstance(bench.controller.history, HistoryStore)
