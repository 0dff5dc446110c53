"""The dashboard of a treadmill of a clinic record ([clinic]), against the fake controller: other treadmills'
sessions on the patient page, an edit that carries the profile's version, the clinic line's data and its
place on the dashboard, and the clinic's gauges in /metrics (none on a treadmill without a clinic).

The pages' scripts cannot run here; the browser tests cover what they draw.
"""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.waiting import expect
from tests.web.helpers import VALID_PATIENT, parse_page
from web.metrics import clinic_families

UPDATE = {k: v for k, v in VALID_PATIENT.items() if k != "patient_id"}
CLINIC_GAUGES = {"treadmill_clinic_outbox_rows", "treadmill_clinic_outbox_oldest_age_seconds",
                 "treadmill_clinic_replicator_connected"}
STALE_EDIT = ("patient P01 was changed in the clinic record (now version 4) after this form read version 3: "
              "nothing was saved; open the profile again to see the clinic's values, then make your change")


def clinic_status(*, connected: bool = True, outbox: int = 0, oldest_wall: float | None = None,
                  pending: dict | None = None) -> dict:
    """The status keys a clinic's treadmill adds (controller/ipc.py, controller/storage/store.py)."""
    return {"storage": {"ok": True, "message": "history saved", "backlog": 0, "dropped": 0, "write_errors": 0,
                        "outbox": outbox, "outbox_oldest_wall": oldest_wall},
            "clinic": {"treadmill_id": "A", "connected": connected,
                       "message": "shipping" if connected else "connection refused by db.clinic.lan",
                       "report_age_s": 0.4, "shipped_wall": time.time() if connected else None,
                       "pending_prescription": pending}}


def scrape(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {f.name: f for f in text_string_to_metric_families(response.get_data(as_text=True))}


def single(families: dict, name: str) -> float:
    (sample,) = families[name].samples
    return sample.value


# --- the patient page: sessions of the clinic's other treadmills ------------------------------------------

def test_other_treadmills_sessions_reach_the_patient_page_with_their_treadmill_and_no_id(clinic, fake):
    client, _ = clinic
    now = time.time()
    with fake.lock:
        own = fake.therapy.add_session("P01", started_wall=now - 7200, treadmill_id="A")
        fake.therapy.add_session("P01", started_wall=now - 3600, session_id=None, treadmill_id="B", pain_after=6)
    response = client.get("/api/patients/P01")
    assert response.status_code == 200, response.get_json()
    sessions = response.get_json()["sessions"]
    assert [(s["session_id"], s["treadmill_id"]) for s in sessions] == [(None, "B"), (own["session_id"], "A")]
    assert sessions[0]["pain_after"] == 6


def test_the_patient_page_has_a_treadmill_column_hidden_until_sessions_name_one(clinic):
    client, _ = clinic
    page = parse_page(client.get("/patients/P01").get_data(as_text=True))
    head = page.ids["sessions-treadmill-head"]
    assert "hidden" in head and head.get("scope") == "col"


# --- the patient edit: the version it was read at ------------------------------------------------------------

def test_an_edit_passes_the_version_it_read_and_a_newer_clinic_profile_refuses_it_with_409(clinic, fake):
    client, headers = clinic
    fake.refuse_next("patient_save", "conflict", STALE_EDIT)
    response = client.put("/api/patients/P01", json={**UPDATE, "version": 3}, headers=headers)
    assert response.status_code == 409
    body = response.get_json()
    assert body["ok"] is False and body["code"] == "conflict" and body["message"] == STALE_EDIT
    (call,) = fake.calls_to("patient_save")
    assert call["create"] is False
    assert call["patient"] == {**UPDATE, "version": 3, "patient_id": "P01"}


# --- the dashboard's clinic line --------------------------------------------------------------------------

def test_the_dashboard_has_the_clinic_lines_hidden_until_a_status_has_a_clinic(therapist_client):
    page = parse_page(therapist_client.get("/").get_data(as_text=True))
    for element in ("clinic-record", "clinic-record-outbox", "clinic-pending"):
        assert "hidden" in page.ids[element], element
    assert "clinic-record-state" in page.ids


def test_the_status_carries_the_clinic_state_the_dashboard_shows(therapist_client, fake):
    fake.update(**clinic_status(connected=False, outbox=12, oldest_wall=time.time() - 30,
                                pending={"patient_id": "P01", "version": 5}))
    expect(lambda: "clinic" in therapist_client.get("/api/status").get_json(), what="the clinic in the status")
    status = therapist_client.get("/api/status").get_json()
    assert status["storage"]["outbox"] == 12
    assert status["clinic"]["connected"] is False
    assert status["clinic"]["message"] == "connection refused by db.clinic.lan"
    assert status["clinic"]["pending_prescription"] == {"patient_id": "P01", "version": 5}


# --- /metrics -------------------------------------------------------------------------------------------------

def test_a_treadmill_without_a_clinic_exports_no_clinic_gauges(client):
    assert CLINIC_GAUGES.isdisjoint(scrape(client))


def test_a_clinics_treadmill_exports_its_outbox_and_whether_the_replicator_reaches_the_server(client, fake):
    fake.update(**clinic_status(connected=False, outbox=1200, oldest_wall=time.time() - 60))
    expect(lambda: "treadmill_clinic_outbox_rows" in scrape(client), what="the clinic's gauges in /metrics")
    families = scrape(client)
    assert all(families[name].type == "gauge" for name in CLINIC_GAUGES)
    assert single(families, "treadmill_clinic_outbox_rows") == 1200.0
    assert 60.0 <= single(families, "treadmill_clinic_outbox_oldest_age_seconds") < 70.0
    assert single(families, "treadmill_clinic_replicator_connected") == 0.0

    fake.update(**clinic_status(connected=True, outbox=0, oldest_wall=None))
    expect(lambda: single(scrape(client), "treadmill_clinic_replicator_connected") == 1.0,
           what="the replicator connected in /metrics")
    families = scrape(client)
    assert single(families, "treadmill_clinic_outbox_rows") == 0.0
    assert single(families, "treadmill_clinic_outbox_oldest_age_seconds") == 0.0


@pytest.mark.parametrize("outbox, oldest_wall, age_s", [
    (5, 1000.0, 60.0),      # the oldest waiting row, counted to now
    (0, None, 0.0),         # nothing waits
    (0, 900.0, 0.0),        # an oldest wall left over with nothing waiting counts for nothing
    (5, 1100.0, 0.0),       # a clock that stepped back: never a negative age
])
def test_the_oldest_rows_age_is_counted_to_now(outbox, oldest_wall, age_s):
    status = clinic_status(outbox=outbox, oldest_wall=oldest_wall)
    families = {f.name: f for f in clinic_families(status, now_wall=1060.0)}
    assert families["treadmill_clinic_outbox_oldest_age_seconds"].samples[0].value == age_s
    assert families["treadmill_clinic_outbox_rows"].samples[0].value == outbox


def test_a_malformed_clinic_status_loses_only_what_is_malformed():
    status = clinic_status(outbox=3, oldest_wall=1000.0)
    status["clinic"]["connected"] = "yes"
    status["storage"]["outbox"] = -1
    assert {f.name for f in clinic_families(status, now_wall=1060.0)} == set()
    status["storage"]["outbox"] = 3
    status["storage"]["outbox_oldest_wall"] = "long ago"
    status["clinic"]["connected"] = True
    families = {f.name: f.samples[0].value for f in clinic_families(status, now_wall=1060.0)}
    # Rows waiting since an unknown time: their count, never a made-up age.
    assert families == {"treadmill_clinic_outbox_rows": 3.0, "treadmill_clinic_replicator_connected": 1.0}
