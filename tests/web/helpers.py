"""Small helpers for the dashboard tests: logging in, the CSRF header, reading pages, a valid profile,
and the controller's refusals passed on."""

from __future__ import annotations

import copy
import re
from html.parser import HTMLParser
from typing import Any, Callable

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

PASSWORD = "correct horse battery"
#: The accounts of every dashboard test's state dir (tests/web/conftest.py): each has PASSWORD.
THERAPIST = "Dana"
ADMIN = "Ada"
DISABLED = "Dis"
#: The endpoints only an admin may use: accounts and the audit trail (a therapist gets 403).
ADMIN_ONLY = frozenset({"users.users", "users.user_add", "users.user_change", "audit.audit", "audit.audit_csv",
                        "audit.audit_verify", "views.accounts_page", "views.audit_page"})
#: Anything that names another host: a page must load nothing from elsewhere.
URL = re.compile(r"(?:https?:)?//[\w.-]+", re.IGNORECASE)
#: A profile every check accepts (the fake's ceilings: reverse cap up to 2.2 km/h, stop from 200 mm ...).
VALID_PATIENT = {"patient_id": "P02", "display_name": "C.D.", "notes": "knee surgery 2021", "mode": "reverse",
                 "speed_cap_kmh": 1.2, "base_stop_mm": 320, "warn_margin_mm": 150, "target_min": 25,
                 "sessions_per_day": 2}


def _held(fake: Any) -> dict[str, Any]:
    """All a request could change in the fake controller."""
    with fake.lock:
        status = {k: v for k, v in fake.status.items() if k not in ("seq", "t_wall")}
        return copy.deepcopy({"status": status, "patients": fake.therapy.patients,
                              "sessions": fake.therapy.sessions, "samples": fake.therapy.samples})


def controller_refused(send: Callable[[], TestResponse], fake: Any, fields: list[str], *words: str) -> dict:
    """``send()`` answered 400 with the controller's refusal: its errors name ``fields`` and no others, some
    error's message holds each of ``words``, and the controller changed nothing. Returns the body."""
    before = _held(fake)
    response = send()
    assert response.status_code == 400, (response.status_code, response.get_json())
    body = response.get_json()
    assert body["ok"] is False and body["code"] == "invalid"
    assert {e["field"] for e in body["errors"]} == set(fields), body
    for word in words:
        assert any(word in e["message"] for e in body["errors"]), (word, body["errors"])
        assert word in body["message"], (word, body["message"])
    assert _held(fake) == before, "the controller's state changed"
    return body


def csrf_headers(client: FlaskClient) -> dict[str, str]:
    """The X-CSRFToken header for this client's session (from GET /api/session)."""
    return {"X-CSRFToken": client.get("/api/session").get_json()["csrf_token"]}


def login(client: FlaskClient, name: str = THERAPIST, password: str = PASSWORD) -> dict[str, str]:
    """Log in; returns the CSRF header valid for the logged-in session."""
    response = client.post("/login", json={"name": name, "password": password}, headers=csrf_headers(client))
    assert response.status_code == 200, response.get_json()
    return {"X-CSRFToken": response.get_json()["csrf_token"]}


class PageParser(HTMLParser):
    """Collects ids, resource references, meta tags, inline scripts and styles, and each form's fields."""

    def __init__(self):
        super().__init__()
        self.ids: dict[str, dict] = {}
        self.refs: list[str] = []
        self.meta: dict[str, str] = {}
        self.inline_scripts = 0
        self.inline_handlers: list[str] = []
        self.style_attrs: list[str] = []
        self.style_elements = 0
        self.inputs: list[str] = []
        #: form id → the names of its input, select and textarea fields, in order.
        self.form_fields: dict[str, list[str]] = {}
        self._in_script = False
        self._form: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids[a["id"]] = a
        for name in ("src", "href", "action"):
            if a.get(name):
                self.refs.append(a[name])
        if tag == "meta" and "name" in a:
            self.meta[a["name"]] = a.get("content", "")
        if tag == "script":
            self._in_script = True
            # A JSON data block is never run (the CSP need not allow it); anything else inline would be.
            if not a.get("src") and a.get("type") != "application/json":
                self.inline_scripts += 1
        if tag == "style":
            self.style_elements += 1
        if tag == "form":
            self._form = a.get("id", "")
            self.form_fields.setdefault(self._form, [])
        if tag in ("input", "select", "textarea") and a.get("name"):
            self.inputs.append(a["name"])
            if self._form is not None:
                self.form_fields[self._form].append(a["name"])
        if "style" in a:
            self.style_attrs.append(tag)
        self.inline_handlers += [name for name in a if name.startswith("on")]

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False
        if tag == "form":
            self._form = None


def parse_page(html: str) -> PageParser:
    """A parsed page."""
    parser = PageParser()
    parser.feed(html)
    return parser
