"""History store and therapist settings: off the safety path, atomic, and nothing lost to a bad disk."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import os
import sqlite3
import threading

import pytest

from controller.storage import records
from controller.safety.types import Event
from controller.storage.database import StorageError, connect
from controller.files import atomic_write_text
from controller.storage.settings import SettingsStore
from controller.storage.store import HistoryStore
from tests.unit.rig import example_config
from tests.waiting import expect


def patient(pid: str) -> dict:
    return {"patient_id": pid, "display_name": f"Patient {pid}", "notes": "", "mode": "reverse",
            "speed_cap_kmh": 1.5, "base_stop_mm": 300.0, "warn_margin_mm": 200.0, "target_min": 20.0,
            "sessions_per_day": 2}


def add_patient(pid: str, wall: float = 1.0, notes: str = ""):
    """A record op that stores one patient (its created_wall shows the write order)."""
    return lambda conn: records.insert_patient(conn, {**patient(pid), "notes": notes}, wall)


def count(store: HistoryStore, table: str) -> int:
    return store.read(lambda conn: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def patient_ids(store: HistoryStore) -> list[str]:
    return [p["patient_id"] for p in store.read(records.list_patients)]


@pytest.fixture
def store(tmp_path):
    s = HistoryStore(tmp_path, retry_s=0.05)
    s.start()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def lock_holder(store):
    """A second connection that can take the database's write lock, as another writer would."""
    assert store.call(lambda conn: None) is None  # the database exists
    conn = sqlite3.connect(store.path, isolation_level=None, timeout=0)
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


class Handles:
    """A connect seam that keeps each connection it makes, so a test can inject and lift a fault."""

    def __init__(self, *pragmas: str):
        self.pragmas = pragmas
        self.conns: list[sqlite3.Connection] = []

    def __call__(self, path):
        conn = connect(path)
        for pragma in self.pragmas:
            conn.execute(pragma.format(pages=conn.execute("PRAGMA page_count").fetchone()[0]))
        self.conns.append(conn)
        return conn


def test_events_are_written_to_history_db_in_wal_mode_with_their_figures(tmp_path):
    store = HistoryStore(tmp_path, wall_clock=lambda: 1000.0, mono_clock=lambda: 50.0)
    store.start()
    store.put(Event(45.0, "trip", "stop_zone", "patient too close", figures={"gap_mm": 240.0}))
    store.put(Event(49.5, "command", "reset", "ready", actor="ann"))
    assert store.flush()
    rows = store.recent(10)
    store.close()
    assert store.path == tmp_path / "history.db"
    assert [r["code"] for r in rows] == ["reset", "stop_zone"]
    assert rows[1]["figures"] == {"gap_mm": 240.0} and rows[0]["actor"] == "ann"
    assert [r["wall_time"] for r in rows] == [999.5, 995.0]
    assert store.written == 2 and store.health()["ok"]
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_recent_filters_events_by_kinds_and_wall_time_span(tmp_path):
    clock = {"wall": 0.0}
    store = HistoryStore(tmp_path, wall_clock=lambda: clock["wall"], mono_clock=lambda: 0.0)
    store.start()
    for wall, kind in ((100.0, "warn"), (200.0, "trip"), (300.0, "state"), (400.0, "warn"), (500.0, "trip")):
        clock["wall"] = wall
        store.put(Event(0.0, kind, kind, f"{kind} at {wall}"))
    assert store.flush()
    span = store.recent(None, since_wall=200.0, until_wall=400.0, kinds=("warn", "trip"))
    store.close()
    assert [(r["wall_time"], r["kind"]) for r in span] == [(400.0, "warn"), (200.0, "trip")]
    assert [r["wall_time"] for r in store.recent(2)] == [500.0, 400.0]
    assert [r["wall_time"] for r in store.recent(10, "trip")] == [500.0, 200.0]


def test_records_calls_and_reads_reach_the_same_database(store):
    store.record(add_patient("P1"))
    created = store.call(add_patient("P2", wall=5.0))
    assert created["patient_id"] == "P2" and created["created_wall"] == 5.0
    assert store.flush()
    assert patient_ids(store) == ["P1", "P2"]
    sid = store.call(lambda conn: records.insert_session(conn, "P1", 10.0, 5.0, "reverse", 2))
    store.record(lambda conn: records.insert_samples(conn, sid, 0, [(0.0, 500.0, 1.0, "RUNNING", 0)]),
                 droppable=True)
    assert store.flush()
    assert store.read(lambda conn: records.samples(conn, sid)) == ([[0.0, 500.0, 1.0, "RUNNING", 0]], 1)


def test_a_calls_own_error_reaches_its_caller_and_rolls_back_only_that_call(store):
    store.call(add_patient("P1"))
    gate = threading.Event()
    store.record(lambda conn: gate.wait(10))  # holds the writer so the next three land in one batch
    store.record(add_patient("before"))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        def duplicate(conn):
            conn.execute("UPDATE patients SET notes = 'changed' WHERE patient_id = 'P1'")
            return records.insert_patient(conn, patient("P1"), 2.0)
        dup = pool.submit(store.call, duplicate)
        expect(lambda: store.health()["backlog"] >= 2, what="the duplicate call queued behind the gate")
        store.record(add_patient("after"))
        gate.set()
        with pytest.raises(sqlite3.IntegrityError):
            dup.result(5)
    assert store.flush()
    assert patient_ids(store) == ["P1", "after", "before"]
    assert store.read(lambda conn: records.get_patient(conn, "P1"))["notes"] == ""
    assert store.health()["ok"] and store.write_errors == 0


def test_a_record_that_is_wrong_is_dropped_and_counted_and_the_rest_are_written(store, caplog):
    store.record(add_patient("A"))
    store.record(add_patient("A"))  # duplicate: can never be written
    store.record(lambda conn: records.update_session(conn, 1, colour="red"))
    store.record(add_patient("B"))
    with caplog.at_level(logging.ERROR, logger="controller.storage.store"):
        assert store.flush()
    assert patient_ids(store) == ["A", "B"]
    assert store.write_errors == 2 and store.health()["ok"]
    assert "colour" in caplog.text and "UNIQUE" in caplog.text


def test_a_call_that_times_out_is_never_written_later(store):
    gate = threading.Event()
    store.record(lambda conn: gate.wait(10))
    with pytest.raises(StorageError, match="no answer within 0.05 s"):
        store.call(add_patient("late"), timeout_s=0.05)
    gate.set()
    assert store.flush()
    assert patient_ids(store) == []


def test_put_task_runs_on_the_writer_and_its_os_error_is_logged(store, caplog):
    ran_on = []

    def fail():
        ran_on.append(threading.current_thread().name)
        raise OSError("no space left on device")

    with caplog.at_level(logging.ERROR, logger="controller.storage.store"):
        store.put_task(fail)
        store.put(Event(1.0, "state", "ready", "ready"))
        assert store.flush()
    assert ran_on == ["history-writer"] and "cannot write settings: no space left" in caplog.text
    assert count(store, "events") == 1


def test_a_locked_database_never_blocks_put_and_loses_nothing(store, lock_holder, caplog):
    lock_holder.execute("BEGIN EXCLUSIVE")
    with caplog.at_level(logging.ERROR, logger="controller.storage.store"):
        for i in range(500):
            store.put(Event(float(i), "state", f"s{i}", "state change"))
            store.record(add_patient(f"P{i:03d}", wall=float(i)), droppable=True)
        assert lock_holder.in_transaction, "put and record returned while the database was locked"
        expect(lambda: not store.health()["ok"], timeout_s=5, what="health to report the lock")
        health = store.health()
        assert f"cannot write to {store.path}: database is locked" in health["message"]
        assert health["backlog"] > 0 and "records held in memory, 0 dropped" in health["message"]
        with pytest.raises(StorageError, match="database is locked"):
            store.call(add_patient("call"))
        assert store.recent(1) == []  # reads go on while another connection holds the write lock
        assert not store.flush(0.05)
        assert lock_holder.in_transaction
        assert caplog.text.count("database is locked") == 1, "one log line per fault episode"
    lock_holder.execute("ROLLBACK")
    expect(lambda: store.health()["ok"], timeout_s=5, what="recovery after the lock is released")
    assert store.flush(5)
    assert count(store, "events") == 500
    assert patient_ids(store) == [f"P{i:03d}" for i in range(500)]
    assert store.health() == {"ok": True, "message": f"history is written to {store.path}", "backlog": 0,
                              "dropped": 0, "write_errors": store.write_errors}


def test_a_full_disk_holds_records_until_there_is_room_again(tmp_path):
    handles = Handles("PRAGMA max_page_count={pages}")  # the file cannot grow by a single page
    store = HistoryStore(tmp_path, connect=handles, retry_s=0.05)
    store.start()
    try:
        for i in range(20):
            store.record(add_patient(f"P{i:02d}", notes="x" * 1500))
            store.put(Event(float(i), "warn", "warn_zone", "close to the edge", figures={"pad": "y" * 500}))
        expect(lambda: not store.health()["ok"], timeout_s=5, what="health to report the full disk")
        expect(lambda: store.health()["backlog"] == 40, what="all 40 records held")
        assert f"cannot write to {store.path}: database or disk is full" in store.health()["message"]
        assert store.write_errors >= 1
        assert "database or disk is full" in store.last_error
        handles.conns[-1].execute("PRAGMA max_page_count=1000000")
        expect(lambda: store.health()["ok"], timeout_s=5, what="recovery once there is room")
        assert store.flush()
        assert patient_ids(store) == [f"P{i:02d}" for i in range(20)]
        assert count(store, "events") == 20
    finally:
        store.close()


def test_a_read_only_database_fails_calls_at_once_and_keeps_records(tmp_path):
    handles = Handles("PRAGMA query_only=1")
    store = HistoryStore(tmp_path, connect=handles, retry_s=0.05)
    store.start()
    try:
        store.record(add_patient("kept"))
        with pytest.raises(StorageError, match=f"cannot write to {store.path}: attempt to write a readonly"):
            store.call(add_patient("refused"))
        assert not store.health()["ok"] and "readonly" in store.health()["message"]
        handles.conns[-1].execute("PRAGMA query_only=0")
        expect(lambda: store.health()["ok"], timeout_s=5, what="recovery once writable")
        assert store.flush()
        assert patient_ids(store) == ["kept"]
    finally:
        store.close()


def test_a_state_dir_inside_a_regular_file_never_raises_and_is_retried(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = HistoryStore(blocker / "state", retry_s=0.05)
    store.start()  # history.db would have to live inside a regular file
    try:
        store.put(Event(1.0, "trip", "estop", "E-stop"))
        expect(lambda: not store.health()["ok"], what="health to report the state dir")
        assert f"cannot open {store.path}" in store.health()["message"] and "cannot open" in store.last_error
        assert not store.flush(0.05)
        with pytest.raises(StorageError, match="cannot open"):
            store.call(add_patient("P1"))
        with pytest.raises(StorageError, match="no such database"):
            store.read(records.list_patients)
        assert store.recent() == []
        blocker.unlink()
        expect(lambda: store.health()["ok"], timeout_s=5, what="the state dir to be created on a retry")
        assert store.flush()
        assert [e["code"] for e in store.recent()] == ["estop"]
    finally:
        store.close()


def test_an_overflowing_backlog_drops_droppable_records_first_then_the_oldest(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = HistoryStore(blocker / "state", retry_s=0.02, max_backlog=5)
    store.start()
    try:
        with caplog.at_level(logging.ERROR, logger="controller.storage.store"):
            for n, (name, droppable) in enumerate([("A1", False), ("A2", False), ("A3", False), ("D1", True),
                                                   ("D2", True), ("D3", True), ("D4", True), ("A4", False)]):
                store.record(add_patient(name, wall=float(n)), droppable=droppable)
            expect(lambda: store.health()["dropped"] == 3, what="three samples dropped")
            for n, name in enumerate(("A5", "A6", "A7"), start=8):
                store.record(add_patient(name, wall=float(n)))
            expect(lambda: store.health()["dropped"] == 6, what="the last sample, then the two oldest dropped")
        health = store.health()
        assert not health["ok"] and health["backlog"] == 5
        assert health["message"].endswith("5 records held in memory, 6 dropped")
        assert caplog.text.count("dropping the oldest") == 1, "one log line per episode"
        blocker.unlink()
        expect(lambda: store.health()["ok"], timeout_s=5, what="recovery")
        assert store.flush()
        assert patient_ids(store) == ["A3", "A4", "A5", "A6", "A7"]
        assert [p["created_wall"] for p in store.read(records.list_patients)] == [2.0, 7.0, 8.0, 9.0, 10.0]
        assert "6 records were dropped" in store.health()["message"]
    finally:
        store.close()


def test_close_with_a_locked_database_returns_within_its_timeout(store, lock_holder, caplog):
    lock_holder.execute("BEGIN EXCLUSIVE")
    store.record(add_patient("P1"))
    expect(lambda: not store.health()["ok"], timeout_s=5, what="health to report the lock")
    store.record(add_patient("P2"))
    with caplog.at_level(logging.ERROR, logger="controller.storage.store"):
        store.close(timeout_s=0.05)
        assert lock_holder.in_transaction, "close returned while the database was still locked"
        store.close()  # idempotent
        with pytest.raises(StorageError, match="not running"):
            store.call(add_patient("P3"))
        expect(lambda: not store.running, timeout_s=5, what="the writer's last attempt to end")
    assert "2 history records were not written" in caplog.text


def test_close_writes_what_is_queued(tmp_path):
    store = HistoryStore(tmp_path)
    store.start()
    for i in range(100):
        store.put(Event(float(i), "state", "s", "state change"))
    store.close()
    assert not store.running and count(store, "events") == 100


def test_reading_a_missing_database_is_a_storage_error(tmp_path):
    store = HistoryStore(tmp_path)
    with pytest.raises(StorageError, match=f"cannot read {store.path}"):
        store.read(records.list_patients)
    assert not store.health()["ok"] and "not started" in store.health()["message"]


def test_connect_creates_every_table_with_foreign_keys_on(tmp_path):
    conn = connect(tmp_path / "history.db")
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"events", "patients", "sessions", "samples"} <= tables
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        conn.close()


def test_settings_round_trip_and_are_written_atomically(tmp_path):
    cfg = example_config()
    store = SettingsStore(tmp_path)
    limits = dataclasses.replace(cfg.limits, reverse_cap_kmh=1.5)
    store.save(limits, "forward")
    assert store.load(cfg) == (limits, "forward", [])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".settings")], "no temp file left"


def test_saved_settings_outside_todays_ceilings_fall_back_to_the_config(tmp_path):
    cfg = example_config()
    store = SettingsStore(tmp_path)
    store.path.write_text(json.dumps({"limits": {**dataclasses.asdict(cfg.limits), "reverse_cap_kmh": 2.5},
                                      "mode": "reverse"}))
    limits, mode, errors = store.load(cfg)
    assert limits == cfg.limits and mode == "reverse"
    assert any("max_reverse_cap_kmh" in str(e) for e in errors)


def test_corrupt_settings_fall_back_to_the_config(tmp_path):
    cfg = example_config()
    store = SettingsStore(tmp_path)
    store.path.write_text("{not json")
    limits, mode, errors = store.load(cfg)
    assert limits == cfg.limits and errors and "unreadable" in str(errors[0])


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "settings.json"
    atomic_write_text(path, "old")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]


def test_a_reader_right_after_start_finds_the_tables(tmp_path):
    """The writer thread may not have run yet: the schema is there before start() returns."""
    store = HistoryStore(tmp_path)
    store.start()
    try:
        assert store.read(records.list_patients) == []
    finally:
        store.close()
