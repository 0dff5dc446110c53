"""Form errors over HTTP: every bad field in one 400, each error with the bare ``key`` its form input is
named by, plain messages, one effective range per limit, and forms whose inputs the page can mark."""

from __future__ import annotations

import pytest

from tests.web.helpers import VALID_PATIENT, login, parse_page

UPDATE = {k: v for k, v in VALID_PATIENT.items() if k != "patient_id"}
LIMITS = ("reverse_cap_kmh", "forward_cap_kmh", "base_stop_mm", "warn_margin_mm")


@pytest.fixture
def therapist(client, fake):
    fake.update(state="READY", reasons={})
    return client, login(client)


def _errors(response):
    assert response.status_code == 400, (response.status_code, response.get_json())
    body = response.get_json()
    assert body["ok"] is False and body["code"] == "invalid"
    for e in body["errors"]:
        assert set(e) == {"field", "key", "value", "message"}, e
    return body


def test_every_bad_limit_comes_back_at_once_keyed_as_the_limits_form_names_its_inputs(therapist):
    client, headers = therapist
    page = parse_page(client.get("/").get_data(as_text=True))
    assert page.form_fields["limits-form"] == list(LIMITS)
    body = {"reverse_cap_kmh": 9, "forward_cap_kmh": "2", "base_stop_mm": 150, "warn_margin_mm": 99}
    errors = _errors(client.put("/api/limits", json=body, headers=headers))["errors"]
    assert {e["key"]: e["message"] for e in errors} == {
        "reverse_cap_kmh": "must be a number from 0.5 to 2.2 km/h",
        "forward_cap_kmh": "must be a number from 0.5 to 2.2 km/h",
        "base_stop_mm": "must be a number from 200 to 600 mm",
        "warn_margin_mm": "must be a number from 100 to 500 mm"}
    assert {e["field"] for e in errors} == {f"[limits] {k}" for k in LIMITS}


def test_a_refused_limit_does_not_hide_the_reach_error_of_another(therapist):
    client, headers = therapist
    errors = _errors(client.put("/api/limits", json={"reverse_cap_kmh": 9, "base_stop_mm": 300},
                                headers=headers))["errors"]
    assert [e["key"] for e in errors] == ["reverse_cap_kmh", "forward_cap_kmh"]
    assert errors[1]["message"].startswith("with these distances the forward cap can be at most 2 km/h; ")


def test_the_limits_answer_gives_one_effective_range_per_limit(therapist, fake):
    client, _ = therapist
    reply = client.get("/api/limits").get_json()
    assert reply["effective"] == {
        "reverse_cap_kmh": {"min": 0.5, "max": 2.2, "unit": "km/h"},
        "forward_cap_kmh": {"min": 0.5, "max": 2.2, "unit": "km/h"},
        "base_stop_mm": {"min": 200, "max": 600, "unit": "mm"},
        "warn_margin_mm": {"min": 100, "max": 500, "unit": "mm"}}
    fake.update(ceilings={**fake.status["ceilings"], "max_reverse_cap_kmh": 1.8})
    assert client.get("/api/limits").get_json()["effective"]["reverse_cap_kmh"]["max"] == 1.8


def test_every_bad_profile_field_comes_back_at_once_keyed_as_the_form_names_its_inputs(therapist):
    client, headers = therapist
    page = parse_page(client.get("/patients").get_data(as_text=True))
    names = page.form_fields["new-patient"]
    bad = {**VALID_PATIENT, "patient_id": "no spaces", "display_name": "", "sessions_per_day": 2.5,
           "target_min": 0, "speed_cap_kmh": 2.0, "base_stop_mm": 600, "warn_margin_mm": 500}
    body = _errors(client.post("/api/patients", json=bad, headers=headers))
    by_key = {e["key"]: e["message"] for e in body["errors"]}
    assert set(by_key) == {"patient_id", "display_name", "sessions_per_day", "target_min", "speed_cap_kmh"}
    assert set(by_key) <= set(names)
    assert by_key["sessions_per_day"] == "must be a whole number from 1 to 4"
    assert by_key["speed_cap_kmh"].startswith("with these distances no reverse cap fits")
    assert "float" not in body["message"] and "got" not in body["message"]


def test_the_web_layers_own_errors_carry_the_key_and_a_plain_message(therapist, fake):
    client, headers = therapist
    body = _errors(client.put("/api/patients/P01", json={k: v for k, v in UPDATE.items() if k != "notes"},
                              headers=headers))
    assert body["errors"] == [{"field": "notes", "key": "notes", "value": None, "message": "is required"}]
    assert body["message"] == "notes: is required"
    body = _errors(client.post("/api/speed", json={}, headers=headers))
    assert [(e["key"], e["message"]) for e in body["errors"]] == [("speed_kmh", "is required")]


def test_a_whole_body_error_has_an_empty_key(therapist):
    client, headers = therapist
    body = _errors(client.put("/api/limits", json=[1], headers=headers))
    assert [(e["field"], e["key"]) for e in body["errors"]] == [("body", "")]
    body = _errors(client.put("/api/limits", json={}, headers=headers))
    assert [(e["field"], e["key"]) for e in body["errors"]] == [("[limits]", "")]


@pytest.mark.parametrize("path, form, prefix", [("/patients", "new-patient", "new"),
                                                ("/patients/P01", "patient-form", "edit")])
def test_each_profile_input_is_described_by_its_range_and_has_its_own_error(therapist, path, form, prefix):
    client, _ = therapist
    page = parse_page(client.get(path).get_data(as_text=True))
    for name in page.form_fields[form]:
        attrs = page.ids[f"{prefix}-{name}"]
        assert attrs["aria-describedby"] == f"{prefix}-{name}-range"
        assert page.ids[f"{prefix}-{name}-range"]["data-range-for"] == name
        assert page.ids[f"{prefix}-{name}-error"]["data-error-for"] == name
