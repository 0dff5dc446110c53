"""The pure rules of applying a prescription (controller/therapy/prescription.py) and of the event list
(controller/storage/event_log.py): which values a prescription loosens, the speed a session starts at,
and one event per action."""

from __future__ import annotations

from controller.config import Limits
from controller.storage.event_log import one_per_action
from controller.therapy.prescription import (REASON_LAST, REASON_LAST_CAPPED, REASON_SLOWEST, default_start_speed,
                                             describe_loosened, floor_tenth, loosened)

PRESENT = Limits(reverse_cap_kmh=2.0, forward_cap_kmh=2.2, base_stop_mm=250.0, warn_margin_mm=200.0)


def test_each_loosened_value_is_named_with_its_old_and_new_value_and_unit():
    new = Limits(reverse_cap_kmh=2.2, forward_cap_kmh=2.2, base_stop_mm=250.0, warn_margin_mm=150.0)
    items = loosened(new, PRESENT, "reverse", "reverse")
    assert items == [{"field": "reverse_cap_kmh", "label": "Reverse cap", "old": 2.0, "new": 2.2, "unit": "km/h"},
                     {"field": "warn_margin_mm", "label": "Warn margin", "old": 200.0, "new": 150.0, "unit": "mm"}]
    assert describe_loosened(items) == "reverse cap 2.0 → 2.2 km/h; warn margin 200 → 150 mm"


def test_tighter_or_equal_limits_loosen_nothing_and_a_mode_change_is_always_named():
    tighter = Limits(reverse_cap_kmh=1.5, forward_cap_kmh=1.5, base_stop_mm=300.0, warn_margin_mm=200.0)
    assert loosened(tighter, PRESENT, "reverse", "reverse") == []
    assert loosened(PRESENT, PRESENT, "reverse", "reverse") == []
    items = loosened(tighter, PRESENT, "forward", "reverse")
    assert items == [{"field": "mode", "label": "Mode", "old": "reverse", "new": "forward", "unit": ""}]
    assert describe_loosened(items) == "mode reverse → forward"
    shorter = Limits(reverse_cap_kmh=2.0, forward_cap_kmh=2.2, base_stop_mm=200.0, warn_margin_mm=200.0)
    assert describe_loosened(loosened(shorter, PRESENT, "reverse", "reverse")) == "stop distance 250 → 200 mm"


def session(mode="reverse", start=None, mean=0.0):
    return {"mode": mode, "start_speed_kmh": start, "mean_kmh": mean}


def test_a_first_session_starts_at_the_slowest_speed_never_at_the_cap():
    assert default_start_speed([], "reverse", 1.8, 0.5) == (0.5, REASON_SLOWEST)
    # A session that never walked, and sessions in the other mode, say nothing about this mode's speed.
    assert default_start_speed([session(mean=0.0), session("forward", start=1.6)], "reverse", 1.8, 0.5) \
        == (0.5, REASON_SLOWEST)


def test_a_later_session_starts_at_the_last_sessions_start_speed_within_the_cap():
    newest_first = [session(start=0.8, mean=1.4), session(start=1.2)]
    assert default_start_speed(newest_first, "reverse", 1.8, 0.5) == (0.8, REASON_LAST)
    assert default_start_speed([session(start=1.6)], "reverse", 1.2, 0.5) == (1.2, REASON_LAST_CAPPED)


def test_a_session_from_before_start_speeds_gives_its_mean_speed_rounded_down():
    assert floor_tenth(0.7) == 0.7 and floor_tenth(1.29) == 1.2
    assert default_start_speed([session(mean=1.29)], "reverse", 1.8, 0.5) == (1.2, REASON_LAST)
    assert default_start_speed([session(mean=0.31)], "reverse", 1.8, 0.5) == (0.5, REASON_LAST)


def event(id_, t, kind, code, actor="Ann", **figures):
    return {"id": id_, "wall_time": 100.0 + t, "t_mono": t, "kind": kind, "code": code, "message": f"{kind} {code}",
            "actor": actor, "figures": figures}


def test_a_command_and_the_change_it_made_are_one_event():
    newest_first = [
        event(9, 6.0, "command", "set_speed", value=0.6),           # changed no state: stays
        event(8, 5.0, "trip", "estop_command", actor=""),            # an E-stop's trip ...
        event(7, 5.0, "command", "estop"),                           # ... and its command
        event(6, 4.0, "command", "apply_prescription", value={"mode": "reverse"}),
        event(5, 4.0, "limits", "limits"),
        event(4, 3.0, "trip", "stop_zone", actor=""),                # another cause in the step of a command
        event(3, 3.0, "command", "set_speed", value=1.0),
        event(2, 2.0, "command", "reset"),
        event(1, 2.0, "state", "READY"),
        event(0, 1.0, "refused", "start"),
    ]
    shown = one_per_action(newest_first)
    assert [e["id"] for e in shown] == [9, 8, 5, 4, 3, 1, 0]
    by_id = {e["id"]: e for e in shown}
    assert by_id[1]["command"] == {"code": "reset", "message": "command reset"}
    assert by_id[5]["command"] == {"code": "apply_prescription", "message": "command apply_prescription",
                                   "value": {"mode": "reverse"}}
    assert by_id[8]["command"]["code"] == "estop"
    assert "command" not in by_id[4] and "command" not in by_id[9]


def test_a_change_of_another_actor_in_the_same_step_is_not_taken_for_the_command():
    rows = [event(2, 1.0, "command", "set_limits"), event(1, 1.0, "state", "READY", actor="reset button")]
    assert [e["id"] for e in one_per_action(rows)] == [2, 1]
