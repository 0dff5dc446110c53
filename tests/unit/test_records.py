"""Therapy records in SQL: profiles, session summaries and timelines round-trip exactly."""

from __future__ import annotations

import sqlite3

import pytest

from controller.storage import records
from controller.storage.database import connect

SPEC_SUMMARY_KEYS = ["session_id", "patient_id", "status", "started_wall", "ended_wall", "planned_min", "mode",
                     "duration_s", "distance_m", "mean_kmh", "max_kmh", "warnings", "trips", "closest_mm",
                     "pain_before", "pain_after", "pain_flag", "end_reason", "start_speed_kmh"]


def patient(pid: str = "P-001", **changes) -> dict:
    p = {"patient_id": pid, "display_name": "Ann B.", "notes": "left knee", "mode": "reverse",
         "speed_cap_kmh": 1.5, "base_stop_mm": 300.0, "warn_margin_mm": 200.0, "target_min": 20.0,
         "sessions_per_day": 2}
    p.update(changes)
    return p


@pytest.fixture
def conn(tmp_path):
    c = connect(tmp_path / "history.db")
    try:
        yield c
    finally:
        c.close()


def test_a_patient_round_trips_with_its_times(conn):
    stored = records.insert_patient(conn, patient(), 100.0)
    assert stored == {**patient(), "created_wall": 100.0, "updated_wall": 100.0, "version": 0}
    assert records.get_patient(conn, "P-001") == stored


def test_a_duplicate_patient_id_is_an_integrity_error_and_keeps_the_first(conn):
    records.insert_patient(conn, patient(), 100.0)
    with pytest.raises(sqlite3.IntegrityError):
        records.insert_patient(conn, patient(display_name="Other"), 200.0)
    assert records.get_patient(conn, "P-001")["display_name"] == "Ann B."


def test_updating_a_patient_keeps_its_creation_time(conn):
    records.insert_patient(conn, patient(), 100.0)
    updated = records.update_patient(conn, patient(speed_cap_kmh=1.2, notes="", sessions_per_day=1), 250.0)
    assert updated == {**patient(speed_cap_kmh=1.2, notes="", sessions_per_day=1),
                       "created_wall": 100.0, "updated_wall": 250.0, "version": 0}


def test_updating_or_deleting_an_unknown_patient_is_a_lookup_error(conn):
    with pytest.raises(LookupError, match="nobody"):
        records.update_patient(conn, patient("nobody"), 1.0)
    with pytest.raises(LookupError, match="nobody"):
        records.delete_patient(conn, "nobody")
    assert records.get_patient(conn, "nobody") is None


def test_a_patient_record_missing_a_field_is_refused(conn):
    p = patient()
    del p["target_min"]
    with pytest.raises(ValueError, match="target_min"):
        records.insert_patient(conn, p, 1.0)
    assert records.list_patients(conn) == []


def test_patients_are_listed_by_id(conn):
    for pid in ("b-2", "A1", "a-1"):
        records.insert_patient(conn, patient(pid), 1.0)
    assert [p["patient_id"] for p in records.list_patients(conn)] == sorted(["b-2", "A1", "a-1"])


def test_a_new_session_is_active_with_zero_figures(conn):
    records.insert_patient(conn, patient(), 1.0)
    sid = records.insert_session(conn, "P-001", 1000.0, 5.0, "reverse", 3)
    summary = records.get_session(conn, sid)
    assert list(summary) == SPEC_SUMMARY_KEYS
    assert summary == {"session_id": sid, "patient_id": "P-001", "status": "active", "started_wall": 1000.0,
                       "ended_wall": None, "planned_min": 5.0, "mode": "reverse", "duration_s": 0.0,
                       "distance_m": 0.0, "mean_kmh": 0.0, "max_kmh": 0.0, "warnings": 0, "trips": 0,
                       "closest_mm": None, "pain_before": 3, "pain_after": None, "pain_flag": False,
                       "end_reason": None, "start_speed_kmh": None}
    assert records.get_session(conn, sid + 1) is None
    started = records.insert_session(conn, "P-001", 1001.0, 5.0, "reverse", 3, 0.8)
    assert records.get_session(conn, started)["start_speed_kmh"] == 0.8


def test_a_database_made_before_start_speeds_gets_the_column_empty(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(records.SCHEMA.replace(",\n    start_speed_kmh REAL\n", "\n"))
    old.execute("INSERT INTO patients VALUES ('P-001', 'A.B.', '', 'reverse', 1.5, 300, 200, 20, 2, 1.0, 1.0)")
    old.execute("INSERT INTO sessions (patient_id, status, started_wall, planned_min, mode, pain_before) "
                "VALUES ('P-001', 'completed', 5.0, 5.0, 'reverse', 3)")
    old.commit()
    assert "start_speed_kmh" not in {row[1] for row in old.execute("PRAGMA table_info(sessions)")}
    old.close()
    migrated = connect(path)
    try:
        assert records.list_sessions(migrated, "P-001")[0]["start_speed_kmh"] is None
    finally:
        migrated.close()


def test_a_session_of_an_unknown_patient_is_refused(conn):
    with pytest.raises(sqlite3.IntegrityError):
        records.insert_session(conn, "ghost", 1.0, 5.0, "reverse", 0)


def test_session_updates_show_in_the_summary_with_mean_speed_and_pain_flag(conn):
    records.insert_patient(conn, patient(), 1.0)
    sid = records.insert_session(conn, "P-001", 1000.0, 5.0, "reverse", 3)
    records.update_session(conn, sid, status="completed", ended_wall=1310.0, duration_s=300.0, distance_m=100.0,
                           max_kmh=1.4, warnings=2, trips=1, closest_mm=250.0, end_reason="target reached")
    records.update_session(conn, sid, pain_after=4)
    s = records.get_session(conn, sid)
    assert (s["status"], s["ended_wall"], s["duration_s"], s["distance_m"], s["max_kmh"]) == \
        ("completed", 1310.0, 300.0, 100.0, 1.4)
    assert (s["warnings"], s["trips"], s["closest_mm"], s["end_reason"]) == (2, 1, 250.0, "target reached")
    assert s["mean_kmh"] == pytest.approx(100.0 / 300.0 * 3.6)
    assert s["pain_after"] == 4 and s["pain_flag"] is True
    records.update_session(conn, sid, pain_after=3)
    assert records.get_session(conn, sid)["pain_flag"] is False


def test_an_unknown_session_field_or_session_is_refused(conn):
    records.insert_patient(conn, patient(), 1.0)
    sid = records.insert_session(conn, "P-001", 1000.0, 5.0, "reverse", 3)
    with pytest.raises(ValueError, match="pain_before"):
        records.update_session(conn, sid, pain_before=9)
    with pytest.raises(LookupError):
        records.update_session(conn, sid + 1, status="ended")
    assert records.get_session(conn, sid)["pain_before"] == 3


def test_sessions_are_listed_newest_first_per_patient(conn):
    records.insert_patient(conn, patient("A"), 1.0)
    records.insert_patient(conn, patient("B"), 1.0)
    first = records.insert_session(conn, "A", 1000.0, 5.0, "reverse", 1)
    other = records.insert_session(conn, "B", 1500.0, 5.0, "forward", 1)
    second = records.insert_session(conn, "A", 2000.0, 6.0, "reverse", 2)
    assert [s["session_id"] for s in records.list_sessions(conn, "A")] == [second, first]
    assert [s["session_id"] for s in records.all_sessions(conn)] == [first, other, second]


def test_samples_round_trip_in_pages_with_their_state_names(conn):
    records.insert_patient(conn, patient(), 1.0)
    sid = records.insert_session(conn, "P-001", 1000.0, 5.0, "reverse", 3)
    states = ["STOPPED", "READY", "RUNNING", "STOPPING"]
    rows = [(i * 0.1, None if i == 3 else 500.0 + i, 1.0 + i / 10, states[i % 4], i % 2) for i in range(10)]
    records.insert_samples(conn, sid, 0, rows[:6])
    records.insert_samples(conn, sid, 6, rows[6:])
    page, total = records.samples(conn, sid, 0, 4)
    assert total == 10 and page == [list(r) for r in rows[:4]]
    rest, total = records.samples(conn, sid, 4, 100)
    assert total == 10 and rest == [list(r) for r in rows[4:]]
    assert records.samples(conn, sid)[0] == [list(r) for r in rows]
    assert records.samples(conn, sid, 10, 5) == ([], 10)


def test_sample_states_are_stored_as_small_integer_codes(conn):
    records.insert_patient(conn, patient(), 1.0)
    sid = records.insert_session(conn, "P-001", 1000.0, 5.0, "reverse", 3)
    records.insert_samples(conn, sid, 0, [(0.0, 400.0, 1.0, name, True) for name in records.STATE_NAMES])
    stored = conn.execute("SELECT state, typeof(state), warning FROM samples ORDER BY seq").fetchall()
    assert stored == [(code, "integer", 1) for code in range(4)]
    assert [records.STATE_CODES[n] for n in ("STOPPED", "READY", "RUNNING", "STOPPING")] == [0, 1, 2, 3]


def test_a_sample_with_an_unknown_state_is_refused_whole(conn):
    records.insert_patient(conn, patient(), 1.0)
    sid = records.insert_session(conn, "P-001", 1000.0, 5.0, "reverse", 3)
    with pytest.raises(ValueError, match="WALKING"):
        records.insert_samples(conn, sid, 0, [(0.0, 400.0, 1.0, "RUNNING", 0), (0.1, 400.0, 1.0, "WALKING", 0)])
    assert records.samples(conn, sid) == ([], 0)


def test_deleting_a_patient_deletes_its_sessions_and_samples_only(conn):
    records.insert_patient(conn, patient("A"), 1.0)
    records.insert_patient(conn, patient("B"), 1.0)
    gone = records.insert_session(conn, "A", 1000.0, 5.0, "reverse", 1)
    kept = records.insert_session(conn, "B", 1000.0, 5.0, "reverse", 1)
    for sid in (gone, kept):
        records.insert_samples(conn, sid, 0, [(0.0, 400.0, 1.0, "RUNNING", 0)])
    records.delete_patient(conn, "A")
    assert records.get_patient(conn, "A") is None and records.get_session(conn, gone) is None
    assert records.samples(conn, gone) == ([], 0)
    assert records.get_session(conn, kept) is not None and records.samples(conn, kept)[1] == 1


def test_deleting_a_session_deletes_its_samples_and_keeps_the_patient(conn):
    records.insert_patient(conn, patient(), 1.0)
    sid = records.insert_session(conn, "P-001", 1000.0, 5.0, "reverse", 3)
    records.insert_samples(conn, sid, 0, [(0.0, 400.0, 1.0, "READY", 0)])
    records.delete_session(conn, sid)
    assert records.get_session(conn, sid) is None and records.samples(conn, sid) == ([], 0)
    assert records.get_patient(conn, "P-001") is not None
    with pytest.raises(LookupError):
        records.delete_session(conn, sid)


def test_a_crashed_session_is_interrupted_at_its_last_sample_with_its_last_figures(conn):
    records.insert_patient(conn, patient(), 1.0)
    sampled = records.insert_session(conn, "P-001", 1000.0, 10.0, "reverse", 3)
    records.update_session(conn, sampled, duration_s=41.0, distance_m=12.5, max_kmh=1.3, warnings=1,
                           closest_mm=320.0)
    records.insert_samples(conn, sampled, 0, [(t / 10, 400.0, 1.2, "RUNNING", 0) for t in range(425)])
    unsampled = records.insert_session(conn, "P-001", 5000.0, 10.0, "reverse", 2)
    records.update_session(conn, unsampled, duration_s=7.0)
    done = records.insert_session(conn, "P-001", 500.0, 5.0, "reverse", 2)
    records.update_session(conn, done, status="completed", ended_wall=800.0, end_reason="target reached")

    assert records.recover_interrupted(conn) == [sampled, unsampled]

    s = records.get_session(conn, sampled)
    assert (s["status"], s["end_reason"]) == ("interrupted", "controller restarted after a crash")
    assert s["ended_wall"] == pytest.approx(1000.0 + 42.4)
    assert (s["duration_s"], s["distance_m"], s["max_kmh"], s["warnings"], s["closest_mm"]) == \
        (41.0, 12.5, 1.3, 1, 320.0)
    u = records.get_session(conn, unsampled)
    assert (u["status"], u["ended_wall"]) == ("interrupted", 5007.0)
    assert records.get_session(conn, done)["status"] == "completed"
    assert records.recover_interrupted(conn) == []


def test_pruning_deletes_old_timelines_and_keeps_every_summary(conn):
    records.insert_patient(conn, patient(), 1.0)
    old = records.insert_session(conn, "P-001", 1000.0, 5.0, "reverse", 1)
    new = records.insert_session(conn, "P-001", 9000.0, 5.0, "reverse", 1)
    for sid in (old, new):
        records.insert_samples(conn, sid, 0, [(i / 10, 400.0, 1.0, "RUNNING", 0) for i in range(3)])
    assert records.prune_samples(conn, 5000.0) == 3
    assert records.samples(conn, old) == ([], 0) and records.samples(conn, new)[1] == 3
    assert records.get_session(conn, old) is not None
    assert records.prune_samples(conn, 5000.0) == 0
