"""Every prompt the voice says: its words, how urgent it is, and how long it stays worth saying.

The words are English, the gettext source language, marked with ``N_`` so that
``make translations`` extracts them (voice/babel.cfg) into each language's
catalog under voice/translations; ``words(language)`` gives them translated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import i18n
from i18n import N_

#: The prompts' catalogs (one .po per language) and their gettext domain.
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
DOMAIN = "voice"

#: Priorities: a prompt cuts off one of lower priority that is being spoken.
INFO = 1
ALERT = 2
URGENT = 3


@dataclass(frozen=True)
class Prompt:
    """One fixed sentence and how the speaker treats it."""

    key: str
    #: The English source text: the gettext message id.
    text: str
    priority: int
    #: A newer prompt of the same group replaces one of it still waiting to be said.
    group: str
    #: Not started this long after its event, it is out of date and dropped unsaid.
    max_delay_s: float


PROMPTS: tuple[Prompt, ...] = (
    Prompt("session_starting", N_("Session starting."), INFO, "session", 5.0),
    Prompt("one_minute_left", N_("One minute left."), INFO, "time", 5.0),
    Prompt("thirty_seconds_left", N_("Thirty seconds left."), INFO, "time", 5.0),
    Prompt("slowing_down", N_("Slowing down."), INFO, "session", 3.0),
    Prompt("stopping", N_("Stopping."), INFO, "session", 3.0),
    Prompt("session_complete", N_("Session complete."), INFO, "session", 10.0),
    Prompt("session_paused", N_("Session paused."), INFO, "session", 5.0),
    Prompt("session_resumed", N_("Session resumed."), INFO, "session", 5.0),
    Prompt("session_ended", N_("Session ended."), INFO, "session", 10.0),
    # The patient is in the warn zone now: said late, it would be about a moment that has passed.
    Prompt("step_back", N_("Step back."), ALERT, "warn", 1.5),
    # The same where the edge is behind the patient (walking forwards, or backwards on a belt carrying them away).
    Prompt("step_forward", N_("Step forward."), ALERT, "warn", 1.5),
    # The belt has stopped: always said, at once, cutting off anything else.
    Prompt("stopped_stand_still", N_("Stopped: stand still."), URGENT, "trip", 30.0),
)
BY_KEY: dict[str, Prompt] = {p.key: p for p in PROMPTS}


def words(language: str) -> dict[str, str]:
    """Each prompt's sentence in ``language`` (English is the source; another language needs its catalog)."""
    translations = i18n.translations(TRANSLATIONS, DOMAIN, language)
    return {p.key: translations.gettext(p.text) for p in PROMPTS}
