"""Accounts on the dashboard: an admin manages them; anyone logged in changes their own password.

``GET /api/users``, ``POST /api/users`` and ``PATCH /api/users/<name>`` are an
admin's (web/auth.py::admin_required); ``POST /api/account/password`` is for
whoever is logged in and asks for their present password. Every change leaves
an audit row (web/audit_api.py), passwords removed. The rules (names, roles,
password length, the last enabled admin) are the account store's
(web/accounts.py); its refusal names the field and what is allowed.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, g, jsonify, session

from web.accounts import PASSWORD_MAX_CHARS, AccountError, check_new_password, check_role, clean_name
from web.auth import (DEFAULT_ACCOUNT_LOGIN_RATE, SESSION_EPOCH, accounts, admin_required, current_account,
                      login_required)
from web.errors import json_error
from web.validation import field_error, invalid, json_object

bp = Blueprint("users", __name__, url_prefix="/api")

#: The fields PATCH /api/users/<name> takes: any of them, applied together or not at all.
CHANGEABLE = ("role", "enabled", "password")
#: Room for two passwords of PASSWORD_MAX_CHARS characters, each character JSON-escaped in up to 12 bytes
#: (an emoji as \ud83d\ude00): the commands' 4 KiB body limit would refuse passwords the length rule allows.
BODY_MAX_BYTES = 2 * PASSWORD_MAX_CHARS * 12 + 4096


def _check(body: dict, checks: dict) -> None:
    """Run each given field's check; a 400 naming every field at fault, all at once, before anything changes."""
    errors = []
    for key, check in checks.items():
        if key in body:
            try:
                check(body[key])
            except AccountError as exc:
                errors.append(field_error(exc.field, None, exc.message))
    if errors:
        raise invalid(errors)


def _enabled(value: object) -> None:
    if not isinstance(value, bool):
        raise AccountError("enabled", "true or false")


def _refused(exc: AccountError) -> Response:
    return json_error(exc.status, {400: "invalid", 404: "not_found", 409: "conflict"}.get(exc.status, "invalid"),
                      f"{exc.field}: {exc.message}", [field_error(exc.field, None, exc.message)])


@bp.get("/users")
@admin_required
def users() -> Response:
    """Every account (never a password hash)."""
    return jsonify({"ok": True, "users": [a.public() for a in accounts().list()]})


@bp.post("/users")
@admin_required
def user_add() -> Response:
    """Create an account: name, role (therapist or admin), password."""
    body = json_object(allowed=("name", "role", "password"), required=("name", "role", "password"),
                       max_bytes=BODY_MAX_BYTES)
    _check(body, {"name": clean_name, "role": check_role, "password": check_new_password})
    try:
        account = accounts().add(body["name"], body["role"], body["password"])
    except AccountError as exc:
        return _refused(exc)
    response = jsonify({"ok": True, "user": account.public()})
    response.status_code = 201
    return response


@bp.patch("/users/<name>")
@admin_required
def user_change(name: str) -> Response:
    """Change an account's role, enable or disable it, or set its password (any of them)."""
    body = json_object(allowed=CHANGEABLE, max_bytes=BODY_MAX_BYTES)
    _check(body, {"role": check_role, "enabled": _enabled, "password": check_new_password})
    if not body:
        return json_error(400, "invalid", f"body: give at least one of {', '.join(CHANGEABLE)}",
                          [field_error("body", None, f"at least one of {', '.join(CHANGEABLE)}")])
    me = current_account()
    if me is not None and me.name.casefold() == name.casefold():
        if body.get("enabled") is False:
            return json_error(409, "conflict", "enabled: you cannot disable your own account",
                              [field_error("enabled", False, "you cannot disable your own account")])
        if "password" in body:
            # A stolen admin login must not be able to take the account over without its password.
            return json_error(409, "conflict", "password: change your own password on My account "
                                               "(POST /api/account/password), which asks for the present one",
                              [field_error("password", None, "change your own password on My account, "
                                                             "which asks for the present one")])
    try:
        account = accounts().change(name, **{key: body[key] for key in CHANGEABLE if key in body})
    except AccountError as exc:
        return _refused(exc)
    return jsonify({"ok": True, "user": account.public()})


@bp.post("/account/password")
@login_required
def own_password() -> Response:
    """Change your own password: the present one, then the new one. Your other logins end."""
    body = json_object(allowed=("current_password", "new_password"), required=("current_password", "new_password"),
                       max_bytes=BODY_MAX_BYTES)
    me = current_account()
    assert me is not None
    current, errors = body["current_password"], []
    if not isinstance(current, str) or not 1 <= len(current) <= PASSWORD_MAX_CHARS:
        errors.append(field_error("current_password", None, f"1 to {PASSWORD_MAX_CHARS} characters"))
    try:
        check_new_password(body["new_password"], "new_password")
    except AccountError as exc:
        errors.append(field_error(exc.field, None, exc.message))
    if errors:
        raise invalid(errors)
    store = accounts()
    if store.verify(me.name, current) is None:
        g.wrong_present_password = True
        raise invalid([field_error("current_password", None, "not your present password")])
    account = store.set_password(me.name, body["new_password"])
    # This login goes on; every other one of the account ends at its next request.
    session[SESSION_EPOCH] = account.auth_epoch
    return jsonify({"ok": True, "user": account.public()})


def init_app(app: Flask) -> None:
    """Register the accounts API; wrong present passwords are limited per account as failed logins are."""
    app.register_blueprint(bp)
    limiter = app.extensions["login_limiter"]
    rate = app.config.get("ACCOUNT_LOGIN_RATE_LIMIT", DEFAULT_ACCOUNT_LOGIN_RATE)
    app.view_functions["users.own_password"] = limiter.limit(
        rate, methods=["POST"], key_func=_own_account_key,
        deduct_when=lambda _response: g.get("wrong_present_password", False),
        error_message=f"too many wrong present passwords for this account, at most {rate}",
    )(app.view_functions["users.own_password"])


def _own_account_key() -> str:
    account = current_account()
    return f"own-password:{account.name.casefold()}" if account else "own-password:-"
