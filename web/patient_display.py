"""The patient display: ``/patient``, a read-only screen the patient reads while walking.

It is mounted behind the rear edge, facing the patient (or on the console, for a
reversed belt), and needs no login: it offers Stop, which anyone may give, and
nothing else. It shows no personal data. Its stream is a projection of the
status made here, on the server, so the patient's clinic id never reaches the
screen at all: the remaining time, a distance cue, the belt speed and, after a
trip, one plain sentence of why.
"""

from __future__ import annotations

import functools
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template
from flask_babel import gettext

from web.api import sse_response
from web.i18n import N_
from web.link import get_link

bp = Blueprint("patient_display", __name__)

#: The cue: the patient is clear of the warn zone, inside it (told to step back when they face the edge, forward
#: when it is behind them), or the belt was stopped.
CUES = ("good", "step_back", "step_forward", "stopped")

#: Why the belt stopped, as the patient is told it (the code before ``:``); the therapist's fuller
#: sentence and next step are on the dashboard (web/reasons.py). A code not here gets GENERIC_STOP.
PATIENT_REASONS: dict[str, str] = {
    "stop_zone": N_("Stopped: too close to the edge"),
    "reset_in_warn_zone": N_("Stopped: too close to the edge"),
    "estop": N_("Stopped: the emergency stop button"),
    "estop_command": N_("Stopped: the emergency stop on the dashboard"),
    "stop_command": N_("Stopped: Stop was pressed"),
    "sensors_disagree": N_("Stopped: a distance sensor needs checking"),
    "sensor_fault": N_("Stopped: a distance sensor needs checking"),
    "sensor_stale": N_("Stopped: a distance sensor needs checking"),
    "sensor_invalid": N_("Stopped: a distance sensor needs checking"),
    "sensor_obstructed": N_("Stopped: something is in front of a sensor"),
    "no_target": N_("Stopped: the sensors cannot see you"),
    "sensor_unknown": N_("Stopped: a distance sensor needs checking"),
    "link_fault": N_("Stopped: the treadmill needs checking"),
    "belt_stale": N_("Stopped: the treadmill needs checking"),
    "belt_implausible": N_("Stopped: the treadmill needs checking"),
    "belt_moving": N_("Stopped: the treadmill needs checking"),
    "belt_unbidden": N_("Stopped: the treadmill needs checking"),
    "gross_overspeed": N_("Stopped: the belt ran too fast"),
    "overspeed": N_("Stopped: the belt ran too fast"),
    "stop_timeout": N_("Stopped: the treadmill needs checking"),
    "startup": N_("The treadmill is stopped"),
    "exception": N_("Stopped: the safety system needs checking"),
}
GENERIC_STOP = N_("Stopped: the safety system stopped the belt")
#: Said under every stop sentence: the patient's one job until the therapist comes.
AFTER_STOP = N_("Stand still, your therapist will reset")


def faces_edge(mode: Any, reverse_faces_edge: bool = True) -> bool:
    """Whether the patient faces the rear edge: walking backwards on a belt that carries them towards it
    (the usual retro-walking set-up). Walking forwards, or backwards on a belt that carries them away from
    the edge, the edge is behind them: "step back" would send them towards it."""
    return mode != "forward" and reverse_faces_edge


def cue(status: dict[str, Any], reverse_faces_edge: bool = True) -> str:
    """``stopped`` at a trip or an open E-stop; in the warn zone ``step_back`` or ``step_forward``, whichever
    is away from the edge for the way the patient faces; else ``good``."""
    if status.get("state") == "STOPPED" or status.get("estop_open"):
        return "stopped"
    if "warn_zone" in (status.get("warning_causes") or ()):
        return "step_back" if faces_edge(status.get("mode"), reverse_faces_edge) else "step_forward"
    return "good"


def patient_view(status: dict[str, Any], reverse_faces_edge: bool = True) -> dict[str, Any]:
    """The status as the patient display gets it: no names, no ids, no limits, no counters."""
    session = status.get("session")
    return {
        "seq": status.get("seq"), "t_wall": status.get("t_wall"),
        "state": status.get("state"), "cue": cue(status, reverse_faces_edge),
        "belt_speed_mps": status.get("belt_speed_mps"), "link_ok": status.get("link_ok"),
        # The codes alone (``sensor_fault:left`` names a sensor, never a person), in the controller's order: the
        # trip's own cause first, as the dashboard shows it; no technical message.
        "reasons": list(status.get("reasons") or {}) if status.get("state") == "STOPPED" else [],
        "session": None if not session else {key: session.get(key) for key in
                                             ("phase", "elapsed_s", "planned_s", "remaining_s")},
    }


def translated_reasons() -> dict[str, str]:
    """The stop sentences in the request's language; ``""`` holds the generic one."""
    table = {code: gettext(sentence) for code, sentence in PATIENT_REASONS.items()}
    table[""] = gettext(GENERIC_STOP)
    return table


@bp.get("/patient")
def page() -> str:
    """The patient display (anyone: it is read-only but for Stop, and shows no personal data)."""
    return render_template("patient_display.html", units=current_app.config["DISPLAY_UNITS"],
                           stop_sentences=translated_reasons(), after_stop=gettext(AFTER_STOP))


@bp.get("/api/patient/status")
def status() -> Response:
    """The present status as the patient display shows it (409 when the controller is offline)."""
    link = get_link()
    return jsonify(patient_view(link.pushed_status() or link.client.status(),
                                current_app.config["REVERSE_FACES_EDGE"]))


@bp.get("/api/patient/stream")
def stream() -> Response:
    """The patient display's live stream: the same status stream as the dashboard's, projected."""
    return sse_response(functools.partial(patient_view,
                                          reverse_faces_edge=current_app.config["REVERSE_FACES_EDGE"]))


def init_app(app: Flask) -> None:
    """Register the patient display's page and stream."""
    app.register_blueprint(bp)
