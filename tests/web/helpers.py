"""Small helpers for the dashboard tests: logging in, the CSRF header, reading pages, a valid profile."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from flask.testing import FlaskClient

PASSWORD = "correct horse battery"
THERAPIST = "Dana"
#: Anything that names another host: a page must load nothing from elsewhere.
URL = re.compile(r"(?:https?:)?//[\w.-]+", re.IGNORECASE)
#: A profile every check accepts (the fake's ceilings: reverse cap up to 2.2 km/h, stop from 200 mm ...).
VALID_PATIENT = {"patient_id": "P02", "display_name": "C.D.", "notes": "knee surgery 2021", "mode": "reverse",
                 "speed_cap_kmh": 1.2, "base_stop_mm": 320, "warn_margin_mm": 150, "target_min": 25,
                 "sessions_per_day": 2}


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
            if not a.get("src"):
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
