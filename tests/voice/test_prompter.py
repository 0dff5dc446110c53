"""The prompter alone: statuses in, prompts out, no audio and no clock."""

from __future__ import annotations

from voice.prompter import Prompter
from voice.prompts import BY_KEY, PROMPTS


def status(t: float, state: str = "RUNNING", warn: bool = False, session: dict | None = None) -> dict:
    """The parts of a controller status the prompter reads."""
    return {"t_mono": t, "state": state, "warning_causes": ["warn_zone"] if warn else [], "session": session}


def session(phase: str = "walking", elapsed_s: float = 0.0, planned_s: float = 300.0, sid: int = 7) -> dict:
    """A session snapshot as controller/therapy/tracker.py publishes it."""
    return {"session_id": sid, "patient_id": "P-1", "phase": phase, "elapsed_s": elapsed_s, "planned_s": planned_s,
            "remaining_s": max(0.0, planned_s - elapsed_s), "end_warning": False, "paused_reason": None}


def said(prompter: Prompter, statuses: list[dict]) -> list[tuple[str, float]]:
    return [(cue.key, cue.t_event) for st in statuses for cue in prompter.feed(st)]


def test_a_whole_session_to_its_plan_is_announced_in_order_at_its_moments():
    p = Prompter()
    plan = 120.0
    stream = [status(0.0, "READY")]
    stream.append(status(1.0, "READY", session=session("paused", 0.0, plan)))  # the session is created
    t = 2.0
    for elapsed in range(0, 121):  # walking, one status a second of walking time
        stream.append(status(t + elapsed, "RUNNING", session=session("walking", float(elapsed), plan)))
    t_end = t + 120
    stream.append(status(t_end + 0.1, "RUNNING", session=session("finishing", 120.05, plan)))  # ramp-down
    stream.append(status(t_end + 1.0, "RUNNING", session=session("finishing", 121.0, plan)))
    stream.append(status(t_end + 2.0, "STOPPING", session=session("finishing", 121.9, plan)))
    stream.append(status(t_end + 2.5, "STOPPING", session=session("finishing", 121.9, plan)))
    stream.append(status(t_end + 3.0, "READY", session=None))  # the belt stands: the session closes
    assert said(p, stream) == [("session_starting", 1.0), ("one_minute_left", 2.0 + 60), ("thirty_seconds_left", 2.0 + 90),
                               ("slowing_down", t_end + 0.1), ("stopping", t_end + 2.0),
                               ("session_complete", t_end + 3.0)]


def test_the_warn_zone_is_said_once_per_episode_and_only_while_the_belt_is_driven():
    p = Prompter()
    stream = [status(0.0), status(1.0, warn=True), status(1.1, warn=True), status(1.5, warn=True),
              status(2.0), status(3.0, warn=True),  # a second episode
              status(3.5, "STOPPED", warn=True),  # the trip: its own prompt, no "step back"
              status(4.0, "STOPPED"), status(5.0, "READY", warn=True)]  # in the zone on a standing belt
    assert said(p, stream) == [("step_back", 1.0), ("step_back", 3.0), ("stopped_stand_still", 3.5)]


def test_step_back_or_forward_is_away_from_the_edge_for_the_way_the_patient_faces():
    """Walking backwards towards the edge it is "step back"; with the edge behind (walking forwards, or a belt
    carrying the patient away in reverse) "step back" would be towards it: "step forward" then."""
    def warned(mode: str, reverse_faces_edge: bool) -> list[str]:
        p = Prompter(reverse_faces_edge=reverse_faces_edge)
        stream = [{**status(t, warn=t > 0), "mode": mode} for t in (0.0, 1.0)]
        return [key for key, _ in said(p, stream)]
    assert warned("reverse", True) == ["step_back"]
    assert warned("reverse", False) == ["step_forward"]
    assert warned("forward", True) == ["step_forward"]
    assert warned("forward", False) == ["step_forward"]


def test_an_episode_that_began_on_a_standing_belt_is_said_when_the_belt_starts():
    p = Prompter()
    assert said(p, [status(0.0, "READY", warn=True), status(1.0, "RUNNING", warn=True),
                    status(2.0, "RUNNING", warn=True)]) == [("step_back", 1.0)]


def test_a_trip_is_said_on_any_stop_but_not_for_the_state_the_voice_first_sees():
    p = Prompter()
    assert said(p, [status(0.0, "STOPPED"), status(1.0, "READY"), status(2.0, "STOPPED"),
                    status(3.0, "STOPPED")]) == [("stopped_stand_still", 2.0)]


def test_a_second_trip_whose_ready_the_stream_dropped_is_still_said():
    """The controller keeps only the newest status for a slow client: a reset and a new trip may arrive
    as STOPPED then STOPPED; the trip count tells them apart."""
    p = Prompter()
    stream = [status(0.0, "READY"), {**status(1.0, "STOPPED"), "trip_count": 1},
              {**status(1.5, "STOPPED"), "trip_count": 1}, {**status(2.0, "STOPPED"), "trip_count": 2}]
    assert said(p, [{**stream[0], "trip_count": 0}, *stream[1:]]) == [("stopped_stand_still", 1.0),
                                                                       ("stopped_stand_still", 2.0)]


def test_a_controller_restart_seen_across_a_gap_is_a_trip():
    """The relay drops whenever the controller process ends; it comes back STOPPED."""
    p = Prompter()
    assert said(p, [status(0.0, "RUNNING"), status(9.0, "STOPPED")]) == [("stopped_stand_still", 9.0)]


def test_pause_resume_and_a_trip_in_a_session_and_an_early_end():
    p = Prompter()
    stream = [status(0.0, "READY"),
              status(1.0, "READY", session=session("paused", 0.0)),
              status(2.0, "RUNNING", session=session("walking", 0.0)),  # the first start: not "resumed"
              status(3.0, "STOPPING", session=session("paused", 1.0)),  # the therapist pauses
              status(4.0, "READY", session=session("paused", 1.0)),
              status(5.0, "RUNNING", session=session("walking", 1.0)),  # resumes
              status(6.0, "STOPPED", session=session("paused", 2.0)),  # a trip: not "paused"
              status(7.0, "READY", session=session("paused", 2.0)),  # reset
              status(8.0, "RUNNING", session=session("walking", 2.0)),
              status(9.0, "RUNNING", session=session("finishing", 3.0)),  # the therapist ends it early
              status(10.0, "STOPPING", session=session("finishing", 3.5)),
              status(11.0, "READY", session=None)]
    assert [k for k, _ in said(p, stream)] == ["session_starting", "session_paused", "session_resumed",
                                              "stopped_stand_still", "session_resumed", "slowing_down",
                                              "stopping", "session_ended"]


def test_a_session_ended_while_paused_is_ended_not_complete():
    p = Prompter()
    stream = [status(0.0, "READY"), status(1.0, "READY", session=session("paused", 0.0, 60.0)),
              status(2.0, "RUNNING", session=session("walking", 10.0, 60.0)),
              status(3.0, "STOPPING", session=session("paused", 11.0, 60.0)),
              status(4.0, "READY", session=None)]
    assert [k for k, _ in said(p, stream)][-1] == "session_ended"


def test_a_short_session_and_a_voice_that_starts_mid_session_announce_no_time_already_past():
    short = Prompter()
    stream = [status(0.0, "READY"), status(1.0, "READY", session=session("paused", 0.0, 45.0))]
    stream += [status(2.0 + e, "RUNNING", session=session("walking", float(e), 45.0)) for e in range(0, 46)]
    assert [k for k, _ in said(short, stream)] == ["session_starting", "thirty_seconds_left"]

    late = Prompter()  # the voice (re)starts with 50 s left: no "session starting", no "one minute left"
    stream = [status(100.0 + e, "RUNNING", session=session("walking", 250.0 + e, 300.0)) for e in range(0, 30)]
    assert [k for k, _ in said(late, stream)] == ["thirty_seconds_left"]


def test_a_time_mark_seen_long_after_it_passed_is_not_announced():
    """A gap in the stream (the controller was unreachable): "one minute left" at 40 s left would be false."""
    p = Prompter()
    stream = [status(0.0, "RUNNING", session=session("walking", 200.0, 300.0)),
              status(1.0, "RUNNING", session=session("walking", 260.0, 300.0))]
    assert said(p, stream) == []


def test_scaled_time_marks_for_a_short_bench_session():
    """The HIL bench runs 15 s sessions: the marks are a parameter (production: 60 s and 30 s)."""
    p = Prompter(remaining_prompts=((10.0, "one_minute_left"), (5.0, "thirty_seconds_left")))
    stream = [status(0.0, "READY"), status(0.5, "READY", session=session("paused", 0.0, 15.0))]
    stream += [status(1.0 + e / 10, "RUNNING", session=session("walking", e / 10, 15.0)) for e in range(0, 151)]
    assert said(p, stream)[1:] == [("one_minute_left", 6.0), ("thirty_seconds_left", 11.0)]


def test_a_belt_run_without_a_session_says_stopping_on_a_controlled_stop():
    p = Prompter()
    assert said(p, [status(0.0, "RUNNING"), status(1.0, "STOPPING"), status(2.0, "READY")]) == [("stopping", 1.0)]


def test_every_prompt_has_a_sound_design():
    """The trip outranks everything; the warn zone outranks information; each key is unique."""
    assert len(BY_KEY) == len(PROMPTS)
    trip = BY_KEY["stopped_stand_still"]
    assert all(trip.priority > p.priority for p in PROMPTS if p is not trip)
    assert all(BY_KEY["step_back"].priority > p.priority for p in PROMPTS if p.group not in ("warn", "trip"))
    assert BY_KEY["step_back"].max_delay_s <= 2.0, "a late 'step back' is about a moment that has passed"
