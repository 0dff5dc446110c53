"""A clinic's treadmill on the simulated hardware: what the clinic record brings back reaches the safety core
only through APPLY_PRESCRIPTION, tighter at once, looser only once the belt stands; a profile edit based on a
version the clinic has since changed is refused, and no treadmill deletes a clinic patient on its own.

The clinic merges are made as the replicator makes them (the runner's ``merge`` request); the replicator's
own part, against a real PostgreSQL server, is in tests/clinic/.
"""

from __future__ import annotations


import pytest

from controller.config import ClinicConfig
from controller.safety.types import CommandKind
from controller.therapy.runner import SessionError
from sim.bench import SimBench, wait_until
from tests.hil.helpers import on_a_calm_machine, reset_when_healthy

THERAPIST = {"actor": "Ann", "authorized": True}
REPLICATOR = {"actor": "clinic replicator", "authorized": True}
PATIENT = {"patient_id": "P-7", "display_name": "C.D.", "notes": "", "mode": "reverse", "speed_cap_kmh": 1.5,
           "base_stop_mm": 250, "warn_margin_mm": 200, "target_min": 20, "sessions_per_day": 2}


def clinic_row(version: int, **changes) -> dict:
    return {**PATIENT, **changes, "version": version, "created_wall": 1.0, "updated_wall": 100.0 + version,
            "updated_by": "treadmill A"}


@pytest.fixture
def make_clinic_bench(make_bench):
    """Benches of treadmill B of a clinic record (no server is needed: the merges are made here)."""
    return lambda: make_bench(clinic=ClinicConfig(treadmill_id="B", dsn="host=127.0.0.1 dbname=none"))


def test_a_looser_prescription_from_the_clinic_waits_for_the_belt_to_stand_a_tighter_one_applies_at_once(
        make_clinic_bench):
    on_a_calm_machine(make_clinic_bench, prescription_rule)


def prescription_rule(bench: SimBench) -> None:
    runner, core = bench.controller.sessions, bench.controller.loop.core
    seen: list[tuple[str, float, float]] = []
    bench.controller.loop.add_status_listener(
        lambda st: seen.append((st["state"], st["belt_speed_mps"], st["limits"]["reverse_cap_kmh"])))
    runner.request("merge", {"patients": [clinic_row(1)], **REPLICATOR})  # the clinic's patient, as pulled
    assert reset_when_healthy(bench).ok
    runner.request("start", {"patient_id": "P-7", "planned_min": 5, "pain_before": 2, "speed_kmh": 1.2,
                             **THERAPIST})
    assert wait_until(lambda: bench.emulator.belt_speed_mps > 0.25, 5.0), "the belt runs"

    looser = runner.request("merge", {"patients": [clinic_row(2, speed_cap_kmh=1.8)], **REPLICATOR})
    assert looser["changed"] == ["P-7"] and looser["pending"] == "P-7"
    assert core.limits.reverse_cap_kmh == 1.5, "not while the belt runs"

    tighter = runner.request("merge", {"patients": [clinic_row(3, speed_cap_kmh=1.0, base_stop_mm=300)],
                                       **REPLICATOR})
    assert tighter["pending"] is None
    assert (core.limits.reverse_cap_kmh, core.limits.base_stop_mm) == (1.0, 300.0), "tighter: at once, running"
    assert core.state.value == "RUNNING"

    first_running = len(seen)
    runner.request("merge", {"patients": [clinic_row(4, speed_cap_kmh=1.8)], **REPLICATOR})
    assert runner.clinic_pending is not None and core.limits.reverse_cap_kmh == 1.0
    assert wait_until(lambda: any(state == "RUNNING" and speed > 0.2 for state, speed, _ in seen[first_running:]),
                      3.0), "the belt runs on with the looser prescription waiting"

    runner.request("pause", THERAPIST)
    assert wait_until(lambda: core.limits.reverse_cap_kmh == 1.8, 10.0), "applied once the belt stood"
    assert wait_until(lambda: runner.clinic_pending is None, 2.0)
    after = seen[first_running:]
    looser_seen = [s for s in after if s[2] == 1.8]
    assert looser_seen and all(speed == 0.0 for _, speed, _ in looser_seen)
    assert looser_seen[0][0] in ("STOPPED", "READY")
    assert any(state == "RUNNING" and cap == 1.0 for state, _, cap in after), "it waited through the running belt"

    bench.controller.history.flush()
    applied = [e for e in bench.controller.history.recent(20, "limits") if "clinic record v4" in e["actor"]]
    assert applied and applied[0]["figures"]["new"]["reverse_cap_kmh"] == 1.8
    assert not [e for e in bench.controller.history.recent(50, "refused") if "clinic record" in e["actor"]], \
        "a looser prescription is held back, not sent to be refused"


def test_an_edit_made_on_an_older_version_is_refused_and_nothing_is_saved(make_clinic_bench):
    bench = make_clinic_bench()
    runner = bench.controller.sessions
    runner.request("merge", {"patients": [clinic_row(5)], **REPLICATOR})
    page = runner.patient_page("P-7")
    assert page["patient"]["version"] == 5
    saved = runner.request("save", {"patient": {**PATIENT, "notes": "on 5", "version": 5}, "create": False,
                                    **THERAPIST})
    assert saved["patient"]["notes"] == "on 5"
    with pytest.raises(SessionError) as refused:
        runner.request("save", {"patient": {**PATIENT, "notes": "on 4", "version": 4}, "create": False,
                                **THERAPIST})
    assert refused.value.code == "conflict"
    assert "changed in the clinic record (now version 5)" in refused.value.message
    assert "read version 4" in refused.value.message and "nothing was saved" in refused.value.message
    assert runner.patient_page("P-7")["patient"]["notes"] == "on 5"

    with pytest.raises(SessionError) as deleted:
        runner.request("delete", {"patient_id": "P-7", **THERAPIST})
    assert deleted.value.code == "conflict" and "belongs to the clinic record" in deleted.value.message
    assert runner.patient_page("P-7")["patient"]["patient_id"] == "P-7"


def test_an_edit_the_clinic_refused_is_an_event_and_the_clinics_profile_replaces_the_local_one(make_clinic_bench):
    bench = make_clinic_bench()
    runner = bench.controller.sessions
    runner.request("save", {"patient": {**PATIENT, "notes": "made here"}, "create": True, **THERAPIST})
    result = runner.request("merge", {"patients": [clinic_row(2, notes="made on A")],
                                      "refused": [{"patient_id": "P-7", "message": "patient id P-7 is already in "
                                                   "the clinic record (made by treadmill A)"}], **REPLICATOR})
    assert result["changed"] == ["P-7"]
    assert runner.patient_page("P-7")["patient"]["notes"] == "made on A"
    bench.controller.history.flush()
    event = bench.controller.history.recent(5, "refused")[0]
    assert event["code"] == "clinic_conflict" and "refused by the clinic record" in event["message"]


def test_a_merge_keeps_its_good_rows_names_each_bad_one_and_refuses_a_bad_shape(make_clinic_bench):
    bench = make_clinic_bench()
    runner = bench.controller.sessions
    # A bad shape refuses the whole merge, naming the field; nothing is kept.
    with pytest.raises(SessionError) as bad:
        runner.request("merge", {"patients": {"P-7": clinic_row(1)}, **REPLICATOR})
    assert bad.value.code == "invalid" and "[clinic] patients" in bad.value.message
    with pytest.raises(SessionError) as stranger:
        runner.request("merge", {"patients": [], "deleted": [], **REPLICATOR})
    assert "[clinic] deleted" in stranger.value.message
    assert bench.controller.history.read(lambda conn: conn.execute("SELECT count(*) FROM patients").fetchone()[0]) == 0
    # Bad rows are not kept, each named with why; one poisoned row does not hold up the others.
    result = runner.request("merge", {"patients": [clinic_row(0), clinic_row(1, patient_id="P-8"),
                                                   clinic_row(1, patient_id="P-9", speed_cap_kmh=5.0)],
                                      "sessions": [{"treadmill_id": "B", "local_id": 1}], **REPLICATOR})
    assert result["changed"] == ["P-8"]
    messages = {item.get("patient_id") or item.get("treadmill_id"): item["message"] for item in result["not_kept"]}
    assert "[clinic patients[0]] version = 0" in messages["P-7"]
    assert "speed_cap_kmh" in messages["P-9"]
    assert "[clinic sessions[0]] treadmill_id = 'B': must be another treadmill's id" in messages["B"]
    bench.controller.history.flush()
    codes = sorted(e["code"] for e in bench.controller.history.recent(10, "refused"))
    assert codes == ["clinic_patient", "clinic_patient", "clinic_session"]
    assert bench.command(CommandKind.STOP).ok


def start_walking(bench: SimBench) -> None:
    runner = bench.controller.sessions
    runner.request("merge", {"patients": [clinic_row(1)], **REPLICATOR})
    assert reset_when_healthy(bench).ok
    runner.request("start", {"patient_id": "P-7", "planned_min": 5, "pain_before": 2, "speed_kmh": 1.2,
                             **THERAPIST})
    assert wait_until(lambda: bench.emulator.belt_speed_mps > 0.25, 5.0), "the belt runs"


def test_a_waiting_prescription_is_not_pressed_on_the_core_while_the_link_is_down(make_clinic_bench):
    """A belt whose speed is unknown counts as moving: a looser prescription keeps waiting, and the runner does
    not send it to be refused twenty times a second."""
    bench = make_clinic_bench()
    runner, core = bench.controller.sessions, bench.controller.loop.core
    start_walking(bench)
    runner.request("merge", {"patients": [clinic_row(2, speed_cap_kmh=1.8)], **REPLICATOR})
    assert runner.clinic_pending is not None
    bench.emulator.unplug()
    assert wait_until(lambda: bench.controller.status["state"] == "STOPPED"
                      and not bench.controller.status["link_ok"], 5.0)

    def pressed() -> int:
        bench.controller.history.flush()
        return len([e for e in bench.controller.history.recent(200) if "clinic record" in e["actor"]])
    assert not wait_until(lambda: pressed() > 0, 2.0), "nothing sent to the core while the link is down"
    assert core.limits.reverse_cap_kmh == 1.5 and runner.clinic_pending is not None

    # The cable back and a reset (which opens the port again): the belt is known to stand, and it applies.
    bench.emulator.replug()
    bench.step_patient_forward()
    assert reset_when_healthy(bench, 10.0).ok, bench.controller.status["reasons"]
    assert wait_until(lambda: core.limits.reverse_cap_kmh == 1.8, 10.0), "applied once the belt is known to stand"


def test_the_tighter_part_of_a_mixed_change_applies_at_once_on_a_running_belt(make_clinic_bench):
    """A lower cap beside a shorter stop distance: the cap now, the distance once the belt stands."""
    bench = make_clinic_bench()
    runner, core = bench.controller.sessions, bench.controller.loop.core
    start_walking(bench)
    runner.request("merge", {"patients": [clinic_row(2, speed_cap_kmh=1.0, base_stop_mm=200)], **REPLICATOR})
    assert (core.limits.reverse_cap_kmh, core.limits.base_stop_mm) == (1.0, 250.0)
    assert core.state.value == "RUNNING" and runner.clinic_pending["version"] == 2
    runner.request("pause", THERAPIST)
    assert wait_until(lambda: core.limits.base_stop_mm == 200.0, 10.0)
    assert core.limits.reverse_cap_kmh == 1.0
