"""The page: everything served locally (no CDN, no web fonts), stable ids for the end-to-end test."""

from __future__ import annotations

import pytest

from tests.web.helpers import URL, PageParser, login

IDS = ["state-banner", "state-reasons", "offline", "gap-mm", "deck", "zone-stop", "zone-warn", "patient",
       "belt-speed", "cap", "mode-label", "running-timer", "estop", "stop", "login-form", "login-name",
       "login-password", "login-submit", "logout", "reset", "start", "speed-up", "speed-down", "mode",
       "limits-form", "limits-submit", "limits-errors", "events", "demo", "demo-drift-back",
       "demo-console-speed-up", "demo-unplug-sensor", "demo-unplug-treadmill", "demo-recover",
       # The therapy session panel and the storage banner.
       "patient-select", "session-planned", "session-pain-before", "session-start", "session-pause",
       "session-resume", "session-end", "session-timer", "session-phase", "session-pain-after",
       "session-pain-save", "session-summary", "storage-warning", "patients-link", "session-speed",
       "session-confirm", "session-confirm-yes", "session-confirm-no", "header-session", "stop-message"]
LIMIT_INPUTS = ["reverse_cap_kmh", "forward_cap_kmh", "base_stop_mm", "warn_margin_mm"]


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
        assert (ref.startswith("/") and not ref.startswith("//")) or ref.startswith("#"), ref
    static = [ref for ref in parser.refs if ref.startswith("/static/")]
    assert sorted(static) == ["/static/app.js", "/static/header.js", "/static/i18n.js", "/static/limits.js",
                              "/static/request.js",
                              "/static/session_panel.js", "/static/style.css"]
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
    assert "hidden" not in parser.ids["session-controls"]


def test_session_timer_is_for_everyone_and_its_controls_for_the_therapist(page):
    _, parser = page
    for always in ("session-panel", "session-timer", "session-phase"):
        assert "hidden" not in parser.ids[always], always
    assert "hidden" in parser.ids["session-controls"]


def test_storage_warning_is_an_alert_hidden_until_the_status_reports_a_fault(page):
    _, parser = page
    banner = parser.ids["storage-warning"]
    assert banner.get("role") == "alert"
    assert "hidden" in banner


def test_favicon_request_is_answered_without_an_error(client):
    assert client.get("/favicon.ico").status_code == 204
