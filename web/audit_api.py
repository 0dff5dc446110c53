"""Recording every state-changing request in the audit trail, and reading the trail (admins).

``init_app`` adds an after-request hook: any POST, PUT, PATCH or DELETE leaves
one row (web/audit.py), written once the view has acted, before its answer goes
out, whatever the outcome. A stop's command has reached the controller by then,
and a row that cannot be written is logged, never turned into an error. ``GET /api/audit`` and
``GET /api/audit.csv`` give the rows to admins, filtered by time and account.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from controller.storage.export_formats import safe_cell
from web.audit import COLUMNS, DEFAULT_PAGE_ROWS, AuditTrail, Entry, iso_utc
from web.auth import admin_required, current_account
from web.validation import MAX_BODY_DEPTH, deeper_than, field_error, invalid, query_int, query_text

log = logging.getLogger(__name__)

bp = Blueprint("audit", __name__, url_prefix="/api")

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: A path longer than this is cut in the row (the server refuses request heads over 16 KiB anyway).
TARGET_MAX_CHARS = 300
MAX_PAGE_ROWS = 5000
#: SQLite's largest row id is 2**63 - 1; this bound leaves the id arithmetic room.
MAX_ROW_ID = 2 ** 62
TIME_EXAMPLE = "an ISO 8601 time such as 2026-12-05T09:30:00Z"


def _request_detail() -> Any:
    """What the view noted, else the request's body (JSON or form); a body refused as too large or too deep
    is not kept."""
    if "audit_detail" in g:
        return g.audit_detail
    try:
        body = request.get_json(silent=True) if request.is_json else (request.form.to_dict() or None)
    except HTTPException as exc:
        return {"body": f"not read ({exc.code} {exc.name})"}
    except RecursionError:
        body = None
    if body is None and request.is_json and request.get_data(cache=True).strip():
        return {"body": "not JSON"}
    if deeper_than(body, MAX_BODY_DEPTH):
        return {"body": f"not kept (nested over {MAX_BODY_DEPTH} levels)"}
    return body


def record(response: Response) -> Response:
    """One row for every state-changing request; a failed write is logged, never turned into an error."""
    if request.method not in STATE_CHANGING:
        return response
    try:
        _append_row(response)
    except Exception:  # noqa: BLE001 - the request has happened (a stop must never fail for this); say so loudly
        log.exception("audit: could not record %s %s from %s", request.method, request.path[:TARGET_MAX_CHARS],
                      request.remote_addr)
    return response


def _append_row(response: Response) -> None:
    if "audit_actor" in g:
        actor, role = g.audit_actor
    else:
        account = current_account()
        actor, role = (account.name, account.role) if account else (None, None)
    rule = request.url_rule.rule if request.url_rule is not None else request.path
    if request.endpoint == "auth.login" and "audit_detail" not in g:
        # Refused before the password was checked (limit, token, shape): the body is never kept,
        # as a password may sit in its name field.
        detail: Any = {"result": "refused before the check"}
    else:
        detail = _request_detail()
    AuditTrail(current_app.config["STATE_DIR"]).append(Entry(
        actor=actor, role=role, address=request.remote_addr or "unknown",
        action=f"{request.method} {rule[:TARGET_MAX_CHARS]}", target=request.path[:TARGET_MAX_CHARS],
        outcome=response.status_code, detail=detail))


def _time_filter(key: str) -> str | None:
    """An ISO 8601 time from the query (no zone means UTC), in the trail's form."""
    raw = query_text(key)
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise invalid([field_error(key, raw, TIME_EXAMPLE)]) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        return iso_utc(parsed.timestamp())
    except (ValueError, OverflowError, OSError):  # a zone pushes it past year 1 or 9999
        raise invalid([field_error(key, raw, TIME_EXAMPLE)]) from None


def _filters() -> dict[str, Any]:
    limit = query_int("limit", default=DEFAULT_PAGE_ROWS)
    if not 1 <= limit <= MAX_PAGE_ROWS:
        raise invalid([field_error("limit", limit, f"1 to {MAX_PAGE_ROWS} rows")])
    before_id = query_int("before_id", default=0)
    if before_id > MAX_ROW_ID:
        raise invalid([field_error("before_id", before_id, f"0 to {MAX_ROW_ID} (0: from the newest row)")])
    return {"since": _time_filter("since"), "until": _time_filter("until"), "user": query_text("user") or None,
            "limit": limit, "before_id": before_id or None}


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A row for JSON: its detail parsed back (a cut one stays text)."""
    try:
        detail = json.loads(row["detail"])
    except ValueError:
        detail = row["detail"]
    return {**row, "detail": detail}


def _rows() -> list[dict[str, Any]]:
    return AuditTrail(current_app.config["STATE_DIR"]).rows(**_filters())


@bp.get("/audit")
@admin_required
def audit() -> Response:
    """The trail as JSON, newest first (?since=, ?until=, ?user=, ?limit=, ?before_id=)."""
    return jsonify({"ok": True, "rows": [_shown(r) for r in _rows()]})


def audit_csv_text(rows: Iterable[Mapping[str, Any]]) -> str:
    """The rows as CSV, every column (the hashes too), cells safe for a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([safe_cell(row[c]) for c in COLUMNS])
    return out.getvalue()


@bp.get("/audit.csv")
@admin_required
def audit_csv() -> Response:
    """The same rows as a CSV download (same filters)."""
    response = Response(audit_csv_text(_rows()), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="audit.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/audit/verify")
@admin_required
def audit_verify() -> Response:
    """The chain checked now: ``intact``, ``rows`` checked and a message naming the first row at fault."""
    intact, rows, message = AuditTrail(current_app.config["STATE_DIR"]).verify()
    return jsonify({"ok": True, "intact": intact, "rows": rows, "message": message})


def init_app(app: Flask) -> None:
    """Register the trail's API and the hook that records every state-changing request."""
    app.register_blueprint(bp)
    app.after_request(record)
