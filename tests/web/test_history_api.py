"""The therapy API against the fake controller: a session from choosing the patient to the pain after,
and the controller's refusals passed on with their meaning (404, 409, 503, 400 with its field errors)."""

from __future__ import annotations

import time

import pytest

from tests.web.helpers import THERAPIST, VALID_PATIENT, login
from web.ipc_client import MAX_LINE_BYTES, MAX_REPLY_BYTES

UPDATE = {k: v for k, v in VALID_PATIENT.items() if k != "patient_id"}
START = {"patient_id": "P01", "planned_min": 7.5, "pain_before": 4}


# --- patients ---------------------------------------------------------------------------------

def test_a_new_patient_is_201_and_listed_with_the_fields_ranges(clinic, fake):
    client, headers = clinic
    response = client.post("/api/patients", json=VALID_PATIENT, headers=headers)
    assert response.status_code == 201, response.get_json()
    stored = response.get_json()["patient"]
    assert {k: stored[k] for k in VALID_PATIENT} == VALID_PATIENT
    assert fake.calls_to("patient_save")[0]["patient"] == VALID_PATIENT
    assert fake.calls_to("patient_save")[0]["create"] is True
    listing = client.get("/api/patients").get_json()
    assert listing["ok"] is True
    assert [p["patient_id"] for p in listing["patients"]] == ["P01", "P02"]
    assert listing["fields"]["speed_cap_kmh"] == {"min": 0.5, "max": 2.2, "unit": "km/h", "integer": False,
                                                  "by_mode": {"reverse": {"min": 0.5, "max": 2.2},
                                                              "forward": {"min": 0.5, "max": 2.2}}}


def test_a_new_patient_without_notes_gets_the_controllers_empty_notes(clinic, fake):
    client, headers = clinic
    body = {k: v for k, v in VALID_PATIENT.items() if k != "notes"}
    response = client.post("/api/patients", json=body, headers=headers)
    assert response.status_code == 201
    assert "notes" not in fake.calls_to("patient_save")[0]["patient"]
    assert response.get_json()["patient"]["notes"] == "" and fake.therapy.patients["P02"]["notes"] == ""


def test_a_patient_reply_holds_profile_sessions_suggestion_pain_and_today(clinic, fake):
    client, _ = clinic
    # A second past today's midnight is today however long the test takes (short of a day).
    today = time.mktime(time.localtime()[:3] + (0, 0, 1, 0, 0, -1))
    with fake.lock:
        # Pain before rises over the last three sessions: the controller holds the duration.
        fake.therapy.add_session("P01", started_wall=today - 4 * 86400, planned_min=5, pain_before=2, pain_after=3)
        fake.therapy.add_session("P01", started_wall=today - 2 * 86400, planned_min=5, pain_before=3, pain_after=5,
                                 pain_flag=True)
        fake.therapy.add_session("P01", started_wall=today, planned_min=7.5, pain_before=3, pain_after=4,
                                 pain_flag=True)
    body = client.get("/api/patients/P01").get_json()
    assert body["ok"] is True
    assert body["patient"]["patient_id"] == "P01"
    assert [s["session_id"] for s in body["sessions"]] == [3, 2, 1]
    worsening = "pain worsening: review the program (before-session pain 2 → 3 → 3)"
    assert body["pain"] == {"worsening": True, "message": worsening}
    assert body["suggestion"] == {"duration_min": 7.5, "reason": f"{worsening}; holding at 7.5 min", "held": True}
    assert body["today"] == {"done": 1, "per_day": 2}


def test_a_profile_update_replaces_the_profile_with_the_id_from_the_url(clinic, fake):
    client, headers = clinic
    response = client.put("/api/patients/P01", json=UPDATE, headers=headers)
    assert response.status_code == 200, response.get_json()
    (call,) = fake.calls_to("patient_save")
    assert call["create"] is False
    assert call["patient"] == {**UPDATE, "patient_id": "P01"}
    assert fake.therapy.patients["P01"]["target_min"] == 25


def test_deleting_a_patient_deletes_the_sessions_too(clinic, fake):
    client, headers = clinic
    with fake.lock:
        fake.therapy.add_session("P01")
    response = client.delete("/api/patients/P01", headers=headers)
    assert response.status_code == 200
    assert response.get_json() == {"ok": True, "deleted": "P01"}
    assert fake.therapy.patients == {} and fake.therapy.sessions == {}
    assert client.get("/api/sessions/1").status_code == 404


def test_choosing_a_patient_answers_with_the_controllers_message_and_the_status_shows_it(clinic, fake):
    client, headers = clinic
    response = client.post("/api/patients/P01/select", headers=headers)
    assert response.status_code == 200
    assert response.get_json() == {"ok": True, "patient_id": "P01",
                                   "message": "patient P01 chosen: reverse walking, cap 1.5 km/h"}
    assert client.get("/api/status").get_json()["selected_patient"] == "P01"


# --- a session, start to pain after -----------------------------------------------------------

def test_a_session_from_start_to_pain_after(clinic, fake):
    client, headers = clinic
    response = client.post("/api/sessions", json={**START, "speed_kmh": 1.0}, headers=headers)
    assert response.status_code == 200, response.get_json()
    session = response.get_json()["session"]
    assert (session["status"], session["planned_min"], session["pain_before"]) == ("active", 7.5, 4)
    assert fake.calls_to("session_start") == [{**START, "speed_kmh": 1.0, "actor": THERAPIST, "authorized": True}]
    # The next status read is the controller's own, not an older push from before the start.
    status = client.get("/api/status").get_json()
    assert status["state"] == "RUNNING"
    assert status["session"]["phase"] == "walking" and status["session"]["planned_s"] == 450.0

    paused = client.post("/api/sessions/current/pause", headers=headers)
    assert paused.get_json()["message"] == "paused: stopping"
    assert client.get("/api/status").get_json()["session"]["phase"] == "paused"
    assert client.post("/api/sessions/current/resume", headers=headers).status_code == 200
    assert client.post("/api/sessions/current/pause", headers=headers).status_code == 200
    ended = client.post("/api/sessions/current/end", headers=headers).get_json()
    assert ended["ok"] is True and ended["message"] == "session ended"
    assert ended["session"]["status"] == "ended" and ended["session"]["end_reason"] == f"ended by {THERAPIST}"
    assert client.get("/api/status").get_json()["session"] is None

    pain = client.put("/api/sessions/1/pain", json={"pain_after": 6}, headers=headers)
    assert pain.status_code == 200
    assert pain.get_json()["session"]["pain_after"] == 6 and pain.get_json()["session"]["pain_flag"] is True


def test_ending_a_session_on_a_moving_belt_ramps_down_before_it_ends(clinic, fake):
    client, headers = clinic
    assert client.post("/api/sessions", json=START, headers=headers).status_code == 200
    ending = client.post("/api/sessions/current/end", headers=headers).get_json()
    assert ending["message"] == "ramping down to a stop; the session ends when the belt stands"
    assert ending["session"]["phase"] == "finishing"
    assert client.get("/api/status").get_json()["session"]["phase"] == "finishing"
    with fake.lock:
        fake.therapy.finish(1, "ended", f"ended by {THERAPIST}")
    assert client.get("/api/status").get_json()["session"] is None
    assert client.get("/api/sessions/1").get_json()["session"]["status"] == "ended"


def test_a_session_start_without_a_speed_lets_the_controller_choose(clinic, fake):
    client, headers = clinic
    assert client.post("/api/sessions", json=START, headers=headers).status_code == 200
    assert "speed_kmh" not in fake.calls_to("session_start")[0]


def test_a_session_reply_holds_its_warn_and_trip_events_oldest_first(clinic, fake):
    client, _ = clinic
    now = time.time()
    with fake.lock:
        fake.therapy.add_session("P01", started_wall=now - 100, ended_wall=now + 100)
        fake._event("warn", "warn_zone", "patient in the warn zone", "controller")
        fake._event("state", "ready", "READY", "controller")
        fake._event("trip", "stop_zone", "patient inside the stop distance", "controller")
    body = client.get("/api/sessions/1").get_json()
    assert body["session"]["session_id"] == 1
    assert [e["kind"] for e in body["events"]] == ["warn", "trip"]


def test_samples_come_in_pages_of_at_most_5000_rows(clinic, fake):
    client, _ = clinic
    with fake.lock:
        fake.therapy.add_session("P01")
        fake.therapy.samples[1] = [[i / 10, 400.0 + i % 7, 1.25, "RUNNING", 0] for i in range(6000)]
    first = client.get("/api/sessions/1/samples").get_json()
    assert first["columns"] == ["t_s", "gap_mm", "belt_kmh", "state", "warning"]
    assert (len(first["rows"]), first["total"], first["next_offset"]) == (5000, 6000, 5000)
    rest = client.get("/api/sessions/1/samples?offset=5000&limit=2000").get_json()
    assert (len(rest["rows"]), rest["next_offset"]) == (1000, None)
    assert rest["rows"][0] == [500.0, 400.0 + 5000 % 7, 1.25, "RUNNING", 0]
    assert [(c["offset"], c["limit"]) for c in fake.calls_to("session_samples")] == [(0, 5000), (5000, 2000)]


def test_a_reply_larger_than_a_request_line_is_read(clinic, fake):
    # A page of 5000 samples is far over the 64 KiB a request may have.
    client, _ = clinic
    with fake.lock:
        fake.therapy.add_session("P01")
        fake.therapy.samples[1] = [[i / 10, 1234.5678, 1.2345, "RUNNING", 1] for i in range(5000)]
    response = client.get("/api/sessions/1/samples")
    assert response.status_code == 200
    assert len(response.get_data()) > MAX_LINE_BYTES
    assert len(response.get_json()["rows"]) == 5000


def test_a_reply_over_4_mib_is_refused_as_an_unreadable_controller(clinic, fake):
    client, _ = clinic
    fake.refuse_next("patients", "invalid", "x" * (MAX_REPLY_BYTES + 1))
    response = client.get("/api/patients")
    assert response.status_code == 409
    assert "over-long line" in response.get_json()["message"]


# --- the controller's refusals keep their meaning ---------------------------------------------

@pytest.mark.parametrize("method, path, body", [
    ("get", "/api/patients/P09", None), ("put", "/api/patients/P09", UPDATE),
    ("delete", "/api/patients/P09", None), ("post", "/api/patients/P09/select", None),
    ("get", "/api/patients/P09/sessions.csv", None), ("post", "/api/sessions", {**START, "patient_id": "P09"}),
    ("get", "/api/sessions/99", None), ("put", "/api/sessions/99/pain", {"pain_after": 1}),
    ("get", "/api/sessions/99/samples", None), ("get", "/api/sessions/99/samples.csv", None),
])
def test_what_the_controller_does_not_know_is_404_with_its_message(clinic, fake, method, path, body):
    client, headers = clinic
    response = getattr(client, method)(path, json=body, headers=headers)
    assert response.status_code == 404
    assert response.get_json()["code"] == "not_found"
    assert response.get_json()["message"] in ("no patient P09", "no session 99")


def test_a_new_patient_with_an_id_on_file_is_409(clinic, fake):
    client, headers = clinic
    response = client.post("/api/patients", json={**VALID_PATIENT, "patient_id": "P01"}, headers=headers)
    assert response.status_code == 409
    assert response.get_json()["message"] == "patient P01 exists already; choose another id"
    assert fake.therapy.patients["P01"]["display_name"] == "A.B."


def test_a_second_session_while_one_runs_is_409(clinic, fake):
    client, headers = clinic
    assert client.post("/api/sessions", json=START, headers=headers).status_code == 200
    response = client.post("/api/sessions", json=START, headers=headers)
    assert response.status_code == 409
    assert "session 1 is still active" in response.get_json()["message"]


@pytest.mark.parametrize("action", ["pause", "resume", "end"])
def test_controlling_a_session_when_none_runs_is_409(clinic, fake, action):
    client, headers = clinic
    response = client.post(f"/api/sessions/current/{action}", headers=headers)
    assert response.status_code == 409
    assert response.get_json()["message"] == "no session is running"


def test_an_unknown_session_action_is_a_json_404(clinic, fake):
    client, headers = clinic
    response = client.post("/api/sessions/current/skip", headers=headers)
    assert response.status_code == 404
    assert fake.calls == []


def test_pain_after_recorded_twice_is_409_and_the_first_stays(clinic, fake):
    client, headers = clinic
    with fake.lock:
        fake.therapy.add_session("P01", pain_after=None)
    assert client.put("/api/sessions/1/pain", json={"pain_after": 2}, headers=headers).status_code == 200
    response = client.put("/api/sessions/1/pain", json={"pain_after": 5}, headers=headers)
    assert response.status_code == 409
    assert fake.therapy.sessions[1]["pain_after"] == 2


def test_deleting_the_patient_in_the_active_session_is_409(clinic, fake):
    client, headers = clinic
    assert client.post("/api/sessions", json=START, headers=headers).status_code == 200
    response = client.delete("/api/patients/P01", headers=headers)
    assert response.status_code == 409
    assert "P01" in fake.therapy.patients


def test_a_storage_fault_is_503_with_the_controllers_reason_and_shows_in_the_status(clinic, fake):
    client, headers = clinic
    reason = ("cannot write to /var/lib/treadmill-safety/history.db: database or disk is full; "
              "312 records held in memory")
    fake.set_storage_fault(reason)
    response = client.post("/api/patients", json=VALID_PATIENT, headers=headers)
    assert response.status_code == 503
    assert response.get_json() == {"ok": False, "code": "storage", "message": reason, "errors": []}
    assert client.get("/api/status").get_json()["storage"] == {"ok": False, "message": reason}


@pytest.mark.parametrize("method, path, body, ipc", [
    ("post", "/api/sessions", START, "session_start"),
    ("put", "/api/sessions/1/pain", {"pain_after": 2}, "session_pain"),
    ("delete", "/api/patients/P01", None, "patient_delete"),
    ("get", "/api/sessions/1/samples.csv", None, "session_samples"),
])
def test_any_storage_refusal_is_503(clinic, fake, method, path, body, ipc):
    client, headers = clinic
    fake.refuse_next(ipc, "storage", "cannot write to history.db: disk I/O error")
    response = getattr(client, method)(path, json=body, headers=headers)
    assert response.status_code == 503
    assert response.get_json()["message"] == "cannot write to history.db: disk I/O error"


def test_a_prescription_past_the_ceiling_of_its_mode_is_400_with_the_controllers_field_errors(clinic, fake):
    # The widest cap is 2.6 km/h (forward); in reverse mode the controller allows 2.2 and says so.
    client, headers = clinic
    fake.update(ceilings={**fake.status["ceilings"], "max_forward_cap_kmh": 2.6})
    response = client.post("/api/patients", json={**VALID_PATIENT, "speed_cap_kmh": 2.4}, headers=headers)
    assert response.status_code == 400
    body = response.get_json()
    assert body["code"] == "invalid"
    assert body["errors"] == [{"field": "[patient] speed_cap_kmh", "key": "speed_cap_kmh", "value": 2.4,
                               "message": "must be a number from 0.5 to 2.2 km/h in reverse mode"}]
    assert "P02" not in fake.therapy.patients


def test_a_start_speed_past_the_installers_ceiling_is_400_with_the_controllers_field_errors(clinic, fake):
    client, headers = clinic
    response = client.post("/api/sessions", json={**START, "speed_kmh": 2.4}, headers=headers)
    assert response.status_code == 400
    (error,) = response.get_json()["errors"]
    assert error["field"] == "[session] speed_kmh"
    assert "0.5 to 2.2 km/h" in error["message"]
    assert fake.status["session"] is None


def test_a_start_speed_over_the_patients_cap_starts_at_the_cap(clinic, fake):
    client, headers = clinic
    assert client.post("/api/sessions", json={**START, "speed_kmh": 1.8}, headers=headers).status_code == 200
    assert abs(fake.status["target_mps"] * 3.6 - 1.5) < 1e-9


def test_a_refusal_for_lack_of_authority_is_401(clinic, fake):
    client, headers = clinic
    fake.refuse_next("patient_select", "unauthorized", "choosing a patient needs a logged-in therapist")
    response = client.post("/api/patients/P01/select", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["code"] == "unauthorized"


@pytest.mark.parametrize("method, path, body", [
    ("get", "/api/patients", None), ("post", "/api/patients", VALID_PATIENT), ("get", "/api/patients/P01", None),
    ("put", "/api/patients/P01", UPDATE), ("delete", "/api/patients/P01", None),
    ("post", "/api/patients/P01/select", None), ("get", "/api/patients/P01/sessions.csv", None),
    ("post", "/api/sessions", START), ("post", "/api/sessions/current/end", None), ("get", "/api/sessions/1", None),
    ("put", "/api/sessions/1/pain", {"pain_after": 1}), ("get", "/api/sessions/1/samples", None),
    ("get", "/api/sessions/1/samples.csv", None),
])
def test_with_the_controller_offline_the_therapy_api_is_409_offline(offline_client, method, path, body):
    headers = login(offline_client)
    response = getattr(offline_client, method)(path, json=body, headers=headers)
    assert response.status_code == 409
    assert response.get_json()["code"] == "offline"


def test_with_the_controller_offline_a_body_of_the_wrong_shape_is_still_400_a_bad_value_409(offline_client):
    # The shape is HTTP's and checked here; whether 12 is a pain score only the controller says.
    headers = login(offline_client)
    assert offline_client.post("/api/sessions", json=[START], headers=headers).status_code == 400
    assert offline_client.post("/api/sessions", json={**START, "x": 1}, headers=headers).status_code == 400
    response = offline_client.post("/api/sessions", json={**START, "pain_before": 12}, headers=headers)
    assert response.status_code == 409 and response.get_json()["code"] == "offline"
