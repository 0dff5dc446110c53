"""The speaker with real aplay on a FIFO card: urgency cuts off, out-of-date prompts are dropped."""

from __future__ import annotations

import time

from tests.waiting import expect
from voice.player import Played, Speaker
from voice.prompter import Cue


def started(sink, key: str, n: int = 1):
    """The n-th playback of ``key`` that reached the card, or None."""
    found = [p for p in sink.prompts() if p.key == key]
    return found[n - 1] if len(found) >= n else None


def speaker_for(sink, sounds, done=None) -> Speaker:
    speaker = Speaker(sink.argv_for, on_done=(done.append if done is not None else None))
    speaker.set_sounds(sounds)
    return speaker.start()


def test_a_trip_cuts_off_the_prompt_being_said_and_is_heard_at_once(sink, english_prompts):
    done: list[Played] = []
    speaker = speaker_for(sink, english_prompts, done)
    try:
        speaker.say(Cue("thirty_seconds_left", time.monotonic()))
        expect(lambda: started(sink, "thirty_seconds_left"), 2.0, "the first prompt on the card")
        # A trip finds the prompt under way: a quarter of a second of it has reached the card.
        expect(lambda: started(sink, "thirty_seconds_left").nbytes >= 11025, 2.0, "the prompt under way")
        t_trip = time.monotonic()
        speaker.say(Cue("stopped_stand_still", t_trip))
        expect(lambda: started(sink, "stopped_stand_still"), 1.0, "the trip prompt on the card")
        trip = started(sink, "stopped_stand_still")
        assert trip.t_first - t_trip < 0.2, f"{(trip.t_first - t_trip) * 1000:.0f} ms from the trip to its sound"
        first = started(sink, "thirty_seconds_left")
        expect(lambda: first.t_end is not None, 1.0, "the cut-off prompt's end")
        assert first.cut_off and first.t_end <= trip.t_first + 0.2
        expect(lambda: len(done) == 2, 5.0, "both reports")
        assert [(p.cue.key, p.ok, p.interrupted) for p in done] == [("thirty_seconds_left", True, True),
                                                                  ("stopped_stand_still", True, False)]
        expect(lambda: trip.t_end is not None, 5.0, "the trip prompt's end")
        assert not trip.cut_off, "the trip prompt is said whole"
    finally:
        speaker.close()


def test_step_back_cuts_off_information_but_never_a_trip(sink, english_prompts):
    speaker = speaker_for(sink, english_prompts)
    try:
        speaker.say(Cue("session_starting", time.monotonic()))
        expect(lambda: started(sink, "session_starting"), 2.0, "the first prompt")
        speaker.say(Cue("step_back", time.monotonic()))
        expect(lambda: started(sink, "step_back"), 1.0, "step back")
        expect(lambda: started(sink, "session_starting").t_end is not None, 1.0, "the information's end")
        assert started(sink, "session_starting").cut_off

        speaker.say(Cue("stopped_stand_still", time.monotonic()))
        expect(lambda: started(sink, "stopped_stand_still"), 1.0, "the trip prompt")
        speaker.say(Cue("step_back", time.monotonic()))  # the patient still in the zone, the belt stopped
        expect(speaker.idle, 6.0, "the speaker to finish")
        assert not started(sink, "stopped_stand_still").cut_off
        # "Step back" waited behind the trip prompt (2.2 s) past its 1.5 s: out of date, never said.
        assert started(sink, "step_back", 2) is None and speaker.dropped == {"step_back": 1}
    finally:
        speaker.close()


def test_a_newer_prompt_of_its_group_replaces_one_still_waiting(sink, english_prompts):
    speaker = speaker_for(sink, english_prompts)
    try:
        speaker.say(Cue("one_minute_left", time.monotonic()))
        expect(lambda: started(sink, "one_minute_left"), 2.0, "the first prompt")
        speaker.say(Cue("slowing_down", time.monotonic()))
        speaker.say(Cue("stopping", time.monotonic()))  # the ramp-down was short: "slowing down" is past
        expect(speaker.idle, 6.0, "the speaker to finish")
        assert [p.key for p in sink.prompts()] == ["one_minute_left", "stopping"]
        assert speaker.dropped == {"slowing_down": 1}
        assert not started(sink, "one_minute_left").cut_off, "equal urgency waits its turn"
    finally:
        speaker.close()


def test_a_prompt_already_out_of_date_when_its_turn_comes_is_dropped(sink, english_prompts):
    speaker = speaker_for(sink, english_prompts)
    try:
        speaker.say(Cue("session_complete", time.monotonic()))
        expect(lambda: started(sink, "session_complete"), 2.0, "the first prompt")
        speaker.say(Cue("one_minute_left", time.monotonic() - 4.5))  # 5 s is its limit; the first lasts 1.6 s
        expect(speaker.idle, 6.0, "the speaker to finish")
        assert [p.key for p in sink.prompts()] == ["session_complete"]
        assert speaker.dropped == {"one_minute_left": 1}
    finally:
        speaker.close()


def test_a_missing_player_is_reported_and_the_speaker_goes_on(sink, english_prompts, tmp_path):
    done: list[Played] = []
    broken = Speaker(lambda wav: [str(tmp_path / "no-such-aplay"), str(wav)], on_done=done.append)
    broken.set_sounds(english_prompts)
    broken.start()
    try:
        broken.say(Cue("stopping", time.monotonic()))
        broken.say(Cue("stopped_stand_still", time.monotonic()))
        expect(lambda: len(done) == 1, 2.0, "the report")  # the trip dropped the waiting "stopping"
        assert not done[0].ok and done[0].t_start is None and "cannot start the player" in done[0].detail
        broken.argv_for = sink.argv_for  # the player appears (apt-get install alsa-utils)
        broken.say(Cue("step_back", time.monotonic()))
        expect(lambda: len(done) == 2 and done[1].ok, 5.0, "a prompt played once the player is there")
    finally:
        broken.close()


def test_a_prompt_with_no_rendering_is_reported_not_raised(sink):
    done: list[Played] = []
    speaker = Speaker(sink.argv_for, on_done=done.append).start()
    try:
        speaker.say(Cue("stopped_stand_still", time.monotonic()))
        expect(lambda: done, 2.0, "the report")
        assert not done[0].ok and "not rendered" in done[0].detail and sink.prompts() == []
    finally:
        speaker.close()
