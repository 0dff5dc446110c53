"""With the controller unreachable, reads and commands answer 409 "controller offline", never a 500."""

from __future__ import annotations

import pytest

from tests.waiting import expect
from tests.web.helpers import csrf_headers, login
from web.link import EXTENSION_KEY

COMMANDS = [
    ("post", "/api/estop", None), ("post", "/api/stop", None), ("post", "/api/reset", None),
    ("post", "/api/start", {"speed_kmh": 1.0}), ("post", "/api/start", None),
    ("post", "/api/speed", {"speed_kmh": 1.0}), ("post", "/api/mode", {"mode": "forward"}),
    ("put", "/api/limits", {"base_stop_mm": 260}), ("post", "/api/demo/drift_back", None),
]


def _assert_offline(response):
    assert response.status_code == 409, (response.status_code, response.get_json())
    body = response.get_json()
    assert body["ok"] is False and body["code"] == "offline"
    assert "controller offline" in body["message"]


@pytest.mark.parametrize("path", ["/api/status", "/api/events", "/api/limits"])
def test_reads_are_409_controller_offline(offline_client, path):
    _assert_offline(offline_client.get(path))


@pytest.mark.parametrize("method, path, body", COMMANDS, ids=[f"{c[1]}-{c[2]}" for c in COMMANDS])
def test_commands_from_a_logged_in_therapist_are_409_controller_offline(offline_client, method, path, body):
    headers = login(offline_client)
    _assert_offline(getattr(offline_client, method)(path, json=body, headers=headers))


def test_page_session_and_login_still_work_while_offline(offline_client):
    assert offline_client.get("/").status_code == 200
    assert offline_client.get("/api/session").status_code == 200
    login(offline_client)


def test_a_body_of_the_wrong_shape_is_still_400_but_a_value_waits_for_the_controller(offline_client):
    # The shape is HTTP's and checked here; whether "sideways" is a mode only the controller says.
    headers = login(offline_client)
    assert offline_client.post("/api/mode", json=["forward"], headers=headers).status_code == 400
    assert offline_client.post("/api/mode", json={"mode": "forward", "turbo": 1}, headers=headers).status_code == 400
    _assert_offline(offline_client.post("/api/mode", json={"mode": "sideways"}, headers=headers))


def test_a_controller_that_goes_away_mid_session_gives_409(client, fake):
    headers = login(client)
    assert client.get("/api/status").status_code == 200
    fake.close()
    _assert_offline(client.get("/api/status"))
    _assert_offline(client.post("/api/estop"))
    _assert_offline(client.post("/api/reset", headers=headers))


def test_anonymous_estop_while_offline_is_409_not_401_or_403(offline_client):
    _assert_offline(offline_client.post("/api/estop"))
    _assert_offline(offline_client.post("/api/stop", headers=csrf_headers(offline_client)))


# --- /api/status from the shared subscription ------------------------------------------------

def _hub_live(app) -> bool:
    return app.extensions[EXTENSION_KEY].hub.latest is not None


def test_status_polls_are_served_from_the_shared_subscription(app, client, fake):
    client.get("/api/status")
    expect(lambda: _hub_live(app), what="the status hub to subscribe")
    fake.update(gap_mm=612.0)
    expect(lambda: client.get("/api/status").get_json()["gap_mm"] == 612.0, what="the new gap")
    with fake.lock:
        fake.requests.clear()
    for _ in range(20):
        assert client.get("/api/status").status_code == 200
    assert "status" not in fake.requests


def test_status_right_after_a_command_is_never_older_than_the_command(app, client, fake):
    client.get("/api/status")
    expect(lambda: _hub_live(app), what="the status hub to subscribe")
    for _ in range(20):
        fake.update(state="RUNNING", reasons={})
        assert client.post("/api/estop").status_code == 200
        assert client.get("/api/status").get_json()["state"] == "STOPPED"


def test_status_goes_offline_with_the_subscription(app, client, fake):
    client.get("/api/status")
    expect(lambda: _hub_live(app), what="the status hub to subscribe")
    fake.close()
    expect(lambda: client.get("/api/status").status_code == 409, what="409 once the controller is gone")
