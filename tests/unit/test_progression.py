"""Progression rules: suggested duration, pain trend, pain flag and today's session count."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from controller.therapy.progression import (
    ProgressionError,
    pain_flag,
    pain_trend,
    sessions_today,
    suggest_duration,
)

#: Monday 2024-05-06 10:00 UTC: day 0 of every scenario.
DAY0 = datetime(2024, 5, 6, 10, 0, tzinfo=UTC)


def wall(day: float, hour: float = 10.0) -> float:
    """Unix time of ``day`` days after DAY0's date at ``hour`` o'clock UTC."""
    midnight = DAY0.replace(hour=0)
    return (midnight + timedelta(days=day, hours=hour)).timestamp()


def session(day: float, status: str = "completed", planned: float = 5.0, before: int | None = 2,
            after: int | None = 2, hour: float = 10.0, sid: int = 0) -> dict:
    """A session summary as storage returns it (only the fields the rules read, plus a few)."""
    flag = after is not None and before is not None and after > before
    ended_wall = None if status == "active" else wall(day, hour + 0.5)
    return {"session_id": sid, "patient_id": "P01", "status": status,
            "started_wall": wall(day, hour), "ended_wall": ended_wall,
            "planned_min": planned, "mode": "reverse", "pain_before": before, "pain_after": after,
            "pain_flag": flag}


def suggest(sessions: list[dict], now_day: float, target: float = 20.0, start: float = 5.0,
            step: float = 2.5, now_hour: float = 12.0) -> dict:
    return suggest_duration(sessions, target, start, step, wall(now_day, now_hour), tz=UTC)


def week_at(planned: float, first_day: int = 0) -> list[dict]:
    """Three completed sessions at ``planned`` min over a week starting ``first_day``."""
    return [session(first_day + d, planned=planned) for d in (0, 3, 6)]


# --- suggest_duration: the regimen start --------------------------------------------------

def test_first_session_suggests_the_regimen_start():
    result = suggest([], now_day=0)
    assert result == {"duration_min": 5.0, "held": False,
                      "reason": "first session: the regimen starts at about 5 min "
                                "and builds step by step to 20 min"}


def test_a_running_session_alone_still_counts_as_no_finished_session():
    result = suggest([session(0, status="active")], now_day=0)
    assert result["duration_min"] == 5.0
    assert result["reason"].startswith("first session")
    assert result["held"] is False


def test_target_below_start_makes_the_target_the_first_suggestion():
    assert suggest([], now_day=0, target=3.0)["duration_min"] == 3.0


def test_off_grid_start_is_rounded_to_half_a_minute():
    assert suggest([], now_day=0, start=4.8)["duration_min"] == 5.0


# --- suggest_duration: holds -------------------------------------------------------------

def test_no_completed_session_yet_holds_at_the_start_and_says_it_ended_early():
    result = suggest([session(0, status="ended", planned=5.0)], now_day=9)
    assert result == {"duration_min": 5.0, "held": True,
                      "reason": "the last session was ended early; holding at 5 min until one is completed"}


def test_interrupted_last_session_holds_at_the_completed_level():
    sessions = week_at(7.5) + [session(8, status="interrupted", planned=7.5)]
    result = suggest(sessions, now_day=10)
    assert result == {"duration_min": 7.5, "held": True,
                      "reason": "the last session was interrupted; holding at 7.5 min until one is completed"}


def test_an_active_session_is_not_the_last_finished_one():
    sessions = week_at(5.0) + [session(7, status="active", planned=5.0)]
    assert suggest(sessions, now_day=7)["duration_min"] == 7.5


def test_pain_rising_in_the_last_session_holds():
    sessions = [session(0, after=3), session(3, after=1), session(7, before=2, after=4)]
    result = suggest(sessions, now_day=8)
    assert result == {"duration_min": 5.0, "held": True,
                      "reason": "pain rose during the last session (2 → 4); holding at 5 min"}


def test_pain_rising_in_an_earlier_session_does_not_hold():
    sessions = [session(0, before=2, after=4), session(3, before=2, after=2), session(6, before=2, after=1)]
    assert suggest(sessions, now_day=7)["duration_min"] == 7.5


def test_pain_after_not_yet_recorded_does_not_hold():
    sessions = week_at(5.0) + [session(7, before=2, after=None)]
    assert suggest(sessions, now_day=7)["duration_min"] == 7.5


def test_worsening_pain_trend_holds_and_asks_for_a_review():
    sessions = [session(0, before=2, after=4), session(3, before=3, after=4), session(7, before=5, after=4)]
    result = suggest(sessions, now_day=14)
    assert result == {"duration_min": 5.0, "held": True,
                      "reason": "pain worsening: review the program (before-session pain 2 → 3 → 5); "
                                "holding at 5 min"}


def test_worsening_pain_is_named_before_an_interrupted_session():
    sessions = [session(0, before=1), session(3, before=2), session(7, status="interrupted", before=4)]
    result = suggest(sessions, now_day=14)
    assert result["reason"].startswith("pain worsening: review the program")
    assert result["held"] is True


def test_six_days_at_a_level_holds_one_more_day():
    result = suggest(week_at(5.0), now_day=6, now_hour=23.9)
    assert result == {"duration_min": 5.0, "held": True,
                      "reason": "holding at 5 min for 1 more day (one step a week)"}


def test_days_remaining_count_from_the_first_session_at_the_present_level():
    sessions = week_at(5.0) + [session(7, planned=7.5), session(10, planned=7.5)]
    result = suggest(sessions, now_day=12)
    assert result["duration_min"] == 7.5
    assert result["held"] is True
    assert result["reason"] == "holding at 7.5 min for 2 more days (one step a week)"


def test_a_level_lowered_by_the_therapist_starts_its_week_again():
    sessions = week_at(5.0) + [session(7, planned=7.5), session(8, planned=5.0)]
    result = suggest(sessions, now_day=14)
    assert result["duration_min"] == 5.0
    assert result["reason"] == "holding at 5 min for 1 more day (one step a week)"


def test_hold_below_the_regimen_start_suggests_the_start():
    sessions = [session(0, planned=3.0), session(1, status="ended", planned=3.0)]
    result = suggest(sessions, now_day=2)
    assert result == {"duration_min": 5.0, "held": True,
                      "reason": "the last session was ended early; holding at 5 min until one is completed"}


# --- suggest_duration: raises and the target ----------------------------------------------

def test_exactly_seven_days_at_a_level_raises_by_the_weekly_step():
    result = suggest(week_at(5.0), now_day=7, now_hour=0.0)
    assert result == {"duration_min": 7.5, "held": False,
                      "reason": "up 2.5 min to 7.5 min: 7 days at 5 min, "
                                "the last session completed, pain not rising"}


def test_seven_days_are_calendar_days_not_hours():
    sessions = [session(0, hour=23.5), session(6, hour=23.5)]
    assert suggest(sessions, now_day=7, now_hour=0.25)["duration_min"] == 7.5


def test_a_session_ended_early_inside_the_week_does_not_block_the_raise():
    sessions = [session(0), session(2, status="ended"), session(6)]
    assert suggest(sessions, now_day=7)["duration_min"] == 7.5


def test_step_overshooting_the_target_is_capped_at_the_target():
    sessions = week_at(19.0)
    result = suggest(sessions, now_day=7)
    assert result == {"duration_min": 20.0, "held": False,
                      "reason": "up 1 min to 20 min (the target): 7 days at 19 min, "
                                "the last session completed, pain not rising"}


def test_target_reached_stays_at_the_target_without_a_hold():
    result = suggest(week_at(20.0), now_day=2)
    assert result == {"duration_min": 20.0, "held": False, "reason": "target of 20 min reached"}


def test_target_lowered_below_the_level_suggests_the_target():
    result = suggest(week_at(20.0), now_day=30, target=15.0)
    assert result["duration_min"] == 15.0
    assert result["reason"] == "target of 15 min reached"


def test_a_hold_above_a_lowered_target_suggests_the_target():
    sessions = week_at(20.0) + [session(7, status="ended", planned=20.0)]
    result = suggest(sessions, now_day=8, target=15.0)
    assert result == {"duration_min": 15.0, "held": True,
                      "reason": "the last session was ended early; holding at 15 min until one is completed"}


def test_raise_is_rounded_to_half_a_minute():
    assert suggest(week_at(6.2), now_day=7)["duration_min"] == 8.5
    assert suggest(week_at(6.2), now_day=3) == {
        "duration_min": 6.0, "held": True, "reason": "holding at 6 min for 4 more days (one step a week)"}


def test_rounding_never_passes_an_off_grid_target():
    assert suggest(week_at(6.0), now_day=7, target=7.3)["duration_min"] == 7.3


def test_session_order_in_the_list_does_not_matter():
    sessions = week_at(5.0) + [session(7, planned=7.5), session(14, planned=7.5)]
    expected = suggest(sessions, now_day=14)
    shuffled = list(reversed(sessions))
    random.Random(6).shuffle(shuffled)
    assert expected["duration_min"] == 10.0
    assert suggest(shuffled, now_day=14) == expected
    assert suggest(list(reversed(sessions)), now_day=14) == expected


def test_result_only_concerns_duration():
    assert set(suggest(week_at(5.0), now_day=7)) == {"duration_min", "reason", "held"}


# --- pain_trend ---------------------------------------------------------------------------

def befores(*scores: int | None) -> list[dict]:
    return [session(i, before=p, after=None) for i, p in enumerate(scores)]


def afters(*scores: int | None) -> list[dict]:
    return [session(i, before=5, after=p) for i, p in enumerate(scores)]


def test_rising_before_scores_are_worsening():
    assert pain_trend(befores(2, 3, 5)) == {
        "worsening": True,
        "message": "pain worsening: review the program (before-session pain 2 → 3 → 5)"}


def test_rise_then_flat_is_worsening():
    assert pain_trend(befores(2, 3, 3))["worsening"] is True


@pytest.mark.parametrize("scores", [(3, 3, 3), (5, 3, 2), (2, 4, 3), (4, 2, 5)],
                         ids=["flat", "falling", "up-then-down", "down-then-up"])
def test_flat_falling_or_mixed_scores_are_not_worsening(scores):
    assert pain_trend(befores(*scores)) == {"worsening": False, "message": None}
    assert pain_trend(afters(*scores)) == {"worsening": False, "message": None}


def test_two_scored_sessions_are_not_enough():
    assert pain_trend(befores(1, 4)) == {"worsening": False, "message": None}
    assert pain_trend(afters(None, 1, None, 4)) == {"worsening": False, "message": None}
    assert pain_trend([]) == {"worsening": False, "message": None}


def test_only_the_last_three_scores_count():
    assert pain_trend(befores(5, 1, 2, 3))["worsening"] is True
    assert pain_trend(befores(1, 2, 3, 2))["worsening"] is False


def test_after_scores_skip_sessions_without_one():
    result = pain_trend(afters(1, None, 2, None, 4))
    assert result == {"worsening": True,
                      "message": "pain worsening: review the program (after-session pain 1 → 2 → 4)"}


def test_both_trends_are_named():
    sessions = [session(0, before=1, after=2), session(1, before=2, after=3), session(2, before=3, after=4)]
    assert pain_trend(sessions)["message"] == (
        "pain worsening: review the program "
        "(before-session pain 1 → 2 → 3; after-session pain 2 → 3 → 4)")


def test_trend_follows_start_time_not_list_order():
    assert pain_trend(list(reversed(befores(2, 3, 5))))["worsening"] is True
    assert pain_trend(list(reversed(befores(5, 3, 2))))["worsening"] is False


def test_an_active_session_s_before_score_counts():
    sessions = befores(2, 3) + [session(2, status="active", before=4, after=None)]
    assert pain_trend(sessions)["worsening"] is True


# --- pain_flag ----------------------------------------------------------------------------

@pytest.mark.parametrize("before, after, flagged", [
    (2, 3, True), (0, 10, True), (3, 3, False), (3, 2, False), (3, None, False),
])
def test_pain_flag_is_set_only_when_pain_rose(before, after, flagged):
    assert pain_flag(before, after) is flagged


# --- sessions_today -----------------------------------------------------------------------

def test_sessions_today_counts_the_utc_calendar_day():
    sessions = [session(0, hour=0.0), session(0, hour=23.999, status="active"),
                session(-1, hour=23.999), session(1, hour=0.0), session(0, hour=12, status="ended")]
    assert sessions_today(sessions, wall(0, 12.0), tz=UTC) == 3


def test_sessions_today_follows_the_given_timezone():
    sessions = [session(-1, hour=23.0), session(0, hour=21.5)]
    # At UTC+02:00 the first is 01:00 on day 0 and the second 23:30 on day 0.
    plus_two = timezone(timedelta(hours=2))
    assert sessions_today(sessions, wall(0, 12.0), tz=plus_two) == 2
    assert sessions_today(sessions, wall(0, 12.0), tz=UTC) == 1


def test_sessions_today_with_the_local_timezone_counts_a_session_started_now():
    assert sessions_today([session(0)], wall(0), tz=None) == 1
    assert sessions_today([], wall(0)) == 0


# --- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"target_min": 0}, "[patient] target_min = 0: must be a number from 1 to 60 min"),
    ({"start_min": 31}, "[sessions] start_duration_min = 31: must be a number from 1 to 30 min"),
    ({"weekly_step_min": True}, "[sessions] weekly_step_min = True: must be a number from 0.5 to 10 min"),
    ({"now_wall": float("nan")}, "[progression] now_wall = nan: must be a unix time in seconds"),
])
def test_bad_arguments_are_refused_with_field_and_range(kwargs, message):
    args = {"sessions": [], "target_min": 20, "start_min": 5, "weekly_step_min": 2.5,
            "now_wall": wall(0), "tz": UTC} | kwargs
    with pytest.raises(ProgressionError) as exc:
        suggest_duration(**args)
    assert str(exc.value) == message
    assert isinstance(exc.value, ValueError)


@pytest.mark.parametrize("change, message", [
    ({"pain_before": 11}, "[session 4] pain_before = 11: must be a whole number from 0 to 10"),
    ({"pain_after": 2.5}, "[session 4] pain_after = 2.5: must be a whole number from 0 to 10"),
    ({"status": "paused"}, ("[session 4] status = 'paused': must be one of "
                            '"active", "completed", "ended", "interrupted"')),
    ({"started_wall": None}, "[session 4] started_wall = None: must be a unix time in seconds"),
    ({"planned_min": 0}, "[session 4] planned_min = 0: must be a number from 0.25 to 60 min"),
])
def test_bad_session_rows_are_refused_with_field_and_range(change, message):
    bad = session(0, sid=4) | change
    for call in (lambda: suggest([bad], now_day=1), lambda: pain_trend([bad]),
                 lambda: sessions_today([bad], wall(0), tz=UTC)):
        with pytest.raises(ProgressionError) as exc:
            call()
        assert str(exc.value) == message


def test_a_row_that_is_not_a_dict_is_refused():
    with pytest.raises(ProgressionError, match=r"^\[session\]: must be a session summary$"):
        pain_trend([7])


def test_pain_flag_refuses_scores_out_of_range():
    with pytest.raises(ProgressionError, match=r"pain_before = 11: must be a whole number from 0 to 10"):
        pain_flag(11, 2)
    with pytest.raises(ProgressionError, match=r"pain_after = True: must be a whole number"):
        pain_flag(2, True)
