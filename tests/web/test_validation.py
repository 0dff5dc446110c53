"""Bad input is refused in the web layer with a 400 naming the field and its range; no command is sent."""

from __future__ import annotations

import pytest

from tests.web.helpers import login


@pytest.fixture
def therapist(client, fake):
    """A logged-in client and its CSRF header; the belt is READY."""
    fake.update(state="READY", reasons={})
    return client, login(client)


def _assert_refused(response, fake, *words):
    assert response.status_code == 400, (response.status_code, response.get_json())
    body = response.get_json()
    assert body["ok"] is False and body["code"] == "invalid"
    for word in words:
        assert word in body["message"], (word, body["message"])
    assert fake.commands == [], "the controller got a command"
    return body


BODY_ENDPOINTS = [("post", "/api/start"), ("post", "/api/speed"), ("post", "/api/mode"), ("put", "/api/limits"),
                  ("post", "/api/reset")]


@pytest.mark.parametrize("method, path", BODY_ENDPOINTS)
@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"\"text\"", b"42", b"{\"a\": "], ids=lambda r: repr(r))
def test_a_body_that_is_not_a_json_object_is_400(therapist, fake, method, path, raw):
    client, headers = therapist
    response = getattr(client, method)(path, data=raw, headers={**headers, "Content-Type": "application/json"})
    _assert_refused(response, fake, "JSON object")


@pytest.mark.parametrize("method, path", BODY_ENDPOINTS)
def test_a_form_body_is_400(therapist, fake, method, path):
    client, headers = therapist
    response = getattr(client, method)(path, data={"speed_kmh": "1.0"}, headers=headers)
    _assert_refused(response, fake)


@pytest.mark.parametrize("method, path, body", [
    ("post", "/api/start", {"speed_kmh": 1.0, "turbo": True}),
    ("post", "/api/speed", {"speed_kmh": 1.0, "turbo": True}),
    ("post", "/api/mode", {"mode": "forward", "turbo": True}),
    ("put", "/api/limits", {"base_stop_mm": 300, "turbo": True}),
    ("post", "/api/reset", {"turbo": True}),
])
def test_an_unknown_field_is_400_naming_it(therapist, fake, method, path, body):
    client, headers = therapist
    body_out = _assert_refused(getattr(client, method)(path, json=body, headers=headers), fake, "turbo")
    assert [e["field"] for e in body_out["errors"]] == ["turbo"]


SPEED_CASES = [
    ("fast", "speed_kmh"), (True, "speed_kmh"), ([1.0], "speed_kmh"), ({"v": 1}, "speed_kmh"),
    ("NaN", "speed_kmh"), ("nan", "speed_kmh"), ("inf", "speed_kmh"), ("Infinity", "speed_kmh"),
    ("1.0", "speed_kmh"), (2.5, "0 to 2 km/h"), (-0.5, "0 to 2 km/h"), (1e308, "0 to 2 km/h"),
]


@pytest.mark.parametrize("path", ["/api/speed", "/api/start"])
@pytest.mark.parametrize("value, words", SPEED_CASES, ids=[repr(v) for v, _ in SPEED_CASES])
def test_a_bad_speed_is_400_naming_speed_kmh_and_the_range(therapist, fake, path, value, words):
    client, headers = therapist
    body = _assert_refused(client.post(path, json={"speed_kmh": value}, headers=headers), fake, "speed_kmh", words)
    assert body["errors"][0]["field"] == "speed_kmh"
    assert "0 to 2 km/h" in body["errors"][0]["message"]


@pytest.mark.parametrize("path", ["/api/speed", "/api/start"])
@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_json_literals_are_400(therapist, fake, path, literal):
    # Python's json module accepts these non-standard literals: they must not pass as numbers.
    client, headers = therapist
    raw = b'{"speed_kmh": ' + literal + b"}"
    response = client.post(path, data=raw, headers={**headers, "Content-Type": "application/json"})
    body = _assert_refused(response, fake, "speed_kmh", "non-finite")
    assert isinstance(body["errors"][0]["value"], str)


def test_speed_is_required_for_set_speed(therapist, fake):
    client, headers = therapist
    _assert_refused(client.post("/api/speed", json={}, headers=headers), fake, "speed_kmh", "required")
    _assert_refused(client.post("/api/speed", json={"speed_kmh": None}, headers=headers), fake, "speed_kmh")


def test_start_without_a_speed_lets_the_controller_choose(therapist, fake):
    client, headers = therapist
    assert client.post("/api/start", headers=headers).status_code == 200
    assert client.post("/api/stop").status_code == 200
    fake.update(state="READY", reasons={})
    assert client.post("/api/start", json={"speed_kmh": None}, headers=headers).status_code == 200
    assert [c["value"] for c in fake.commands if c["command"] == "start"] == [None, None]


@pytest.mark.parametrize("value", ["sideways", "", 1, None, True, ["reverse"], "REVERSE"])
def test_a_bad_mode_is_400_listing_the_modes(therapist, fake, value):
    client, headers = therapist
    _assert_refused(client.post("/api/mode", json={"mode": value}, headers=headers), fake, "mode", "reverse, forward")


LIMIT_CASES = [
    ("reverse_cap_kmh", 7.0, "0.5 to 6 km/h"), ("reverse_cap_kmh", 0.1, "0.5 to 6 km/h"),
    ("forward_cap_kmh", 0, "0.5 to 6 km/h"), ("forward_cap_kmh", "2", "0.5 to 6 km/h"),
    ("base_stop_mm", 50, "100 to 600 mm"), ("base_stop_mm", 601, "100 to 600 mm"),
    ("base_stop_mm", "NaN", "100 to 600 mm"), ("warn_margin_mm", 600, "50 to 500 mm"),
    ("warn_margin_mm", False, "50 to 500 mm"), ("warn_margin_mm", None, "50 to 500 mm"),
]


@pytest.mark.parametrize("field, value, allowed", LIMIT_CASES, ids=[f"{f}={v!r}" for f, v, _ in LIMIT_CASES])
def test_a_bad_limit_is_400_naming_the_field_and_the_controllers_range(therapist, fake, field, value, allowed):
    client, headers = therapist
    body = _assert_refused(client.put("/api/limits", json={field: value}, headers=headers), fake, field, allowed)
    assert [e["field"] for e in body["errors"]] == [field]


def test_every_bad_limit_is_named_at_once(therapist, fake):
    client, headers = therapist
    body = _assert_refused(client.put("/api/limits", json={"reverse_cap_kmh": 9, "base_stop_mm": 1,
                                                           "warn_margin_mm": 200}, headers=headers), fake)
    assert sorted(e["field"] for e in body["errors"]) == ["base_stop_mm", "reverse_cap_kmh"]


def test_an_empty_limits_change_is_400(therapist, fake):
    client, headers = therapist
    _assert_refused(client.put("/api/limits", json={}, headers=headers), fake, "reverse_cap_kmh")


def test_a_huge_body_is_refused_without_a_500(therapist, fake):
    client, headers = therapist
    response = client.put("/api/limits", data=b'{"base_stop_mm": ' + b"1" * 100_000 + b"}",
                          headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.get_json()["ok"] is False
    assert fake.commands == []


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=abc", "limit=-1", "limit=1.5", "kind=a%20b",
                                   "kind=" + "x" * 40])
def test_bad_event_queries_are_400_naming_the_parameter(client, fake, query):
    response = client.get(f"/api/events?{query}")
    assert response.status_code == 400
    name = query.split("=")[0]
    assert response.get_json()["errors"][0]["field"] == name
    assert "events" not in fake.requests


def test_events_are_newest_first_within_the_limit(client, fake):
    for _ in range(3):
        client.post("/api/estop")
    events = client.get("/api/events?limit=2").get_json()["events"]
    assert len(events) == 2
    assert events[0]["id"] > events[1]["id"]


# --- refusals that only the controller can make are passed on -----------------------------------

def test_a_speed_the_controller_refuses_is_400_with_its_field_errors(therapist, fake):
    client, headers = therapist
    fake.update(state="RUNNING")
    response = client.post("/api/speed", json={"speed_kmh": 0.2}, headers=headers)
    assert response.status_code == 400
    body = response.get_json()
    assert body["code"] == "invalid"
    assert body["errors"][0]["field"] == "[command] speed_kmh"
    assert "0.5 to 2 km/h" in body["message"]


def test_a_limit_past_the_installers_ceiling_is_400_with_the_controllers_errors(therapist, fake):
    client, headers = therapist
    response = client.put("/api/limits", json={"base_stop_mm": 150}, headers=headers)
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "[limits] base_stop_mm"
    assert fake.status["limits"]["base_stop_mm"] == 250.0


def test_reset_while_ready_is_409_with_the_controllers_reason(therapist, fake):
    client, headers = therapist
    response = client.post("/api/reset", headers=headers)
    assert response.status_code == 409
    assert response.get_json()["code"] == "conflict"
    assert "nothing to reset" in response.get_json()["message"]


@pytest.mark.parametrize("method, path, body", [("post", "/api/mode", {"mode": "forward"}),
                                                ("put", "/api/limits", {"reverse_cap_kmh": 2.2}),
                                                ("post", "/api/start", {})])
def test_a_command_the_state_forbids_is_409_with_the_reason(therapist, fake, method, path, body):
    client, headers = therapist
    fake.update(state="RUNNING")
    response = getattr(client, method)(path, json=body, headers=headers)
    assert response.status_code == 409
    assert response.get_json()["message"]
