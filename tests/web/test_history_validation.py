"""Bad therapy input is refused in the web layer: 400 naming the field and its range; nothing is changed.

Fields whose range is fixed (SPEC) are refused before the controller is asked
anything. The prescription's limits are checked against the ranges the
controller gives in its ``patients`` reply, so that read happens, but no change
ever reaches it.
"""

from __future__ import annotations

import pytest

from tests.web.helpers import VALID_PATIENT

CHANGING = ("patient_save", "patient_delete", "patient_select", "session_start", "session_pause",
            "session_resume", "session_end", "session_pain")
UPDATE = {k: v for k, v in VALID_PATIENT.items() if k != "patient_id"}
START = {"patient_id": "P01", "planned_min": 7.5, "pain_before": 4}
#: What each session-start refusal says is allowed.
RANGES = {"patient_id": "1 to 16 letters, digits, _ or -", "planned_min": "a number from 0.25 to 60 min",
          "pain_before": "a whole number from 0 to 10", "speed_kmh": "at most the patient's speed cap"}


def _refused(response, fake, field, *words, asked=()):
    """A 400 whose errors name ``field`` (and the message ``words``); the controller was asked only ``asked``."""
    assert response.status_code == 400, (response.status_code, response.get_json())
    body = response.get_json()
    assert body["ok"] is False and body["code"] == "invalid"
    assert field in [e["field"] for e in body["errors"]], body
    message = next(e["message"] for e in body["errors"] if e["field"] == field)
    assert message.startswith(field), message
    for word in words:
        assert word in message, (word, message)
    assert [name for name, _ in fake.calls] == list(asked)
    assert not any(name in CHANGING for name, _ in fake.calls)
    return body


# --- patient profiles: every field ------------------------------------------------------------

#: (field, bad value, words the message must hold, whether the controller's ranges were asked)
PROFILE_CASES = [
    ("patient_id", "", "1 to 16 letters, digits, _ or -", False),
    ("patient_id", "P" * 17, "1 to 16", False),
    ("patient_id", "_P01", "starting with a letter or digit", False),
    ("patient_id", "P 01", "1 to 16", False),
    ("patient_id", "P01\n", "1 to 16", False),
    ("patient_id", "Pé1", "1 to 16", False),
    ("patient_id", 7, "1 to 16", False),
    ("patient_id", None, "1 to 16", False),
    ("display_name", "", "1 to 40 characters", False),
    ("display_name", "x" * 41, "got 41 characters", False),
    ("display_name", "A.\nB.", "no control characters", False),
    ("display_name", 12, "got int", False),
    ("notes", "n" * 2001, "0 to 2000 characters; got 2001", False),
    ("notes", ["a"], "got list", False),
    ("mode", "sideways", "reverse, forward", False),
    ("mode", "REVERSE", "reverse, forward", False),
    ("mode", None, "reverse, forward", False),
    ("notes", "pain \ud800", "got a lone surrogate", False),
    ("display_name", "\udfff", "got a lone surrogate", False),
    ("speed_cap_kmh", "1.2", "must be a number in km/h", False),
    ("speed_cap_kmh", True, "got bool", False),
    ("speed_cap_kmh", None, "got NoneType", False),
    ("speed_cap_kmh", 0.2, "0.5 to 2.2 km/h; got 0.2", True),
    ("speed_cap_kmh", 2.3, "0.5 to 2.2 km/h; got 2.3", True),
    ("base_stop_mm", "300", "must be a number in mm", False),
    ("base_stop_mm", 150, "200 to 600 mm; got 150", True),
    ("base_stop_mm", 601, "200 to 600 mm; got 601", True),
    ("warn_margin_mm", [150], "must be a number in mm", False),
    ("warn_margin_mm", 99, "100 to 500 mm; got 99", True),
    ("warn_margin_mm", 501, "100 to 500 mm; got 501", True),
    ("target_min", 0.5, "1 to 60 min; got 0.5", False),
    ("target_min", 61, "1 to 60 min; got 61", False),
    ("target_min", "20", "1 to 60 min", False),
    ("sessions_per_day", 0, "whole number from 1 to 4; got 0", False),
    ("sessions_per_day", 5, "whole number from 1 to 4; got 5", False),
    ("sessions_per_day", 1.5, "whole number from 1 to 4; got float", False),
    ("sessions_per_day", False, "got bool", False),
]
PROFILE_IDS = [f"{f}={v!r}"[:40] for f, v, _, _ in PROFILE_CASES]


@pytest.mark.parametrize("field, value, words, ranged", PROFILE_CASES, ids=PROFILE_IDS)
def test_a_bad_field_of_a_new_patient_is_400_naming_it_and_its_range(clinic, fake, field, value, words, ranged):
    client, headers = clinic
    response = client.post("/api/patients", json={**VALID_PATIENT, field: value}, headers=headers)
    _refused(response, fake, field, words, asked=["patients"] if ranged else [])
    assert "P02" not in fake.therapy.patients


@pytest.mark.parametrize("field, value, words, ranged",
                         [c for c in PROFILE_CASES if c[0] != "patient_id"],
                         ids=[i for i, c in zip(PROFILE_IDS, PROFILE_CASES, strict=True) if c[0] != "patient_id"])
def test_a_bad_field_of_a_profile_update_is_400_naming_it_and_its_range(clinic, fake, field, value, words, ranged):
    client, headers = clinic
    before = dict(fake.therapy.patients["P01"])
    response = client.put("/api/patients/P01", json={**UPDATE, field: value}, headers=headers)
    _refused(response, fake, field, words, asked=["patients"] if ranged else [])
    assert fake.therapy.patients["P01"] == before


def test_every_bad_profile_field_is_named_at_once(clinic, fake):
    client, headers = clinic
    body = {**VALID_PATIENT, "display_name": "", "mode": "up", "target_min": 0}
    response = _refused(client.post("/api/patients", json=body, headers=headers), fake, "display_name")
    assert sorted(e["field"] for e in response["errors"]) == ["display_name", "mode", "target_min"]


@pytest.mark.parametrize("field", [f for f in VALID_PATIENT if f != "notes"])
def test_a_new_patient_without_a_required_field_is_400_naming_it(clinic, fake, field):
    client, headers = clinic
    body = {k: v for k, v in VALID_PATIENT.items() if k != field}
    _refused(client.post("/api/patients", json=body, headers=headers), fake, field, "required")


@pytest.mark.parametrize("field", list(UPDATE))
def test_a_profile_update_without_a_field_is_400_naming_it(clinic, fake, field):
    # An update replaces the whole profile: a missing notes field must not wipe the notes unasked.
    client, headers = clinic
    body = {k: v for k, v in UPDATE.items() if k != field}
    _refused(client.put("/api/patients/P01", json=body, headers=headers), fake, field, "required")


@pytest.mark.parametrize("method, path, body", [
    ("post", "/api/patients", {**VALID_PATIENT, "birth_date": "1970-01-01"}),
    ("put", "/api/patients/P01", {**UPDATE, "birth_date": "1970-01-01"}),
    ("put", "/api/patients/P01", {**UPDATE, "created_wall": 0}),
    ("post", "/api/sessions", {**START, "birth_date": "1970-01-01"}),
    ("put", "/api/sessions/1/pain", {"pain_after": 2, "birth_date": "1970-01-01"}),
    ("post", "/api/patients/P01/select", {"birth_date": "1970-01-01"}),
    ("delete", "/api/patients/P01", {"birth_date": "1970-01-01"}),
    ("post", "/api/sessions/current/pause", {"birth_date": "1970-01-01"}),
    ("post", "/api/sessions/current/resume", {"birth_date": "1970-01-01"}),
    ("post", "/api/sessions/current/end", {"birth_date": "1970-01-01"}),
])
def test_an_unknown_field_is_400_naming_it(clinic, fake, method, path, body):
    client, headers = clinic
    name = next(k for k in body if k in ("birth_date", "created_wall"))
    response = getattr(client, method)(path, json=body, headers=headers)
    assert response.status_code == 400
    errors = response.get_json()["errors"]
    assert [e["field"] for e in errors] == [name]
    assert f"unknown field '{name}'" in errors[0]["message"]
    assert fake.calls == []


def test_a_profile_update_may_not_change_the_patient_id(clinic, fake):
    client, headers = clinic
    response = client.put("/api/patients/P01", json={**UPDATE, "patient_id": "P09"}, headers=headers)
    _refused(response, fake, "patient_id", "cannot be changed", "'P01'")


def test_a_profile_update_may_repeat_the_patient_id_unchanged(clinic, fake):
    client, headers = clinic
    response = client.put("/api/patients/P01", json={**UPDATE, "patient_id": "P01"}, headers=headers)
    assert response.status_code == 200, response.get_json()
    assert fake.therapy.patients["P01"]["display_name"] == "C.D."


@pytest.mark.parametrize("method, path, body", [
    ("get", "/api/patients/_bad", None), ("put", "/api/patients/_bad", UPDATE),
    ("delete", "/api/patients/_bad", None), ("post", "/api/patients/_bad/select", None),
    ("get", "/api/patients/_bad/sessions.csv", None), ("get", "/api/patients/" + "P" * 17, None),
])
def test_a_malformed_patient_id_in_the_url_is_400_naming_patient_id(clinic, fake, method, path, body):
    client, headers = clinic
    _refused(getattr(client, method)(path, json=body, headers=headers), fake, "patient_id", "1 to 16")


def test_a_full_length_note_in_any_script_fits_the_body_limit(clinic, fake):
    client, headers = clinic
    notes = "😀" * 2000  # 12 bytes each as a JSON escape
    response = client.post("/api/patients", json={**VALID_PATIENT, "notes": notes}, headers=headers)
    assert response.status_code == 201, response.get_json()
    assert fake.therapy.patients["P02"]["notes"] == notes


# --- sessions ---------------------------------------------------------------------------------

START_CASES = [
    ("patient_id", "", "1 to 16"), ("patient_id", 1, "1 to 16"), ("patient_id", "a b", "1 to 16"),
    ("planned_min", 0.2, "0.25 to 60 min; got 0.2"), ("planned_min", 61, "0.25 to 60 min; got 61"),
    ("planned_min", "7", "0.25 to 60 min; got str"), ("planned_min", None, "0.25 to 60 min; got NoneType"),
    ("planned_min", True, "0.25 to 60 min; got bool"),
    ("pain_before", -1, "whole number from 0 to 10"), ("pain_before", 11, "got 11"),
    ("pain_before", 3.5, "whole number from 0 to 10"), ("pain_before", "3", "got str"),
    ("pain_before", None, "got NoneType"), ("pain_before", True, "got bool"),
    ("speed_kmh", 0, "above 0 km/h"), ("speed_kmh", -1, "above 0 km/h"), ("speed_kmh", "1", "above 0 km/h"),
    ("speed_kmh", True, "above 0 km/h"),
]


@pytest.mark.parametrize("field, value, words", START_CASES, ids=[f"{f}={v!r}" for f, v, _ in START_CASES])
def test_a_bad_field_of_a_session_start_is_400_naming_it_and_its_range(clinic, fake, field, value, words):
    client, headers = clinic
    body = _refused(client.post("/api/sessions", json={**START, field: value}, headers=headers), fake, field, words)
    assert RANGES[field] in body["errors"][0]["message"]
    assert fake.status["state"] == "READY" and fake.status["session"] is None


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
@pytest.mark.parametrize("field", ["planned_min", "pain_before", "speed_kmh"])
def test_non_finite_json_literals_in_a_session_start_are_400(clinic, fake, field, literal):
    client, headers = clinic
    raw = (b'{"patient_id": "P01", "planned_min": 5, "pain_before": 3, "' + field.encode() + b'": '
           + literal + b"}")
    response = client.post("/api/sessions", data=raw, headers={**headers, "Content-Type": "application/json"})
    _refused(response, fake, field)


@pytest.mark.parametrize("field", ["patient_id", "planned_min", "pain_before"])
def test_a_session_start_without_a_required_field_is_400_naming_it(clinic, fake, field):
    client, headers = clinic
    body = {k: v for k, v in START.items() if k != field}
    _refused(client.post("/api/sessions", json=body, headers=headers), fake, field, "required")


@pytest.mark.parametrize("value, words", [(-1, "from 0 to 10"), (11, "got 11"), (2.5, "got float"),
                                          ("3", "got str"), (None, "got NoneType"), (False, "got bool")])
def test_a_bad_pain_after_is_400_naming_it_and_the_scale(clinic, fake, value, words):
    client, headers = clinic
    with fake.lock:
        fake.therapy.add_session("P01", pain_after=None)
    response = client.put("/api/sessions/1/pain", json={"pain_after": value}, headers=headers)
    _refused(response, fake, "pain_after", "whole number from 0 to 10", words)
    assert fake.therapy.sessions[1]["pain_after"] is None


def test_pain_after_is_required(clinic, fake):
    client, headers = clinic
    _refused(client.put("/api/sessions/1/pain", json={}, headers=headers), fake, "pain_after", "required")


@pytest.mark.parametrize("method, path, body", [
    ("get", "/api/sessions/0", None), ("put", "/api/sessions/0/pain", {"pain_after": 1}),
    ("get", "/api/sessions/0/samples", None), ("get", "/api/sessions/0/samples.csv", None),
    ("get", f"/api/sessions/{2 ** 63}", None),
])
def test_a_session_id_out_of_range_is_400_naming_session_id(clinic, fake, method, path, body):
    client, headers = clinic
    _refused(getattr(client, method)(path, json=body, headers=headers), fake, "session_id", "whole number from 1")


@pytest.mark.parametrize("path", ["/api/sessions/x", "/api/sessions/-1", "/api/sessions/1.5"])
def test_a_session_id_that_is_not_a_number_is_a_json_404(clinic, fake, path):
    client, _ = clinic
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json()["ok"] is False
    assert fake.calls == []


@pytest.mark.parametrize("query", ["offset=-1", "offset=x", "offset=1.5", "offset=1000000001", "limit=0",
                                   "limit=5001", "limit=abc"])
def test_a_bad_samples_query_is_400_naming_the_parameter_and_its_range(clinic, fake, query):
    client, _ = clinic
    name = query.split("=")[0]
    response = client.get(f"/api/sessions/1/samples?{query}")
    body = _refused(response, fake, name)
    assert ("0 to 1000000000" if name == "offset" else "1 to 5000") in body["errors"][0]["message"]


# --- bodies that are not JSON objects ---------------------------------------------------------

BODY_ENDPOINTS = [("post", "/api/patients"), ("put", "/api/patients/P01"), ("post", "/api/sessions"),
                  ("put", "/api/sessions/1/pain"), ("post", "/api/patients/P01/select"),
                  ("post", "/api/sessions/current/end")]


@pytest.mark.parametrize("method, path", BODY_ENDPOINTS)
@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"\"text\"", b"42", b"{\"a\": "], ids=lambda r: repr(r))
def test_a_body_that_is_not_a_json_object_is_400(clinic, fake, method, path, raw):
    client, headers = clinic
    response = getattr(client, method)(path, data=raw, headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert "JSON object" in response.get_json()["message"]
    assert fake.calls == []


@pytest.mark.parametrize("method, path", BODY_ENDPOINTS)
def test_a_form_body_is_400(clinic, fake, method, path):
    client, headers = clinic
    response = getattr(client, method)(path, data={"pain_after": "1"}, headers=headers)
    assert response.status_code == 400
    assert fake.calls == []


def test_a_huge_profile_body_is_413_without_a_500(clinic, fake):
    client, headers = clinic
    response = client.post("/api/patients", data=b'{"notes": "' + b"x" * 40_000 + b'"}',
                           headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.get_json()["ok"] is False
    assert fake.calls == []
