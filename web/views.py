"""The therapist's pages: HTML shells; everything live or stored comes from the API.

The dashboard (``/``) is open to everyone, because stop is always allowed. The
therapy pages show patient data, so they need a logged-in therapist; without
one they say where to log in. A page takes any id from its address: its script
asks the API, where the controller says whether the id is well-formed and known,
and the page shows that answer.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, render_template, url_for

from web.auth import current_therapist
from web.reasons import PLAIN_REASONS

bp = Blueprint("views", __name__)


@bp.get("/")
def index() -> str:
    """The dashboard page (the CSRF token sits in a <meta> tag for app.js)."""
    return render_template("index.html", therapist=current_therapist(), page="dashboard",
                           units=current_app.config["DISPLAY_UNITS"])


def _notice(status: int, title: str, message: str) -> tuple[str, int]:
    """A short page that says what is wrong and links back to the dashboard."""
    return render_template("notice.html", title=title, message=message), status


def _therapy_page(template: str, **values: object) -> str | tuple[str, int]:
    """A therapy page for a logged-in therapist; otherwise the page that says to log in."""
    if current_therapist() is None:
        return _notice(401, "Log in first", "These pages show patient data. Log in as a therapist on the "
                                            "dashboard, then come back.")
    return render_template(template, therapist=current_therapist(), units=current_app.config["DISPLAY_UNITS"],
                           **values)


@bp.get("/patients")
def patients_page() -> str | tuple[str, int]:
    """The patients: a table and the new-patient form."""
    return _therapy_page("patients.html", page="patients")


@bp.get("/patients/<pid>")
def patient_page(pid: str) -> str | tuple[str, int]:
    """One patient: profile and prescription, suggestion, pain trend, sessions and charts."""
    return _therapy_page("patient.html", page="patient", pid=pid,
                         csv_url=url_for("history.patient_sessions_csv", pid=pid))


@bp.get("/sessions/<int:sid>")
def session_page(sid: int) -> str | tuple[str, int]:
    """One session: summary, timeline of gap and belt speed, warn and trip events."""
    return _therapy_page("session.html", page="session", sid=sid,
                         csv_url=url_for("history.session_samples_csv", sid=sid))


@bp.get("/favicon.ico")
def favicon() -> Response:
    """No icon: an empty answer instead of a 404 in every browser's console."""
    return Response(status=204)


@bp.app_context_processor
def _plain_reasons() -> dict[str, object]:
    """Every page's header shows the controller's reasons in plain words (web/reasons.py)."""
    return {"plain_reasons": PLAIN_REASONS}


def init_app(app: Flask) -> None:
    """Register the pages' blueprint."""
    app.register_blueprint(bp)
