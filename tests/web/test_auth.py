"""Login with named accounts, sessions that end (idle, age, password change, disabled), rate limits,
the secret file and the session cookie."""

from __future__ import annotations

import dataclasses
import os
import stat
import time
from pathlib import Path

import pytest

from controller.config import load_config

from tests.web.helpers import ADMIN, DISABLED, PASSWORD, THERAPIST, csrf_headers, login
from web import create_app
from web.accounts import ACCESS_DB, PASSWORD_METHOD, AccountStore
from web.auth import SESSION_LOGIN_AT, SESSION_SEEN
from web.link import EXTENSION_KEY

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "systemd" / "config.example.toml"


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _login(client, name=THERAPIST, password=PASSWORD, **extra):
    return client.post("/login", json={"name": name, "password": password}, headers=csrf_headers(client), **extra)


def _session(client) -> dict:
    return client.get("/api/session").get_json()


def test_an_account_logs_in_and_the_session_names_it_and_its_role(client):
    response = _login(client)
    assert response.status_code == 200
    assert response.get_json()["name"] == THERAPIST and response.get_json()["role"] == "therapist"
    session = _session(client)
    assert session["logged_in"] is True and session["name"] == THERAPIST and session["role"] == "therapist"
    assert session["csrf_token"]


def test_the_name_is_matched_in_any_case_and_the_session_names_the_account_as_stored(client):
    response = _login(client, name=THERAPIST.upper())
    assert response.status_code == 200
    assert _session(client)["name"] == THERAPIST


@pytest.mark.parametrize("name, password", [(THERAPIST, "wrong password"), ("Nobody", PASSWORD),
                                            (DISABLED, PASSWORD)])
def test_a_wrong_password_an_unknown_name_or_a_disabled_account_is_401_and_logs_nobody_in(client, name, password):
    response = _login(client, name=name, password=password)
    assert response.status_code == 401
    assert response.get_json()["code"] == "bad_login"
    session = _session(client)
    assert session["logged_in"] is False and session["name"] is None


def test_without_any_account_nobody_can_log_in(make_app, fake, tmp_path):
    empty_state = tmp_path / "no-accounts"
    client = make_app(fake.socket_path, state=str(empty_state)).test_client()
    for password in ("", "admin", "password", PASSWORD):
        response = _login(client, password=password)
        assert response.status_code in (400, 401)
        assert _session(client)["logged_in"] is False
    response = _login(client, password="anything-at-all")
    assert response.status_code == 401
    assert response.get_json()["code"] == "no_accounts"
    assert "user add" in response.get_json()["message"]
    assert AccountStore(empty_state).list() == []


def test_login_by_form_post_works(client):
    token = client.get("/api/session").get_json()["csrf_token"]
    response = client.post("/login", data={"name": THERAPIST, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 200
    assert _session(client)["name"] == THERAPIST


@pytest.mark.parametrize("name", ["", "   ", "x" * 41, "Dana\nEvil", "Dana\u202e", 7, None])
def test_a_bad_name_is_400_naming_name(client, name):
    response = _login(client, name=name)
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "name"
    assert _session(client)["logged_in"] is False


def test_a_missing_password_is_400(client):
    response = client.post("/login", json={"name": THERAPIST}, headers=csrf_headers(client))
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "password"


def test_logins_are_rate_limited_per_address_with_a_json_429(client):
    for _ in range(5):
        assert _login(client, password="guess guess").status_code == 401
    refused = _login(client, password="guess guess")
    assert refused.status_code == 429
    assert refused.get_json()["code"] == "rate_limited"
    # Even the right password waits out the window.
    assert _login(client).status_code == 429
    # Another address is not punished for this one's guessing.
    other = _login(client, environ_base={"REMOTE_ADDR": "10.0.0.7"})
    assert other.status_code == 200


def test_failed_logins_are_limited_per_account_across_addresses_and_stop_still_works(make_app, fake):
    client = make_app(fake.socket_path, {"ACCOUNT_LOGIN_RATE_LIMIT": "3 per 15 minutes"}).test_client()
    for n in range(3):
        env = {"REMOTE_ADDR": f"10.0.1.{n}"}
        assert _login(client, password="guess guess", environ_base=env).status_code == 401
    # The account is locked from every address, even with its right password ...
    locked = _login(client, environ_base={"REMOTE_ADDR": "10.0.1.99"})
    assert locked.status_code == 429
    assert "this account" in locked.get_json()["message"]
    # ... other accounts are not ...
    assert _login(client, name=ADMIN, environ_base={"REMOTE_ADDR": "10.0.1.98"}).status_code == 200
    # ... and anyone may still stop the belt.
    assert client.post("/api/stop").status_code == 200
    assert client.post("/api/estop").status_code == 200


def test_successful_logins_do_not_count_against_the_account(make_app, fake):
    client = make_app(fake.socket_path, {"ACCOUNT_LOGIN_RATE_LIMIT": "2 per 15 minutes",
                                         "LOGIN_RATE_LIMIT": "100 per minute"}).test_client()
    for _ in range(4):
        assert _login(client).status_code == 200


def test_rate_limit_counts_do_not_leak_into_a_new_app(make_app, fake):
    first = make_app(fake.socket_path).test_client()
    for _ in range(6):
        _login(first, password="guess guess")
    second = make_app(fake.socket_path).test_client()
    assert _login(second).status_code == 200


def _age(client, key: str, seconds: float) -> None:
    with client.session_transaction() as sess:
        sess[key] = sess[key] - seconds


def test_an_idle_login_ends_after_the_idle_time_and_the_refusal_says_why(make_app, fake):
    client = make_app(fake.socket_path, {"SESSION_IDLE_S": 600}).test_client()
    headers = login(client)
    _age(client, SESSION_SEEN, 599)
    assert _session(client)["logged_in"] is True
    _age(client, SESSION_SEEN, 2)
    refused = client.post("/api/reset", headers=headers)
    assert refused.status_code == 401
    assert refused.get_json()["code"] == "login_expired"
    assert "idle for more than 10 minutes" in refused.get_json()["message"]
    assert _session(client)["logged_in"] is False


def test_a_page_or_a_change_keeps_a_login_alive_but_reading_the_status_does_not(make_app, fake):
    client = make_app(fake.socket_path, {"SESSION_IDLE_S": 600}).test_client()
    headers = login(client)
    _age(client, SESSION_SEEN, 500)
    for path in ("/api/status", "/api/events", "/api/session"):
        client.get(path)
    with client.session_transaction() as sess:
        assert time.time() - sess[SESSION_SEEN] >= 500
    assert client.get("/").status_code == 200
    with client.session_transaction() as sess:
        assert time.time() - sess[SESSION_SEEN] < 60
    _age(client, SESSION_SEEN, 500)
    assert client.post("/api/reset", headers=headers).status_code == 200
    with client.session_transaction() as sess:
        assert time.time() - sess[SESSION_SEEN] < 60


def test_a_login_ends_at_its_absolute_age_even_when_in_use(client):
    login(client)
    _age(client, SESSION_LOGIN_AT, 12 * 3600 + 1)
    assert _session(client)["logged_in"] is False


def test_a_new_password_or_disabling_ends_the_accounts_other_logins(client, app, state_dir):
    login(client)
    AccountStore(state_dir).set_password(THERAPIST, "another good password")
    assert _session(client)["logged_in"] is False
    assert _login(client, password="another good password").status_code == 200
    assert _session(client)["logged_in"] is True
    AccountStore(state_dir).change(THERAPIST, enabled=False)
    assert _session(client)["logged_in"] is False


def test_session_cookie_is_httponly_and_samesite_strict(client):
    response = _login(client)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie


def test_the_access_database_is_0600_holds_scrypt_hashes_and_no_password(tmp_path):
    state_dir = tmp_path / "fresh"
    AccountStore(state_dir).add("Eve", "admin", PASSWORD)
    assert _mode(state_dir) == 0o700
    path = state_dir / ACCESS_DB
    assert _mode(path) == 0o600
    stored = path.read_bytes()
    # werkzeug's scrypt at its full cost (n = 2**15, r = 8, p = 1), with a random salt.
    assert PASSWORD_METHOD == "scrypt" and b"scrypt:32768:8:1$" in stored
    assert PASSWORD.encode() not in stored


def test_secret_key_file_is_generated_0600_and_reused(app, state_dir, make_app, fake):
    path = state_dir / "secret_key"
    assert _mode(path) == 0o600
    key = path.read_text().strip()
    assert len(key) == 64 and int(key, 16) >= 0
    assert app.config["SECRET_KEY"] == key
    assert make_app(fake.socket_path).config["SECRET_KEY"] == key


def test_a_loosened_secret_key_file_is_tightened_to_0600(app, state_dir, make_app, fake):
    path = state_dir / "secret_key"
    os.chmod(path, 0o644)
    make_app(fake.socket_path)
    assert _mode(path) == 0o600


def test_a_truncated_secret_key_is_refused(state_dir, fake):
    (state_dir / "secret_key").write_text("short\n")
    with pytest.raises(ValueError, match="secret key is too short"):
        create_app(ipc_socket=fake.socket_path, state_dir=str(state_dir))


def test_a_session_signed_with_another_secret_is_not_logged_in(client, make_app, fake, tmp_path):
    login(client)
    cookie = client.get_cookie("treadmill_dashboard")
    other_state = tmp_path / "other"
    AccountStore(other_state).add(THERAPIST, "therapist", PASSWORD)
    other = make_app(fake.socket_path, state=str(other_state)).test_client()
    other.set_cookie("treadmill_dashboard", cookie.value)
    assert other.get("/api/session").get_json()["logged_in"] is False


def test_create_app_needs_a_socket_and_a_state_dir():
    with pytest.raises(ValueError, match="ipc_socket and state_dir"):
        create_app()


def test_create_app_takes_socket_and_state_dir_from_the_config(tmp_path, fake):
    cfg = load_config(EXAMPLE_CONFIG)
    cfg = dataclasses.replace(cfg, web=dataclasses.replace(cfg.web, ipc_socket=fake.socket_path,
                                                           state_dir=str(tmp_path / "web")))
    app = create_app(cfg)
    try:
        assert app.config["IPC_SOCKET"] == fake.socket_path
        assert app.config["DISPLAY_UNITS"] == cfg.display.units
        assert app.test_client().get("/api/status").status_code == 200
    finally:
        app.extensions[EXTENSION_KEY].close()


def test_a_logout_ends_the_login_everywhere_a_copy_of_its_cookie_went(client, make_app, fake):
    headers = login(client)
    copied = client.get_cookie("treadmill_dashboard").value
    assert client.post("/logout", headers=headers).status_code == 200
    replay = make_app(fake.socket_path).test_client()
    replay.set_cookie("treadmill_dashboard", copied)
    refused = replay.post("/api/reset", headers=headers)
    assert refused.status_code == 401
    assert refused.get_json()["code"] == "login_expired" and "logged out" in refused.get_json()["message"]


def test_a_database_of_the_first_schema_gains_the_logins_table_and_keeps_its_accounts(tmp_path):
    import sqlite3
    state = tmp_path / "old"
    AccountStore(state).add("Eve", "admin", PASSWORD)
    with sqlite3.connect(state / ACCESS_DB) as conn:
        conn.execute("DROP TABLE logins")
        conn.execute("PRAGMA user_version = 1")
    store = AccountStore(state)
    assert store.verify("Eve", PASSWORD).role == "admin"
    login_id = store.start_login("Eve")
    assert store.login_open(login_id, "Eve") and not store.login_open(login_id, "Someone")
    with sqlite3.connect(state / ACCESS_DB) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
