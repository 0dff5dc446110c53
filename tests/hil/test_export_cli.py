"""``treadmill-safety export``: a backup of the history taken while the controller runs."""

from __future__ import annotations

import csv
import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from controller.storage import records
from controller.storage.database import connect
from sim.bench import wait_until
from tests.hil.test_sessions import PATIENT

REPO = Path(__file__).resolve().parents[2]
#: The sessions table of the export, in the spec's order (wall times as ISO 8601 local time).
SESSION_HEADER = ["session_id", "patient_id", "status", "started", "ended", "planned_min", "mode", "duration_s",
                  "distance_m", "mean_kmh", "max_kmh", "warnings", "trips", "closest_mm", "pain_before",
                  "pain_after", "pain_flag", "end_reason"]
SAMPLE_HEADER = ["t_s", "gap_mm", "belt_kmh", "state", "warning"]
STATES = ("STOPPED", "READY", "RUNNING", "STOPPING")


def export(*args: str) -> subprocess.CompletedProcess:
    """``python -m cli.main export ARGS`` in a child process."""
    return subprocess.run([sys.executable, "-m", "cli.main", "export", *args], check=False, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def ro(path: Path) -> sqlite3.Connection:
    """A read-only connection, as a clinic's backup script would open the database."""
    return sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=1.0)


def timeline(t0: float, n: int) -> list[tuple]:
    """n timeline rows at 10 Hz: a gap lost now and then, a warning, every state."""
    return [(round(t0 + i / 10, 3), None if i % 7 == 3 else 900.0 - i * 1.25, round(0.1 * (i % 16), 3),
             STATES[i % 4], int(i % 9 == 0)) for i in range(n)]


def record_history(store) -> tuple[int, int, int]:
    """Two finished sessions and one still walking, written as the session runner writes them."""
    other = {**PATIENT, "patient_id": "P-0043", "display_name": "=X.Y.", "mode": "forward"}
    day_s = 86400.0
    now = time.time()  # recent: older timelines fall to the retention rule

    def op(conn):
        for i, p in enumerate((PATIENT, other)):
            records.insert_patient(conn, p, now - 9 * day_s + i)
        done = records.insert_session(conn, PATIENT["patient_id"], now - 2 * day_s + 0.25, 10.0, "reverse", 3)
        records.insert_samples(conn, done, 0, timeline(0.0, 40))
        records.update_session(conn, done, status="completed", ended_wall=now - 2 * day_s + 600.5, duration_s=600.0,
                               distance_m=250.125, max_kmh=1.5, warnings=2, trips=0, closest_mm=412.5,
                               pain_after=5, end_reason="target reached")
        early = records.insert_session(conn, PATIENT["patient_id"], now - day_s, 5.0, "reverse", 4)
        records.update_session(conn, early, status="ended", ended_wall=now - day_s + 1.0,
                               end_reason="-stopped: dizzy")
        live = records.insert_session(conn, "P-0043", now - 60.0, 5.0, "forward", 2)
        return done, early, live
    return store.call(op)


class LiveWriter:
    """Appends timeline rows to a session through the store while an export runs, as a walking session does."""

    def __init__(self, store, session_id: int):
        self.store, self.session_id = store, session_id
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-session-writer", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            rows, first = timeline(self.written / 10, 2), self.written
            self.store.record(lambda conn, rows=rows, first=first: records.insert_samples(
                conn, self.session_id, first, rows))
            self.written += len(rows)

    def __enter__(self) -> LiveWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(2)
        assert self.store.flush(5.0)


def expected_cell(value) -> str:
    """How the spec writes a summary value in the CSV (wall times are compared apart)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return str(value)


def check_sessions_csv(path: Path, db: sqlite3.Connection) -> None:
    """sessions.csv against the exported database, field by field."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == SESSION_HEADER
    columns = [c[1] for c in db.execute("PRAGMA table_info(sessions)")]
    stored = [dict(zip(columns, r)) for r in db.execute("SELECT * FROM sessions ORDER BY session_id")]
    assert len(rows) - 1 == len(stored)
    for row, s in zip(rows[1:], stored):
        cells = dict(zip(SESSION_HEADER, row))
        for header, key in (("started", "started_wall"), ("ended", "ended_wall")):
            if s[key] is None:
                assert cells[header] == "", (s["session_id"], header)
            else:
                when = datetime.fromisoformat(cells[header])
                assert when.tzinfo is not None, f"{cells[header]}: a local time with its offset"
                assert 0 <= s[key] - when.timestamp() < 1.0, (s["session_id"], header, cells[header])
        mean_kmh = s["distance_m"] / s["duration_s"] * 3.6 if s["duration_s"] else 0.0
        derived = {"mean_kmh": mean_kmh,
                   "pain_flag": s["pain_after"] is not None and s["pain_after"] > s["pain_before"]}
        for header in SESSION_HEADER:
            if header in ("started", "ended"):
                continue
            value = derived[header] if header in derived else s[header]
            if isinstance(value, float):
                assert float(cells[header]) == pytest.approx(value, abs=5e-4), (s["session_id"], header)
            else:
                assert cells[header] == expected_cell(value), (s["session_id"], header)


def check_samples_csv(path: Path, db: sqlite3.Connection, session_id: int) -> int:
    """samples/session-<id>.csv against the exported database; returns its row count."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == SAMPLE_HEADER
    stored = db.execute("SELECT t_s, gap_mm, belt_kmh, state, warning FROM samples WHERE session_id = ? "
                        "ORDER BY seq", (session_id,)).fetchall()
    assert len(rows) - 1 == len(stored)
    for row, (t_s, gap_mm, belt_kmh, state, warning) in zip(rows[1:], stored):
        assert float(row[0]) == pytest.approx(t_s, abs=5e-4)
        if gap_mm is None:
            assert row[1] == ""
        else:
            assert float(row[1]) == pytest.approx(gap_mm, abs=5e-4)
        assert float(row[2]) == pytest.approx(belt_kmh, abs=5e-4)
        assert (row[3], row[4]) == (STATES[state], str(warning))
    return len(stored)


def test_export_while_the_controller_runs_copies_history_patients_sessions_and_timelines(bench, tmp_path):
    store = bench.controller.history
    state_dir = bench.controller.state_dir
    done, early, live = record_history(store)
    out = tmp_path / "backups"

    with LiveWriter(store, live) as writer:
        assert wait_until(lambda: writer.written >= 20, 5.0)
        result = export("--state-dir", str(state_dir), "--out", str(out))
        written_during = writer.written
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(r"exported to (.+)\n", result.stdout)
    assert match, result.stdout
    folder = Path(match.group(1))
    assert folder.parent == out and re.fullmatch(r"treadmill-history-\d{8}-\d{6}", folder.name)
    assert sorted(p.name for p in out.iterdir()) == [folder.name], "no half-written export left behind"
    assert bench.controller.loop.is_alive() and store.health()["ok"], "the controller ran on, writing"

    assert sorted(p.name for p in folder.iterdir()) == ["history.db", "patients.json", "samples", "sessions.csv"]
    copy = ro(folder / "history.db")
    live_db = ro(store.path)
    try:
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete", "one self-contained file"
        count = "SELECT COUNT(*) FROM {} WHERE session_id = ?"
        assert copy.execute("SELECT COUNT(*) FROM sessions").fetchone() == \
            live_db.execute("SELECT COUNT(*) FROM sessions").fetchone() == (3,)
        for sid in (done, early):
            assert copy.execute(count.format("samples"), (sid,)).fetchone() == \
                live_db.execute(count.format("samples"), (sid,)).fetchone()
        # The walking session: one consistent snapshot, i.e. the first rows of what was written.
        exported_live = copy.execute("SELECT seq, t_s FROM samples WHERE session_id = ? ORDER BY seq",
                                     (live,)).fetchall()
        assert 20 <= len(exported_live) <= written_during
        assert exported_live == live_db.execute("SELECT seq, t_s FROM samples WHERE session_id = ? ORDER BY seq "
                                                "LIMIT ?", (live, len(exported_live))).fetchall()
        assert copy.execute("SELECT COUNT(*) FROM events").fetchone()[0] > 0, "the event log came too"

        columns = [c[1] for c in copy.execute("PRAGMA table_info(patients)")]
        patients = [dict(zip(columns, r)) for r in copy.execute("SELECT * FROM patients ORDER BY patient_id")]
        assert json.loads((folder / "patients.json").read_text(encoding="utf-8")) == patients
        assert [p["display_name"] for p in patients] == ["A.B.", "=X.Y."]

        check_sessions_csv(folder / "sessions.csv", copy)
        counts = {sid: check_samples_csv(folder / "samples" / f"session-{sid}.csv", copy, sid)
                  for sid in (done, early, live)}
        assert counts == {done: 40, early: 0, live: len(exported_live)}
        assert sorted(p.name for p in (folder / "samples").iterdir()) == \
            sorted(f"session-{sid}.csv" for sid in (done, early, live))
    finally:
        copy.close()
        live_db.close()


def test_export_into_a_regular_file_fails_naming_the_path(tmp_path):
    (tmp_path / "state").mkdir()
    connect(tmp_path / "state" / "history.db").close()
    not_a_folder = tmp_path / "backup.txt"
    not_a_folder.write_text("keep me\n")
    result = export("--state-dir", str(tmp_path / "state"), "--out", str(not_a_folder))
    assert result.returncode != 0 and result.stdout == ""
    assert str(not_a_folder) in result.stderr and "export failed" in result.stderr, result.stderr
    assert not_a_folder.read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.txt", "state"]


def test_export_from_a_state_dir_without_history_fails_naming_the_database(tmp_path):
    result = export("--state-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert str(tmp_path / "empty" / "history.db") in result.stderr and "no such database" in result.stderr
    assert not (tmp_path / "out").exists()


def test_export_needs_a_config_or_a_state_dir(tmp_path):
    result = export("--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "--config or --state-dir" in result.stderr
    assert not (tmp_path / "out").exists()
