"""The session runner's start speed and its confirmation of a looser prescription, against a scripted loop."""

from __future__ import annotations

import dataclasses

import pytest

from controller.safety.types import CommandKind, Reply
from controller.storage import records
from controller.storage.store import HistoryStore
from controller.therapy.runner import SessionError, SessionRunner
from tests.unit.rig import example_config

THERAPIST = {"actor": "Ann", "authorized": True}
PATIENT = {"patient_id": "P-1", "display_name": "A.B.", "notes": "", "mode": "reverse", "speed_cap_kmh": 1.8,
           "base_stop_mm": 250, "warn_margin_mm": 200, "target_min": 20, "sessions_per_day": 2}


class ScriptedLoop:
    """The control loop's surface the runner uses: a READY status with the example limits; commands obeyed."""

    def __init__(self, cfg):
        self.status = {"state": "READY", "mode": "reverse", "limits": dataclasses.asdict(cfg.limits)}
        self.commands = []

    def command(self, command, timeout_s=1.0):
        self.commands.append(command)
        if command.kind is CommandKind.APPLY_PRESCRIPTION:
            self.status = {**self.status, "mode": command.value["mode"], "limits": dict(command.value["limits"])}
        elif command.kind is CommandKind.START:
            self.status = {**self.status, "state": "RUNNING"}
        elif command.kind is CommandKind.FINISH:
            self.status = {**self.status, "state": "READY"}
        return Reply(True, "ok", "ok")

    def chime(self, pattern_s=()):
        pass

    def of(self, kind):
        return [c for c in self.commands if c.kind is kind]


@pytest.fixture
def rig(tmp_path):
    cfg = example_config()
    store = HistoryStore(tmp_path)
    store.start()
    loop = ScriptedLoop(cfg)
    runner = SessionRunner(cfg, loop, store).start()
    try:
        yield runner, loop
    finally:
        runner.close()
        store.close()


def start(runner, **extra):
    return runner.request("start", {"patient_id": "P-1", "planned_min": 5, "pain_before": 2, **THERAPIST, **extra})


def test_a_session_starts_at_the_slowest_speed_then_at_the_last_sessions_never_at_the_cap(rig):
    runner, loop = rig
    runner.request("save", {"patient": PATIENT, "create": True, **THERAPIST})
    page = runner.patient_page("P-1")
    assert (page["start_speed_kmh"], page["start_speed_reason"]) == (0.5, "slowest speed")

    first = start(runner)["session"]
    assert first["start_speed_kmh"] == 0.5
    assert loop.of(CommandKind.START)[-1].value == 0.5, "not the cap of 1.8 km/h"

    runner.tracker = runner.snapshot = None  # the session over (its figures do not matter here)
    runner.history.call(lambda conn: records.update_session(conn, first["session_id"], status="ended"))
    loop.status = {**loop.status, "state": "READY"}
    second = start(runner, speed_kmh=0.8)["session"]
    assert second["start_speed_kmh"] == 0.8 and loop.of(CommandKind.START)[-1].value == 0.8

    runner.tracker = runner.snapshot = None
    loop.status = {**loop.status, "state": "READY"}
    page = runner.patient_page("P-1")
    assert (page["start_speed_kmh"], page["start_speed_reason"]) == (0.8, "last session's speed")
    third = start(runner)["session"]
    assert third["start_speed_kmh"] == 0.8 and loop.of(CommandKind.START)[-1].value == 0.8


def test_a_speed_above_the_cap_starts_at_the_cap(rig):
    runner, loop = rig
    runner.request("save", {"patient": {**PATIENT, "speed_cap_kmh": 1.2}, "create": True, **THERAPIST})
    assert start(runner, speed_kmh=2.0)["session"]["start_speed_kmh"] == 1.2
    assert loop.of(CommandKind.START)[-1].value == 1.2


def test_a_looser_prescription_is_applied_only_when_confirmed_naming_each_value(rig):
    runner, loop = rig
    loose = {**PATIENT, "patient_id": "P-2", "speed_cap_kmh": 2.2, "warn_margin_mm": 150}
    runner.request("save", {"patient": loose, "create": True, **THERAPIST})
    with pytest.raises(SessionError) as refused:
        runner.request("select", {"patient_id": "P-2", **THERAPIST})
    assert refused.value.code == "confirm"
    assert "reverse cap 2.0 → 2.2 km/h; warn margin 200 → 150 mm" in refused.value.message
    assert refused.value.details["loosened"] == [
        {"field": "reverse_cap_kmh", "label": "Reverse cap", "old": 2.0, "new": 2.2, "unit": "km/h"},
        {"field": "warn_margin_mm", "label": "Warn margin", "old": 200.0, "new": 150.0, "unit": "mm"}]
    assert loop.commands == [] and runner.selected_patient is None
    with pytest.raises(SessionError) as refused_start:
        start(runner, patient_id="P-2")
    assert refused_start.value.code == "confirm" and loop.commands == []
    with pytest.raises(SessionError) as bad:
        runner.request("select", {"patient_id": "P-2", "confirm": "yes", **THERAPIST})
    assert bad.value.code == "invalid" and "confirm" in bad.value.message

    runner.request("select", {"patient_id": "P-2", "confirm": True, **THERAPIST})
    (applied,) = loop.of(CommandKind.APPLY_PRESCRIPTION)
    assert applied.actor == "Ann" and applied.value["confirmed"] is True, "the limits event says it was confirmed"
    assert loop.status["limits"]["reverse_cap_kmh"] == 2.2 and runner.selected_patient == "P-2"


def test_a_tighter_or_equal_prescription_applies_at_once_and_is_not_applied_again_at_the_start(rig):
    runner, loop = rig
    runner.request("save", {"patient": PATIENT, "create": True, **THERAPIST})
    runner.request("select", {"patient_id": "P-1", **THERAPIST})
    (applied,) = loop.of(CommandKind.APPLY_PRESCRIPTION)
    assert applied.actor == "Ann" and loop.status["limits"]["reverse_cap_kmh"] == 1.8
    start(runner)
    assert len(loop.of(CommandKind.APPLY_PRESCRIPTION)) == 1, "already in force: not applied (nor logged) twice"


def test_a_looser_prescription_on_a_moving_belt_is_refused_without_asking_to_confirm(rig):
    runner, loop = rig
    runner.request("save", {"patient": {**PATIENT, "patient_id": "P-2", "speed_cap_kmh": 2.2}, "create": True,
                            **THERAPIST})
    loop.status = {**loop.status, "state": "RUNNING"}
    for confirm in (False, True):
        with pytest.raises(SessionError) as refused:
            runner.request("select", {"patient_id": "P-2", "confirm": confirm, **THERAPIST})
        assert refused.value.code == "conflict" and "only while the belt stands" in refused.value.message
        assert "reverse cap 2.0 → 2.2 km/h" in refused.value.message
    assert loop.commands == []


def test_saving_the_chosen_patient_looser_waits_for_a_confirmed_choice(rig):
    runner, loop = rig
    runner.request("save", {"patient": PATIENT, "create": True, **THERAPIST})
    runner.request("select", {"patient_id": "P-1", **THERAPIST})
    reply = runner.request("save", {"patient": {**PATIENT, "speed_cap_kmh": 2.0}, "create": False, **THERAPIST})
    assert "not applied yet" in reply["message"] and "reverse cap 1.8 → 2.0 km/h" in reply["message"]
    assert loop.status["limits"]["reverse_cap_kmh"] == 1.8
    reply = runner.request("save", {"patient": {**PATIENT, "speed_cap_kmh": 1.5}, "create": False, **THERAPIST})
    assert "not applied" not in reply["message"] and loop.status["limits"]["reverse_cap_kmh"] == 1.5
