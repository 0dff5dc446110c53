"""Why the treadmill stopped, in a therapist's words, with the next step.

The controller names each reason with a code (``stop_zone``, ``sensor_fault:left``)
and a technical message. The page shows the sentence and the next step from this
table, and keeps the technical message behind a "details" disclosure and in the
event log. ``{sensor}`` is the sensor's configured id (e.g. ``left``).

A test checks that every code the safety core can raise has an entry here.
The sentences are English messages of the dashboard's catalog (web/i18n.py):
:func:`translated_reasons` gives them in the request's language.
"""

from __future__ import annotations

from flask_babel import gettext

from web.i18n import N_

#: code (the part before ``:``) -> (what happened, what to do next)
PLAIN_REASONS: dict[str, tuple[str, str]] = {
    "startup": (N_("The controller has just started: the belt stays stopped"), N_("Check the patient, then Reset")),
    "estop": (N_("The E-stop button is pressed, or its wire is broken"), N_("Release the button, check the patient, then Reset")),
    "estop_command": (N_("Stopped with E-STOP on the dashboard"), N_("Check the patient, then Reset")),
    "stop_command": (N_("Stopped with Stop (the safety circuit opened)"), N_("Check the patient, then Reset")),
    "stop_zone": (N_("Patient too close to the rear edge"), N_("Help the patient step forward, then Reset")),
    "sensors_disagree": (N_("The two distance sensors disagree"), N_("Check that nothing blocks a sensor, then Reset")),
    "sensor_fault": (N_("{Sensor} distance sensor not answering"), N_("Check its cable, then Reset")),
    "sensor_stale": (N_("{Sensor} distance sensor stopped sending"), N_("Check its cable, then Reset")),
    "sensor_invalid": (N_("{Sensor} distance sensor gives unusable readings"), N_("Clean its window and check its aim, then Reset")),
    "sensor_obstructed": (N_("Something is right in front of the {sensor} distance sensor"), N_("Clear the space in front of it, then Reset")),
    "no_target": (N_("{Sensor} distance sensor does not see the patient"), N_("Help the patient to the middle of the belt, then Reset")),
    "sensor_unknown": (N_("A reading came from a sensor that is not configured"), N_("Call the installer")),
    "link_fault": (N_("No connection to the treadmill"), N_("Check the treadmill's cable and power, then Reset")),
    "belt_stale": (N_("The treadmill stopped reporting its speed"), N_("Check the treadmill's cable, then Reset")),
    "belt_implausible": (N_("The treadmill reports an impossible speed"), N_("Check the treadmill, then Reset")),
    "belt_moving": (N_("The belt is still moving"), N_("Wait until it stands, then Reset")),
    "reset_in_warn_zone": (N_("Patient still close to the rear edge"), N_("Help the patient step forward past the warn zone, then Reset")),
    "belt_unbidden": (N_("The belt moved without a start from the dashboard"), N_("Check the treadmill's console, then Reset")),
    "gross_overspeed": (N_("The belt ran far faster than allowed"), N_("Check the treadmill's console, then Reset")),
    "overspeed": (N_("The belt stayed faster than set"), N_("Check the treadmill's console, then Reset")),
    "stop_timeout": (N_("The belt did not stop in time after Stop"), N_("Check the treadmill, then Reset")),
    "exception": (N_("The safety controller met an internal error"), N_("Make the patient safe, then Reset; tell the installer")),
}

#: Shown for a code this table does not know (a newer controller): still plain, never blank.
UNKNOWN_REASON = (N_("Stopped by the safety controller"), N_("See the details, then Reset"))


def plain_reason(code: str) -> tuple[str, str]:
    """The sentence and next step for ``code``, with the sensor's id filled in."""
    base, _, sensor = code.partition(":")
    sentence, step = PLAIN_REASONS.get(base, UNKNOWN_REASON)
    return (sentence.format(Sensor=sensor.capitalize(), sensor=sensor),
            step.format(Sensor=sensor.capitalize(), sensor=sensor))


def translated_reasons() -> dict[str, tuple[str, str]]:
    """The whole table in the request's language, with the unknown code's pair under ``""``."""
    table = {code: (gettext(sentence), gettext(step)) for code, (sentence, step) in PLAIN_REASONS.items()}
    table[""] = (gettext(UNKNOWN_REASON[0]), gettext(UNKNOWN_REASON[1]))
    return table
