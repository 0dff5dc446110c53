"""Who may do what: every state-changing endpoint × anonymous / logged in / without a CSRF token."""

from __future__ import annotations

import pytest

from tests.web.helpers import THERAPIST, csrf_headers, login

#: (method, path, body, the IPC command it becomes, the state in which the controller accepts it)
GUARDED = [
    ("post", "/api/reset", None, "reset", "STOPPED"),
    ("post", "/api/start", {"speed_kmh": 1.0}, "start", "READY"),
    ("post", "/api/speed", {"speed_kmh": 1.5}, "set_speed", "RUNNING"),
    ("post", "/api/mode", {"mode": "forward"}, "set_mode", "READY"),
    # 260 mm: a longer stop distance would carry the forward cap's warn zone past the sensors' reach.
    ("put", "/api/limits", {"base_stop_mm": 260}, "set_limits", "READY"),
]
STOPS = [("/api/estop", "estop"), ("/api/stop", "stop")]


def _send(client, method, path, body, headers=None):
    return getattr(client, method)(path, json=body, headers=headers or {})


@pytest.mark.parametrize("method, path, body, command, state", GUARDED, ids=[g[1] for g in GUARDED])
def test_guarded_command_from_anonymous_is_401_and_reaches_no_controller(client, fake, method, path, body,
                                                                         command, state):
    fake.update(state=state, reasons={})
    response = _send(client, method, path, body, csrf_headers(client))
    assert response.status_code == 401
    assert response.get_json()["code"] == "login_required"
    assert response.get_json()["ok"] is False
    assert fake.commands == []


@pytest.mark.parametrize("method, path, body, command, state", GUARDED, ids=[g[1] for g in GUARDED])
def test_guarded_command_from_logged_in_therapist_reaches_controller_with_name_and_authority(
        client, fake, method, path, body, command, state):
    fake.update(state=state, reasons={})
    headers = login(client)
    response = _send(client, method, path, body, headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["ok"] is True
    expected_value = body.get("speed_kmh", body.get("mode")) if body and command != "set_limits" else body
    assert fake.commands == [{"command": command, "actor": THERAPIST, "authorized": True,
                              "value": expected_value}]


@pytest.mark.parametrize("method, path, body, command, state", GUARDED, ids=[g[1] for g in GUARDED])
@pytest.mark.parametrize("token", [None, "not-a-token"], ids=["missing", "forged"])
def test_guarded_command_without_a_valid_csrf_token_is_403_even_when_logged_in(
        client, fake, method, path, body, command, state, token):
    fake.update(state=state, reasons={})
    login(client)
    headers = {} if token is None else {"X-CSRFToken": token}
    response = _send(client, method, path, body, headers)
    assert response.status_code == 403
    assert response.get_json()["code"] == "csrf"
    assert fake.commands == []


@pytest.mark.parametrize("path, command", STOPS)
def test_stop_from_anonymous_without_any_token_is_200_and_unauthorized(client, fake, path, command):
    fake.update(state="RUNNING", reasons={})
    response = client.post(path)
    assert response.status_code == 200, response.get_json()
    assert fake.commands == [{"command": command, "actor": "anonymous (127.0.0.1)", "authorized": False,
                              "value": None}]


@pytest.mark.parametrize("path, command", STOPS)
def test_stop_from_logged_in_therapist_is_200_and_names_her(client, fake, path, command):
    fake.update(state="RUNNING", reasons={})
    headers = login(client)
    response = client.post(path, headers=headers)
    assert response.status_code == 200
    assert fake.commands == [{"command": command, "actor": THERAPIST, "authorized": True, "value": None}]


@pytest.mark.parametrize("path, command", STOPS)
def test_stop_with_a_stale_page_forged_token_and_junk_body_still_stops(client, fake, path, command):
    fake.update(state="RUNNING", reasons={})
    login(client)
    response = client.post(path, data=b"\x00not json{", headers={"X-CSRFToken": "stale",
                                                                  "Content-Type": "application/json"})
    assert response.status_code == 200
    assert [c["command"] for c in fake.commands] == [command]


def test_estop_stops_a_running_belt(client, fake):
    fake.update(state="RUNNING", reasons={})
    assert client.post("/api/estop").status_code == 200
    status = client.get("/api/status").get_json()
    assert status["state"] == "STOPPED"
    assert "estop_command" in status["reasons"]


@pytest.mark.parametrize("path", ["/login", "/logout"])
def test_login_and_logout_need_a_csrf_token(client, path):
    response = client.post(path, json={"name": THERAPIST, "password": "whatever"})
    assert response.status_code == 403
    assert response.get_json()["code"] == "csrf"


def test_demo_control_needs_a_csrf_token_but_no_login(client, fake):
    fake.update(demo=True)
    assert client.post("/api/demo/drift_back").status_code == 403
    response = client.post("/api/demo/drift_back", headers=csrf_headers(client))
    assert response.status_code == 200
    assert response.get_json()["message"] == "demo: drift_back"
    assert fake.demo_calls == ["drift_back"]


def test_demo_control_is_404_when_the_controller_has_no_demo(client, fake):
    response = client.post("/api/demo/drift_back", headers=csrf_headers(client))
    assert response.status_code == 404
    assert fake.demo_calls == []


def test_unknown_demo_action_is_404(client, fake):
    fake.update(demo=True)
    response = client.post("/api/demo/launch_rocket", headers=csrf_headers(client))
    assert response.status_code == 404
    assert fake.demo_calls == []


def test_after_logout_guarded_commands_are_401_again(client, fake):
    headers = login(client)
    response = client.post("/logout", headers=headers)
    assert response.status_code == 200
    fresh = {"X-CSRFToken": response.get_json()["csrf_token"]}
    assert client.post("/api/reset", headers=fresh).status_code == 401
    assert fake.commands == []


@pytest.mark.parametrize("path", ["/api/status", "/api/events", "/api/limits", "/api/session", "/"])
def test_reading_needs_no_login(client, path):
    assert client.get(path).status_code == 200
