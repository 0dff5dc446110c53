"""The therapy API: patient profiles, sessions, pain, timelines and CSV downloads.

Everything here needs a logged-in therapist: it is health data, pseudonymous
or not. State-changing requests carry the CSRF token as the rest of the API
does. This layer checks only a body's shape (web/validation.py); the controller
checks every value and id, and its refusals keep their meaning: invalid 400
naming the field and its range, conflict 409, not_found 404, storage 503.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from flask import Blueprint, Flask, Response, jsonify

from controller.storage.export_formats import SAMPLE_COLUMNS, samples_csv, sessions_csv
from web.auth import actor, current_account, login_required
from web.ipc_client import ControllerError, IpcClient
from web.link import get_link
from web.validation import field_error, invalid, json_object, missing_errors, query_int

bp = Blueprint("history", __name__, url_prefix="/api")

#: Rows asked of the controller per session_samples call (its largest page).
SAMPLES_PAGE_ROWS = 5000
#: A profile with 2000 characters of notes, each escaped in JSON as up to 12 bytes.
PATIENT_BODY_MAX_BYTES = 32 * 1024
#: The keys of a session start body, each passed on as its own parameter (never actor or authorized).
SESSION_START_FIELDS = ("patient_id", "planned_min", "pain_before", "speed_kmh", "confirm")
SESSION_START_REQUIRED = ("patient_id", "planned_min", "pain_before")


# --- helpers ---------------------------------------------------------------------------------

def _answer(reply: Any, status: int = 200) -> Response:
    """The controller's reply as ``{"ok": true, ...}``."""
    response = jsonify({"ok": True, **(reply if isinstance(reply, dict) else {"message": str(reply)})})
    response.status_code = status
    return response


def _authority() -> tuple[str, bool]:
    """Who the controller's log names for this request, and whether a therapist is logged in."""
    return actor(), current_account() is not None


def _confirm_needed(exc: ControllerError) -> Response:
    """409 "confirm": the prescription loosens the present limits; ``loosened`` names each value."""
    # The shape of every refusal (web/errors.py), plus the list the page asks the therapist about.
    response = jsonify({"ok": False, "code": "confirm", "message": exc.message, "errors": exc.errors,
                        "loosened": exc.details.get("loosened", [])})
    response.status_code = 409
    return response


@contextmanager
def _changing() -> Iterator[IpcClient]:
    """The IPC client for a state-changing call; afterwards, older pushed statuses are not served."""
    link = get_link()
    try:
        yield link.client
    finally:
        link.note_command()


def _csv_response(body: Any, filename: str) -> Response:
    """A CSV download (a string or an iterator of chunks), never cached: it holds patient data."""
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


# --- patients --------------------------------------------------------------------------------

@bp.get("/patients")
@login_required
def patients() -> Response:
    """Every patient profile (sorted by id) and the allowed values of each field."""
    return _answer(get_link().client.patients())


@bp.post("/patients")
@login_required
def patient_create() -> Response:
    """Create a profile; 201 with the stored profile (the controller names every field it refuses)."""
    # Passed on whole: the controller's one list of patient fields decides which exist and which are required.
    body = json_object(allowed=None, max_bytes=PATIENT_BODY_MAX_BYTES)
    with _changing() as client:
        reply = client.patient_save(body, True, *_authority())
    return _answer(reply, 201)


@bp.get("/patients/<pid>")
@login_required
def patient(pid: str) -> Response:
    """A profile with its sessions (newest first), the suggestion, the pain trend and today's count."""
    return _answer(get_link().client.patient(pid))


@bp.put("/patients/<pid>")
@login_required
def patient_update(pid: str) -> Response:
    """Replace a profile: patient_id comes from the URL and may not change; notes must be sent."""
    body = json_object(allowed=None, max_bytes=PATIENT_BODY_MAX_BYTES)
    errors = []
    if "patient_id" in body and body["patient_id"] != pid:
        errors.append(field_error("patient_id", body["patient_id"],
                                  f"patient_id: cannot be changed (it is {pid!r}, from the URL); "
                                  "leave it out or send it unchanged"))
    # PUT replaces the profile, but the controller reads missing notes as empty ones (as a new
    # profile's): an update that left them out would wipe them unasked.
    errors += missing_errors(body, ("notes",))
    if errors:
        raise invalid(errors)
    with _changing() as client:
        return _answer(client.patient_save({**body, "patient_id": pid}, False, *_authority()))


@bp.delete("/patients/<pid>")
@login_required
def patient_delete(pid: str) -> Response:
    """Delete a profile with all its sessions and timelines (refused during its active session)."""
    json_object(allowed=())
    with _changing() as client:
        return _answer(client.patient_delete(pid, *_authority()))


@bp.post("/patients/<pid>/select")
@login_required
def patient_select(pid: str) -> Response:
    """Apply the patient's mode and limits: tighter or equal at once; looser ones, or another mode, only with
    ``{"confirm": true}`` (else 409 "confirm" naming each in ``loosened``) and only while the belt stands."""
    body = json_object(allowed=("confirm",))
    try:
        with _changing() as client:
            return _answer(client.patient_select(pid, *_authority(), confirm=body.get("confirm")))
    except ControllerError as exc:
        if exc.code == "confirm":
            return _confirm_needed(exc)
        raise


@bp.get("/patients/<pid>/sessions.csv")
@login_required
def patient_sessions_csv(pid: str) -> Response:
    """The patient's sessions as CSV, newest first, one row each."""
    # Asked before the answer starts: the controller refuses an id that is no clinic pseudonym,
    # so only a well-formed one ever reaches the file name in the header.
    reply = get_link().client.patient(pid)
    return _csv_response(sessions_csv(reply.get("sessions") or []), f"sessions-{pid}.csv")


# --- sessions --------------------------------------------------------------------------------

@bp.post("/sessions")
@login_required
def session_start() -> Response:
    """Start a session for a patient: planned minutes, pain before, optionally the start speed (else the
    patient's ``start_speed_kmh``) and ``confirm`` for a prescription looser than the present limits."""
    body = json_object(allowed=SESSION_START_FIELDS, required=SESSION_START_REQUIRED)
    try:
        with _changing() as client:
            return _answer(client.session_start(body["patient_id"], body["planned_min"], body["pain_before"],
                                                body.get("speed_kmh"), *_authority(), confirm=body.get("confirm")))
    except ControllerError as exc:
        if exc.code == "confirm":
            return _confirm_needed(exc)
        raise


@bp.post("/sessions/current/<any(pause, resume, end):action>")
@login_required
def session_control(action: str) -> Response:
    """Pause, resume or end the active session."""
    json_object(allowed=())
    with _changing() as client:
        call = {"pause": client.session_pause, "resume": client.session_resume, "end": client.session_end}[action]
        return _answer(call(*_authority()))


@bp.get("/sessions/<int:sid>")
@login_required
def session_detail(sid: int) -> Response:
    """A session's summary and its warn and trip events (oldest first)."""
    return _answer(get_link().client.session(sid))


@bp.put("/sessions/<int:sid>/pain")
@login_required
def session_pain(sid: int) -> Response:
    """Record the pain after an ended session (once; the controller says which scores it takes)."""
    body = json_object(allowed=("pain_after",), required=("pain_after",))
    with _changing() as client:
        return _answer(client.session_pain(sid, body["pain_after"], *_authority()))


@bp.get("/sessions/<int:sid>/samples")
@login_required
def session_samples(sid: int) -> Response:
    """One page of a session's timeline (?offset=, ?limit=; the controller says which values it takes)."""
    offset = query_int("offset", default=0)
    limit = query_int("limit", default=SAMPLES_PAGE_ROWS)
    return _answer(get_link().client.session_samples(sid, offset, limit))


def _in_sample_order(page: dict[str, Any]) -> list[Sequence[Any]]:
    """A page's rows with their cells in SAMPLE_COLUMNS order, whatever order the controller named."""
    columns = list(page.get("columns") or SAMPLE_COLUMNS)
    rows = page.get("rows") or []
    if columns == list(SAMPLE_COLUMNS):
        return rows
    where = [columns.index(name) if name in columns else None for name in SAMPLE_COLUMNS]
    return [[row[i] if i is not None else None for i in where] for row in rows]


def _sample_chunks(client: IpcClient, sid: int, first: dict[str, Any]) -> Iterator[str]:
    """The CSV of every page, asking for the next page only once the previous one is sent."""
    page, offset = first, 0
    yield samples_csv(_in_sample_order(page))
    while page.get("next_offset") is not None:
        next_offset = page["next_offset"]
        if not isinstance(next_offset, int) or next_offset <= offset:
            # A download that never ends is worse than one cut short: the server aborts it.
            raise ValueError(f"session {sid}: the controller's next_offset {next_offset!r} does not advance")
        offset = next_offset
        page = client.session_samples(sid, offset, SAMPLES_PAGE_ROWS)
        # Only the first chunk carries the header row (it holds no quotes or newlines).
        yield samples_csv(_in_sample_order(page)).partition("\r\n")[2]


@bp.get("/sessions/<int:sid>/samples.csv")
@login_required
def session_samples_csv(sid: int) -> Response:
    """A session's whole timeline as CSV, streamed page by page (5000 rows a page)."""
    client = get_link().client
    # The first page is asked before the answer starts, so an unknown session is still a 404.
    first = client.session_samples(sid, 0, SAMPLES_PAGE_ROWS)
    return _csv_response(_sample_chunks(client, sid, first), f"session-{sid}-samples.csv")


def init_app(app: Flask) -> None:
    """Register the therapy API."""
    app.register_blueprint(bp)
