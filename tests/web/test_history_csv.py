"""CSV downloads: a patient's sessions and a session's timeline, checked cell by cell."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest

from tests.web import fake_therapy

SESSION_HEADER = ["session_id", "patient_id", "status", "started", "ended", "planned_min", "mode", "duration_s",
                  "distance_m", "mean_kmh", "max_kmh", "warnings", "trips", "closest_mm", "pain_before",
                  "pain_after", "pain_flag", "end_reason"]
SAMPLE_HEADER = ["t_s", "gap_mm", "belt_kmh", "state", "warning"]
#: 2024-03-05 09:30:00 UTC and 40 minutes later.
STARTED = 1709631000.0
ENDED = 1709633400.0


def _rows(response) -> list[list[str]]:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    text = response.get_data(as_text=True)
    response.close()
    assert text.endswith("\r\n")
    return list(csv.reader(io.StringIO(text, newline="")))


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall).astimezone().isoformat(timespec="seconds")


@pytest.fixture
def history(clinic, fake):
    """Two sessions of P01: a completed one, and an interrupted one with a formula-like end reason."""
    with fake.lock:
        fake.therapy.add_session("P01", started_wall=STARTED, ended_wall=STARTED + 600.0, planned_min=10.0,
                                 duration_s=598.25, distance_m=249.12345, mean_kmh=1.4995, max_kmh=1.8,
                                 warnings=2, trips=0, closest_mm=412.5, pain_before=4, pain_after=3,
                                 pain_flag=False, end_reason="target reached")
        fake.therapy.add_session("P01", started_wall=ENDED, ended_wall=None, status="interrupted",
                                 planned_min=12.5, mode="forward", duration_s=61.0, distance_m=20.0, mean_kmh=1.18,
                                 max_kmh=1.3, warnings=0, trips=1, closest_mm=None, pain_before=5,
                                 pain_after=None, pain_flag=False, end_reason="=HYPERLINK(\"x\")")
    return clinic


def test_sessions_csv_is_an_uncached_attachment(history):
    client, _ = history
    response = client.get("/api/patients/P01/sessions.csv")
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="sessions-P01.csv"'
    assert response.headers["Cache-Control"] == "no-store"
    response.close()


def test_sessions_csv_has_the_header_and_every_cell_of_every_session_newest_first(history):
    client, _ = history
    header, newest, oldest = _rows(client.get("/api/patients/P01/sessions.csv"))
    assert header == SESSION_HEADER
    assert dict(zip(header, oldest, strict=True)) == {
        "session_id": "1", "patient_id": "P01", "status": "completed", "started": _iso(STARTED),
        "ended": _iso(STARTED + 600.0), "planned_min": "10.0", "mode": "reverse", "duration_s": "598.25",
        "distance_m": "249.123", "mean_kmh": "1.5", "max_kmh": "1.8", "warnings": "2", "trips": "0",
        "closest_mm": "412.5", "pain_before": "4", "pain_after": "3", "pain_flag": "0",
        "end_reason": "target reached"}
    assert dict(zip(header, newest, strict=True)) == {
        "session_id": "2", "patient_id": "P01", "status": "interrupted", "started": _iso(ENDED), "ended": "",
        "planned_min": "12.5", "mode": "forward", "duration_s": "61.0", "distance_m": "20.0", "mean_kmh": "1.18",
        "max_kmh": "1.3", "warnings": "0", "trips": "1", "closest_mm": "", "pain_before": "5", "pain_after": "",
        "pain_flag": "0", "end_reason": "'=HYPERLINK(\"x\")"}


def test_sessions_csv_times_are_iso_8601_with_the_offset_and_mean_the_same_instant(history):
    client, _ = history
    rows = _rows(client.get("/api/patients/P01/sessions.csv"))
    started = datetime.fromisoformat(rows[2][3])
    assert started.utcoffset() is not None
    assert started.timestamp() == STARTED


@pytest.mark.parametrize("reason", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_a_text_cell_a_spreadsheet_would_run_is_prefixed_with_an_apostrophe(clinic, fake, reason):
    client, _ = clinic
    with fake.lock:
        fake.therapy.add_session("P01", end_reason=reason)
    header, row = _rows(client.get("/api/patients/P01/sessions.csv"))
    assert row[header.index("end_reason")] == "'" + reason


def test_sessions_csv_of_a_patient_without_sessions_is_the_header_alone(clinic):
    client, _ = clinic
    assert _rows(client.get("/api/patients/P01/sessions.csv")) == [SESSION_HEADER]


# --- the timeline -----------------------------------------------------------------------------

def _timeline(n: int) -> list[list]:
    """Samples at 10 Hz: the gap shrinks, the sensor loses the patient every 1000th sample."""
    return [[round(i / 10, 1), None if i % 1000 == 123 else 900.0 - i * 0.05, 1.25 if i else 0.0,
             "RUNNING" if i else "READY", int(i % 500 == 0)] for i in range(n)]


def test_samples_csv_pages_through_the_whole_timeline_once_each(clinic, fake):
    client, _ = clinic
    with fake.lock:
        fake.therapy.add_session("P01")
        fake.therapy.samples[1] = _timeline(12_345)
    rows = _rows(client.get("/api/sessions/1/samples.csv"))
    assert rows[0] == SAMPLE_HEADER
    assert len(rows) == 1 + 12_345
    assert SAMPLE_HEADER not in rows[1:]
    assert [(c["offset"], c["limit"]) for c in fake.calls_to("session_samples")] == [(0, 5000), (5000, 5000),
                                                                                     (10000, 5000)]
    # The rows either side of each page boundary, cell by cell.
    assert rows[1] == ["0.0", "900.0", "0.0", "READY", "1"]
    assert rows[5000] == ["499.9", "650.05", "1.25", "RUNNING", "0"]
    assert rows[5001] == ["500.0", "650.0", "1.25", "RUNNING", "1"]
    assert rows[124] == ["12.3", "", "1.25", "RUNNING", "0"]
    assert rows[12_345] == ["1234.4", "282.8", "1.25", "RUNNING", "0"]
    assert [float(r[0]) for r in rows[1:]] == [round(i / 10, 1) for i in range(12_345)]


def test_samples_csv_is_an_uncached_attachment_named_after_the_session(clinic, fake):
    client, _ = clinic
    with fake.lock:
        fake.therapy.add_session("P01")
    response = client.get("/api/sessions/1/samples.csv")
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="session-1-samples.csv"'
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_data(as_text=True) == "t_s,gap_mm,belt_kmh,state,warning\r\n"


def test_samples_csv_neutralises_formula_like_text(clinic, fake):
    client, _ = clinic
    with fake.lock:
        fake.therapy.add_session("P01")
        fake.therapy.samples[1] = [[0.0, -5.0, 0.0, "=cmd|' /C calc'!A0", 0]]
    rows = _rows(client.get("/api/sessions/1/samples.csv"))
    assert rows[1] == ["0.0", "-5.0", "0.0", "'=cmd|' /C calc'!A0", "0"]


def test_samples_csv_puts_the_cells_in_its_own_column_order(clinic, fake, monkeypatch):
    client, _ = clinic
    monkeypatch.setattr(fake_therapy, "SAMPLE_COLUMNS", ["state", "warning", "t_s", "belt_kmh", "gap_mm"])
    with fake.lock:
        fake.therapy.add_session("P01")
        fake.therapy.samples[1] = [["RUNNING", 1, 2.5, 1.1, 480.0]]
    rows = _rows(client.get("/api/sessions/1/samples.csv"))
    assert rows == [SAMPLE_HEADER, ["2.5", "480.0", "1.1", "RUNNING", "1"]]


def test_samples_csv_asks_for_the_next_page_only_as_the_download_proceeds(clinic, fake):
    client, _ = clinic
    with fake.lock:
        fake.therapy.add_session("P01")
        fake.therapy.samples[1] = _timeline(10_001)
    response = client.get("/api/sessions/1/samples.csv", buffered=False)
    assert response.status_code == 200
    assert len(fake.calls_to("session_samples")) == 1
    chunks = list(response.response)
    response.close()
    assert len(chunks) == 3
    assert len(fake.calls_to("session_samples")) == 3


def test_a_controller_whose_pages_never_advance_cuts_the_download_short_rather_than_loop(clinic, fake):
    client, _ = clinic
    with fake.lock:
        fake.therapy.add_session("P01")
        fake.therapy.samples[1] = _timeline(10)
    original = fake.therapy.m_session_samples
    fake.therapy.handlers = lambda: {"session_samples": lambda params: {**original(params), "next_offset": 0}}
    response = client.get("/api/sessions/1/samples.csv", buffered=False)
    with pytest.raises(ValueError, match="does not advance"):
        list(response.response)
    response.close()
