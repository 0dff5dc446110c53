"""Each timeline sample keeps the stop and warn distances in force when it was taken (for the chart's bands)."""

from __future__ import annotations

import sqlite3

import pytest

from controller.storage import records
from controller.storage.database import connect
from controller.therapy.tracker import SessionTracker

OLD_SAMPLES = """
CREATE TABLE samples (
    session_id INTEGER NOT NULL, seq INTEGER NOT NULL, t_s REAL NOT NULL, gap_mm REAL,
    belt_kmh REAL NOT NULL, state INTEGER NOT NULL, warning INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
INSERT INTO samples VALUES (1, 0, 0.0, 600.0, 1.0, 2, 0);
"""


def _session(conn) -> int:
    records.insert_patient(conn, {"patient_id": "P-1", "display_name": "A", "notes": "", "mode": "reverse",
                                  "speed_cap_kmh": 1.5, "base_stop_mm": 300.0, "warn_margin_mm": 200.0,
                                  "target_min": 20.0, "sessions_per_day": 2}, 1.0)
    return records.insert_session(conn, "P-1", 1000.0, 5.0, "reverse", 3)


def test_samples_store_their_stop_and_warn_distances_and_older_rows_have_none(tmp_path):
    conn = connect(tmp_path / "history.db")
    try:
        sid = _session(conn)
        records.insert_samples(conn, sid, 0, [(0.0, 600.0, 1.0, "RUNNING", 0, 480.5, 680.5),
                                              (0.1, 590.0, 1.0, "RUNNING", 0)])
        assert records.samples(conn, sid, limits=True)[0] == [[0.0, 600.0, 1.0, "RUNNING", 0, 480.5, 680.5],
                                                              [0.1, 590.0, 1.0, "RUNNING", 0, None, None]]
        # Without limits the rows keep the five columns of the CSV layouts.
        assert records.samples(conn, sid)[0] == [[0.0, 600.0, 1.0, "RUNNING", 0], [0.1, 590.0, 1.0, "RUNNING", 0]]
        with pytest.raises(ValueError, match="5 or 7"):
            records.insert_samples(conn, sid, 2, [(0.2, 590.0, 1.0, "RUNNING", 0, 480.0)])
    finally:
        conn.close()


def test_a_database_made_before_the_distances_gets_the_columns_empty(tmp_path):
    path = tmp_path / "history.db"
    old = sqlite3.connect(path)
    old.executescript(OLD_SAMPLES)
    old.close()
    conn = connect(path)
    try:
        assert records.samples(conn, 1, limits=True)[0] == [[0.0, 600.0, 1.0, "RUNNING", 0, None, None]]
        conn.close()
        conn = connect(path)                                   # opening again changes nothing
        assert [r[1] for r in conn.execute("PRAGMA table_info(samples)")][-2:] == ["stop_mm", "warn_mm"]
    finally:
        conn.close()


def test_the_tracker_samples_the_distances_of_the_status():
    tr = SessionTracker(7, "P-1", 60.0, 100.0, end_warning_s=30.0, sample_hz=10.0, started_wall=1.7e9)
    tr.feed({"t_mono": 100.0, "state": "RUNNING", "belt_speed_mps": 0.5, "gap_mm": 700.0, "warning": False,
             "reasons": {}, "target_mps": 0.5, "stop_distance_mm": 506.04, "warn_distance_mm": 706.04})
    tr.feed({"t_mono": 100.2, "state": "RUNNING", "belt_speed_mps": 0.5, "gap_mm": 700.0, "warning": False,
             "reasons": {}, "target_mps": 0.5})
    _, rows = tr.take_samples()
    assert rows[0][5:] == (506.0, 706.0) and rows[1][5:] == (None, None)
