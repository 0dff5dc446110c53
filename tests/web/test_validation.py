"""Bad input to the control API: the wrong shape is refused here, a bad value by the controller.

The dashboard checks only what HTTP needs: the body is a JSON object of the keys
the endpoint reads, within its size, and then nothing is sent. Every value rule
is the controller's; its refusal comes back as a 400 that names the field and the
allowed range, and nothing changes. The fake controller refuses with the
controller's own checks (controller.safety.checks), so the words are its own.
"""

from __future__ import annotations

import pytest

from tests.web.helpers import controller_refused, login


@pytest.fixture
def therapist(client, fake):
    """A logged-in client and its CSRF header; the belt is READY."""
    fake.update(state="READY", reasons={})
    return client, login(client)


def _assert_refused(response, fake, *words):
    """A 400 decided by the dashboard: the controller got no command."""
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
    ("post", "/api/reset", {"turbo": True}),
])
def test_a_key_the_endpoint_does_not_read_is_400_naming_it(therapist, fake, method, path, body):
    client, headers = therapist
    body_out = _assert_refused(getattr(client, method)(path, json=body, headers=headers), fake, "turbo")
    assert [e["field"] for e in body_out["errors"]] == ["turbo"]


def test_a_limit_the_controller_does_not_know_is_400_naming_it(therapist, fake):
    # The limits body is the controller's to read: its one list of limits names the stranger.
    client, headers = therapist
    body = {"base_stop_mm": 260, "turbo": True}
    controller_refused(lambda: client.put("/api/limits", json=body, headers=headers), fake, ["[limits] turbo"],
                       "valid options")


def test_speed_is_required_for_set_speed(therapist, fake):
    client, headers = therapist
    _assert_refused(client.post("/api/speed", json={}, headers=headers), fake, "speed_kmh", "required")


def test_a_body_nested_past_the_depth_limit_is_400_naming_the_body_and_not_sent(therapist, fake):
    # Such a value would reach the controller's decision thread, where repr() in its error message recurses.
    client, headers = therapist
    deep = b'{"base_stop_mm": ' + b"[" * 150 + b"]" * 150 + b"}"
    headers = {**headers, "Content-Type": "application/json"}
    body = _assert_refused(client.put("/api/limits", data=deep, headers=headers), fake, "levels deep")
    assert [e["field"] for e in body["errors"]] == ["body"]
    assert fake.calls == []


def test_a_body_nested_within_the_depth_limit_is_the_controllers_to_refuse(therapist, fake):
    client, headers = therapist
    nested = b'{"base_stop_mm": ' + b"[" * 99 + b"]" * 99 + b"}"
    headers = {**headers, "Content-Type": "application/json"}
    controller_refused(lambda: client.put("/api/limits", data=nested, headers=headers), fake,
                       ["[limits] base_stop_mm"], "200 to 600 mm")


def test_a_huge_body_is_refused_without_a_500(therapist, fake):
    client, headers = therapist
    response = client.put("/api/limits", data=b'{"base_stop_mm": ' + b"1" * 100_000 + b"}",
                          headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.get_json()["ok"] is False
    assert fake.commands == []


# --- bad values: the controller's named refusal, passed on ---------------------------------------

SPEED_CASES = [
    ("fast", "0.5 to 2 km/h"), (True, "0.5 to 2 km/h"), ([1.0], "0.5 to 2 km/h"), ({"v": 1}, "0.5 to 2 km/h"),
    ("NaN", "0.5 to 2 km/h"), ("inf", "0.5 to 2 km/h"), ("1.0", "0.5 to 2 km/h"), (0.2, "0.5 to 2 km/h"),
    (-0.5, "0.5 to 2 km/h"), (1e308, "0.5 to 2 km/h"), (10 ** 40, "0.5 to 2 km/h"),
    (2.5, "above the reverse cap 2 km/h"),
]


@pytest.mark.parametrize("path", ["/api/speed", "/api/start"])
@pytest.mark.parametrize("value, words", SPEED_CASES, ids=[repr(v)[:20] for v, _ in SPEED_CASES])
def test_a_bad_speed_is_400_naming_speed_kmh_and_the_range(therapist, fake, path, value, words):
    client, headers = therapist
    controller_refused(lambda: client.post(path, json={"speed_kmh": value}, headers=headers), fake,
                       ["[command] speed_kmh"], words)


def test_a_null_speed_to_set_is_the_controllers_to_refuse(therapist, fake):
    client, headers = therapist
    controller_refused(lambda: client.post("/api/speed", json={"speed_kmh": None}, headers=headers), fake,
                       ["[command] speed_kmh"], "0.5 to 2 km/h")


@pytest.mark.parametrize("path", ["/api/speed", "/api/start"])
@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_json_literals_are_400(therapist, fake, path, literal):
    # Python's json module accepts these non-standard literals: they reach the controller, which is no fool.
    client, headers = therapist
    raw = b'{"speed_kmh": ' + literal + b"}"
    headers = {**headers, "Content-Type": "application/json"}
    body = controller_refused(lambda: client.post(path, data=raw, headers=headers), fake, ["[command] speed_kmh"],
                              "0.5 to 2 km/h")
    assert isinstance(body["errors"][0]["value"], str)


def test_start_without_a_speed_lets_the_controller_choose(therapist, fake):
    client, headers = therapist
    assert client.post("/api/start", headers=headers).status_code == 200
    assert client.post("/api/stop").status_code == 200
    fake.update(state="READY", reasons={})
    assert client.post("/api/start", json={"speed_kmh": None}, headers=headers).status_code == 200
    assert [c["value"] for c in fake.commands if c["command"] == "start"] == [None, None]


@pytest.mark.parametrize("value", ["sideways", "", 1, None, True, ["reverse"], "REVERSE"])
def test_a_bad_mode_is_400_naming_the_modes(therapist, fake, value):
    client, headers = therapist
    controller_refused(lambda: client.post("/api/mode", json={"mode": value}, headers=headers), fake,
                       ["[command] mode"], '"reverse" or "forward"')


LIMIT_CASES = [
    # One range per limit: its own within the installer's ceilings (2.2 km/h, 200 mm, 100 mm here).
    ("reverse_cap_kmh", 7.0, "from 0.5 to 2.2 km/h"), ("reverse_cap_kmh", 0.1, "from 0.5 to 2.2 km/h"),
    ("forward_cap_kmh", 0, "from 0.5 to 2.2 km/h"), ("forward_cap_kmh", "2", "from 0.5 to 2.2 km/h"),
    ("base_stop_mm", 50, "from 200 to 600 mm"), ("base_stop_mm", 601, "from 200 to 600 mm"),
    ("base_stop_mm", "NaN", "from 200 to 600 mm"), ("warn_margin_mm", 600, "from 100 to 500 mm"),
    ("warn_margin_mm", False, "from 100 to 500 mm"), ("warn_margin_mm", None, "from 100 to 500 mm"),
    # Within the limit's own range but past the installer's ceiling: the same one range.
    ("reverse_cap_kmh", 2.3, "must be a number from 0.5 to 2.2 km/h"),
    ("base_stop_mm", 150, "must be a number from 200 to 600 mm"),
    ("warn_margin_mm", 99, "must be a number from 100 to 500 mm"),
]


@pytest.mark.parametrize("field, value, allowed", LIMIT_CASES, ids=[f"{f}={v!r}" for f, v, _ in LIMIT_CASES])
def test_a_bad_limit_is_400_naming_the_field_and_the_controllers_range(therapist, fake, field, value, allowed):
    client, headers = therapist
    controller_refused(lambda: client.put("/api/limits", json={field: value}, headers=headers), fake,
                       [f"[limits] {field}"], allowed)


def test_limits_the_sensors_cannot_guard_are_400_naming_the_cap(therapist, fake):
    # A longer stop distance at the forward cap of 2.2 km/h puts the warn zone past the sensors' 800 mm.
    client, headers = therapist
    controller_refused(lambda: client.put("/api/limits", json={"base_stop_mm": 300}, headers=headers), fake,
                       ["[limits] forward_cap_kmh"], "sensor_reach_mm = 800")


def test_every_bad_limit_is_named_at_once(therapist, fake):
    client, headers = therapist
    body = {"reverse_cap_kmh": 9, "base_stop_mm": 1, "warn_margin_mm": 200}
    controller_refused(lambda: client.put("/api/limits", json=body, headers=headers), fake,
                       ["[limits] base_stop_mm", "[limits] reverse_cap_kmh"], "must be a number from")


@pytest.mark.parametrize("body", [{}, None], ids=["empty object", "no body"])
def test_an_empty_limits_change_is_400(therapist, fake, body):
    client, headers = therapist
    controller_refused(lambda: client.put("/api/limits", json=body, headers=headers), fake, ["[limits]"],
                       "no limit given")


# --- query parameters: their type here, their range at the controller ----------------------------

@pytest.mark.parametrize("query, words", [("limit=abc", "whole number"), ("limit=-1", "whole number"),
                                          ("limit=1.5", "whole number"), ("limit=²", "whole number"),
                                          ("kind=" + "x" * 40, "at most 32 characters")])
def test_an_event_query_of_the_wrong_type_or_size_is_400_before_the_controller_is_asked(client, fake, query,
                                                                                        words):
    response = client.get(f"/api/events?{query}")
    assert response.status_code == 400
    (error,) = response.get_json()["errors"]
    assert error["field"] == query.split("=")[0] and words in error["message"]
    assert "events" not in fake.requests


@pytest.mark.parametrize("query, field, words", [("limit=0", "[events] limit", "1 to 500"),
                                                 ("limit=501", "[events] limit", "1 to 500"),
                                                 ("kind=a%20b", "[events] kind", '"trip"'),
                                                 ("kind=tripx", "[events] kind", '"trip"')])
def test_an_event_query_out_of_range_is_the_controllers_400_naming_it(client, fake, query, field, words):
    response = client.get(f"/api/events?{query}")
    assert response.status_code == 400
    (error,) = response.get_json()["errors"]
    assert error["field"] == field and words in error["message"]


def test_events_are_newest_first_within_the_limit(client, fake):
    for _ in range(3):
        client.post("/api/estop")
    events = client.get("/api/events?limit=2").get_json()["events"]
    assert len(events) == 2
    assert events[0]["id"] > events[1]["id"]


# --- what the present state decides ------------------------------------------------------------

def test_the_cap_a_speed_is_checked_against_is_the_present_modes(therapist, fake):
    client, headers = therapist
    fake.update(state="RUNNING")
    controller_refused(lambda: client.post("/api/speed", json={"speed_kmh": 2.1}, headers=headers), fake,
                       ["[command] speed_kmh"], "above the reverse cap 2 km/h")
    fake.update(mode="forward")
    assert client.post("/api/speed", json={"speed_kmh": 2.1}, headers=headers).status_code == 200
    assert abs(fake.status["target_mps"] * 3.6 - 2.1) < 1e-9


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
