"""The outbox of a clinic's treadmill: every change of history.db noted in its own transaction, read in
bounded batches as the rows are now, forgotten only once acknowledged; the clinic's own rows not sent back."""

from __future__ import annotations

import pytest

from controller.safety.types import Event, EventKind
from controller.storage import outbox, records
from controller.storage.store import HistoryStore

PATIENT = {"patient_id": "P-1", "display_name": "A.B.", "notes": "", "mode": "reverse", "speed_cap_kmh": 1.5,
           "base_stop_mm": 300.0, "warn_margin_mm": 200.0, "target_min": 20.0, "sessions_per_day": 2}


def open_store(tmp_path, clinic: bool) -> HistoryStore:
    store = HistoryStore(tmp_path, clinic=clinic)
    store.start()
    return store


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path, clinic=True)
    try:
        yield s
    finally:
        s.close()


def session_with_samples(store: HistoryStore, n: int) -> int:
    store.call(lambda conn: records.insert_patient(conn, PATIENT, 1.0))
    sid = store.call(lambda conn: records.insert_session(conn, "P-1", 100.0, 5.0, "reverse", 2, 0.8))
    store.call(lambda conn: records.insert_samples(conn, sid, 0, [(i / 10, 600.0, 0.8, "RUNNING", False)
                                                                  for i in range(n)]))
    return sid


def test_every_change_is_noted_and_a_batch_carries_each_row_once_as_it_is_now(store):
    sid = session_with_samples(store, 5)
    for duration in (1.0, 2.0, 3.0):
        store.call(lambda conn, d=duration: records.update_session(conn, sid, duration_s=d))
    store.put(Event(0.0, EventKind.TRIP, "edge", "too close", ""))
    assert store.flush()
    assert store.outbox[0] == 1 + 1 + 5 + 3 + 1  # patient, session, 5 samples, 3 updates, the event

    batch = store.read(lambda conn: outbox.read_batch(conn, 0, 100))
    tables = [item["table"] for item in batch["items"]]
    assert tables == ["patients", "sessions"] + ["samples"] * 5 + ["events"], "one item per row, in table order"
    session = batch["items"][1]["row"]
    assert session["session_id"] == sid and session["duration_s"] == 3.0, "the session as it is now"
    assert [i["row"]["seq"] for i in batch["items"][2:7]] == [0, 1, 2, 3, 4]
    assert batch["items"][-1]["row"]["code"] == "edge" and batch["items"][-1]["row"]["figures"] == {}

    assert store.call(lambda conn: outbox.acknowledge(conn, batch["last_id"])) == 11
    assert store.outbox == (0, None)
    assert store.read(lambda conn: outbox.read_batch(conn, 0, 100))["items"] == []


def test_batches_are_bounded_and_a_change_after_the_read_is_not_acknowledged_with_it(store):
    sid = session_with_samples(store, 30)
    first = store.read(lambda conn: outbox.read_batch(conn, 0, 10))
    assert len(first["items"]) == 10 and first["backlog"] == 32
    store.call(lambda conn: records.update_session(conn, sid, duration_s=9.0))  # after the read
    store.call(lambda conn: outbox.acknowledge(conn, first["last_id"]))
    rest = store.read(lambda conn: outbox.read_batch(conn, 0, 1000))
    assert rest["items"][0]["table"] == "sessions" and rest["items"][0]["row"]["duration_s"] == 9.0
    assert len([i for i in rest["items"] if i["table"] == "samples"]) == 22
    assert store.health()["outbox"] == 23 and store.health()["outbox_oldest_wall"] is not None


def test_a_session_deleted_before_it_was_shipped_goes_as_a_delete(store):
    store.call(lambda conn: records.insert_patient(conn, PATIENT, 1.0))
    sid = store.call(lambda conn: records.insert_session(conn, "P-1", 100.0, 5.0, "reverse", 2, 0.8))
    store.call(lambda conn: records.delete_session(conn, sid))
    items = store.read(lambda conn: outbox.read_batch(conn, 0, 100))["items"]
    assert {"table": "sessions", "key": str(sid), "row": None} in items


def test_the_clinics_own_patients_written_quietly_are_not_sent_back(store):
    row = {**PATIENT, "created_wall": 5.0, "updated_wall": 6.0, "version": 3}
    assert store.call(lambda conn: outbox.quietly(conn, lambda c: records.store_clinic_patient(c, row))) == "added"
    assert store.call(lambda conn: outbox.quietly(conn, lambda c: records.store_clinic_patient(c, row))) == "same"
    assert store.outbox[0] == 0
    assert store.read(lambda conn: records.get_patient(conn, "P-1"))["version"] == 3
    store.call(lambda conn: records.update_patient(conn, {**PATIENT, "notes": "edited here"}, 7.0))
    assert [i["table"] for i in store.read(lambda conn: outbox.read_batch(conn, 0, 10))["items"]] == ["patients"]


def test_a_treadmill_on_its_own_keeps_no_outbox(tmp_path):
    store = open_store(tmp_path, clinic=False)
    try:
        session_with_samples(store, 3)
        assert store.read(lambda conn: conn.execute("SELECT count(*) FROM outbox").fetchone()[0]) == 0
        assert "outbox" not in store.health()
    finally:
        store.close()


def test_the_outbox_survives_a_restart_with_its_figure(tmp_path):
    store = open_store(tmp_path, clinic=True)
    try:
        session_with_samples(store, 4)
    finally:
        store.close()
    again = open_store(tmp_path, clinic=True)
    try:
        assert again.outbox[0] == 6
    finally:
        again.close()


def test_other_treadmills_sessions_join_the_patients_history_newest_first(store):
    sid = session_with_samples(store, 1)
    remote = {"treadmill_id": "B", "local_id": 7, "patient_id": "P-1", "status": "completed", "started_wall": 200.0,
              "ended_wall": 500.0, "planned_min": 5.0, "mode": "reverse", "duration_s": 300.0, "distance_m": 60.0,
              "max_kmh": 0.8, "warnings": 1, "trips": 0, "closest_mm": 400.0, "pain_before": 2, "pain_after": 1,
              "end_reason": "target reached", "start_speed_kmh": 0.8, "changed": 12}
    store.call(lambda conn: records.store_clinic_session(conn, remote))
    history = store.read(lambda conn: records.clinic_history(conn, "P-1", "A"))
    assert [(s["treadmill_id"], s["session_id"]) for s in history] == [("B", None), ("A", sid)]
    assert history[0]["mean_kmh"] == pytest.approx(0.72) and history[0]["pain_flag"] is False
