"""Who may use the therapy API: every endpoint needs a logged-in therapist; changes need a CSRF token too."""

from __future__ import annotations

import pytest

from tests.web.helpers import THERAPIST, VALID_PATIENT, csrf_headers, login

UPDATE = {k: v for k, v in VALID_PATIENT.items() if k != "patient_id"}
START = {"patient_id": "P01", "planned_min": 7.5, "pain_before": 4}
#: (method, path, body) of every therapy endpoint.
READS = [
    ("get", "/api/patients", None),
    ("get", "/api/patients/P01", None),
    ("get", "/api/patients/P01/sessions.csv", None),
    ("get", "/api/sessions/1", None),
    ("get", "/api/sessions/1/samples", None),
    ("get", "/api/sessions/1/samples.csv", None),
]
#: (method, path, body, the IPC method it becomes)
CHANGES = [
    ("post", "/api/patients", VALID_PATIENT, "patient_save"),
    ("put", "/api/patients/P01", UPDATE, "patient_save"),
    ("delete", "/api/patients/P01", None, "patient_delete"),
    ("post", "/api/patients/P01/select", None, "patient_select"),
    ("post", "/api/sessions", START, "session_start"),
    ("post", "/api/sessions/current/pause", None, "session_pause"),
    ("post", "/api/sessions/current/resume", None, "session_resume"),
    ("post", "/api/sessions/current/end", None, "session_end"),
    ("put", "/api/sessions/1/pain", {"pain_after": 3}, "session_pain"),
]
ALL = READS + [c[:3] for c in CHANGES]


def _send(client, method, path, body, headers=None):
    return getattr(client, method)(path, json=body, headers=headers or {})


def _prepare(fake, path: str) -> None:
    """The state in which the controller accepts the request at ``path``."""
    with fake.lock:
        therapy = fake.therapy
        therapy.add_patient("P01")
        if path.startswith("/api/sessions/current/"):
            fake.update(state="READY", reasons={})
            therapy.m_session_start({"patient_id": "P01", "planned_min": 5, "pain_before": 3, "actor": "Ann",
                                     "authorized": True})
            if path.endswith("resume"):
                therapy.m_session_pause({"actor": "Ann", "authorized": True})
        else:
            therapy.add_session("P01", pain_after=None)
            therapy.samples[1] = [[0.0, 500.0, 1.0, "RUNNING", 0]]
            fake.update(state="READY", reasons={})
        fake.calls.clear()


@pytest.mark.parametrize("method, path, body", ALL, ids=[f"{m} {p}" for m, p, _ in ALL])
def test_every_therapy_endpoint_is_401_for_anonymous_and_asks_the_controller_nothing(client, fake, method, path,
                                                                                     body):
    _prepare(fake, path)
    response = _send(client, method, path, body, csrf_headers(client))
    assert response.status_code == 401
    assert response.get_json() == {"ok": False, "code": "login_required",
                                   "message": "log in for this action", "errors": []}
    assert fake.calls == []


@pytest.mark.parametrize("method, path, body, ipc", CHANGES, ids=[f"{m} {p}" for m, p, _, _ in CHANGES])
@pytest.mark.parametrize("token", [None, "not-a-token"], ids=["missing", "forged"])
def test_every_therapy_change_without_a_valid_csrf_token_is_403_even_when_logged_in(client, fake, method, path,
                                                                                    body, ipc, token):
    _prepare(fake, path)
    login(client)
    response = _send(client, method, path, body, {} if token is None else {"X-CSRFToken": token})
    assert response.status_code == 403
    assert response.get_json()["code"] == "csrf"
    assert fake.calls == []


@pytest.mark.parametrize("method, path, body, ipc", CHANGES, ids=[f"{m} {p}" for m, p, _, _ in CHANGES])
def test_every_therapy_change_by_a_therapist_reaches_the_controller_with_her_name_and_authority(
        client, fake, method, path, body, ipc):
    _prepare(fake, path)
    headers = login(client)
    response = _send(client, method, path, body, headers)
    assert response.status_code in (200, 201), response.get_json()
    assert response.get_json()["ok"] is True
    (params,) = fake.calls_to(ipc)
    assert params["actor"] == THERAPIST
    assert params["authorized"] is True


@pytest.mark.parametrize("method, path, body", READS, ids=[f"{m} {p}" for m, p, _ in READS])
def test_every_therapy_read_by_a_therapist_is_200(client, fake, method, path, body):
    _prepare(fake, path)
    login(client)
    response = _send(client, method, path, body)
    assert response.status_code == 200
    response.close()


def test_after_logout_the_therapy_api_is_401_again(client, fake):
    _prepare(fake, "/api/patients")
    headers = login(client)
    assert client.get("/api/patients").status_code == 200
    fresh = {"X-CSRFToken": client.post("/logout", headers=headers).get_json()["csrf_token"]}
    assert client.get("/api/patients").status_code == 401
    assert client.post("/api/sessions", json=START, headers=fresh).status_code == 401
    assert fake.calls_to("session_start") == []
