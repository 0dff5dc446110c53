"""The therapy pages: shells for a logged-in therapist, with the ids the end-to-end test uses, loading
nothing from another origin and nothing inline (the CSP allows our own files only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.web.helpers import URL, login, parse_page

STATIC = Path(__file__).resolve().parents[2] / "web" / "static"
PROFILE_INPUTS = ["display_name", "notes", "mode", "speed_cap_kmh", "base_stop_mm", "warn_margin_mm", "target_min",
                  "sessions_per_day"]
#: page → the ids it must have.
PAGES = {
    "/patients": ["patients-table", "new-patient", "new-patient-submit", "new-patient-errors", "nav-dashboard"],
    "/patients/P01": ["suggestion", "today", "pain-warning", "sessions-table", "patient-form", "patient-save",
                      "patient-errors", "chart-duration", "chart-pain", "chart-closest", "sessions-csv",
                      "delete-patient", "nav-dashboard", "nav-patients"],
    "/sessions/7": ["session-info", "timeline", "timeline-note", "session-events", "samples-csv",
                    "session-patient-link", "nav-dashboard", "nav-patients"],
}
#: Ways a script could put controller text into the page as markup.
HTML_SINKS = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function")


def _page(client, path):
    response = client.get(path)
    assert response.status_code == 200, path
    assert response.mimetype == "text/html"
    return response, parse_page(response.get_data(as_text=True))


@pytest.mark.parametrize("path", list(PAGES))
def test_each_therapy_page_has_the_ids_the_end_to_end_test_uses(therapist_client, path):
    _, parser = _page(therapist_client, path)
    assert [i for i in PAGES[path] if i not in parser.ids] == []


def test_the_new_patient_form_has_an_input_named_as_each_field(therapist_client):
    _, parser = _page(therapist_client, "/patients")
    assert parser.form_fields["new-patient"] == ["patient_id"] + PROFILE_INPUTS


def test_the_profile_form_has_every_field_but_the_id_which_the_url_fixes(therapist_client):
    _, parser = _page(therapist_client, "/patients/P01")
    assert parser.form_fields["patient-form"] == PROFILE_INPUTS
    assert parser.ids["patient-head"]["data-patient-id"] == "P01"
    assert parser.ids["sessions-csv"]["href"] == "/api/patients/P01/sessions.csv"
    assert "hidden" in parser.ids["pain-warning"] and parser.ids["pain-warning"]["role"] == "alert"


def test_the_session_page_links_its_timeline_csv(therapist_client):
    _, parser = _page(therapist_client, "/sessions/7")
    assert parser.ids["session-head"]["data-session-id"] == "7"
    assert parser.ids["samples-csv"]["href"] == "/api/sessions/7/samples.csv"


@pytest.mark.parametrize("path", list(PAGES))
def test_a_therapy_page_without_a_login_says_to_log_in_on_the_dashboard(client, fake, path):
    response = client.get(path)
    assert response.status_code == 401
    text = response.get_data(as_text=True)
    assert "Log in" in text
    parser = parse_page(text)
    assert parser.ids["notice-dashboard"]["href"] == "/"
    assert fake.calls == []


@pytest.mark.parametrize("page, field", [("/patients/_x", "[patient] patient_id"),
                                         ("/patients/" + "P" * 17, "[patient] patient_id"),
                                         ("/sessions/0", "[session] session_id")])
def test_a_malformed_id_in_a_page_address_is_the_controllers_to_refuse_when_the_page_asks(therapist_client, fake,
                                                                                          page, field):
    # The page is a shell that asks nothing; the API call its script makes gets the controller's named 400.
    response = therapist_client.get(page)
    assert response.status_code == 200
    assert fake.calls == []
    answer = therapist_client.get("/api" + page)
    assert answer.status_code == 400
    assert [e["field"] for e in answer.get_json()["errors"]] == [field]


def test_the_pages_are_shells_that_render_while_the_controller_is_offline(offline_client):
    login(offline_client)
    for path in PAGES:
        assert offline_client.get(path).status_code == 200, path


def test_the_dashboard_links_the_patients_page(client):
    parser = parse_page(client.get("/").get_data(as_text=True))
    assert parser.ids["patients-link"]["href"] == "/patients"


# --- nothing from another origin, nothing inline ------------------------------------------------

@pytest.mark.parametrize("path", list(PAGES) + ["/"])
def test_a_page_loads_only_local_files_that_exist_and_name_no_other_host(therapist_client, path):
    response, parser = _page(therapist_client, path)
    assert URL.findall(response.get_data(as_text=True)) == []
    assert parser.refs
    for ref in parser.refs:
        # Our own paths, or an anchor on the same page (the skip link).
        assert (ref.startswith("/") and not ref.startswith("//")) or ref.startswith("#"), ref
    for ref in [r for r in parser.refs if r.startswith("/static/")]:
        asset = therapist_client.get(ref)
        assert asset.status_code == 200, ref
        text = asset.get_data(as_text=True)
        asset.close()
        assert URL.findall(text) == [], f"{ref} names another host"
        assert "@import" not in text and "@font-face" not in text and "url(" not in text


@pytest.mark.parametrize("path", list(PAGES) + ["/"])
def test_a_page_has_no_inline_script_or_style_so_the_csp_can_forbid_them(therapist_client, path):
    response, parser = _page(therapist_client, path)
    assert parser.inline_scripts == 0
    assert parser.inline_handlers == []
    assert parser.style_attrs == [] and parser.style_elements == 0
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp


@pytest.mark.parametrize("script", sorted(p.name for p in STATIC.glob("*.js")))
def test_no_script_turns_text_into_markup(script):
    text = (STATIC / script).read_text()
    assert [sink for sink in HTML_SINKS if sink in text] == []
    # Inline styles are refused by the CSP; looks come from classes in style.css.
    assert "setAttribute('style'" not in text and ".style.cssText" not in text


def test_the_therapy_pages_load_their_own_scripts(therapist_client):
    scripts = {path: [r for r in _page(therapist_client, path)[1].refs if r.endswith(".js")] for path in PAGES}
    assert scripts == {
        "/patients": ["/static/i18n.js", "/static/request.js", "/static/header.js", "/static/history.js", "/static/patients.js"],
        "/patients/P01": ["/static/i18n.js", "/static/request.js", "/static/header.js", "/static/history.js", "/static/charts.js",
                          "/static/patient.js"],
        "/sessions/7": ["/static/i18n.js", "/static/request.js", "/static/header.js", "/static/history.js", "/static/charts.js",
                        "/static/session_view.js"],
    }
