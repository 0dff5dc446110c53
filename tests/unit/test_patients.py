"""Patient profiles as the controller checks them, whoever sends them (the dashboard or an IPC client)."""

from __future__ import annotations

from controller.therapy.patients import check_patient, check_patient_id
from tests.hil.test_sessions import PATIENT
from tests.unit.rig import example_config


def test_a_patient_id_with_a_trailing_newline_is_refused():
    errors: list = []
    assert check_patient_id("P01\n", errors) is None
    assert errors and "patient_id" in str(errors[0])


def test_a_lone_surrogate_in_the_notes_or_the_name_is_refused_naming_the_field():
    for field in ("notes", "display_name"):
        patient, errors = check_patient({**PATIENT, field: "x\ud800"}, example_config())
        assert patient is None
        assert [e.key for e in errors] == [field]


def test_delete_and_c1_control_characters_are_refused_in_the_name_and_the_notes():
    for field in ("notes", "display_name"):
        for char in ("\x7f", "\x85", "\x9b"):
            patient, errors = check_patient({**PATIENT, field: f"a{char}b"}, example_config())
            assert patient is None and [e.key for e in errors] == [field], (field, char)
    patient, errors = check_patient({**PATIENT, "notes": "line one\nline two\tand é"}, example_config())
    assert errors == [] and patient is not None
