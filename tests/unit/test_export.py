"""History export: a consistent copy and readable files, taken while the controller keeps writing."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading
import time
from datetime import datetime

import pytest

from controller.storage import records
from controller.storage.export import export_history
from controller.safety.types import Event
from controller.storage.database import StorageError
from controller.storage.store import HistoryStore
from tests.waiting import expect

NOW = 1_760_000_000.0  # a fixed export time, so the directory name is known
CSV_HEADER = ["session_id", "patient_id", "status", "started", "ended", "planned_min", "mode", "duration_s",
              "distance_m", "mean_kmh", "max_kmh", "warnings", "trips", "closest_mm", "pain_before", "pain_after",
              "pain_flag", "end_reason"]


def patient(pid: str, name: str) -> dict:
    return {"patient_id": pid, "display_name": name, "notes": "=HYPERLINK(\"x\")", "mode": "reverse",
            "speed_cap_kmh": 1.5, "base_stop_mm": 300.0, "warn_margin_mm": 200.0, "target_min": 20.0,
            "sessions_per_day": 2}


def iso(wall: float | None) -> str:
    return "" if wall is None else datetime.fromtimestamp(wall).astimezone().isoformat(timespec="seconds")


def cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return str(round(value, 3))
    return str(value)


def read_csv(path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


@pytest.fixture
def store(tmp_path):
    s = HistoryStore(tmp_path / "state", retry_s=0.05)
    s.start()
    try:
        yield s
    finally:
        s.close()


def fill_history(store: HistoryStore) -> tuple[int, int]:
    """Two patients, a finished session with a timeline and one still running; returns their ids."""
    def setup(conn):
        records.insert_patient(conn, patient("P-002", "Bea"), 100.0)
        records.insert_patient(conn, patient("P-001", "Ann"), 200.0)
        done = records.insert_session(conn, "P-001", 1000.0, 5.0, "reverse", 3)
        records.update_session(conn, done, status="ended", ended_wall=1290.5, duration_s=280.0, distance_m=77.7,
                               max_kmh=1.234567, warnings=2, trips=1, closest_mm=251.25, pain_after=5,
                               end_reason="-ended by Ann")
        records.insert_samples(conn, done, 0, [(i / 10, None if i % 7 == 0 else 400.0 + i, 1.1, "RUNNING", i % 2)
                                               for i in range(50)])
        running = records.insert_session(conn, "P-002", 2000.0, 10.0, "forward", 0)
        return done, running
    ids = store.call(setup)
    store.put(Event(time.monotonic(), "trip", "stop_zone", "patient too close", figures={"gap_mm": 240.0}))
    return ids


class SessionWriter:
    """Stands in for the controller's session writer: samples and the summary, together, until stopped."""

    def __init__(self, store: HistoryStore, session_id: int):
        self.store, self.session_id = store, session_id
        self.seq = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="session-writer-stand-in", daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.002):  # about the pace of a busy controller, not a test wait
            self.store.record(self._sample_op(self.seq), droppable=True)
            self.seq += 1

    def _sample_op(self, seq: int):
        t_s = seq / 10

        def write(conn):
            records.insert_samples(conn, self.session_id, seq, [(t_s, 500.0, 1.0, "RUNNING", 0)])
            records.update_session(conn, self.session_id, duration_s=t_s, distance_m=t_s / 3.6)
        return write

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)


def test_an_export_taken_while_a_session_is_written_is_consistent(store, tmp_path):
    done, running = fill_history(store)
    out = tmp_path / "usb" / "exports"
    with SessionWriter(store, running) as writer:
        expect(lambda: store.read(lambda c: records.samples(c, running, 0, 1)[1]) >= 20,
               what="the session writer to be writing")
        target = export_history(store.path, out, now=lambda: NOW)
        seq_at_export = writer.seq
        expect(lambda: writer.seq > seq_at_export + 5, what="the writer to go on after the export")
    assert store.flush()

    assert target == out / f"treadmill-history-{time.strftime('%Y%m%d-%H%M%S', time.localtime(NOW))}"
    assert sorted(p.name for p in out.iterdir()) == [target.name], "no partial directory left"
    assert sorted(p.name for p in (target / "samples").iterdir()) == [f"session-{done}.csv",
                                                                      f"session-{running}.csv"]
    copy = sqlite3.connect(target / "history.db")
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        copied_running = records.get_session(copy, running)
        copied_rows, copied_total = records.samples(copy, running)
        assert copy.execute("SELECT code FROM events").fetchall() == [("stop_zone",)]
    finally:
        copy.close()
    # The summary and the timeline were written together, so one snapshot shows them agreeing.
    assert copied_total >= 20 and copied_running["duration_s"] == copied_rows[-1][0]
    timeline = read_csv(target / "samples" / f"session-{running}.csv")
    assert len(timeline) == 1 + copied_total
    assert store.read(lambda c: records.samples(c, running, 0, 1)[1]) > copied_total, "the live database went on"


def test_sessions_csv_matches_the_database_field_by_field(store, tmp_path):
    done, running = fill_history(store)
    target = export_history(store.path, tmp_path / "out", now=lambda: NOW)
    rows = read_csv(target / "sessions.csv")
    assert rows[0] == CSV_HEADER
    db = {s["session_id"]: s for s in store.read(records.all_sessions)}
    assert [int(r[0]) for r in rows[1:]] == [done, running]
    for row in rows[1:]:
        s = dict(zip(CSV_HEADER, row))
        summary = db[int(s["session_id"])]
        for key in ("session_id", "patient_id", "status", "planned_min", "mode", "duration_s", "distance_m",
                    "mean_kmh", "max_kmh", "warnings", "trips", "closest_mm", "pain_before", "pain_after",
                    "pain_flag"):
            assert s[key] == cell(summary[key]), key
        assert s["started"] == iso(summary["started_wall"]) and s["ended"] == iso(summary["ended_wall"])
    ended = dict(zip(CSV_HEADER, rows[1]))
    assert (ended["max_kmh"], ended["mean_kmh"], ended["pain_flag"]) == ("1.235", "0.999", "1")
    assert ended["end_reason"] == "'-ended by Ann", "a cell a spreadsheet would run is neutralised"
    active = dict(zip(CSV_HEADER, rows[2]))
    assert (active["ended"], active["closest_mm"], active["pain_after"], active["end_reason"]) == ("", "", "", "")


def test_samples_csv_matches_the_timeline_row_by_row(store, tmp_path):
    done, _ = fill_history(store)
    target = export_history(store.path, tmp_path / "out", now=lambda: NOW)
    rows = read_csv(target / "samples" / f"session-{done}.csv")
    assert rows[0] == ["t_s", "gap_mm", "belt_kmh", "state", "warning"]
    db_rows, total = store.read(lambda c: records.samples(c, done))
    assert total == 50 and len(rows) == 51
    for got, want in zip(rows[1:], db_rows):
        assert got == [cell(v) for v in want]
    assert rows[1] == ["0.0", "", "1.1", "RUNNING", "0"] and rows[2] == ["0.1", "401.0", "1.1", "RUNNING", "1"]


def test_patients_json_holds_every_profile(store, tmp_path):
    fill_history(store)
    target = export_history(store.path, tmp_path / "out", now=lambda: NOW)
    exported = json.loads((target / "patients.json").read_text(encoding="utf-8"))
    assert exported == store.read(records.list_patients)
    assert [p["patient_id"] for p in exported] == ["P-001", "P-002"]
    assert exported[0] == {**patient("P-001", "Ann"), "created_wall": 200.0, "updated_wall": 200.0, "version": 0}


def test_exporting_a_missing_database_is_a_storage_error(tmp_path):
    with pytest.raises(StorageError, match=f"cannot read {tmp_path / 'history.db'}: no such database"):
        export_history(tmp_path / "history.db", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_exporting_to_a_place_that_cannot_hold_a_directory_is_a_storage_error(store, tmp_path):
    fill_history(store)
    blocker = tmp_path / "usb"
    blocker.write_text("a regular file, not a mount point")
    with pytest.raises(StorageError, match=f"cannot export to {blocker / 'exports'}"):
        export_history(store.path, blocker / "exports")


def test_a_second_export_in_the_same_second_is_refused_and_keeps_the_first(store, tmp_path):
    fill_history(store)
    first = export_history(store.path, tmp_path / "out", now=lambda: NOW)
    with pytest.raises(StorageError, match="already exists"):
        export_history(store.path, tmp_path / "out", now=lambda: NOW)
    assert (first / "sessions.csv").is_file()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [first.name]
