"""Patients and therapy sessions through the controller's Unix socket, as the dashboard reaches them."""

from __future__ import annotations

import time

import pytest

from controller.storage import records
from sim.bench import SimBench, wait_until
from tests.hil.ipc_client import JsonLinesClient
from tests.hil.test_sessions import PATIENT, THERAPIST, on_a_calm_machine
from tests.waiting import expect
from web.ipc_client import IpcClient

PID = PATIENT["patient_id"]
START = {"patient_id": PID, "planned_min": 5, "pain_before": 3, **THERAPIST}


@pytest.fixture
def served_bench(make_bench, tmp_path):
    """Make started benches serving the API on a socket in tmp_path; ``ready=True`` also resets them."""
    clients: list[JsonLinesClient] = []

    def make(ready: bool = False, create_patient: bool = True) -> SimBench:
        bench = make_bench()
        bench.controller.serve_ipc(tmp_path / f"c{len(clients)}.sock", group="")
        ipc = JsonLinesClient(bench.controller.ipc.path)
        clients.append(ipc)
        if create_patient:
            ipc.ok("patient_save", {"patient": PATIENT, "create": True, **THERAPIST})
        if ready:
            assert wait_until(lambda: ipc.call("command", {"command": "reset", **THERAPIST})["ok"], 5.0, 0.05)
        return bench

    try:
        yield make
    finally:
        for ipc in clients:
            ipc.close()


def client(bench: SimBench) -> JsonLinesClient:
    """A new connection to the bench's API socket."""
    return JsonLinesClient(bench.controller.ipc.path)


def expect_limits(ipc: JsonLinesClient, what: str, **expected: float) -> dict:
    """Wait (briefly: the asked status is the newest push, at most 50 ms old) for these limits; the status."""
    seen: list[dict] = []
    expect(lambda: seen.append(ipc.ok("status")) or all(seen[-1]["limits"][k] == v for k, v in expected.items()),
           1.0, f"{what}: limits {expected}")
    return seen[-1]


# ---- patients ---------------------------------------------------------------------------------


def test_patients_lists_each_field_with_its_allowed_range(served_bench):
    bench = served_bench(create_patient=False)
    cfg = bench.controller.cfg
    with client(bench) as ipc:
        result = ipc.ok("patients")
    assert result["patients"] == []
    fields = result["fields"]
    assert set(fields) == {"patient_id", "display_name", "notes", "mode", "speed_cap_kmh", "base_stop_mm",
                           "warn_margin_mm", "target_min", "sessions_per_day"}
    assert fields["patient_id"]["max_len"] == 16
    assert fields["display_name"]["max_len"] == 40 and fields["notes"]["max_len"] == 2000
    assert fields["mode"] == {"choices": ["reverse", "forward"]}
    cap = max(cfg.ceilings.max_reverse_cap_kmh, cfg.ceilings.max_forward_cap_kmh)
    expected = {"speed_cap_kmh": (cfg.safety.min_speed_kmh, cap, "km/h"),
                "base_stop_mm": (cfg.ceilings.min_base_stop_mm, 600, "mm"),
                "warn_margin_mm": (cfg.ceilings.min_warn_margin_mm, 500, "mm"),
                "target_min": (1, 60, "min"),
                "sessions_per_day": (1, 4, "")}
    for name, (lo, hi, unit) in expected.items():
        assert (fields[name]["min"], fields[name]["max"], fields[name]["unit"]) == (lo, hi, unit), name
    assert fields["sessions_per_day"]["integer"] is True


def test_patient_save_creates_updates_and_refuses_a_taken_id_or_an_unknown_one(served_bench):
    bench = served_bench(create_patient=False)
    with client(bench) as ipc:
        t_before = time.time()
        created = ipc.ok("patient_save", {"patient": PATIENT, "create": True, **THERAPIST})["patient"]
        assert {k: created[k] for k in PATIENT} == PATIENT
        assert t_before <= created["created_wall"] == created["updated_wall"] <= time.time()

        error = ipc.refused("patient_save", {"patient": {**PATIENT, "display_name": "Z.Z."}, "create": True,
                                             **THERAPIST})
        assert error["code"] == "conflict" and PID in error["message"]
        assert ipc.ok("patients")["patients"] == [created], "the taken id kept its profile"

        edited = {**PATIENT, "display_name": "C.D.", "notes": "knee pain on Mondays", "target_min": 25}
        updated = ipc.ok("patient_save", {"patient": edited, "create": False, **THERAPIST})["patient"]
        assert {k: updated[k] for k in edited} == edited
        assert updated["created_wall"] == created["created_wall"]
        assert updated["updated_wall"] >= created["updated_wall"]
        assert ipc.ok("patient", {"patient_id": PID})["patient"] == updated

        error = ipc.refused("patient_save", {"patient": {**PATIENT, "patient_id": "P-9"}, "create": False,
                                             **THERAPIST})
        assert error["code"] == "not_found" and "P-9" in error["message"]
        assert ipc.ok("patients")["patients"] == [updated], "an update of an unknown id creates nobody"

        error = ipc.refused("patient_save", {"patient": {**PATIENT, "patient_id": "P-7"}, "create": True,
                                             "actor": "Ann", "authorized": False})
        assert error["code"] == "unauthorized"
        assert ipc.ok("patients")["patients"] == [updated]


#: A profile with every field wrong, and what each refusal must say.
def test_the_longest_notes_the_dashboard_accepts_fit_in_one_request_to_the_controller(served_bench):
    """2000 characters of notes, each four bytes in UTF-8, go through the dashboard's own client."""
    bench = served_bench(create_patient=False)
    notes = "\U0001F9B5" * 2000
    saved = IpcClient(str(bench.controller.ipc.path)).call(
        "patient_save", {"patient": {**PATIENT, "notes": notes}, "create": True, **THERAPIST})["patient"]
    assert saved["notes"] == notes


BAD_PATIENT = {"patient_id": "no spaces!", "display_name": "", "notes": "x" * 2001, "mode": "sideways",
               "speed_cap_kmh": 9, "base_stop_mm": 100, "warn_margin_mm": 900, "target_min": 0,
               "sessions_per_day": 5, "birth_date": "1950-01-01"}
BAD_FIELD_MESSAGES = {
    "[patient] patient_id": "1 to 16 letters, digits, _ or -",
    "[patient] display_name": "1 to 40 characters",
    "[patient] notes": "0 to 2000 characters",
    "[patient] mode": 'must be one of "reverse", "forward"',
    "[patient] speed_cap_kmh": "must be a number from 0.5 to 2.2 km/h",
    "[patient] base_stop_mm": "must be a number from 200 to 600 mm",
    "[patient] warn_margin_mm": "must be a number from 100 to 500 mm",
    "[patient] target_min": "must be a number from 1 to 60 min",
    "[patient] sessions_per_day": "must be a whole number from 1 to 4",
    "[patient] birth_date": "not a patient field",
}


@pytest.mark.parametrize("create", [True, False])
def test_a_bad_profile_is_refused_naming_each_field_and_its_range_and_nothing_is_stored(served_bench, create):
    bench = served_bench()
    with client(bench) as ipc:
        stored = ipc.ok("patients")["patients"]
        bad = {**BAD_PATIENT, "patient_id": PID} if not create else BAD_PATIENT
        error = ipc.refused("patient_save", {"patient": bad, "create": create, **THERAPIST})
        assert error["code"] == "invalid"
        by_field = {e["field"]: e["message"] for e in error["errors"]}
        expected = {k: v for k, v in BAD_FIELD_MESSAGES.items() if create or k != "[patient] patient_id"}
        assert set(by_field) == set(expected)
        for field, text in expected.items():
            assert text in by_field[field], (field, by_field[field])
            assert f"{field} = " in error["message"], f"the message names {field}"
        assert ipc.ok("patients")["patients"] == stored


def test_an_unknown_or_malformed_patient_id_is_not_found_or_invalid(served_bench):
    bench = served_bench()
    with client(bench) as ipc:
        error = ipc.refused("patient", {"patient_id": "P-404"})
        assert error["code"] == "not_found" and "P-404" in error["message"]
        error = ipc.refused("patient", {"patient_id": "../etc"})
        assert error["code"] == "invalid" and "[patient] patient_id" in error["message"]
        for method in ("patient_select", "patient_delete"):
            error = ipc.refused(method, {"patient_id": "P-404", **THERAPIST})
            assert error["code"] == "not_found", method
        assert [p["patient_id"] for p in ipc.ok("patients")["patients"]] == [PID]


@pytest.mark.parametrize("method, params", [
    ("patients", {}),
    ("patient", {"patient_id": PID}),
    ("patient_save", {"patient": PATIENT, "create": False, **THERAPIST}),
    ("patient_select", {"patient_id": PID, **THERAPIST}),
    ("patient_delete", {"patient_id": PID, **THERAPIST}),
    ("session_start", START),
    ("session_pause", THERAPIST),
    ("session_resume", THERAPIST),
    ("session_end", THERAPIST),
    ("session_pain", {"session_id": 1, "pain_after": 2, **THERAPIST}),
    ("session", {"session_id": 1}),
    ("session_samples", {"session_id": 1, "offset": 0, "limit": 10}),
])
def test_an_unknown_field_in_params_is_refused_by_name_and_changes_nothing(served_bench, method, params):
    bench = served_bench()
    with client(bench) as ipc:
        before = ipc.ok("patients")["patients"]
        error = ipc.refused(method, {**params, "colour": "blue"})
        assert error["code"] == "invalid" and "colour" in error["message"], error
        assert ipc.ok("patients")["patients"] == before
        assert ipc.ok("status")["selected_patient"] is None


# ---- sessions ---------------------------------------------------------------------------------


def test_a_session_needs_a_ready_controller_and_a_therapist(served_bench):
    bench = served_bench()
    with client(bench) as ipc:
        status = ipc.ok("status")
        assert status["state"] == "STOPPED"
        assert status["session"] is None and status["selected_patient"] is None
        assert status["storage"]["ok"] is True and status["storage"]["message"]

        error = ipc.refused("session_start", START)
        assert error["code"] == "conflict" and "STOPPED" in error["message"] and "reset" in error["message"]
        assert wait_until(lambda: ipc.call("command", {"command": "reset", **THERAPIST})["ok"], 5.0, 0.05)
        error = ipc.refused("session_start", {**START, "authorized": False})
        assert error["code"] == "unauthorized"
        error = ipc.refused("session_start", {**START, "planned_min": 0.1, "pain_before": -1})
        assert error["code"] == "invalid"
        assert {e["field"] for e in error["errors"]} == {"[session] planned_min", "[session] pain_before"}
        assert "0.25 to 60 min" in error["message"] and "0 to 10" in error["message"]
        for method in ("session_pause", "session_resume", "session_end"):
            assert ipc.refused(method, THERAPIST)["code"] == "conflict", method

        status = ipc.ok("status")
        assert status["state"] == "READY" and status["session"] is None and bench.emulator.belt_speed_mps == 0
    assert bench.controller.history.read(lambda conn: conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]) == 0


def test_selecting_a_patient_while_the_belt_runs_tightens_at_once_and_refuses_looser(served_bench):
    on_a_calm_machine(lambda: served_bench(ready=True), select_while_running)


def select_while_running(bench):
    loose = {**PATIENT, "patient_id": "P-LOOSE", "speed_cap_kmh": 2.0, "base_stop_mm": 250}
    tight = {**PATIENT, "patient_id": "P-TIGHT", "speed_cap_kmh": 1.2, "base_stop_mm": 300}
    with client(bench) as ipc:
        for p in (loose, tight):
            ipc.ok("patient_save", {"patient": p, "create": True, **THERAPIST})
        ipc.ok("patient_select", {"patient_id": "P-LOOSE", **THERAPIST})
        expect_limits(ipc, "P-LOOSE selected", reverse_cap_kmh=2.0, forward_cap_kmh=2.0, base_stop_mm=250,
                      warn_margin_mm=200)
        ipc.ok("command", {"command": "start", "value": 1.0, **THERAPIST})
        expect(lambda: bench.emulator.belt_speed_mps > 0.2, 5.0, "the belt running")

        reply = ipc.ok("patient_select", {"patient_id": "P-TIGHT", **THERAPIST})
        assert reply["patient_id"] == "P-TIGHT" and "cap 1.2 km/h" in reply["message"]
        status = expect_limits(ipc, "P-TIGHT selected", reverse_cap_kmh=1.2, forward_cap_kmh=1.2, base_stop_mm=300,
                               warn_margin_mm=200)
        assert status["state"] == "RUNNING"
        # The choice is published with the next status push, after the limits' own.
        expect(lambda: ipc.ok("status")["selected_patient"] == "P-TIGHT", 1.0, "P-TIGHT shown as chosen")

        error = ipc.refused("patient_select", {"patient_id": "P-LOOSE", **THERAPIST})
        assert error["code"] == "conflict" and "only while the belt stands" in error["message"]
        t_refused = time.monotonic()
        expect(lambda: ipc.ok("status")["t_mono"] > t_refused + 0.1, 2.0, "a status newer than the refusal")
        status = ipc.ok("status")
        assert status["state"] == "RUNNING"
        # The choice is published with the next status push, after the limits' own.
        expect(lambda: ipc.ok("status")["selected_patient"] == "P-TIGHT", 1.0, "P-TIGHT shown as chosen")
        assert status["limits"]["reverse_cap_kmh"] == 1.2 and status["limits"]["base_stop_mm"] == 300


def test_a_session_over_the_socket_from_start_to_pain_score_and_deletion(served_bench):
    on_a_calm_machine(lambda: served_bench(ready=True), session_over_the_socket)


def session_over_the_socket(bench):
    with client(bench) as ipc:
        watcher = client(bench)
        watcher.ok("subscribe")
        pushed = watcher.next_push()
        assert pushed["session"] is None and pushed["selected_patient"] is None and pushed["storage"]["ok"] is True

        session = ipc.ok("session_start", {**START, "speed_kmh": 1.5})["session"]
        sid = session["session_id"]
        assert (session["status"], session["patient_id"], session["planned_min"], session["pain_before"],
                session["mode"], session["ended_wall"]) == ("active", PID, 5, 3, "reverse", None)
        expect_limits(ipc, "the prescription applied at the start", reverse_cap_kmh=1.5)
        expect(lambda: ipc.ok("status")["selected_patient"] == PID, 1.0, "the patient shown as chosen")
        expect(lambda: (ipc.ok("status")["session"] or {}).get("phase") == "walking"
               and bench.emulator.belt_speed_mps > 0.2, 8.0, "the session walking")
        expect(lambda: ipc.ok("status")["session"]["elapsed_s"] >= 2.0, 8.0, "2 s of walking")
        snap = ipc.ok("status")["session"]
        assert (snap["session_id"], snap["patient_id"], snap["planned_s"], snap["end_warning"],
                snap["paused_reason"]) == (sid, PID, 300, False, None)
        assert 0 < snap["elapsed_s"] < 300 and snap["remaining_s"] == pytest.approx(300 - snap["elapsed_s"], abs=0.2)
        try:
            expect(lambda: (watcher.next_push()["session"] or {}).get("session_id") == sid, 3.0,
                   "a pushed status carrying the session")
        finally:
            watcher.close()  # unread pushes would fill its socket

        # Refused while the session runs; nothing changes.
        assert ipc.refused("session_start", START)["code"] == "conflict"
        assert ipc.refused("session_pain", {"session_id": sid, "pain_after": 2, **THERAPIST})["code"] == "conflict"
        error = ipc.refused("patient_delete", {"patient_id": PID, **THERAPIST})
        assert error["code"] == "conflict" and PID in error["message"]
        assert [p["patient_id"] for p in ipc.ok("patients")["patients"]] == [PID]

        # The prescription edited mid-session: tighter applies at once, looser waits for a standing belt.
        reply = ipc.ok("patient_save", {"patient": {**PATIENT, "speed_cap_kmh": 1.2}, "create": False, **THERAPIST})
        assert "cap 1.2 km/h" in reply["message"]
        status = expect_limits(ipc, "a tighter prescription saved mid-session", reverse_cap_kmh=1.2)
        assert status["state"] == "RUNNING"
        assert ipc.ok("patient_select", {"patient_id": PID, **THERAPIST})["patient_id"] == PID
        reply = ipc.ok("patient_save", {"patient": {**PATIENT, "speed_cap_kmh": 2.0}, "create": False, **THERAPIST})
        assert "not applied yet" in reply["message"]
        error = ipc.refused("patient_select", {"patient_id": PID, **THERAPIST})
        assert error["code"] == "conflict" and "only while the belt stands" in error["message"]
        t_refused = time.monotonic()
        expect(lambda: ipc.ok("status")["t_mono"] > t_refused + 0.1, 2.0, "a status newer than the refusal")
        status = ipc.ok("status")
        assert status["state"] == "RUNNING" and status["limits"]["reverse_cap_kmh"] == 1.2

        reply = ipc.ok("session_end", THERAPIST)
        assert "ramping down" in reply["message"]
        expect(lambda: ipc.ok("status")["session"] is None, 10.0, "the session ended once the belt stood")
        summary = ipc.ok("session", {"session_id": sid})["session"]
        assert (summary["status"], summary["end_reason"]) == ("ended", "ended by Ann")
        assert summary["ended_wall"] > summary["started_wall"]
        assert summary["duration_s"] > 0 and summary["distance_m"] > 0
        assert ipc.ok("status")["state"] == "READY"
        assert ipc.refused("patient_select", {"patient_id": PID, **THERAPIST})["code"] == "confirm"
        ipc.ok("patient_select", {"patient_id": PID, "confirm": True, **THERAPIST})
        expect_limits(ipc, "the looser prescription on a standing belt, confirmed", reverse_cap_kmh=2.0)

        check_sample_paging(ipc, sid)

        reply = ipc.ok("session_pain", {"session_id": sid, "pain_after": 4, **THERAPIST})["session"]
        assert reply["pain_after"] == 4 and reply["pain_flag"] is True
        error = ipc.refused("session_pain", {"session_id": sid, "pain_after": 1, **THERAPIST})
        assert error["code"] == "conflict" and "recorded as 4" in error["message"]
        assert ipc.ok("session", {"session_id": sid})["session"]["pain_after"] == 4

        assert ipc.ok("patient_delete", {"patient_id": PID, **THERAPIST}) == {"deleted": PID}
        assert ipc.refused("patient", {"patient_id": PID})["code"] == "not_found"
        assert ipc.refused("session", {"session_id": sid})["code"] == "not_found"
        assert ipc.refused("session_samples", {"session_id": sid})["code"] == "not_found"
        expect(lambda: ipc.ok("status")["selected_patient"] is None, 1.0, "the deleted patient no longer selected")
    left = bench.controller.history.read(lambda conn: records.samples(conn, sid))
    assert left == ([], 0), "the timeline went with the patient"


def check_sample_paging(ipc: JsonLinesClient, sid: int) -> None:
    """The whole timeline in one page equals the same timeline read in pages of 7."""
    whole = ipc.ok("session_samples", {"session_id": sid})
    assert whole["columns"] == ["t_s", "gap_mm", "belt_kmh", "state", "warning", "stop_mm", "warn_mm"]
    assert all(r[5] is not None and r[6] > r[5] for r in whole["rows"]), "each sample has its stop and warn distance"
    total = whole["total"]
    assert total == len(whole["rows"]) >= 20 and whole["next_offset"] is None
    assert [r[0] for r in whole["rows"]] == sorted(r[0] for r in whole["rows"])
    assert {r[3] for r in whole["rows"]} <= {"STOPPED", "READY", "RUNNING", "STOPPING"}
    assert "RUNNING" in {r[3] for r in whole["rows"]}

    rows, offset = [], 0
    while offset is not None:
        page = ipc.ok("session_samples", {"session_id": sid, "offset": offset, "limit": 7})
        assert page["total"] == total and len(page["rows"]) == min(7, total - offset)
        expected_next = offset + len(page["rows"])
        assert page["next_offset"] == (expected_next if expected_next < total else None)
        rows += page["rows"]
        offset = page["next_offset"]
    assert rows == whole["rows"]

    beyond = ipc.ok("session_samples", {"session_id": sid, "offset": total + 3, "limit": 7})
    assert beyond["rows"] == [] and beyond["next_offset"] is None and beyond["total"] == total
    for params, field, text in (({"limit": 0}, "[session] limit", "from 1 to 5000"),
                                ({"limit": 5001}, "[session] limit", "from 1 to 5000"),
                                ({"offset": -1}, "[session] offset", "from 0")):
        error = ipc.refused("session_samples", {"session_id": sid, **params})
        assert error["code"] == "invalid" and error["errors"][0]["field"] == field
        assert text in error["errors"][0]["message"]
    assert ipc.refused("session_samples", {"session_id": sid + 1000})["code"] == "not_found"
