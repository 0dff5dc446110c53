"""Why the treadmill stopped, in a therapist's words, with the next step.

The controller names each reason with a code (``stop_zone``, ``sensor_fault:left``)
and a technical message. The page shows the sentence and the next step from this
table, and keeps the technical message behind a "details" disclosure and in the
event log. ``{sensor}`` is the sensor's configured id (e.g. ``left``).

A test checks that every code the safety core can raise has an entry here.
"""

from __future__ import annotations

#: code (the part before ``:``) -> (what happened, what to do next)
PLAIN_REASONS: dict[str, tuple[str, str]] = {
    "startup": ("The controller has just started: the belt stays stopped", "Check the patient, then Reset"),
    "estop": ("The E-stop button is pressed, or its wire is broken",
              "Release the button, check the patient, then Reset"),
    "estop_command": ("Stopped with E-STOP on the dashboard", "Check the patient, then Reset"),
    "stop_command": ("Stopped with Stop (the safety circuit opened)", "Check the patient, then Reset"),
    "stop_zone": ("Patient too close to the rear edge", "Help the patient step forward, then Reset"),
    "sensors_disagree": ("The two distance sensors disagree",
                         "Check that nothing blocks a sensor, then Reset"),
    "sensor_fault": ("{Sensor} distance sensor not answering", "Check its cable, then Reset"),
    "sensor_stale": ("{Sensor} distance sensor stopped sending", "Check its cable, then Reset"),
    "sensor_invalid": ("{Sensor} distance sensor gives unusable readings",
                       "Clean its window and check its aim, then Reset"),
    "sensor_obstructed": ("Something is right in front of the {sensor} distance sensor",
                          "Clear the space in front of it, then Reset"),
    "no_target": ("{Sensor} distance sensor does not see the patient",
                  "Help the patient to the middle of the belt, then Reset"),
    "sensor_unknown": ("A reading came from a sensor that is not configured", "Call the installer"),
    "link_fault": ("No connection to the treadmill", "Check the treadmill's cable and power, then Reset"),
    "belt_stale": ("The treadmill stopped reporting its speed", "Check the treadmill's cable, then Reset"),
    "belt_implausible": ("The treadmill reports an impossible speed", "Check the treadmill, then Reset"),
    "belt_moving": ("The belt is still moving", "Wait until it stands, then Reset"),
    "reset_in_warn_zone": ("Patient still close to the rear edge",
                           "Help the patient step forward past the warn zone, then Reset"),
    "belt_unbidden": ("The belt moved without a start from the dashboard",
                      "Check the treadmill's console, then Reset"),
    "gross_overspeed": ("The belt ran far faster than allowed", "Check the treadmill's console, then Reset"),
    "overspeed": ("The belt stayed faster than set", "Check the treadmill's console, then Reset"),
    "stop_timeout": ("The belt did not stop in time after Stop", "Check the treadmill, then Reset"),
    "exception": ("The safety controller met an internal error",
                  "Make the patient safe, then Reset; tell the installer"),
}

#: Shown for a code this table does not know (a newer controller): still plain, never blank.
UNKNOWN_REASON = ("Stopped by the safety controller", "See the details, then Reset")


def plain_reason(code: str) -> tuple[str, str]:
    """The sentence and next step for ``code``, with the sensor's id filled in."""
    base, _, sensor = code.partition(":")
    sentence, step = PLAIN_REASONS.get(base, UNKNOWN_REASON)
    return (sentence.format(Sensor=sensor.capitalize(), sensor=sensor),
            step.format(Sensor=sensor.capitalize(), sensor=sensor))
