"""The permission matrix, role by endpoint: anonymous, therapist, admin, and a disabled account.

Every rule of the url_map is in exactly one class below, so a new endpoint fails this test until someone
decides who may use it. Allowed means neither 401 nor 403 (the body may still be refused, 400).
"""

from __future__ import annotations

import pytest

from tests.reliability.http_helpers import body_specs, enumerate_targets
from tests.web.helpers import ADMIN, ADMIN_ONLY, PASSWORD, THERAPIST, csrf_headers, login
from web.accounts import AccountStore
from web.clinic_overview import EXTENSION_KEY as CLINIC_READER

#: Anyone, logged in or not: reading, stopping, the demo's controls, logging in and out.
ANYONE = {"static", "views.index", "views.favicon", "api.status", "api.stream", "api.events", "api.limits",
          "api.session_info", "api.estop", "api.stop", "api.demo", "auth.login", "auth.logout", "metrics.metrics",
          "patient_display.page", "patient_display.status", "patient_display.stream"}
#: Any logged-in account (a therapist or an admin): going, limits, patients and sessions, one's own password.
LOGGED_IN = {"api.reset", "api.start", "api.speed", "api.mode", "api.set_limits", "users.own_password",
             "history.patients", "history.patient_create", "history.patient", "history.patient_update",
             "history.patient_delete", "history.patient_select", "history.patient_sessions_csv",
             "history.session_start", "history.session_control", "history.session_detail", "history.session_pain",
             "history.session_samples", "history.session_samples_csv", "views.patients_page", "views.patient_page",
             "views.session_page", "views.account_page", "clinic.page", "clinic.overview"}
#: Registered only on a treadmill of a clinic record ([clinic]): the clinic overview.
CLINIC_ONLY = {"clinic.page", "clinic.overview"}
#: Never opened here: the live stream does not end (tests/web/test_stream.py covers it); static files.
NOT_SENT = {"api.stream", "patient_display.stream", "static"}
ROLES = ("anonymous", "therapist", "admin", "disabled")
DISABLED_USER = "Cleo"


def expected(endpoint: str, role: str) -> str:
    if endpoint in ANYONE:
        return "allowed"
    if role in ("anonymous", "disabled"):
        return "401"
    if endpoint in ADMIN_ONLY and role == "therapist":
        return "403"
    return "allowed"


@pytest.fixture
def clinic_app(fake, make_app, clinic_db):
    """The dashboard with every optional part (a treadmill of a clinic record); its clinic reader closed after."""
    app = make_app(fake.socket_path, {"LOGIN_RATE_LIMIT": "1000 per minute", "CLINIC": clinic_db.cfg("A")})
    try:
        yield app
    finally:
        app.extensions[CLINIC_READER].close()


def test_every_endpoint_is_in_exactly_one_class(app, clinic_app):
    endpoints = {rule.endpoint for rule in clinic_app.url_map.iter_rules()}
    assert {rule.endpoint for rule in app.url_map.iter_rules()} == endpoints - CLINIC_ONLY
    classes = (ANYONE, LOGGED_IN, ADMIN_ONLY)
    assert set().union(*classes) == endpoints, (sorted(endpoints - set().union(*classes)),
                                                sorted(set().union(*classes) - endpoints))
    assert sum(len(c) for c in classes) == len(endpoints), "an endpoint is in two classes"


def _client(app, state_dir, role: str):
    """A client of ``role`` and its CSRF header."""
    if role == "disabled":
        return _disabled_client(app, state_dir)
    client = app.test_client()
    if role in ("therapist", "admin"):
        return client, login(client, ADMIN if role == "admin" else THERAPIST)
    return client, csrf_headers(client)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_what_its_class_allows(clinic_app, fake, state_dir, role):
    fake.update(state="READY", reasons={}, demo=True)
    with fake.lock:
        fake.therapy.add_patient("P01")
        session_id = fake.therapy.add_session("P01", pain_after=None)["session_id"]
    app = clinic_app
    specs = body_specs(fake)
    targets = enumerate_targets(app, {"GET", "POST", "PUT", "PATCH", "DELETE"}, session_id, NOT_SENT)
    wrong = []
    checked = set()
    # One login for every request: no body sent here changes an account (own_password's is refused).
    client, headers = _client(app, state_dir, role)
    for target in targets:
        if target.path_fault or target.endpoint == "auth.logout":
            continue
        spec = specs.get(target.endpoint)
        body = dict(spec.valid) if spec and target.method != "GET" else None
        sender, sent_headers = client, headers
        if target.endpoint == "auth.login":
            # From another client: a login would change this one's role.
            body, sender = {"name": ADMIN, "password": PASSWORD}, app.test_client()
            sent_headers = csrf_headers(sender)
        response = sender.open(target.url, method=target.method, json=body, headers=sent_headers)
        got = str(response.status_code) if response.status_code in (401, 403) else "allowed"
        if got != expected(target.endpoint, role):
            wrong.append(f"{target.method} {target.url}: {response.status_code}, "
                         f"expected {expected(target.endpoint, role)}")
        checked.add(target.endpoint)
    assert not wrong, "\n".join(wrong)
    assert len(checked) >= 40


def _disabled_client(app, state_dir):
    """A client whose account was disabled after it logged in: its login ends at the next request."""
    store = AccountStore(state_dir)
    if store.get(DISABLED_USER) is None:
        store.add(DISABLED_USER, "therapist", PASSWORD)
    store.change(DISABLED_USER, enabled=True)
    client = app.test_client()
    headers = login(client, DISABLED_USER)
    store.change(DISABLED_USER, enabled=False)
    return client, headers


def test_logout_works_for_every_role(make_app, fake, state_dir):
    app = make_app(fake.socket_path)
    for role in ROLES:
        client, headers = _client(app, state_dir, role)
        assert client.post("/logout", headers=headers).status_code == 200
        assert client.get("/api/session").get_json()["logged_in"] is False
