"""Over the controller's real socket: a looser prescription waits for the therapist's confirmation, a session
starts at its recorded start speed, and the event list shows each action once."""

from __future__ import annotations

from tests.hil.test_session_ipc import client, expect_limits, served_bench  # noqa: F401 - the fixture
from tests.hil.test_sessions import PATIENT, THERAPIST
from tests.waiting import expect

PID = PATIENT["patient_id"]


def test_a_looser_patient_needs_confirm_and_the_limits_event_names_who_confirmed(served_bench):  # noqa: F811
    bench = served_bench(ready=True)
    loose = {**PATIENT, "patient_id": "P-LOOSE", "speed_cap_kmh": 2.2, "warn_margin_mm": 150}
    with client(bench) as ipc:
        ipc.ok("patient_save", {"patient": loose, "create": True, **THERAPIST})
        error = ipc.refused("patient_select", {"patient_id": "P-LOOSE", **THERAPIST})
        assert error["code"] == "confirm"
        assert "reverse cap 2.0 → 2.2 km/h; warn margin 200 → 150 mm" in error["message"]
        assert error["loosened"] == [
            {"field": "reverse_cap_kmh", "label": "Reverse cap", "old": 2.0, "new": 2.2, "unit": "km/h"},
            {"field": "warn_margin_mm", "label": "Warn margin", "old": 200.0, "new": 150.0, "unit": "mm"}]
        assert bench.controller.loop.core.limits.reverse_cap_kmh == 2.0 and ipc.ok("status")["selected_patient"] is None

        ipc.ok("patient_select", {"patient_id": "P-LOOSE", "confirm": True, **THERAPIST})
        expect_limits(ipc, "the confirmed prescription", reverse_cap_kmh=2.2, warn_margin_mm=150)
        (event,) = ipc.ok("events", {"kind": "limits", "limit": 1})
        assert event["actor"] == "Ann" and "applied by Ann, who confirmed its looser values" in event["message"]
        assert event["figures"]["confirmed"] is True
        assert event["figures"]["old"]["reverse_cap_kmh"] == 2.0 and event["figures"]["new"]["reverse_cap_kmh"] == 2.2

        # Back to a tighter patient: at once, no confirmation.
        reply = ipc.ok("patient_select", {"patient_id": PID, **THERAPIST})
        assert reply["patient_id"] == PID
        expect_limits(ipc, "the tighter prescription", reverse_cap_kmh=1.5, warn_margin_mm=200)


def test_a_session_starts_at_the_slowest_speed_records_it_and_each_action_is_one_event(served_bench):  # noqa: F811
    bench = served_bench()
    with client(bench) as ipc:
        page = ipc.ok("patient", {"patient_id": PID})
        assert (page["start_speed_kmh"], page["start_speed_reason"]) == (0.5, "slowest speed")
        before = ipc.ok("events", {"limit": 500})
        expect(lambda: ipc.call("command", {"command": "reset", **THERAPIST})["ok"], 5.0, "a reset accepted")
        ipc.ok("patient_select", {"patient_id": PID, **THERAPIST})
        session = ipc.ok("session_start", {"patient_id": PID, "planned_min": 5, "pain_before": 3,
                                           **THERAPIST})["session"]
        assert session["start_speed_kmh"] == 0.5
        ipc.ok("session_pause", THERAPIST)
        expect(lambda: ipc.ok("status")["state"] == "READY", 5.0, "the belt stopped")

        shown = ipc.ok("events", {"limit": 500})
        new = [e for e in shown if e["id"] > max((b["id"] for b in before), default=0)]
        mine = [e for e in new if e["actor"] == "Ann" and e["kind"] != "refused"]
        # reset, choose, start, pause: one event each (the commands folded into what they changed).
        assert [(e["kind"], e["code"]) for e in reversed(mine)] == [
            ("state", "READY"), ("limits", "limits"), ("state", "RUNNING"), ("state", "STOPPING")], mine
        assert [e["command"]["code"] for e in reversed(mine)] == ["reset", "apply_prescription", "start", "stop"]
        started = next(e for e in mine if e["code"] == "RUNNING")
        assert "towards 0.5 km/h" in started["message"] and started["command"]["value"] == 0.5
        # The audit keeps both records of each action.
        commands = ipc.ok("events", {"kind": "command", "limit": 20})
        assert {"reset", "apply_prescription", "start", "stop"} <= {e["code"] for e in commands}
        summary = ipc.ok("session", {"session_id": session["session_id"]})["session"]
        assert summary["start_speed_kmh"] == 0.5
