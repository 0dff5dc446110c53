"""The accounts API (web/users.py): an admin creates accounts and changes their role, state and password,
all of a change or none of it; the last enabled admin stays; anyone logged in changes their own password
with the present one, which ends their other logins but not this one."""

from __future__ import annotations

import pytest

from tests.web.helpers import ADMIN, DISABLED, PASSWORD, THERAPIST, csrf_headers, login
from web.accounts import PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS, AccountError, AccountStore

NEW_PASSWORD = "a brand new passphrase"
#: (method, path, body) of every admin-only route of the accounts API.
ADMIN_ROUTES = [
    ("get", "/api/users", None),
    ("post", "/api/users", {"name": "Eve", "role": "admin", "password": PASSWORD}),
    ("patch", f"/api/users/{THERAPIST}", {"role": "admin"}),
    ("patch", f"/api/users/{ADMIN}", {"enabled": False}),
    ("patch", f"/api/users/{THERAPIST}", {"password": NEW_PASSWORD}),
]


@pytest.fixture
def admin(client):
    """The client logged in as the admin, and its CSRF header."""
    return client, login(client, ADMIN)


@pytest.fixture
def store(state_dir):
    return AccountStore(state_dir)


def _accounts(store: AccountStore) -> list:
    """Everything stored about every account but the hash (a new password raises auth_epoch and updated)."""
    return store.list()


def _logged_in(client) -> bool:
    return client.get("/api/session").get_json()["logged_in"]


def _errors(response) -> dict[str, str]:
    """key → message of a refusal's errors."""
    body = response.get_json()
    assert body["ok"] is False
    return {e["key"]: e["message"] for e in body["errors"]}


def _patch(client, headers, name, body):
    return client.patch(f"/api/users/{name}", json=body, headers=headers)


# --- creating ------------------------------------------------------------------------------------

def test_an_admin_creates_an_account_that_can_log_in_and_the_answer_holds_no_secret(admin, app, store):
    client, headers = admin
    response = client.post("/api/users", json={"name": "  Eve ", "role": "therapist", "password": PASSWORD},
                           headers=headers)
    assert response.status_code == 201, response.get_json()
    user = response.get_json()["user"]
    assert response.get_json()["ok"] is True
    assert (user["name"], user["role"], user["enabled"], user["last_login"]) == ("Eve", "therapist", True, None)
    assert set(user) == {"name", "role", "enabled", "created", "updated", "last_login"}
    listed = client.get("/api/users").get_json()
    assert listed["ok"] is True
    assert [u["name"] for u in listed["users"]] == [ADMIN, THERAPIST, DISABLED, "Eve"]
    assert all("password" not in str(u) and "hash" not in str(u) for u in listed["users"])
    other = app.test_client()
    login(other, "Eve")
    assert store.get("Eve").last_login is not None


@pytest.mark.parametrize("password", ["x" * PASSWORD_MIN_CHARS, "y" * PASSWORD_MAX_CHARS])
def test_a_password_at_either_end_of_its_range_is_accepted(admin, store, password):
    client, headers = admin
    response = client.post("/api/users", json={"name": "Eve", "role": "admin", "password": password},
                           headers=headers)
    assert response.status_code == 201, response.get_json()
    assert store.verify("Eve", password) is not None


def test_a_long_password_of_non_ascii_letters_fits_the_body_limit(admin, store):
    # 1024 characters is the documented top; escaped as JSON (\\u00e9) that is over 6 KB of body.
    client, headers = admin
    password = "é" * PASSWORD_MAX_CHARS
    response = client.post("/api/users", json={"name": "Eve", "role": "therapist", "password": password},
                           headers=headers)
    assert response.status_code == 201, response.get_json()
    assert store.verify("Eve", password) is not None


@pytest.mark.parametrize("taken", [THERAPIST.lower(), THERAPIST.upper(), f" {ADMIN.upper()} "])
def test_a_taken_name_in_another_case_is_409_naming_name_and_nothing_changes(admin, store, taken):
    client, headers = admin
    before = _accounts(store)
    response = client.post("/api/users", json={"name": taken, "role": "admin", "password": NEW_PASSWORD},
                           headers=headers)
    assert response.status_code == 409
    assert response.get_json()["code"] == "conflict"
    errors = _errors(response)
    assert list(errors) == ["name"] and "exists already" in errors["name"]
    assert taken.strip() in errors["name"]
    assert _accounts(store) == before
    # The existing account kept its password.
    assert store.verify(taken.strip(), PASSWORD) is not None


def test_a_name_that_differs_only_in_the_case_of_a_non_ascii_letter_is_taken_too(admin, store):
    client, headers = admin
    first = client.post("/api/users", json={"name": "Élodie", "role": "therapist", "password": PASSWORD},
                        headers=headers)
    assert first.status_code == 201
    before = _accounts(store)
    again = client.post("/api/users", json={"name": "élodie", "role": "admin", "password": NEW_PASSWORD},
                        headers=headers)
    assert again.status_code == 409
    assert list(_errors(again)) == ["name"]
    assert _accounts(store) == before


@pytest.mark.parametrize("body, key, words", [
    ({"name": "Eve", "role": "boss", "password": PASSWORD}, "role", ["therapist", "admin"]),
    ({"name": "Eve", "role": "Admin", "password": PASSWORD}, "role", ["therapist", "admin"]),
    ({"name": "Eve", "role": "therapist", "password": "short"}, "password",
     [f"{PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters"]),
    ({"name": "Eve", "role": "therapist", "password": "z" * (PASSWORD_MAX_CHARS + 1)}, "password",
     [f"{PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters"]),
    ({"name": "Eve", "role": "therapist", "password": 12345678}, "password", ["characters"]),
    ({"name": "x" * 41, "role": "therapist", "password": PASSWORD}, "name", ["1 to 40"]),
    ({"name": "Eve\nAdmin", "role": "therapist", "password": PASSWORD}, "name", ["control"]),
    ({"name": "Eve", "role": "therapist"}, "password", ["required"]),
    ({"name": "Eve", "role": "therapist", "password": PASSWORD, "enabled": False}, "enabled", ["unknown field"]),
])
def test_a_bad_field_is_400_naming_it_and_what_is_allowed_and_nothing_changes(admin, store, body, key, words):
    client, headers = admin
    before = _accounts(store)
    response = client.post("/api/users", json=body, headers=headers)
    assert response.status_code == 400
    assert response.get_json()["code"] == "invalid"
    errors = _errors(response)
    assert list(errors) == [key]
    for word in words:
        assert word in errors[key], (word, errors)
    assert _accounts(store) == before
    assert store.get("Eve") is None


def test_every_bad_field_is_named_at_once(admin, store):
    client, headers = admin
    response = client.post("/api/users", json={"name": "", "role": "root", "password": "short"}, headers=headers)
    assert response.status_code == 400
    assert sorted(_errors(response)) == ["name", "password", "role"]
    assert len(_accounts(store)) == 3


# --- changing ------------------------------------------------------------------------------------

def test_an_admin_changes_a_role_and_it_applies_to_the_accounts_next_request(admin, app, store):
    client, headers = admin
    dana = app.test_client()
    login(dana)
    assert dana.get("/api/users").status_code == 403
    response = _patch(client, headers, THERAPIST.lower(), {"role": "admin"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["user"]["name"] == THERAPIST
    assert response.get_json()["user"]["role"] == "admin"
    assert store.get(THERAPIST).role == "admin"
    # A role change keeps the login: Dana is an admin at once.
    assert dana.get("/api/users").status_code == 200
    assert dana.get("/api/session").get_json()["role"] == "admin"


def test_disabling_ends_the_accounts_logins_and_enabling_lets_it_in_again(admin, app, store):
    client, headers = admin
    dana = app.test_client()
    login(dana)
    response = _patch(client, headers, THERAPIST, {"enabled": False})
    assert response.status_code == 200
    assert response.get_json()["user"]["enabled"] is False
    assert _logged_in(dana) is False
    refused = dana.post("/login", json={"name": THERAPIST, "password": PASSWORD}, headers=csrf_headers(dana))
    assert refused.status_code == 401
    assert _patch(client, headers, THERAPIST, {"enabled": True}).get_json()["user"]["enabled"] is True
    login(dana)
    assert _logged_in(dana) is True


def test_an_admin_sets_a_password_and_the_accounts_logins_end(admin, app, store):
    client, headers = admin
    dana = app.test_client()
    login(dana)
    response = _patch(client, headers, THERAPIST, {"password": NEW_PASSWORD})
    assert response.status_code == 200
    assert _logged_in(dana) is False
    assert store.verify(THERAPIST, PASSWORD) is None
    assert store.verify(THERAPIST, NEW_PASSWORD) is not None
    # The admin's own login goes on.
    assert _logged_in(client) is True


@pytest.mark.parametrize("body, key", [
    ({"role": "admin", "password": "short"}, "password"),
    ({"role": "admin", "enabled": "no"}, "enabled"),
    ({"enabled": False, "role": "owner"}, "role"),
    ({"password": NEW_PASSWORD, "enabled": 0}, "enabled"),
    ({"role": "admin", "name": "Dee"}, "name"),
])
def test_a_change_with_one_bad_field_changes_nothing_at_all(admin, app, store, body, key):
    client, headers = admin
    dana = app.test_client()
    login(dana)
    before = _accounts(store)
    response = _patch(client, headers, THERAPIST, body)
    assert response.status_code == 400
    assert list(_errors(response)) == [key]
    assert _accounts(store) == before
    assert store.verify(THERAPIST, PASSWORD) is not None
    assert _logged_in(dana) is True


def test_an_empty_change_is_400_and_an_unknown_account_404(admin, store):
    client, headers = admin
    before = _accounts(store)
    empty = _patch(client, headers, THERAPIST, {})
    assert empty.status_code == 400
    assert "role" in empty.get_json()["message"] and "password" in empty.get_json()["message"]
    missing = _patch(client, headers, "Nobody", {"role": "admin"})
    assert missing.status_code == 404
    assert list(_errors(missing)) == ["name"] and "Nobody" in _errors(missing)["name"]
    assert _accounts(store) == before


def test_the_last_enabled_admin_cannot_be_demoted(admin, store):
    client, headers = admin
    before = _accounts(store)
    response = _patch(client, headers, ADMIN, {"role": "therapist"})
    assert response.status_code == 409
    errors = _errors(response)
    assert list(errors) == ["role"] and "last enabled admin" in errors["role"]
    assert _accounts(store) == before


def test_the_last_enabled_admin_cannot_be_disabled_even_by_the_user_command(store):
    # Through the API only the last admin itself could try (and may not disable itself): the store refuses too.
    before = _accounts(store)
    with pytest.raises(AccountError) as refused:
        store.change(ADMIN, enabled=False)
    assert refused.value.status == 409 and refused.value.field == "enabled"
    assert "last enabled admin" in refused.value.message
    assert _accounts(store) == before


def test_with_a_second_admin_the_first_may_step_down_and_loses_admin_at_once(admin, store):
    client, headers = admin
    assert _patch(client, headers, THERAPIST, {"role": "admin"}).status_code == 200
    response = _patch(client, headers, ADMIN, {"role": "therapist"})
    assert response.status_code == 200
    assert store.get(ADMIN).role == "therapist"
    assert client.get("/api/users").status_code == 403
    # Now Dana is the last enabled admin.
    dana_headers = login(client, THERAPIST)
    refused = _patch(client, dana_headers, THERAPIST, {"role": "therapist"})
    assert refused.status_code == 409


def test_a_disabled_admin_does_not_count_as_another_admin(admin, store):
    client, headers = admin
    assert _patch(client, headers, DISABLED, {"role": "admin"}).status_code == 200
    assert store.get(DISABLED).enabled is False
    assert _patch(client, headers, ADMIN, {"role": "therapist"}).status_code == 409


@pytest.mark.parametrize("target", [ADMIN, ADMIN.lower()])
def test_an_admin_cannot_disable_themselves_even_with_another_admin(admin, store, target):
    client, headers = admin
    assert _patch(client, headers, THERAPIST, {"role": "admin"}).status_code == 200
    before = _accounts(store)
    response = _patch(client, headers, target, {"enabled": False})
    assert response.status_code == 409
    errors = _errors(response)
    assert list(errors) == ["enabled"] and "your own account" in errors["enabled"]
    assert _accounts(store) == before
    assert _logged_in(client) is True


# --- who may ------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path, body", ADMIN_ROUTES, ids=[f"{m} {p} {b}" for m, p, b in ADMIN_ROUTES])
def test_a_therapist_gets_403_on_every_accounts_route_and_nothing_changes(client, store, method, path, body):
    headers = login(client)
    before = _accounts(store)
    response = getattr(client, method)(path, json=body, headers=headers)
    assert response.status_code == 403
    assert response.get_json()["code"] == "forbidden"
    assert _accounts(store) == before


@pytest.mark.parametrize("method, path, body", ADMIN_ROUTES + [
    ("post", "/api/account/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD})],
    ids=[f"{m} {p} {b}" for m, p, b in ADMIN_ROUTES] + ["post /api/account/password"])
def test_anonymous_gets_401_on_every_accounts_route_and_nothing_changes(client, store, method, path, body):
    # A valid CSRF token: the refusal is for the missing login, not the token.
    headers = csrf_headers(client)
    before = _accounts(store)
    response = getattr(client, method)(path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["code"] == "login_required"
    assert _accounts(store) == before


def test_a_change_without_a_csrf_token_is_refused(admin, store):
    client, _ = admin
    before = _accounts(store)
    response = client.patch(f"/api/users/{THERAPIST}", json={"role": "admin"})
    assert response.status_code == 403 and response.get_json()["code"] == "csrf"
    assert _accounts(store) == before


# --- your own password ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [THERAPIST, ADMIN])
def test_your_own_password_change_ends_your_other_logins_but_not_this_one(app, store, name):
    here, there = app.test_client(), app.test_client()
    headers = login(here, name)
    login(there, name)
    response = here.post("/api/account/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
                         headers=headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["user"]["name"] == name
    assert _logged_in(there) is False
    session = here.get("/api/session").get_json()
    assert session["logged_in"] is True and session["name"] == name
    # This login still makes changes (the same CSRF header).
    again = here.post("/api/account/password", json={"current_password": NEW_PASSWORD, "new_password": PASSWORD},
                      headers=headers)
    assert again.status_code == 200
    assert store.verify(name, PASSWORD) is not None


@pytest.mark.parametrize("current", ["not my password", "", PASSWORD.upper(), 12345678])
def test_your_own_password_change_needs_your_present_password(app, store, current):
    here, there = app.test_client(), app.test_client()
    headers = login(here)
    login(there)
    before = _accounts(store)
    response = here.post("/api/account/password", json={"current_password": current, "new_password": NEW_PASSWORD},
                         headers=headers)
    assert response.status_code == 400
    assert list(_errors(response)) == ["current_password"]
    assert _accounts(store) == before
    assert store.verify(THERAPIST, PASSWORD) is not None
    assert _logged_in(here) is True and _logged_in(there) is True


RANGE = f"{PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters"


@pytest.mark.parametrize("body, key, words", [
    ({"current_password": PASSWORD, "new_password": "short"}, "new_password", RANGE),
    ({"current_password": PASSWORD, "new_password": "n" * (PASSWORD_MAX_CHARS + 1)}, "new_password", RANGE),
    ({"current_password": PASSWORD}, "new_password", "required"),
    ({"new_password": NEW_PASSWORD}, "current_password", "required"),
    ({"current_password": PASSWORD, "new_password": NEW_PASSWORD, "name": ADMIN}, "name", "unknown field"),
])
def test_a_bad_own_password_change_is_400_naming_the_field_and_changes_nothing(therapist_client, store, body, key,
                                                                               words):
    headers = csrf_headers(therapist_client)
    before = _accounts(store)
    response = therapist_client.post("/api/account/password", json=body, headers=headers)
    assert response.status_code == 400
    errors = _errors(response)
    assert list(errors) == [key] and words in errors[key]
    assert _accounts(store) == before
    assert store.verify(THERAPIST, PASSWORD) is not None


def test_a_long_non_ascii_present_and_new_password_fit_the_body_limit(app, store):
    long_old, long_new = "ä" * PASSWORD_MAX_CHARS, "ö" * PASSWORD_MAX_CHARS
    store.set_password(THERAPIST, long_old)
    client = app.test_client()
    headers = login(client, THERAPIST, long_old)
    response = client.post("/api/account/password", json={"current_password": long_old, "new_password": long_new},
                           headers=headers)
    assert response.status_code == 200, response.get_json()
    assert store.verify(THERAPIST, long_new) is not None


# --- the trail -----------------------------------------------------------------------------------

def test_account_changes_are_in_the_audit_trail_without_any_password(admin, app):
    client, headers = admin
    assert client.post("/api/users", json={"name": "Eve", "role": "therapist", "password": PASSWORD},
                       headers=headers).status_code == 201
    assert _patch(client, headers, "Eve", {"password": NEW_PASSWORD}).status_code == 200
    assert _patch(client, headers, ADMIN, {"role": "therapist"}).status_code == 409
    rows = client.get("/api/audit").get_json()["rows"]
    actions = [(r["action"], r["target"], r["outcome"], r["actor"]) for r in rows[:3]]
    assert actions == [("PATCH /api/users/<name>", f"/api/users/{ADMIN}", 409, ADMIN),
                       ("PATCH /api/users/<name>", "/api/users/Eve", 200, ADMIN),
                       ("POST /api/users", "/api/users", 201, ADMIN)]
    assert rows[2]["detail"] == {"name": "Eve", "role": "therapist", "password": "(removed)"}
    assert rows[1]["detail"] == {"password": "(removed)"}
    text = str(rows)
    assert PASSWORD not in text and NEW_PASSWORD not in text


def test_an_admin_changes_their_own_password_only_with_the_present_one(admin_client, state_dir):
    headers = csrf_headers(admin_client)
    refused = admin_client.patch(f"/api/users/{ADMIN}", json={"password": "taken over 123"}, headers=headers)
    assert refused.status_code == 409
    assert [e["field"] for e in refused.get_json()["errors"]] == ["password"]
    assert AccountStore(state_dir).verify(ADMIN, PASSWORD) is not None


def test_wrong_present_passwords_are_limited_per_account(make_app, fake):
    client = make_app(fake.socket_path, {"ACCOUNT_LOGIN_RATE_LIMIT": "2 per 15 minutes"}).test_client()
    headers = login(client)
    body = {"current_password": "not it at all", "new_password": "a new password 1"}
    for _ in range(2):
        assert client.post("/api/account/password", json=body, headers=headers).status_code == 400
    locked = client.post("/api/account/password", json={**body, "current_password": PASSWORD}, headers=headers)
    assert locked.status_code == 429
    assert "present passwords" in locked.get_json()["message"]
