"""The therapist's pages: HTML shells; everything live or stored comes from the API.

The dashboard (``/``) is open to everyone, because stop is always allowed. The
therapy pages show patient data, so they need a logged-in account; without
one they say where to log in. A page takes any id from its address: its script
asks the API, where the controller says whether the id is well-formed and known,
and the page shows that answer.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, render_template, url_for
from flask_babel import gettext

from web.accounts import NAME_MAX_CHARS, PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS, ROLES
from web.audit_api import MAX_PAGE_ROWS
from web.auth import current_account
from web.reasons import translated_reasons

bp = Blueprint("views", __name__)


@bp.get("/")
def index() -> str:
    """The dashboard page (the CSRF token sits in a <meta> tag for app.js)."""
    return render_template("index.html", page="dashboard",
                           units=current_app.config["DISPLAY_UNITS"])


def _notice(status: int, title: str, message: str) -> tuple[str, int]:
    """A short page that says what is wrong and links back to the dashboard (``title`` and ``message`` already
    in the request's language)."""
    return render_template("notice.html", title=title, message=message), status


def _therapy_page(template: str, **values: object) -> str | tuple[str, int]:
    """A therapy page for a logged-in therapist; otherwise the page that says to log in."""
    if current_account() is None:
        return _notice(401, gettext("Log in first"), gettext("These pages show patient data. Log in on the "
                                                             "dashboard, then come back."))
    return render_template(template, units=current_app.config["DISPLAY_UNITS"],
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


def _account_page(template: str, *, admin: bool, **values: object) -> str | tuple[str, int]:
    """An accounts page: 401 notice without a login, 403 notice for a therapist on an admin's page."""
    account = current_account()
    if account is None:
        return _notice(401, gettext("Log in first"), gettext("This page is for a logged-in account. Log in on "
                                                             "the dashboard, then come back."))
    if admin and not account.is_admin:
        return _notice(403, gettext("Only an admin may see this page"),
                       gettext("Only an admin may see this page. Ask an admin if you need an account changed."))
    return render_template(template, units=current_app.config["DISPLAY_UNITS"], roles=ROLES,
                           name_max=NAME_MAX_CHARS, password_min=PASSWORD_MIN_CHARS,
                           password_max=PASSWORD_MAX_CHARS, **values)


@bp.get("/accounts")
def accounts_page() -> str | tuple[str, int]:
    """The accounts (admin): the table, per-account changes, and the new-account form."""
    return _account_page("accounts.html", admin=True, page="accounts")


@bp.get("/account")
def account_page() -> str | tuple[str, int]:
    """Your own account (anyone logged in): change your password."""
    return _account_page("account.html", admin=False, page="account")


@bp.get("/audit")
def audit_page() -> str | tuple[str, int]:
    """The audit trail (admin): filters, the rows newest first, the CSV download and the chain's state."""
    return _account_page("audit.html", admin=True, page="audit", csv_max_rows=MAX_PAGE_ROWS)


@bp.get("/favicon.ico")
def favicon() -> Response:
    """No icon: an empty answer instead of a 404 in every browser's console."""
    return Response(status=204)


@bp.app_context_processor
def _every_page() -> dict[str, object]:
    """Every page's header: the controller's reasons in plain words in the page's language (web/reasons.py),
    and who is logged in (``therapist``, the account's name, and ``account`` with its role)."""
    account = current_account()
    return {"plain_reasons": translated_reasons(), "account": account, "therapist": account.name if account else None}


def init_app(app: Flask) -> None:
    """Register the pages' blueprint."""
    app.register_blueprint(bp)
