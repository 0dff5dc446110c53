"""Who is logged in: one therapist password, sessions, and a login rate limit.

There is no default password: until the installer sets one
(``treadmill-safety set-password --config FILE``) nobody can log in, and the
dashboard can only stop the belt.
"""

from __future__ import annotations

import functools
import unicodedata
from pathlib import Path
from typing import Callable, TypeVar

from flask import Blueprint, Flask, Response, current_app, jsonify, request, session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import generate_csrf
from werkzeug.security import check_password_hash, generate_password_hash

from controller.files import atomic_write_text
from web.errors import json_error
from web.state import PASSWORD_FILE, PRIVATE_MODE, ensure_state_dir, tighten_mode
from web.validation import request_json

bp = Blueprint("auth", __name__)

PASSWORD_MIN_CHARS = 8
PASSWORD_MAX_CHARS = 1024
NAME_MAX_CHARS = 40
SESSION_KEY = "therapist"
#: Guessing the password from one address: a handful of tries a minute.
DEFAULT_LOGIN_RATE = "5 per minute"

ViewFunc = TypeVar("ViewFunc", bound=Callable[..., object])


def _password_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / PASSWORD_FILE


def set_password(state_dir: str | Path, password: str) -> None:
    """Store the therapist password's scrypt hash in ``<state_dir>/password`` (0600, atomic)."""
    if not isinstance(password, str) or not PASSWORD_MIN_CHARS <= len(password) <= PASSWORD_MAX_CHARS:
        length = len(password) if isinstance(password, str) else type(password).__name__
        raise ValueError(f"password: must be {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters "
                         f"(got {length})")
    directory = ensure_state_dir(state_dir)
    atomic_write_text(_password_path(directory), generate_password_hash(password, method="scrypt") + "\n",
                      mode=PRIVATE_MODE)


def password_is_set(state_dir: str | Path) -> bool:
    """Whether the installer has set a therapist password."""
    return _password_path(state_dir).is_file()


def check_password(state_dir: str | Path, password: str) -> bool:
    """True if ``password`` matches the stored hash; False when none is stored (no default)."""
    path = _password_path(state_dir)
    try:
        tighten_mode(path)
        stored = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return False
    if not stored or not isinstance(password, str):
        return False
    return check_password_hash(stored, password)


def current_therapist() -> str | None:
    """The logged-in therapist's name, or None."""
    name = session.get(SESSION_KEY)
    return name if isinstance(name, str) and name else None


def actor() -> str:
    """Who the controller's event log names for this request."""
    return current_therapist() or f"anonymous ({request.remote_addr or 'unknown address'})"


def login_required(view: ViewFunc) -> ViewFunc:
    """Refuse with 401 JSON unless a therapist is logged in; URL values pass through to the view."""

    @functools.wraps(view)
    def wrapped(**url_values: object) -> object:
        if current_therapist() is None:
            return json_error(401, "login_required", "log in as a therapist for this action")
        return view(**url_values)

    return wrapped  # type: ignore[return-value]


def _clean_name(raw: object) -> str | None:
    """The therapist's name, stripped, or None if it is not 1..40 printable characters."""
    if not isinstance(raw, str):
        return None
    name = raw.strip()
    if not 1 <= len(name) <= NAME_MAX_CHARS:
        return None
    # The name goes into the controller's event log and onto the page:
    # no control or format characters (newlines, bidi overrides).
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        return None
    return name


@bp.post("/login")
def login() -> Response:
    """Log a therapist in (JSON or form: name, password); answers with a fresh CSRF token."""
    if request.is_json:
        data = request_json()
        if not isinstance(data, dict):
            return json_error(400, "invalid", "send a JSON object or a form with name and password",
                              [{"field": "body", "value": None, "message": "the body must be a JSON object"}])
    else:
        data = request.form
    name = _clean_name(data.get("name"))
    password = data.get("password")
    errors = []
    if name is None:
        errors.append({"field": "name", "value": None,
                       "message": f"name: 1 to {NAME_MAX_CHARS} printable characters"})
    if not isinstance(password, str) or not password or len(password) > PASSWORD_MAX_CHARS:
        errors.append({"field": "password", "value": None,
                       "message": f"password: 1 to {PASSWORD_MAX_CHARS} characters"})
    if errors:
        return json_error(400, "invalid", "; ".join(e["message"] for e in errors), errors)
    state_dir = current_app.config["STATE_DIR"]
    if not password_is_set(state_dir):
        return json_error(401, "no_password", "no therapist password is set; the installer sets it with "
                                              "'treadmill-safety set-password --config <file>'")
    if not check_password(state_dir, password):
        return json_error(401, "bad_login", "wrong password")
    # A fresh session at login: nothing from before the login carries over.
    session.clear()
    session[SESSION_KEY] = name
    # Expires after PERMANENT_SESSION_LIFETIME, even on a tablet never closed.
    session.permanent = True
    return jsonify({"ok": True, "name": name, "csrf_token": generate_csrf()})


@bp.post("/logout")
def logout() -> Response:
    """End the therapist's session; answers with a fresh CSRF token."""
    session.clear()
    return jsonify({"ok": True, "csrf_token": generate_csrf()})


def init_app(app: Flask) -> None:
    """Register the blueprint and a per-app login rate limiter (in memory, per client address)."""
    app.register_blueprint(bp)
    # One limiter per app: its in-memory counters live on the Limiter object,
    # so a module-level one would carry counts from one app (or test) to the next.
    limiter = Limiter(get_remote_address, storage_uri="memory://", strategy="fixed-window")
    limiter.init_app(app)
    app.extensions["login_limiter"] = limiter
    rate = app.config.get("LOGIN_RATE_LIMIT", DEFAULT_LOGIN_RATE)
    app.view_functions["auth.login"] = limiter.limit(rate, methods=["POST"])(app.view_functions["auth.login"])
