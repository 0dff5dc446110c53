"""Choosing a patient whose limits are looser asks to confirm (409 "confirm" naming each value), and a session
starts at the patient's start speed, shown on their page, never at the cap by default."""

from __future__ import annotations

from tests.web.helpers import THERAPIST

START = {"patient_id": "P01", "planned_min": 7.5, "pain_before": 4}
LOOSENED = [{"field": "reverse_cap_kmh", "label": "Reverse cap", "old": 2.0, "new": 2.2, "unit": "km/h"},
            {"field": "warn_margin_mm", "label": "Warn margin", "old": 200.0, "new": 150.0, "unit": "mm"}]


def loose_patient(fake, pid="P09"):
    with fake.lock:
        fake.therapy.add_patient(pid, speed_cap_kmh=2.2, base_stop_mm=250.0, warn_margin_mm=150.0)


def test_choosing_a_looser_patient_is_409_confirm_naming_each_value_and_changes_nothing(clinic, fake):
    client, headers = clinic
    loose_patient(fake)
    response = client.post("/api/patients/P09/select", headers=headers)
    assert response.status_code == 409
    body = response.get_json()
    assert body["ok"] is False and body["code"] == "confirm"
    assert "reverse cap 2.0 → 2.2 km/h; warn margin 200 → 150 mm" in body["message"]
    assert body["loosened"] == LOOSENED
    status = client.get("/api/status").get_json()
    assert status["selected_patient"] is None and status["limits"]["reverse_cap_kmh"] == 2.0

    response = client.post("/api/patients/P09/select", json={"confirm": True}, headers=headers)
    assert response.status_code == 200, response.get_json()
    assert fake.calls_to("patient_select")[-1] == {"patient_id": "P09", "confirm": True, "actor": THERAPIST,
                                                   "authorized": True}
    status = client.get("/api/status").get_json()
    assert status["selected_patient"] == "P09" and status["limits"]["reverse_cap_kmh"] == 2.2


def test_a_tighter_patient_is_chosen_at_once_without_confirm(clinic, fake):
    client, headers = clinic
    response = client.post("/api/patients/P01/select", headers=headers)
    assert response.status_code == 200
    assert "confirm" not in fake.calls_to("patient_select")[0]


def test_a_confirm_that_is_not_true_or_false_is_400_naming_it(clinic, fake):
    client, headers = clinic
    response = client.post("/api/patients/P01/select", json={"confirm": "yes"}, headers=headers)
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "[session] confirm"


def test_starting_a_looser_patients_session_asks_to_confirm_then_starts(clinic, fake):
    client, headers = clinic
    loose_patient(fake)
    response = client.post("/api/sessions", json={**START, "patient_id": "P09"}, headers=headers)
    assert response.status_code == 409 and response.get_json()["loosened"] == LOOSENED
    assert client.get("/api/status").get_json()["state"] == "READY"
    response = client.post("/api/sessions", json={**START, "patient_id": "P09", "confirm": True}, headers=headers)
    assert response.status_code == 200, response.get_json()
    assert fake.calls_to("session_start")[-1]["confirm"] is True


def test_the_patient_page_offers_the_start_speed_and_the_session_records_it(clinic, fake):
    client, headers = clinic
    page = client.get("/api/patients/P01").get_json()
    assert (page["start_speed_kmh"], page["start_speed_reason"]) == (0.5, "slowest speed")
    response = client.post("/api/sessions", json=START, headers=headers)
    assert response.status_code == 200
    session = response.get_json()["session"]
    assert session["start_speed_kmh"] == 0.5
    status = client.get("/api/status").get_json()
    assert round(status["target_mps"] * 3.6, 3) == 0.5, "started at the slowest speed, not at the cap of 1.5"
    with fake.lock:
        fake.therapy.finish(session["session_id"], "ended", "ended by Ann")
    client.post("/api/sessions", json={**START, "speed_kmh": 0.9}, headers=headers)
    with fake.lock:
        fake.therapy.finish(fake.therapy._active()["session_id"], "ended", "ended by Ann")
    page = client.get("/api/patients/P01").get_json()
    assert (page["start_speed_kmh"], page["start_speed_reason"]) == (0.9, "last session's speed")
