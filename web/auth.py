"""Who is logged in: named accounts (web/accounts.py), sessions that expire, and login rate limits.

There is no default account: until an installer runs ``treadmill-safety user
add NAME --role admin`` nobody can log in, and the dashboard can only stop the
belt. A login lasts until it has been idle for ``[web] session_idle_min``
(default 30 min) or ``PERMANENT_SESSION_LIFETIME`` (12 h) has passed since it
began, whichever comes first; a password change or a disabled account ends it
at its next request. A logout ends the login in ``access.db`` as well, so a
copy of its cookie is no good afterwards. Reading (the live status, events)
does not keep a login alive: only a page opened or a change made does.

Logins are limited per client address (all attempts) and per account (failed
attempts). Stop and E-stop need no login, so no limit can ever block them.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import time
from typing import Callable, TypeVar

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request, session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import generate_csrf

from web.accounts import NAME_MAX_CHARS, PASSWORD_MAX_CHARS, Account, AccountError, AccountStore, clean_name
from web.audit import note_actor, note_detail
from web.errors import json_error
from web.validation import request_json

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

#: Session keys: the account's name, its auth epoch at login, when the login began and when it was last used.
SESSION_ACCOUNT, SESSION_EPOCH, SESSION_LOGIN_AT, SESSION_SEEN = "account", "epoch", "login_at", "seen"
#: The login's id in access.db (AccountStore.start_login): a logout ends it there.
SESSION_LOGIN = "login"
LOGIN_KEYS = (SESSION_ACCOUNT, SESSION_EPOCH, SESSION_LOGIN_AT, SESSION_SEEN, SESSION_LOGIN)
#: Guessing passwords from one address: a handful of tries a minute.
DEFAULT_LOGIN_RATE = "5 per minute"
#: Guessing one account's password from many addresses: failed attempts only.
DEFAULT_ACCOUNT_LOGIN_RATE = "10 per 15 minutes"
DEFAULT_SESSION_IDLE_S = 30 * 60
#: GETs of these blueprints are pages a person opened: they keep a login alive. Other GETs
#: (the live status, the event list a page refreshes by itself) do not.
ACTIVITY_BLUEPRINTS = frozenset({"views"})

ViewFunc = TypeVar("ViewFunc", bound=Callable[..., object])


def accounts() -> AccountStore:
    """The accounts of this app's state directory."""
    return AccountStore(current_app.config["STATE_DIR"])


def _session_account() -> Account | None:
    """The session's account if the login is still good; otherwise the session is cleared and None."""
    name = session.get(SESSION_ACCOUNT)
    if not isinstance(name, str) or not name:
        return None
    now = time.time()
    login_at, seen = session.get(SESSION_LOGIN_AT), session.get(SESSION_SEEN)
    lifetime_s = current_app.permanent_session_lifetime.total_seconds()
    idle_s = current_app.config["SESSION_IDLE_S"]
    store = accounts()
    account = store.get(name)
    good = (account is not None and account.enabled and session.get(SESSION_EPOCH) == account.auth_epoch
            and isinstance(login_at, (int, float)) and now - login_at <= lifetime_s
            and isinstance(seen, (int, float)) and now - seen <= idle_s
            and store.login_open(session.get(SESSION_LOGIN), account.name))
    if not good:
        g.login_ended = _why_ended(account, login_at, seen, now, lifetime_s, idle_s)
        # Only the login goes: the page's CSRF token stays good, so its next change is told "log in again"
        # rather than "reload the page".
        for key in LOGIN_KEYS:
            session.pop(key, None)
        return None
    return account


def _why_ended(account: Account | None, login_at: object, seen: object, now: float, lifetime_s: float,
               idle_s: float) -> str:
    if account is None or not account.enabled:
        return "the account was disabled or removed"
    if isinstance(seen, (int, float)) and now - seen > idle_s:
        return f"the login was idle for more than {idle_s / 60:g} minutes"
    if isinstance(login_at, (int, float)) and now - login_at > lifetime_s:
        return f"the login is older than {lifetime_s / 3600:g} hours"
    if session.get(SESSION_EPOCH) != account.auth_epoch:
        return "the password was changed"
    return "it was logged out"


def current_account() -> Account | None:
    """The logged-in account (checked once per request), or None.

    If the accounts cannot be read (a damaged or unreadable access.db), the request counts as
    anonymous and the cause is logged: a logged-in therapist's stop must never fail on it.
    """
    if "account" not in g:
        try:
            g.account = _session_account()
        except (sqlite3.Error, OSError, RuntimeError):
            log.exception("the accounts cannot be read; this request counts as anonymous")
            g.account = None
    return g.account


def actor() -> str:
    """Who the controller's event log names for this request: the account, or the anonymous client's address."""
    account = current_account()
    return account.name if account else f"anonymous ({request.remote_addr or 'unknown address'})"


def _refusal(status: int, code: str, message: str) -> Response:
    ended = g.get("login_ended")
    if ended:
        return json_error(401, "login_expired", f"{message}: {ended}; log in again")
    return json_error(status, code, message)


def login_required(view: ViewFunc) -> ViewFunc:
    """Refuse with 401 JSON unless someone is logged in (any role); URL values pass through."""

    @functools.wraps(view)
    def wrapped(**url_values: object) -> object:
        if current_account() is None:
            return _refusal(401, "login_required", "log in for this action")
        return view(**url_values)

    return wrapped  # type: ignore[return-value]


def admin_required(view: ViewFunc) -> ViewFunc:
    """401 without a login, 403 for a therapist: this is an admin's."""

    @functools.wraps(view)
    def wrapped(**url_values: object) -> object:
        account = current_account()
        if account is None:
            return _refusal(401, "login_required", "log in as an admin for this action")
        if not account.is_admin:
            return json_error(403, "forbidden", "only an admin may do this")
        return view(**url_values)

    return wrapped  # type: ignore[return-value]


def _touch() -> None:
    """before_request: a page opened or a change made keeps a good login alive."""
    if request.method in ("GET", "HEAD", "OPTIONS") and request.blueprint not in ACTIVITY_BLUEPRINTS:
        return
    if current_account() is not None:
        session[SESSION_SEEN] = time.time()


def _login_body() -> tuple[str | None, object, list[dict[str, object]]]:
    """(name, password, errors) from a JSON object or a form."""
    if request.is_json:
        data = request_json()
        if not isinstance(data, dict):
            return None, None, [{"field": "body", "value": None, "message": "the body must be a JSON object"}]
    else:
        data = request.form
    errors: list[dict[str, object]] = []
    try:
        name: str | None = clean_name(data.get("name"))
    except AccountError:
        name = None
        errors.append({"field": "name", "value": None, "message": f"1 to {NAME_MAX_CHARS} printable characters"})
    password = data.get("password")
    if not isinstance(password, str) or not password or len(password) > PASSWORD_MAX_CHARS:
        errors.append({"field": "password", "value": None, "message": f"1 to {PASSWORD_MAX_CHARS} characters"})
    return name, password, errors


def _account_key() -> str:
    """The per-account limit's key: the name asked for, in one case (junk shares one key)."""
    try:
        name, _, _ = _login_body()
    except Exception:  # noqa: BLE001 - a malformed body is refused by the view itself
        name = None
    return f"account:{name.casefold()}" if name else "account:-"


@bp.post("/login")
def login() -> Response:
    """Log in with an existing, enabled account (JSON or form: name, password); answers with a fresh CSRF token."""
    name, password, errors = _login_body()
    note_actor(None, None)
    # The body is never kept (a password may sit in its name field): only what happened.
    note_detail({"result": "refused: " + ", ".join(str(e["field"]) for e in errors) if errors else "checking"})
    if errors:
        return json_error(400, "invalid", "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors)
    assert name is not None and isinstance(password, str)
    store = accounts()
    if store.count() == 0:
        note_detail({"result": "no accounts"})
        return json_error(401, "no_accounts", "no accounts exist yet; an installer creates the first with "
                                              "'treadmill-safety user add NAME --role admin --config <file>'")
    account = store.verify(name, password)
    if account is None:
        known = store.get(name)
        # The typed name is kept only when it is an account's: it might be a password typed in the wrong field.
        note_detail({"result": "failed", "account": known.name if known else None,
                     "disabled": bool(known and not known.enabled)})
        return json_error(401, "bad_login", "wrong name or password, or the account is disabled")
    # A fresh session at login: nothing from before the login carries over.
    session.clear()
    now = time.time()
    session.update({SESSION_ACCOUNT: account.name, SESSION_EPOCH: account.auth_epoch, SESSION_LOGIN_AT: now,
                    SESSION_SEEN: now, SESSION_LOGIN: store.start_login(account.name)})
    session.permanent = True
    g.account = account
    note_actor(account.name, account.role)
    note_detail({"result": "logged in"})
    return jsonify({"ok": True, "name": account.name, "role": account.role, "csrf_token": generate_csrf()})


@bp.post("/logout")
def logout() -> Response:
    """End the session; answers with a fresh CSRF token."""
    account = current_account()
    note_actor(account.name if account else None, account.role if account else None)
    if account is not None:
        # Ended in the database too: a copy of this cookie is no good from now on.
        accounts().end_login(session.get(SESSION_LOGIN))
    session.clear()
    g.account = None
    return jsonify({"ok": True, "csrf_token": generate_csrf()})


def init_app(app: Flask) -> None:
    """Register the blueprint, the login-keeps-alive hook and the login rate limiters (in memory)."""
    app.register_blueprint(bp)
    app.before_request(_touch)
    # One limiter per app: its in-memory counters live on the Limiter object,
    # so a module-level one would carry counts from one app (or test) to the next.
    limiter = Limiter(get_remote_address, storage_uri="memory://", strategy="fixed-window")
    limiter.init_app(app)
    app.extensions["login_limiter"] = limiter
    account_rate = app.config.get("ACCOUNT_LOGIN_RATE_LIMIT", DEFAULT_ACCOUNT_LOGIN_RATE)
    view = app.view_functions["auth.login"]
    view = limiter.limit(account_rate, methods=["POST"], key_func=_account_key,
                         deduct_when=lambda response: response.status_code == 401,
                         error_message=f"too many failed logins for this account, at most {account_rate}")(view)
    view = limiter.limit(app.config.get("LOGIN_RATE_LIMIT", DEFAULT_LOGIN_RATE), methods=["POST"])(view)
    app.view_functions["auth.login"] = view
