"""HIL: the voice speaks a scripted therapy session, in order and on time.

The real controller on the simulated treadmill serves its socket; the real voice
service subscribes to it, renders its prompts with espeak-ng and plays them with
aplay into an ALSA file device whose far end is a FIFO read at the card's pace
(tests/voice/sink.py): "audio start" is when the first samples reach it. Events
are timed independently of the voice: the relay pin for the trip, the controller's
own warn events, and the statuses a second subscriber recorded.
"""

from __future__ import annotations

import dataclasses

import pytest

from controller.safety.types import CommandKind
from controller.therapy.runner import SessionError
from tests.hil.helpers import on_a_calm_machine, relay_opened_at, reset_when_healthy
from tests.hil.test_sessions import PATIENT, THERAPIST
from tests.voice.rig import StatusRecorder, render_cache, start_voice
from tests.waiting import wait_until
from voice.prompter import Prompter
from voice.prompts import BY_KEY

#: Event -> audio start, where the card was free at the event (the issue's bound for the trip prompt).
MAX_LATENCY_S = 0.5
DRIFT_MPS = 0.15
#: An 18 s session (the shortest is 15 s): the time marks scaled from 60 s and 30 s to 6 s and 3 s.
PLANNED_MIN = 0.3
MARKS = ((6.0, "one_minute_left"), (3.0, "thirty_seconds_left"))
EXPECTED = ["session_starting", "step_back", "step_back", "stopped_stand_still", "session_resumed",
            "one_minute_left", "thirty_seconds_left", "slowing_down", "stopping", "session_complete"]


def in_warn(bench) -> bool:
    return "warn_zone" in (bench.controller.status.get("warning_causes") or [])


@pytest.fixture
def clinic_bench(make_bench):
    """Benches at the clinic's speed ramp (the example config's 0.5 km/h/s, not the quicker one of
    tests/hil/conftest.py): the end-of-session ramp-down lasts long enough to say "slowing down"
    before "stopping", as it does in the clinic."""
    return lambda: make_bench(start_gap_mm=900.0, quick_ramp=False)


def test_a_session_with_two_warnings_and_a_trip_is_spoken_in_order_and_on_time(clinic_bench, tmp_path):
    cache = render_cache(tmp_path / "cache")
    attempts = iter(range(3))
    on_a_calm_machine(clinic_bench, lambda bench: voiced_session(bench, tmp_path / f"try{next(attempts)}", cache),
                      expected=("stop_zone",))


def voiced_session(bench, tmp_path, cache):
    cfg = bench.controller.cfg
    runner = bench.controller.sessions
    # The buzzer's end chime 5 s before the plan (the clinic's is 30 s), as tests/hil/test_sessions.py has it.
    runner.cfg = dataclasses.replace(cfg, sessions=dataclasses.replace(cfg.sessions, end_warning_s=5.0))
    runner.request("save", {"patient": PATIENT, "create": True, **THERAPIST})
    socket_path = tmp_path / "control.sock"
    tmp_path.mkdir(parents=True, exist_ok=True)
    bench.controller.serve_ipc(socket_path, group="")
    recorder = StatusRecorder(socket_path)
    voice, sink = start_voice(socket_path, tmp_path, cache_dir=cache, prompter=Prompter(remaining_prompts=MARKS))
    try:
        script(bench, runner)
        assert wait_until(lambda: any(p.key == "session_complete" and p.t_end for p in sink.prompts()), 15.0), \
            "the last prompt said"
        check(bench, recorder, sink, runner)
        health = voice.health.snapshot()
        assert health["engine"]["ok"] and health["device"]["ok"] and health["failed"] == 0
    finally:
        voice.close()
        sink.close()
        recorder.close()


def script(bench, runner):
    """Start; the patient drifts into the warn zone, lingers, steps out; drifts in again, on to a trip;
    steps forward, reset and resume; then walks to the plan."""
    start = {"patient_id": PATIENT["patient_id"], "planned_min": PLANNED_MIN, "pain_before": 3, "speed_kmh": 1.5,
             **THERAPIST}
    sid = start_session(bench, runner, start)
    assert wait_until(lambda: runner.snapshot and runner.snapshot["phase"] == "walking", 5.0), "walking"
    bench.patient.set_drift(DRIFT_MPS)
    assert wait_until(lambda: in_warn(bench), 10.0), "the first warn episode"
    bench.patient.set_drift(0.0)
    assert not wait_until(lambda: not in_warn(bench), 1.0), "the patient lingers in the warn zone: one episode"
    bench.patient.set_drift(-DRIFT_MPS)  # steps back out of it
    assert wait_until(lambda: not in_warn(bench), 5.0), "the episode's end"
    bench.patient.set_drift(DRIFT_MPS)
    assert wait_until(lambda: bench.controller.status["state"] == "STOPPED", 10.0), "the trip"
    bench.patient.set_drift(0.0)
    elapsed_at_trip = runner.snapshot["elapsed_s"]
    assert elapsed_at_trip < PLANNED_MIN * 60 - MARKS[0][0] - 2.0, \
        f"the trip came late ({elapsed_at_trip} s walked): the time marks would come before it"
    assert wait_until(lambda: bench.emulator.belt_speed_mps == 0.0, 5.0), "the belt standing"
    step_forward_to(bench, 1000.0)  # out of the warn zone at the speed the session resumes at
    assert reset_when_healthy(bench).ok
    runner.request("resume", THERAPIST)
    # The warnings slowed the belt; the therapist brings it back to the session's speed.
    assert bench.command(CommandKind.SET_SPEED, 1.5).ok
    # A second trip (a machine stall starving a reader) pauses the session: on_a_calm_machine runs it again.
    assert wait_until(lambda: runner.snapshot is None or bench.controller.status["state"] == "STOPPED", 40.0), \
        "the session's end"
    assert runner.snapshot is None, f"tripped again: {bench.controller.status['reasons']}"
    bench.controller.history.flush()
    assert runner.session_page(sid)["session"]["status"] == "completed"


def step_forward_to(bench, gap_mm: float, step_mm: float = 140.0) -> None:
    """The patient steps toward the console in steps both sensors see (a jump no person could make would trip)."""
    bench.patient.set_drift(0.0)
    while bench.patient.gap_mm < gap_mm - 1e-6:
        bench.patient.set_gap(min(gap_mm, bench.patient.gap_mm + step_mm))
        bench.wait_sensors_sampled()


def start_session(bench, runner, params: dict) -> int:
    """Reset, then start; again if a machine stall tripped the controller on a stale input in between."""
    for _ in range(5):
        if bench.controller.status["state"] != "READY":
            reset_when_healthy(bench)
        if not wait_until(lambda: bench.controller.status["state"] == "READY", 2.0):
            continue
        try:
            return runner.request("start", params)["session"]["session_id"]
        except SessionError as exc:
            if exc.code != "conflict":
                raise
    raise AssertionError(f"no start in five tries: {bench.controller.status['reasons']}")


def check(bench, recorder, sink, runner):
    said = sink.prompts()
    assert [p.key for p in said] == EXPECTED, [p.key for p in said]
    started_t = recorder.first(lambda s: s.get("session") is not None)
    warns = [e["t_mono"] for e in reversed(bench.controller.history.recent(50, kind="warn"))
             if e["code"] == "warn_zone" and e["t_mono"] >= started_t]
    assert len(warns) == 2, f"two warn episodes, each said once: {warns}"
    tripped_t = relay_opened_at(bench, started_t)
    resumed_t = recorder.first(lambda s: (s.get("session") or {}).get("phase") == "walking", tripped_t)
    finishing_t = recorder.first(lambda s: (s.get("session") or {}).get("phase") == "finishing")
    events = {
        "session_starting": [started_t],
        "step_back": warns,
        "stopped_stand_still": [tripped_t],
        "session_resumed": [resumed_t],
        "one_minute_left": [recorder.first(lambda s: walking_with(s, MARKS[0][0]), resumed_t)],
        "thirty_seconds_left": [recorder.first(lambda s: walking_with(s, MARKS[1][0]), resumed_t)],
        "slowing_down": [finishing_t],
        "stopping": [recorder.first(lambda s: s["state"] == "STOPPING", finishing_t)],
        "session_complete": [recorder.first(lambda s: s.get("session") is None, finishing_t)],
    }
    report = []
    for i, p in enumerate(said):
        event_t = events[p.key][[q.key for q in said[:i]].count(p.key)]
        assert event_t is not None, p.key
        latency = p.t_first - event_t
        previous = said[i - 1] if i else None
        waited = previous is not None and previous.t_end is not None and previous.t_end > event_t \
            and BY_KEY[p.key].priority <= BY_KEY[previous.key].priority
        report.append(f"{p.key:20s} {latency * 1000:7.0f} ms{' (after the prompt before it)' if waited else ''}")
        assert latency >= 0.0, f"{p.key} was heard before its event"
        if waited:  # it waited its turn: it follows at once, and is still in date
            assert p.t_first - previous.t_end <= MAX_LATENCY_S and latency <= BY_KEY[p.key].max_delay_s, report
        else:
            assert latency <= MAX_LATENCY_S, report
    print("\nevent -> audio start:\n  " + "\n  ".join(report))
    trip = said[EXPECTED.index("stopped_stand_still")]
    assert trip.t_first - tripped_t <= MAX_LATENCY_S and not trip.cut_off, "the trip prompt: at once, and whole"


def walking_with(status: dict, remaining_s: float) -> bool:
    session = status.get("session") or {}
    return session.get("phase") == "walking" and session.get("remaining_s", 1e9) <= remaining_s
