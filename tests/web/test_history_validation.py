"""Bad therapy input: the wrong shape is refused here, every bad value by the controller, named.

The dashboard checks only a body's shape (a JSON object of the keys the
endpoint reads, within its size), the types its URL and query need, and that an
update keeps the URL's patient id and sends its notes; then nothing is sent.
Every value (ids, text, modes, ranges, scales) is the controller's: its refusal
comes back as a 400 naming the field and the allowed range, and nothing
changes. The fake controller checks with the controller's own rules
(controller.therapy.patients and the session runner's scales), so the words are
its own.
"""

from __future__ import annotations

import pytest

from tests.web.helpers import VALID_PATIENT, controller_refused

UPDATE = {k: v for k, v in VALID_PATIENT.items() if k != "patient_id"}
START = {"patient_id": "P01", "planned_min": 7.5, "pain_before": 4}
PATIENT_ID_RULE = "1 to 16 letters, digits, _ or -"


def _refused_here(response, fake, field, *words):
    """A 400 decided by the dashboard naming ``field`` (and the message ``words``): the controller was not asked."""
    assert response.status_code == 400, (response.status_code, response.get_json())
    body = response.get_json()
    assert body["ok"] is False and body["code"] == "invalid"
    assert field in [e["field"] for e in body["errors"]], body
    message = next(e["message"] for e in body["errors"] if e["field"] == field)
    for word in words:
        assert word in message, (word, message)
    assert fake.calls == []
    return body


# --- patient profiles: every field, checked by the controller -------------------------------------

#: (field, bad value, words the controller's message holds)
PROFILE_CASES = [
    ("patient_id", "", PATIENT_ID_RULE), ("patient_id", "P" * 17, PATIENT_ID_RULE),
    ("patient_id", "_P01", "starting with a letter or digit"), ("patient_id", "P 01", PATIENT_ID_RULE),
    ("patient_id", "P01\n", PATIENT_ID_RULE), ("patient_id", "Pé1", PATIENT_ID_RULE),
    ("patient_id", 7, PATIENT_ID_RULE), ("patient_id", None, PATIENT_ID_RULE),
    ("display_name", "", "1 to 40 characters"), ("display_name", "x" * 41, "1 to 40 characters"),
    ("display_name", "A.\nB.", "1 to 40 characters"), ("display_name", 12, "1 to 40 characters"),
    ("display_name", "\udfff", "1 to 40 characters"),
    ("notes", "n" * 2001, "0 to 2000 characters"), ("notes", ["a"], "0 to 2000 characters"),
    ("notes", "pain \ud800", "0 to 2000 characters"),
    ("mode", "sideways", '"reverse", "forward"'), ("mode", "REVERSE", '"reverse", "forward"'),
    ("mode", None, '"reverse", "forward"'),
    ("speed_cap_kmh", "1.2", "0.5 to 2.2 km/h"), ("speed_cap_kmh", True, "0.5 to 2.2 km/h"),
    ("speed_cap_kmh", None, "0.5 to 2.2 km/h"), ("speed_cap_kmh", 0.2, "0.5 to 2.2 km/h"),
    ("speed_cap_kmh", 2.3, "0.5 to 2.2 km/h"),
    ("base_stop_mm", "300", "200 to 600 mm"), ("base_stop_mm", 150, "200 to 600 mm"),
    ("base_stop_mm", 601, "200 to 600 mm"),
    ("warn_margin_mm", [150], "100 to 500 mm"), ("warn_margin_mm", 99, "100 to 500 mm"),
    ("warn_margin_mm", 501, "100 to 500 mm"),
    ("target_min", 0.5, "1 to 60 min"), ("target_min", 61, "1 to 60 min"), ("target_min", "20", "1 to 60 min"),
    ("sessions_per_day", 0, "whole number from 1 to 4"), ("sessions_per_day", 5, "whole number from 1 to 4"),
    ("sessions_per_day", 1.5, "whole number from 1 to 4"), ("sessions_per_day", False, "whole number from 1 to 4"),
]
PROFILE_IDS = [f"{f}={v!r}"[:40] for f, v, _ in PROFILE_CASES]


@pytest.mark.parametrize("field, value, words", PROFILE_CASES, ids=PROFILE_IDS)
def test_a_bad_field_of_a_new_patient_is_400_naming_it_and_its_range(clinic, fake, field, value, words):
    client, headers = clinic
    controller_refused(lambda: client.post("/api/patients", json={**VALID_PATIENT, field: value}, headers=headers),
                       fake, [f"[patient] {field}"], words)
    assert "P02" not in fake.therapy.patients


@pytest.mark.parametrize("field, value, words", [c for c in PROFILE_CASES if c[0] != "patient_id"],
                         ids=[i for i, c in zip(PROFILE_IDS, PROFILE_CASES, strict=True) if c[0] != "patient_id"])
def test_a_bad_field_of_a_profile_update_is_400_naming_it_and_its_range(clinic, fake, field, value, words):
    client, headers = clinic
    controller_refused(lambda: client.put("/api/patients/P01", json={**UPDATE, field: value}, headers=headers),
                       fake, [f"[patient] {field}"], words)


def test_every_bad_profile_field_is_named_at_once(clinic, fake):
    client, headers = clinic
    body = {**VALID_PATIENT, "display_name": "", "mode": "up", "target_min": 0}
    controller_refused(lambda: client.post("/api/patients", json=body, headers=headers), fake,
                       ["[patient] display_name", "[patient] mode", "[patient] target_min"])


@pytest.mark.parametrize("field", [f for f in VALID_PATIENT if f != "notes"])
def test_a_new_patient_without_a_required_field_is_400_naming_it(clinic, fake, field):
    client, headers = clinic
    body = {k: v for k, v in VALID_PATIENT.items() if k != field}
    words = PATIENT_ID_RULE if field == "patient_id" else "is required"
    controller_refused(lambda: client.post("/api/patients", json=body, headers=headers), fake,
                       [f"[patient] {field}"], words)


@pytest.mark.parametrize("field", [f for f in UPDATE if f != "notes"])
def test_a_profile_update_without_a_field_is_400_naming_it(clinic, fake, field):
    client, headers = clinic
    body = {k: v for k, v in UPDATE.items() if k != field}
    controller_refused(lambda: client.put("/api/patients/P01", json=body, headers=headers), fake,
                       [f"[patient] {field}"], "is required")


def test_a_profile_update_without_notes_is_400_and_keeps_the_notes(clinic, fake):
    # The controller reads missing notes as empty ones: an update that left them out would wipe them unasked.
    client, headers = clinic
    with fake.lock:
        fake.therapy.patients["P01"]["notes"] = "left knee"
    body = {k: v for k, v in UPDATE.items() if k != "notes"}
    _refused_here(client.put("/api/patients/P01", json=body, headers=headers), fake, "notes", "required")
    assert fake.therapy.patients["P01"]["notes"] == "left knee"


@pytest.mark.parametrize("method, path, body", [
    ("post", "/api/patients", {**VALID_PATIENT, "birth_date": "1970-01-01"}),
    ("put", "/api/patients/P01", {**UPDATE, "birth_date": "1970-01-01"}),
    ("put", "/api/patients/P01", {**UPDATE, "created_wall": 0}),
])
def test_a_field_no_profile_has_is_400_naming_it(clinic, fake, method, path, body):
    # A profile is the controller's to read: its one list of patient fields names the stranger.
    client, headers = clinic
    name = next(k for k in body if k in ("birth_date", "created_wall"))
    controller_refused(lambda: getattr(client, method)(path, json=body, headers=headers), fake,
                       [f"[patient] {name}"], "not a patient field")


@pytest.mark.parametrize("method, path, body", [
    ("post", "/api/sessions", {**START, "birth_date": "1970-01-01"}),
    ("put", "/api/sessions/1/pain", {"pain_after": 2, "birth_date": "1970-01-01"}),
    ("post", "/api/patients/P01/select", {"birth_date": "1970-01-01"}),
    ("delete", "/api/patients/P01", {"birth_date": "1970-01-01"}),
    ("post", "/api/sessions/current/pause", {"birth_date": "1970-01-01"}),
    ("post", "/api/sessions/current/resume", {"birth_date": "1970-01-01"}),
    ("post", "/api/sessions/current/end", {"birth_date": "1970-01-01"}),
])
def test_a_key_the_endpoint_does_not_read_is_400_naming_it(clinic, fake, method, path, body):
    client, headers = clinic
    response = _refused_here(getattr(client, method)(path, json=body, headers=headers), fake, "birth_date",
                             "unknown field 'birth_date'")
    assert [e["field"] for e in response["errors"]] == ["birth_date"]


def test_a_profile_update_may_not_change_the_patient_id(clinic, fake):
    client, headers = clinic
    response = client.put("/api/patients/P01", json={**UPDATE, "patient_id": "P09"}, headers=headers)
    _refused_here(response, fake, "patient_id", "cannot be changed", "'P01'")


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
    controller_refused(lambda: getattr(client, method)(path, json=body, headers=headers), fake,
                       ["[patient] patient_id"], PATIENT_ID_RULE)


def test_a_full_length_note_in_any_script_fits_the_body_limit(clinic, fake):
    client, headers = clinic
    notes = "😀" * 2000  # 12 bytes each as a JSON escape
    response = client.post("/api/patients", json={**VALID_PATIENT, "notes": notes}, headers=headers)
    assert response.status_code == 201, response.get_json()
    assert fake.therapy.patients["P02"]["notes"] == notes


def test_a_profile_too_long_for_the_controllers_line_is_413_and_not_sent(clinic, fake):
    # Within the body limit, but over the 16 KiB a request to the controller may have.
    client, headers = clinic
    response = client.post("/api/patients", json={**VALID_PATIENT, "notes": "x" * 20_000}, headers=headers)
    assert response.status_code == 413
    assert response.get_json()["code"] == "too_long"
    assert fake.calls == []


# --- sessions ---------------------------------------------------------------------------------

START_CASES = [
    ("patient_id", "", "[patient] patient_id", PATIENT_ID_RULE),
    ("patient_id", 1, "[patient] patient_id", PATIENT_ID_RULE),
    ("patient_id", "a b", "[patient] patient_id", PATIENT_ID_RULE),
    ("planned_min", 0.2, "[session] planned_min", "a number from 0.25 to 60 min"),
    ("planned_min", 61, "[session] planned_min", "a number from 0.25 to 60 min"),
    ("planned_min", "7", "[session] planned_min", "a number from 0.25 to 60 min"),
    ("planned_min", None, "[session] planned_min", "a number from 0.25 to 60 min"),
    ("planned_min", True, "[session] planned_min", "a number from 0.25 to 60 min"),
    ("pain_before", -1, "[session] pain_before", "a whole number from 0 to 10"),
    ("pain_before", 11, "[session] pain_before", "a whole number from 0 to 10"),
    ("pain_before", 3.5, "[session] pain_before", "a whole number from 0 to 10"),
    ("pain_before", "3", "[session] pain_before", "a whole number from 0 to 10"),
    ("pain_before", None, "[session] pain_before", "a whole number from 0 to 10"),
    ("pain_before", True, "[session] pain_before", "a whole number from 0 to 10"),
    ("speed_kmh", 0, "[session] speed_kmh", "a number from 0.5 to 2.2 km/h"),
    ("speed_kmh", -1, "[session] speed_kmh", "a number from 0.5 to 2.2 km/h"),
    ("speed_kmh", "1", "[session] speed_kmh", "a number from 0.5 to 2.2 km/h"),
    ("speed_kmh", True, "[session] speed_kmh", "a number from 0.5 to 2.2 km/h"),
    ("speed_kmh", 2.5, "[session] speed_kmh", "a number from 0.5 to 2.2 km/h"),
]


@pytest.mark.parametrize("field, value, named, words", START_CASES,
                         ids=[f"{f}={v!r}" for f, v, _, _ in START_CASES])
def test_a_bad_field_of_a_session_start_is_400_naming_it_and_its_range(clinic, fake, field, value, named, words):
    client, headers = clinic
    controller_refused(lambda: client.post("/api/sessions", json={**START, field: value}, headers=headers), fake,
                       [named], words)
    assert fake.status["state"] == "READY" and fake.status["session"] is None


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
@pytest.mark.parametrize("field", ["planned_min", "pain_before", "speed_kmh"])
def test_non_finite_json_literals_in_a_session_start_are_400(clinic, fake, field, literal):
    client, headers = clinic
    raw = (b'{"patient_id": "P01", "planned_min": 5, "pain_before": 3, "' + field.encode() + b'": '
           + literal + b"}")
    headers = {**headers, "Content-Type": "application/json"}
    controller_refused(lambda: client.post("/api/sessions", data=raw, headers=headers), fake,
                       [f"[session] {field}"])


@pytest.mark.parametrize("field", ["patient_id", "planned_min", "pain_before"])
def test_a_session_start_without_a_required_field_is_400_naming_it(clinic, fake, field):
    client, headers = clinic
    body = {k: v for k, v in START.items() if k != field}
    _refused_here(client.post("/api/sessions", json=body, headers=headers), fake, field, "required")


@pytest.mark.parametrize("value", [-1, 11, 2.5, "3", None, False])
def test_a_bad_pain_after_is_400_naming_it_and_the_scale(clinic, fake, value):
    client, headers = clinic
    with fake.lock:
        fake.therapy.add_session("P01", pain_after=None)
    controller_refused(lambda: client.put("/api/sessions/1/pain", json={"pain_after": value}, headers=headers),
                       fake, ["[session] pain_after"], "a whole number from 0 to 10")
    assert fake.therapy.sessions[1]["pain_after"] is None


def test_pain_after_is_required(clinic, fake):
    client, headers = clinic
    _refused_here(client.put("/api/sessions/1/pain", json={}, headers=headers), fake, "pain_after", "required")


@pytest.mark.parametrize("method, path, body", [
    ("get", "/api/sessions/0", None), ("put", "/api/sessions/0/pain", {"pain_after": 1}),
    ("get", "/api/sessions/0/samples", None), ("get", "/api/sessions/0/samples.csv", None),
    ("get", f"/api/sessions/{2 ** 63}", None), ("get", f"/api/sessions/{10 ** 9 + 1}/samples.csv", None),
])
def test_a_session_id_out_of_range_is_400_naming_session_id(clinic, fake, method, path, body):
    # One range, the controller's: an id past it is the same 400 on every endpoint, never a 404 on some.
    client, headers = clinic
    controller_refused(lambda: getattr(client, method)(path, json=body, headers=headers), fake,
                       ["[session] session_id"], "a whole number from 1 to 1e+09")


@pytest.mark.parametrize("path", ["/api/sessions/x", "/api/sessions/-1", "/api/sessions/1.5"])
def test_a_session_id_that_is_not_a_number_is_a_json_404(clinic, fake, path):
    client, _ = clinic
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json()["ok"] is False
    assert fake.calls == []


@pytest.mark.parametrize("query", ["offset=-1", "offset=x", "offset=1.5", "limit=abc", "limit=%2B1", "limit=1_0",
                                   "limit=%C2%B2"])
def test_a_samples_query_that_is_no_whole_number_is_400_before_the_controller_is_asked(clinic, fake, query):
    client, _ = clinic
    name = query.split("=")[0]
    _refused_here(client.get(f"/api/sessions/1/samples?{query}"), fake, name, "whole number")


@pytest.mark.parametrize("query, named, words", [("offset=1000000001", "[session] offset", "from 0 to 1e+09"),
                                                 ("limit=0", "[session] limit", "from 1 to 5000"),
                                                 ("limit=5001", "[session] limit", "from 1 to 5000")])
def test_a_samples_query_out_of_range_is_the_controllers_400_naming_it(clinic, fake, query, named, words):
    client, _ = clinic
    with fake.lock:
        fake.therapy.add_session("P01")
    controller_refused(lambda: client.get(f"/api/sessions/1/samples?{query}"), fake, [named], words)


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
