"""JSON error bodies for every refusal: ``{"ok": false, "code", "message", "errors"}``.

Each of ``errors`` is ``{"field", "key", "value", "message"}``: ``field`` names it ("[limits] base_stop_mm"
from the controller, "speed_kmh" from the web layer), ``key`` is the bare name a form input carries, and
``message`` says what is allowed in words a page can put after the field's label.

The page's JavaScript and the tests read the same shape whether the refusal
came from the web layer (login, CSRF, validation) or from the controller.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from web.ipc_client import ControllerError, ControllerOffline

log = logging.getLogger(__name__)

#: How the controller's refusal codes map to HTTP statuses.
CONTROLLER_CODE_STATUS = {
    "invalid": 400,
    "bad_request": 400,
    "unauthorized": 401,
    "conflict": 409,
    "not_found": 404,
    "unknown_method": 404,
    # A request too long for the controller's line: a size cap, as the body's own (413).
    "too_long": 413,
    # The controller's client limit: try again shortly.
    "busy": 503,
    # The history database cannot be written; the message says why.
    "storage": 503,
}


class ApiError(Exception):
    """A refusal decided in the web layer; becomes a JSON error response."""

    def __init__(self, status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or []


def keyed(error: Any) -> Any:
    """An ``errors`` entry with its ``key``, the bare field name a form input carries: the controller's
    ``field`` reads "[section] key", the web layer's the bare name. An entry that has one keeps it."""
    if not isinstance(error, dict) or "key" in error:
        return error
    field = str(error.get("field") or "")
    key = field.rsplit("] ", 1)[1] if "] " in field else ("" if field.startswith("[") else field)
    return {**error, "key": key}


def json_error(status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None) -> Response:
    """A JSON error response with the given HTTP status; each of ``errors`` is
    ``{"field", "key", "value", "message"}`` (every field at fault, all at once)."""
    response = jsonify({"ok": False, "code": code, "message": message,
                        "errors": [keyed(e) for e in errors or []]})
    response.status_code = status
    return response


def offline_response(exc: ControllerOffline) -> Response:
    """409: the controller's socket does not answer."""
    return json_error(409, "offline", f"controller offline: {exc}")


def controller_error_response(exc: ControllerError) -> Response:
    """The controller's refusal, with its own code, message and field errors."""
    return json_error(CONTROLLER_CODE_STATUS.get(exc.code, 502), exc.code, exc.message, exc.errors)


def init_app(app: Flask) -> None:
    """Register the JSON error handlers."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return json_error(exc.status, exc.code, exc.message, exc.errors)

    @app.errorhandler(ControllerOffline)
    def _offline(exc: ControllerOffline) -> Response:
        return offline_response(exc)

    @app.errorhandler(ControllerError)
    def _refused(exc: ControllerError) -> Response:
        return controller_error_response(exc)

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> Response:
        # Flask-WTF answers 400; 403 tells the page to fetch a fresh token
        # (GET /api/session) rather than to fix its input.
        return json_error(403, "csrf", f"missing or invalid CSRF token ({exc.description}); reload the page")

    @app.errorhandler(429)
    def _too_many(exc: HTTPException) -> Response:
        # Flask-Limiter's description is the limit ("5 per 1 minute") or the limit's own message.
        return json_error(429, "rate_limited", f"too many attempts ({exc.description}); wait, then try again")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        if exc.code is None or exc.code < 400:
            return exc.get_response()  # routing redirects keep their Location
        code = (exc.name or "error").lower().replace(" ", "_")
        response = json_error(exc.code, code, exc.description or exc.name)
        allow = exc.get_response().headers.get("Allow")
        if allow:
            response.headers["Allow"] = allow
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # A bug, not bad input: log the traceback, answer without leaking it.
        log.exception("unhandled error in the dashboard")
        return json_error(500, "internal_error", f"internal error in the dashboard: {type(exc).__name__}")
