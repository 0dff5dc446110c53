"""The page: everything served locally (no CDN, no web fonts), stable ids for the end-to-end test."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from tests.web.helpers import login

URL = re.compile(r"(?:https?:)?//[\w.-]+", re.IGNORECASE)
IDS = ["state-banner", "state-reasons", "offline", "gap-mm", "deck", "zone-stop", "zone-warn", "patient",
       "belt-speed", "cap", "mode-label", "session-timer", "estop", "stop", "login-form", "login-name",
       "login-password", "login-submit", "logout", "reset", "start", "speed-up", "speed-down", "mode",
       "limits-form", "limits-submit", "limits-errors", "events", "demo", "demo-drift-back",
       "demo-console-speed-up", "demo-unplug-sensor", "demo-unplug-treadmill", "demo-recover"]
LIMIT_INPUTS = ["reverse_cap_kmh", "forward_cap_kmh", "base_stop_mm", "warn_margin_mm"]


class PageParser(HTMLParser):
    """Collects ids, resource references, meta tags, inline scripts and the limits form's inputs."""

    def __init__(self):
        super().__init__()
        self.ids: dict[str, dict] = {}
        self.refs: list[str] = []
        self.meta: dict[str, str] = {}
        self.inline_scripts = 0
        self.inline_handlers: list[str] = []
        self.inputs: list[str] = []
        self._in_script = False

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
        if tag == "input" and a.get("name"):
            self.inputs.append(a["name"])
        self.inline_handlers += [name for name in a if name.startswith("on")]

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False


@pytest.fixture
def page(client):
    response = client.get("/")
    assert response.status_code == 200
    parser = PageParser()
    parser.feed(response.get_data(as_text=True))
    return response, parser


def test_page_has_every_id_the_end_to_end_test_uses(page):
    _, parser = page
    missing = [i for i in IDS if i not in parser.ids]
    assert missing == []
    for name in LIMIT_INPUTS:
        assert name in parser.inputs


def test_page_holds_no_url_to_another_host(page):
    response, _ = page
    assert URL.findall(response.get_data(as_text=True)) == []


def test_page_references_only_local_static_files_that_exist(client, page):
    _, parser = page
    assert parser.refs, "the page references its script and style sheet"
    for ref in parser.refs:
        assert ref.startswith("/") and not ref.startswith("//"), ref
    static = [ref for ref in parser.refs if ref.startswith("/static/")]
    assert sorted(static) == ["/static/app.js", "/static/style.css"]
    for ref in static:
        response = client.get(ref)
        assert response.status_code == 200, ref
        text = response.get_data(as_text=True)
        response.close()
        assert URL.findall(text) == [], f"{ref} names another host"
        assert "@import" not in text and "@font-face" not in text


def test_page_has_no_inline_script_so_the_csp_can_forbid_it(page):
    response, parser = page
    assert parser.inline_scripts == 0
    assert parser.inline_handlers == []
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp


def test_page_carries_a_csrf_token_the_api_accepts(client, page, fake):
    _, parser = page
    token = parser.meta["csrf-token"]
    assert token
    fake.update(demo=True)
    assert client.post("/api/demo/recover", headers={"X-CSRFToken": token}).status_code == 200


def test_estop_and_stop_are_outside_the_therapist_only_part(page):
    _, parser = page
    for button in ("estop", "stop"):
        assert "hidden" not in parser.ids[button]
    assert "hidden" in parser.ids["therapist"]


def test_logged_in_page_shows_the_therapist_controls(client):
    login(client)
    parser = PageParser()
    parser.feed(client.get("/").get_data(as_text=True))
    assert "hidden" not in parser.ids["therapist"]


def test_favicon_request_is_answered_without_an_error(client):
    assert client.get("/favicon.ico").status_code == 204
