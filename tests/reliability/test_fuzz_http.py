"""The HTTP API takes arbitrary bodies on every endpoint and answers 4xx, never 5xx, changing nothing.

Every rule of the app's url_map with POST, PUT, PATCH or DELETE is tried, its URL ids filled with an
existing, a missing and a malformed one, so a new endpoint is fuzzed without being listed here. The rules:

- Refused: a body an endpoint cannot take gets 4xx and a JSON error (``ok`` false, ``code``, ``message``,
  ``errors``). A 400 names fields at fault and no others ("body" when the body is no JSON object, the id
  when the URL's is malformed), every unknown field among them. The controller gets no command and no
  change, only reads; the stored limits, patients and sessions and the login stay as they were.
- Body ignored by design: E-stop and stop (a safety action must never be refused because of its body), the
  demo controls and logout succeed whatever the body, and their only effect is their own action.
- Without a login an endpoint that needs a therapist answers 401, and without a CSRF token 403 (E-stop and
  stop need neither); nothing changes.

GET endpoints take arbitrary query strings the same way. The fake controller and the app are shared by the
examples of one test (hence the function-scoped fixture health check is off): each request is judged
against a snapshot taken just before it.
"""

from __future__ import annotations

import copy
import functools
import string
from dataclasses import dataclass
from typing import Any, Callable, Iterator
from urllib.parse import urlencode

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from tests.reliability.http_helpers import (Body, Num, Pattern, Same, Target, arbitrary_bodies, body_specs,
                                            enumerate_targets, nesting, not_json, parse, refused_by, to_json)
from tests.reliability.tally import TALLY, fuzz
from tests.web import conftest as web_fixtures
from controller.therapy.patients import FIELDS as PATIENT_FIELDS
from tests.web.fake_controller import DEMO_ACTIONS, FakeController
from tests.web.helpers import ADMIN, ADMIN_ONLY, THERAPIST, VALID_PATIENT, csrf_headers, login
from web.auth import SESSION_ACCOUNT, SESSION_SEEN
from web.clinic_overview import EXTENSION_KEY as CLINIC_READER
from web.history import PATIENT_BODY_MAX_BYTES

# The dashboard tests' fixtures: a fake controller and apps wired to it.
fake, access_db_bytes, state_dir, make_app = (web_fixtures.fake, web_fixtures.access_db_bytes, web_fixtures.state_dir,
                                            web_fixtures.make_app)

CHANGING_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
#: State-changing endpoints today (login, logout, 8 controls, 7 therapy, 3 accounts): the enumeration finds at least these.
MIN_ENDPOINTS = 20
#: Endpoints that ignore their body by design (see the module docstring).
BODY_IGNORED = {"api.estop", "api.stop", "api.demo", "auth.logout"}
#: Endpoints anyone may use; every other state-changing one needs a logged-in therapist.
OPEN = BODY_IGNORED | {"auth.login"}
#: Stop is always allowed: no CSRF token either.
CSRF_EXEMPT = {"api.estop", "api.stop"}
#: What the dashboard may ask of the controller while it refuses a request.
READS = {"status", "limits", "events", "patients", "patient", "session", "session_samples"}
FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}
JSON_TYPES = ["application/json", "application/json; charset=utf-8", "text/plain", None]
CONTENT_TYPES = JSON_TYPES + ["application/x-www-form-urlencoded", "multipart/form-data",
                              "multipart/form-data; boundary=x", "application/problem+json", "application/xml",
                              "application/octet-stream", "image/png"]
#: Flask's MAX_CONTENT_LENGTH in the app.
MAX_CONTENT_BYTES = 64 * 1024
#: Past this nesting the dashboard's parser (deeper in the stack than the test's) may give up: "body".
DEEP = 100
#: GET endpoints not fuzzed: static files, and the two live streams, which never end.
GET_SKIPPED = {"static", "api.stream", "patient_display.stream"}


def _settings(max_examples: int) -> settings:
    base = fuzz(max_examples)
    return settings(base, suppress_health_check=[*base.suppress_health_check, HealthCheck.function_scoped_fixture])


# --- one request, judged -------------------------------------------------------------------------

def _world(fake: FakeController) -> dict[str, Any]:
    """All the fake controller holds that a request could change, and how many calls it has had."""
    with fake.lock:
        status = {key: value for key, value in fake.status.items() if key not in ("seq", "t_wall")}
        return copy.deepcopy({"status": status, "commands": fake.commands, "demo_calls": fake.demo_calls,
                              "events": fake.events, "patients": fake.therapy.patients,
                              "sessions": fake.therapy.sessions, "samples": fake.therapy.samples,
                              "calls": len(fake.calls)})


def _bare(name: Any) -> Any:
    """A field as the web layer names it ("speed_kmh") from the controller's "[command] speed_kmh" too; the
    controller's "[patient]" names the key "" (its FieldError.field drops an empty key)."""
    if isinstance(name, str) and name.startswith("[") and name.endswith("]"):
        return ""
    return name.rsplit("] ", 1)[-1] if isinstance(name, str) else name


@dataclass
class Exchange:
    """A request sent and what it did."""

    target: Target
    raw: bytes
    content_type: str | None
    who: str
    csrf: bool
    response: TestResponse
    before: dict[str, Any]
    after: dict[str, Any]
    new_calls: list[str]
    session_before: dict[str, Any]
    session_after: dict[str, Any]

    @property
    def where(self) -> str:
        token = "" if self.csrf else " without a CSRF token"
        return (f"{self.target.method} {self.target.url} as {self.who}{token}, Content-Type {self.content_type!r}, "
                f"body {self.raw[:200]!r}: {self.response.status_code} {self.response.get_data(as_text=True)[:300]}")

    @property
    def mimetype(self) -> str:
        return (self.content_type or "").split(";")[0].strip().lower()

    def named(self) -> set[Any]:
        return {_bare(error.get("field")) for error in self.response.get_json()["errors"]}


class Rig:
    """The dashboard wired to a fake controller, a therapist's and a visitor's session, and the endpoints."""

    def __init__(self, app: Flask, fake: FakeController, session_id: int, cookies: dict[str, str],
                 tokens: dict[str, str]):
        self.app, self.fake, self.session_id = app, fake, session_id
        self.cookies, self.tokens = cookies, tokens
        self.specs = body_specs(fake)
        self._strategies: dict[tuple[str, ...], st.SearchStrategy[Any]] = {}
        self.targets = enumerate_targets(app, CHANGING_METHODS, session_id)
        self.readers = enumerate_targets(app, {"GET"}, session_id, GET_SKIPPED)

    def __repr__(self) -> str:
        return f"<Rig: {len(self.targets)} targets, {len(self.readers)} readers>"

    @property
    def cookie_name(self) -> str:
        return self.app.config["SESSION_COOKIE_NAME"]

    def spec(self, target: Target) -> Body:
        """The body ``target`` takes; an endpoint not described takes none (any field is unknown)."""
        if target.endpoint == "history.patient_update":
            fields = dict(self.specs["history.patient_create"].fields)
            fields["patient_id"] = Same(target.path["pid"], fields["patient_id"])
            valid = {key: value for key, value in VALID_PATIENT.items() if key != "patient_id"}
            return Body(fields, valid, frozenset(PATIENT_FIELDS) - {"patient_id"}, max_bytes=PATIENT_BODY_MAX_BYTES)
        return self.specs.get(target.endpoint, Body())

    def strategy(self, key: tuple[str, ...], build: Callable[[], st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
        """``build()``, made once per key: hypothesis validates each new strategy, which costs more than a request."""
        if key not in self._strategies:
            self._strategies[key] = build()
        return self._strategies[key]

    def arbitrary(self) -> st.SearchStrategy[Any]:
        """Arbitrary bodies: no object, or an object whose keys are no endpoint's fields."""
        known = {name for body in self.specs.values() for name in body.fields}
        return self.strategy(("arbitrary",), lambda: arbitrary_bodies(known))

    def broken(self, target: Target) -> st.SearchStrategy[dict[str, Any]]:
        """``target``'s valid body with fields spoiled or left out."""
        return self.strategy(("broken", target.url), lambda: self.spec(target).broken())

    def _session(self, cookie: str | None) -> dict[str, Any]:
        if cookie is None:
            return {}
        session = dict(self.app.session_interface.get_signing_serializer(self.app).loads(cookie))
        # When the login was last used moves with every change made: the login itself is the rest.
        session.pop(SESSION_SEEN, None)
        return session

    def send(self, target: Target, raw: bytes, content_type: str | None, who: str, csrf: bool,
             query: str = "") -> Exchange:
        """One request from a fresh client carrying ``who``'s session cookie."""
        cookie_value, token = self.cookies[who], self.tokens[who]
        if target.endpoint == "auth.logout" and who != "anonymous":
            # A logout ends its login on the server too: it gets a login of its own, not the shared one.
            own = self.app.test_client()
            token = login(own, ADMIN if who == "admin" else THERAPIST)["X-CSRFToken"]
            cookie_value = own.get_cookie(self.cookie_name).value
        before = _world(self.fake)
        client = self.app.test_client()
        client.set_cookie(self.cookie_name, cookie_value)
        headers = {"X-CSRFToken": token} if csrf else {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        response = client.open(target.url, method=target.method, data=raw, headers=headers, query_string=query)
        response.get_data()  # a streamed answer (CSV) runs to its end
        after = _world(self.fake)
        with self.fake.lock:
            new_calls = [name for name, _ in self.fake.calls[before["calls"]:]]
        cookie = client.get_cookie(self.cookie_name)
        return Exchange(target, raw, content_type, who, csrf, response, before, after, new_calls,
                        self._session(cookie_value), self._session(cookie.value if cookie else None))

    def check(self, target: Target, raw: bytes, content_type: str | None, who: str = "therapist",
              csrf: bool = True) -> Exchange:
        """Send one body and assert the module's rules for it."""
        x = self.send(target, raw, content_type, who, csrf)
        TALLY.add("bad inputs: HTTP bodies")
        TALLY.add("crashes", int(x.response.status_code >= 500))
        assert x.response.status_code < 500, x.where
        endpoint = target.endpoint
        if endpoint not in CSRF_EXEMPT and len(raw) > MAX_CONTENT_BYTES:
            # Flask's own limit, met while the CSRF check looks for the token in the body.
            refused(x, 413)
        elif endpoint not in CSRF_EXEMPT and not csrf:
            refused(x, 403, "csrf")
        elif who == "anonymous" and endpoint not in OPEN:
            refused(x, 401, "login_required")
        elif endpoint in ADMIN_ONLY:
            refused(x, 403, "forbidden")
        elif endpoint in ("api.estop", "api.stop"):
            commanded(x, endpoint.split(".")[1])
        elif endpoint == "api.demo":
            demo_action(x)
        elif endpoint == "auth.logout":
            assert x.response.status_code == 200, x.where
            unchanged(x, session=False)
            assert SESSION_ACCOUNT not in x.session_after, x.where
        else:
            refused_body(x, self.spec(target))
        return x


def unchanged(x: Exchange, session: bool = True, passed_on: bool = False) -> None:
    """The fake controller holds what it held, and the login is as it was. It was only read, unless the body
    was ``passed_on`` for the controller to judge: then it may have been asked, and refused."""
    ignored = {"calls", "commands"} if passed_on else {"calls"}
    before = {key: value for key, value in x.before.items() if key not in ignored}
    after = {key: value for key, value in x.after.items() if key not in ignored}
    assert after == before, f"the controller's state changed: {x.where}"
    if not passed_on:
        assert set(x.new_calls) <= READS, f"the controller was asked {x.new_calls}: {x.where}"
    if session:
        assert x.session_after == x.session_before, f"the login changed: {x.where}"


def refused(x: Exchange, status: int | None = None, code: str | None = None,
            passed_on: bool = False) -> dict[str, Any]:
    """A 4xx JSON error (of ``status`` and ``code`` if given), and nothing changed."""
    assert 400 <= x.response.status_code < 500, x.where
    payload = x.response.get_json(silent=True)
    assert isinstance(payload, dict) and payload.get("ok") is False, x.where
    assert isinstance(payload.get("code"), str) and isinstance(payload.get("message"), str), x.where
    assert isinstance(payload.get("errors"), list), x.where
    if status is not None:
        assert x.response.status_code == status, x.where
    if code is not None:
        assert payload["code"] == code, x.where
    unchanged(x, passed_on=passed_on)
    return payload


def names_faults(x: Exchange, faults: set[str], unknown: set[str] = frozenset(), passed_on: bool = False) -> None:
    """A 400 that names some of ``faults`` and nothing else, every ``unknown`` field among them."""
    refused(x, 400, "invalid", passed_on)
    # A name as the dashboard writes it, or as the controller does (FieldError.field strips trailing
    # whitespace, an empty key with it).
    faults = faults | {f.rstrip() for f in faults if isinstance(f, str)}
    unknown = {f for f in unknown if not (isinstance(f, str) and f.rstrip() in x.named())}
    named = x.named()
    if nesting(x.raw) > DEEP:
        faults, unknown = faults | {"body"}, set()
    assert named and named <= faults, f"named {named}, at fault {faults}: {x.where}"
    assert unknown <= named, f"unknown fields {unknown - named} not named: {x.where}"


def refused_body(x: Exchange, spec: Body) -> None:
    """An endpoint that validates its body refuses this one (the test sends none it should take)."""
    if x.target.endpoint == "auth.login":
        is_json = x.mimetype == "application/json" or (x.mimetype.startswith("application/")
                                                       and x.mimetype.endswith("+json"))
        # Not JSON: login reads a form, and a body that is no form carries neither field.
        data = parse(x.raw) if is_json else {}
        names_faults(x, spec.faults(data))
    elif x.mimetype in FORM_TYPES:
        names_faults(x, {"body"})
    elif len(x.raw) > spec.max_bytes:
        refused(x, 413, "too_large")
    else:
        # A malformed id in the URL is the controller's to name, after the body's shape is checked here.
        data = parse(x.raw)
        faults = spec.faults(data) | ({x.target.path_fault} if x.target.path_fault else set())
        assert faults, f"the test sent a body every check accepts: {x.where}"
        unknown = spec.unknown(data)
        if x.target.endpoint == "history.patient_update" and isinstance(data, dict) and "notes" not in data:
            # The dashboard refuses an update without notes itself (the controller would read them as empty).
            unknown = set()
        names_faults(x, faults, unknown, passed_on=isinstance(data, dict) or bool(x.target.path_fault))


def commanded(x: Exchange, command: str) -> None:
    """E-stop or stop: 200 whatever the body, one command without a value, nothing else changed."""
    assert x.response.status_code == 200 and x.response.get_json()["ok"] is True, x.where
    old, new = x.before["commands"], x.after["commands"]
    assert new[:len(old)] == old, x.where
    sent = [(c["command"], c["value"], c["authorized"]) for c in new[len(old):]]
    assert sent == [(command, None, x.who == "therapist")], x.where
    for key in ("patients", "sessions", "samples", "demo_calls"):
        assert x.after[key] == x.before[key], x.where
    assert set(x.new_calls) <= READS | {"command"}, x.where
    assert x.session_after == x.session_before, x.where


def demo_action(x: Exchange) -> None:
    """A demo control: its action whatever the body (404 for one the controller lacks), nothing else."""
    action = x.target.path["action"]
    if action not in DEMO_ACTIONS:
        refused(x, 404, "not_found", passed_on=True)
        return
    assert x.response.status_code == 200, x.where
    assert x.after["demo_calls"] == x.before["demo_calls"] + [action], x.where
    for key in ("status", "commands", "events", "patients", "sessions", "samples"):
        assert x.after[key] == x.before[key], x.where
    assert x.session_after == x.session_before, x.where


@pytest.fixture
def rig(fake, make_app, clinic_db) -> Iterator[Rig]:
    """A demo fake controller (READY, patient P01 with an ended session) and a dashboard with both sessions,
    a treadmill of a clinic record (so the clinic overview's endpoints are fuzzed too)."""
    fake.update(state="READY", reasons={}, demo=True)
    with fake.lock:
        fake.therapy.add_patient("P01")
        session_id = fake.therapy.add_session("P01", pain_after=None)["session_id"]
    # Login's rate limit is not under test here: bad logins must reach validation.
    app = make_app(fake.socket_path, {"LOGIN_RATE_LIMIT": "100000 per minute", "CLINIC": clinic_db.cfg("A")})
    therapist, admin, anonymous = app.test_client(), app.test_client(), app.test_client()
    tokens = {"therapist": login(therapist)["X-CSRFToken"], "admin": login(admin, ADMIN)["X-CSRFToken"],
              "anonymous": csrf_headers(anonymous)["X-CSRFToken"]}
    name = app.config["SESSION_COOKIE_NAME"]
    cookies = {who: client.get_cookie(name).value
               for who, client in (("therapist", therapist), ("admin", admin), ("anonymous", anonymous))}
    try:
        yield Rig(app, fake, session_id, cookies, tokens)
    finally:
        app.extensions[CLINIC_READER].close()


# --- the tests -----------------------------------------------------------------------------------

def test_the_enumeration_finds_every_state_changing_endpoint(rig):
    endpoints = {target.endpoint for target in rig.targets}
    assert len(endpoints) >= MIN_ENDPOINTS, sorted(endpoints)
    assert set(rig.specs) | OPEN <= endpoints, sorted(set(rig.specs) | OPEN - endpoints)
    urls = {target.url for target in rig.targets if target.endpoint == "history.patient_delete"}
    assert urls == {"/api/patients/P01", "/api/patients/P99", "/api/patients/_P01"}
    urls = {target.url for target in rig.targets if target.endpoint == "history.session_control"}
    assert urls == {f"/api/sessions/current/{action}" for action in ("pause", "resume", "end")}
    assert {"api.events", "history.session_samples", "history.session_samples_csv", "clinic.page",
            "clinic.overview"} <= {target.endpoint for target in rig.readers}


@_settings(500)
@given(data=st.data())
def test_arbitrary_json_bodies_are_refused_on_every_endpoint(rig, data):
    target = data.draw(st.sampled_from(rig.targets), label="target")
    body = data.draw(rig.arbitrary(), label="body")
    content_type = data.draw(st.sampled_from(JSON_TYPES), label="content type")
    rig.check(target, to_json(body).encode(), content_type)


@_settings(700)
@given(data=st.data())
def test_wrong_values_in_real_fields_are_refused_naming_the_field(rig, data):
    targets = rig.strategy(("with fields",), lambda: st.sampled_from([t for t in rig.targets if rig.spec(t).fields]))
    target = data.draw(targets, label="target")
    body = data.draw(rig.broken(target), label="body")
    content_type = data.draw(st.sampled_from(JSON_TYPES), label="content type")
    rig.check(target, to_json(body).encode(), content_type)


@_settings(400)
@given(data=st.data())
def test_invalid_json_and_wrong_content_types_are_refused(rig, data):
    samples = [to_json(rig.spec(t).valid or {"zz": 1}) for t in rig.targets]
    bodies = rig.strategy(("not json",), lambda: not_json(samples) | st.just(b"[" * (MAX_CONTENT_BYTES + 1)))
    target = data.draw(st.sampled_from(rig.targets), label="target")
    raw = data.draw(bodies, label="body")
    content_type = data.draw(st.sampled_from(CONTENT_TYPES), label="content type")
    rig.check(target, raw, content_type)


@_settings(400)
@given(data=st.data())
def test_without_a_login_or_a_csrf_token_nothing_changes(rig, data):
    target = data.draw(st.sampled_from(rig.targets), label="target")
    who, csrf = data.draw(st.sampled_from([("anonymous", True), ("anonymous", False), ("therapist", False)]),
                          label="who")
    bodies = rig.strategy(("arbitrary text",), lambda: rig.arbitrary().map(to_json).map(str.encode))
    if target.endpoint not in OPEN:
        # Even a body the endpoint would take: the login or the token is missing.
        valid = [b"", to_json(rig.spec(target).valid).encode()]
        bodies = rig.strategy(("or valid", target.url), lambda: bodies | st.sampled_from(valid))
    raw = data.draw(bodies, label="body")
    rig.check(target, raw, data.draw(st.sampled_from(JSON_TYPES), label="content type"), who=who, csrf=csrf)


#: Query parameters of the GET endpoints that take some: what each accepts.
QUERY = {
    "api.events": {"limit": Num(1, 500, integer=True), "kind": Pattern(r"[A-Za-z0-9_-]{1,32}")},
    "history.session_samples": {"offset": Num(0, 10 ** 9, integer=True), "limit": Num(1, 5000, integer=True)},
    **{endpoint: {"limit": Num(1, 5000, integer=True), "before_id": Num(0, 2 ** 62, integer=True)}
       for endpoint in ("audit.audit", "audit.audit_csv")},
}
QUERY_NAMES = {name for params in QUERY.values() for name in params}
#: Query strings as they come, percent escapes that decode to nothing valid among them.
RAW_QUERIES = st.text(string.ascii_letters + string.digits + "%&=+;#?/._-~ ", max_size=30)
JUNK_PAIRS = st.lists(st.tuples(st.text(max_size=8).filter(lambda k: k not in QUERY_NAMES), st.text(max_size=12)),
                      max_size=3)


@functools.cache
def _query_value(kind: Num | Pattern) -> st.SearchStrategy[str]:
    """Query text ``kind`` refuses: as JSON values do, plus digits int() cannot read."""
    values = refused_by(kind).map(lambda v: v if isinstance(v, str) else to_json(v))
    if isinstance(kind, Num):
        values = values | st.sampled_from(["²", "¹⁰", "٣", "1" * 5000, "0x10", "1_0", "+1", "-1", " "])
        return values.filter(lambda text: not _query_int_ok(kind, text))
    return values.filter(lambda text: text != "" and not kind.accepts(text))


def _query_int_ok(kind: Num, text: str) -> bool:
    """What a whole-number query parameter accepts: nothing (the default), or decimal digits in range."""
    if text == "":
        return True
    digits = text.strip()
    try:
        return digits.isdecimal() and kind.accepts(int(digits))
    except ValueError:  # more digits than int() reads
        return False


@_settings(300)
@given(data=st.data())
def test_get_endpoints_take_arbitrary_query_strings(rig, data):
    target = data.draw(st.sampled_from(rig.readers), label="target")
    params = QUERY.get(target.endpoint, {})
    bad = sorted(data.draw(st.sets(st.sampled_from(sorted(params))), label="bad")) if params else []
    pairs = data.draw(JUNK_PAIRS, label="junk") + [(name, data.draw(_query_value(params[name]), label=name))
                                                   for name in bad]
    raw = data.draw(st.booleans(), label="raw")
    query = data.draw(RAW_QUERIES, label="raw query") if raw else urlencode(pairs)
    # An admin's endpoints are read as an admin (a therapist is refused before the query is read).
    x = rig.send(target, b"", None, "admin" if target.endpoint in ADMIN_ONLY else "therapist", True, query=query)
    TALLY.add("bad inputs: HTTP query strings")
    TALLY.add("crashes", int(x.response.status_code >= 500))
    where = f"GET {target.url}?{query[:200]}: {x.response.status_code} {x.response.get_data(as_text=True)[:300]}"
    assert x.response.status_code < 500, where
    unchanged(x)
    if not raw and bad and not target.path_fault:
        payload = refused(x, 400, "invalid")
        named = {_bare(e["field"]) for e in payload["errors"]}
        assert named and named <= set(bad), where
    elif x.response.status_code == 400:
        named = {_bare(e["field"]) for e in refused(x)["errors"]}
        assert named and named <= QUERY_NAMES | {target.path_fault}, where
    else:
        assert x.response.status_code in (200, 204, 404), where
