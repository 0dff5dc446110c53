"""Login, the password and secret files, the session cookie, the login rate limit."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from controller.config import load_config

from tests.web.helpers import PASSWORD, THERAPIST, csrf_headers, login
from web import create_app
from web.auth import check_password, set_password
from web.link import EXTENSION_KEY

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "systemd" / "config.example.toml"


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _login(client, name=THERAPIST, password=PASSWORD, **extra):
    return client.post("/login", json={"name": name, "password": password}, headers=csrf_headers(client), **extra)


def test_right_password_logs_in_and_session_names_the_therapist(client):
    response = _login(client)
    assert response.status_code == 200
    assert response.get_json()["name"] == THERAPIST
    session = client.get("/api/session").get_json()
    assert session["logged_in"] is True and session["name"] == THERAPIST
    assert session["csrf_token"]


def test_wrong_password_is_401_and_leaves_the_client_logged_out(client):
    response = _login(client, password="wrong password")
    assert response.status_code == 401
    assert response.get_json()["code"] == "bad_login"
    session = client.get("/api/session").get_json()
    assert session["logged_in"] is False and session["name"] is None


def test_without_a_password_file_nobody_can_log_in(make_app, fake, tmp_path):
    empty_state = tmp_path / "no-password"
    client = make_app(fake.socket_path, state=str(empty_state)).test_client()
    for password in ("", "admin", "password", PASSWORD):
        response = _login(client, password=password)
        assert response.status_code in (400, 401)
        assert client.get("/api/session").get_json()["logged_in"] is False
    response = _login(client, password="anything-at-all")
    assert response.status_code == 401
    assert response.get_json()["code"] == "no_password"
    assert check_password(empty_state, "anything-at-all") is False


def test_login_by_form_post_works(client):
    token = client.get("/api/session").get_json()["csrf_token"]
    response = client.post("/login", data={"name": THERAPIST, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 200
    assert client.get("/api/session").get_json()["name"] == THERAPIST


@pytest.mark.parametrize("name", ["", "   ", "x" * 41, "Dana\nEvil", "Dana\u202e", 7, None])
def test_a_bad_name_is_400_naming_name(client, name):
    response = _login(client, name=name)
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "name"
    assert client.get("/api/session").get_json()["logged_in"] is False


def test_a_forty_character_name_is_accepted_and_trimmed(client):
    response = _login(client, name="  " + "a" * 40 + " ")
    assert response.status_code == 200
    assert response.get_json()["name"] == "a" * 40


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


def test_rate_limit_counts_do_not_leak_into_a_new_app(make_app, fake):
    first = make_app(fake.socket_path).test_client()
    for _ in range(6):
        _login(first, password="guess guess")
    second = make_app(fake.socket_path).test_client()
    assert _login(second).status_code == 200


def test_session_cookie_is_httponly_and_samesite_strict(client):
    response = _login(client)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie


def test_password_file_is_0600_holds_a_scrypt_hash_and_no_temp_files_remain(tmp_path):
    state_dir = tmp_path / "fresh"
    set_password(state_dir, PASSWORD)
    assert _mode(state_dir) == 0o700
    path = state_dir / "password"
    assert _mode(path) == 0o600
    stored = path.read_text()
    assert stored.startswith("scrypt:")
    assert PASSWORD not in stored
    assert sorted(p.name for p in state_dir.iterdir()) == ["password"]


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
    set_password(other_state, PASSWORD)
    other = make_app(fake.socket_path, state=str(other_state)).test_client()
    other.set_cookie("treadmill_dashboard", cookie.value)
    assert other.get("/api/session").get_json()["logged_in"] is False


@pytest.mark.parametrize("password", ["", "short", "7chars!", 12345678, None])
def test_set_password_refuses_short_or_non_text_passwords(tmp_path, password):
    with pytest.raises(ValueError, match=r"password: must be 8 to 1024 characters"):
        set_password(tmp_path / "state", password)
    assert not (tmp_path / "state" / "password").exists()


def test_set_password_replaces_the_old_one(state_dir):
    set_password(state_dir, "a brand new secret")
    assert check_password(state_dir, "a brand new secret") is True
    assert check_password(state_dir, PASSWORD) is False
    assert _mode(state_dir / "password") == 0o600


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
