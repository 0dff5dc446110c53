"""The account pages: /accounts and /audit (an admin's), /account (anyone logged in). Each answers by role
(a notice to log in, a notice that it is an admin's, or the page), carries the header with E-STOP and Stop,
loads only its own local scripts, labels every input, and the nav shows the admin links to an admin only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.web.helpers import ADMIN, URL, PageParser, csrf_headers, login
from web.accounts import NAME_MAX_CHARS, PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS, ROLES
from web.audit_api import MAX_PAGE_ROWS

WEB = Path(__file__).resolve().parents[2] / "web"
ADMIN_PAGES = ["/accounts", "/audit"]
PAGES = ADMIN_PAGES + ["/account"]
#: page → the ids its script and the end-to-end test use.
IDS = {
    "/accounts": ["accounts-head", "accounts-table", "accounts-empty", "new-account", "new-account-name",
                  "new-account-role", "new-account-password", "new-account-submit", "new-account-errors",
                  "new-account-message"],
    "/account": ["own-password", "own-password-current", "own-password-new", "own-password-again",
                 "own-password-submit", "own-password-errors", "own-password-message", "account-name", "account-role"],
    "/audit": ["audit-filters", "audit-since", "audit-until", "audit-user", "audit-apply", "audit-errors", "audit-csv",
               "audit-table", "audit-older", "audit-chain", "audit-chain-broken", "audit-empty"],
}
SCRIPTS = {path: ["/static/i18n.js", "/static/request.js", "/static/header.js", "/static/history.js", f"/static/{script}"]
           for path, script in (("/accounts", "accounts.js"), ("/account", "account.js"), ("/audit", "audit.js"))}
HEADER_IDS = ["state-banner", "state-reasons", "offline", "estop", "stop", "stop-message", "header-session",
              "plain-reasons", "nav-dashboard", "nav-patients", "nav-accounts", "nav-audit", "nav-account", "nav-who",
              "nav-whoami", "nav-role", "main"]
NAV_LINKS = {"nav-accounts": ("/accounts", "Accounts"), "nav-audit": ("/audit", "Audit"),
             "nav-account": ("/account", "My account")}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Page(PageParser):
    """Also each id'd element's text, the ids <label for> names, and every form control with whether a
    <label> holds it."""

    def __init__(self):
        super().__init__()
        self.text: dict[str, str] = {}
        self.label_for: set[str] = set()
        self.controls: list[tuple[str, dict, bool]] = []
        self._open: list[tuple[str, str | None]] = []
        self._in_label = 0
        self.html = ""

    def handle_starttag(self, tag, attrs):
        super().handle_starttag(tag, attrs)
        a = dict(attrs)
        if tag == "label":
            self._in_label += 1
            if a.get("for"):
                self.label_for.add(a["for"])
        if tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            self.controls.append((tag, a, self._in_label > 0))
        if tag not in VOID:
            self._open.append((tag, a.get("id")))
            if a.get("id"):
                self.text.setdefault(a["id"], "")

    def handle_endtag(self, tag):
        super().handle_endtag(tag)
        if tag == "label":
            self._in_label -= 1
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i][0] == tag:
                del self._open[i:]
                break

    def handle_data(self, data):
        for _, element_id in self._open:
            if element_id:
                self.text[element_id] += data

    def words(self, element_id: str) -> str:
        return " ".join(self.text[element_id].split())

    def unlabelled(self) -> list[str]:
        return [a.get("id") or a.get("name") or tag for tag, a, inside in self.controls
                if not inside and a.get("id") not in self.label_for]


def _get(client, path, status):
    response = client.get(path)
    assert response.status_code == status, (path, response.status_code)
    assert response.mimetype == "text/html"
    page = Page()
    page.html = response.get_data(as_text=True)
    page.feed(page.html)
    return response, page


@pytest.fixture(params=["anonymous", "therapist", "admin"])
def who(request, client):
    """(role or None, a client logged in as it)."""
    if request.param == "therapist":
        login(client)
    elif request.param == "admin":
        login(client, ADMIN)
    return (None if request.param == "anonymous" else request.param), client


def _status(role, path):
    if role is None:
        return 401
    return 403 if path in ADMIN_PAGES and role != "admin" else 200


# --- who gets what -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", PAGES)
def test_without_a_login_a_page_is_the_401_notice_to_log_in_on_the_dashboard(client, fake, path):
    _, page = _get(client, path, 401)
    assert page.words("notice-title") == "Log in first"
    assert "Log in on the dashboard" in page.words("notice-message")
    assert page.ids["notice-dashboard"]["href"] == "/"
    assert [i for i in IDS[path] if i in page.ids] == []
    assert fake.calls == []


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_a_therapist_on_an_admins_page_gets_the_403_notice(therapist_client, path):
    _, page = _get(therapist_client, path, 403)
    assert page.words("notice-title") == "Only an admin may see this page"
    assert page.ids["notice-dashboard"]["href"] == "/"
    assert [i for i in IDS[path] if i in page.ids] == []


def test_a_therapist_opens_my_account_which_names_them_and_their_role(therapist_client):
    _, page = _get(therapist_client, "/account", 200)
    assert [i for i in IDS["/account"] if i not in page.ids] == []
    assert page.words("account-name") == "Dana" and page.words("account-role") == "therapist"


@pytest.mark.parametrize("path", PAGES)
def test_an_admin_opens_every_page(admin_client, path):
    _, page = _get(admin_client, path, 200)
    assert [i for i in IDS[path] if i not in page.ids] == []


def test_a_page_follows_the_role_at_each_request(admin_client, state_dir):
    from web.accounts import AccountStore

    store = AccountStore(state_dir)
    store.change("Dana", role="admin")
    store.change(ADMIN, role="therapist")
    _get(admin_client, "/accounts", 403)
    _get(admin_client, "/account", 200)


# --- the header, the scripts, the labels --------------------------------------------------------

@pytest.mark.parametrize("path", PAGES)
def test_every_answer_carries_the_header_with_e_stop_and_stop(who, path):
    role, client = who
    _, page = _get(client, path, _status(role, path))
    assert [i for i in HEADER_IDS if i not in page.ids] == []
    assert page.words("estop") == "E-STOP" and page.words("stop") == "Stop"
    assert "hidden" not in page.ids["estop"] and "hidden" not in page.ids["stop"]
    assert "/static/header.js" in page.refs


@pytest.mark.parametrize("path", PAGES)
def test_a_page_loads_its_own_local_scripts_only_and_nothing_inline(admin_client, path):
    response, page = _get(admin_client, path, 200)
    assert [r for r in page.refs if r.endswith(".js")] == SCRIPTS[path]
    assert URL.findall(response.get_data(as_text=True)) == []
    for ref in page.refs:
        assert (ref.startswith("/") and not ref.startswith("//")) or ref.startswith("#"), ref
    for ref in [r for r in page.refs if r.startswith("/static/")]:
        asset = admin_client.get(ref)
        assert asset.status_code == 200, ref
        text = asset.get_data(as_text=True)
        asset.close()
        assert URL.findall(text) == [], f"{ref} names another host"
    assert page.inline_scripts == 0 and page.inline_handlers == []
    assert page.style_attrs == [] and page.style_elements == 0
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp


@pytest.mark.parametrize("path", PAGES + ["/", "/patients"])
def test_every_input_has_a_label(who, path):
    role, client = who
    status = 200 if path == "/" or (path == "/patients" and role) else _status(role, path)
    _, page = _get(client, path, status)
    assert page.unlabelled() == []


@pytest.mark.parametrize("path", ["/", "/patients", "/account"] + ADMIN_PAGES)
def test_the_nav_shows_the_admin_links_to_an_admin_only_and_my_account_to_anyone_logged_in(who, path):
    role, client = who
    status = 200 if path == "/" or (path == "/patients" and role) else _status(role, path)
    _, page = _get(client, path, status)
    for element_id, (href, text) in NAV_LINKS.items():
        assert page.ids[element_id]["href"] == href and page.words(element_id) == text
    shown = {i for i in NAV_LINKS if "hidden" not in page.ids[i]}
    expected = {None: set(), "therapist": {"nav-account"}, "admin": set(NAV_LINKS)}[role]
    assert shown == expected
    assert ("hidden" in page.ids["nav-who"]) == (role is None)
    assert page.words("nav-whoami") == {None: "", "therapist": "Dana", "admin": ADMIN}[role]
    assert page.words("nav-role") == ("" if role is None else f"({role})")
    assert page.ids["top"]["data-role"] == (role or "")


@pytest.mark.parametrize("path", PAGES)
def test_the_nav_marks_the_page_it_is_on(admin_client, path):
    _, page = _get(admin_client, path, 200)
    current = [i for i, a in page.ids.items() if a.get("aria-current") == "page"]
    assert current == [{"/accounts": "nav-accounts", "/audit": "nav-audit", "/account": "nav-account"}[path]]


def test_the_session_body_carries_the_role_the_header_follows(client):
    headers = login(client, ADMIN)
    assert client.get("/api/session").get_json()["role"] == "admin"
    logout = client.post("/logout", headers=headers)
    assert logout.status_code == 200
    body = client.get("/api/session").get_json()
    assert body["logged_in"] is False and body["role"] is None


# --- the forms ------------------------------------------------------------------------------------

def test_the_new_account_form_has_the_apis_fields_the_roles_and_the_password_range(admin_client):
    _, page = _get(admin_client, "/accounts", 200)
    assert page.form_fields["new-account"] == ["name", "role", "password"]
    assert page.ids["new-account-password"]["type"] == "password"
    assert page.ids["new-account-password"]["autocomplete"] == "new-password"
    assert page.ids["new-account-password"]["minlength"] == str(PASSWORD_MIN_CHARS)
    assert page.ids["new-account-password"]["maxlength"] == str(PASSWORD_MAX_CHARS)
    assert page.words("new-account-password-range") == f"{PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters"
    assert page.ids["new-account-name"]["maxlength"] == str(NAME_MAX_CHARS)
    assert re.findall(r'<option value="(\w+)">', page.html) == list(ROLES)
    assert page.ids["accounts-head"]["data-me"] == ADMIN
    # Each field's error goes next to it; the whole answer to an alert.
    for key in ("name", "role", "password"):
        assert page.ids[f"new-account-{key}-error"]["data-error-for"] == key
    assert page.ids["new-account-errors"]["role"] == "alert"
    assert page.ids["new-account-message"]["role"] == "status"


def test_my_account_asks_for_the_present_password_and_the_new_one_twice(therapist_client):
    _, page = _get(therapist_client, "/account", 200)
    assert page.form_fields["own-password"] == ["username", "current_password", "new_password", "new_password_again"]
    assert page.ids["own-password-name"]["value"] == "Dana" and "readonly" in page.ids["own-password-name"]
    for element_id, complete in (("own-password-current", "current-password"), ("own-password-new", "new-password"),
                                 ("own-password-again", "new-password")):
        assert page.ids[element_id]["type"] == "password"
        assert page.ids[element_id]["autocomplete"] == complete
    assert page.words("own-password-new-range") == f"{PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters"
    for key in ("current_password", "new_password", "new_password_again"):
        assert any(a.get("data-error-for") == key for a in page.ids.values()), key
    assert page.ids["own-password-errors"]["role"] == "alert"


def test_the_audit_page_filters_by_time_and_account_and_links_the_csv(admin_client):
    _, page = _get(admin_client, "/audit", 200)
    assert page.form_fields["audit-filters"] == ["since", "until", "user"]
    assert page.ids["audit-since"]["type"] == "datetime-local"
    assert page.ids["audit-until"]["type"] == "datetime-local"
    for key in ("since", "until", "user"):
        assert page.ids[f"audit-{key}-error"]["data-error-for"] == key
    csv_link = page.ids["audit-csv"]
    assert csv_link["href"] == f"/api/audit.csv?limit={MAX_PAGE_ROWS}"
    assert page.words("audit-csv") == "Download CSV"
    csv = admin_client.get(csv_link["href"])
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    assert page.ids["audit-chain-broken"]["role"] == "alert" and "hidden" in page.ids["audit-chain-broken"]
    assert page.ids["audit-older"]["type"] == "button" and "hidden" in page.ids["audit-older"]


@pytest.mark.parametrize("script", ["accounts.js", "account.js", "audit.js", "header.js"])
def test_every_api_path_a_page_script_asks_is_a_route_of_the_dashboard(app, script):
    text = (WEB / "static" / script).read_text()
    paths = set(re.findall(r"'(/api/[^'?]*)", text))
    rules = [r.rule for r in app.url_map.iter_rules()]
    assert paths
    for path in paths:
        # '/api/users/' + encodeURIComponent(name): a rule with a variable after the literal part.
        assert path in rules or (path.endswith("/") and any(r.startswith(path) and "<" in r for r in rules)), path


def test_a_csv_download_with_the_pages_filters_is_accepted(admin_client):
    response = admin_client.get("/api/audit.csv", query_string={"since": "2026-01-01T08:00:00.000Z",
                                                                "until": "2099-01-01T08:00:00.000Z",
                                                                "user": ADMIN, "limit": MAX_PAGE_ROWS})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.get_data(as_text=True).startswith("id,time,actor")


# --- the dashboard's login form --------------------------------------------------------------------

def test_the_dashboard_login_asks_for_your_account_name_and_password(client):
    _, page = _get(client, "/", 200)
    assert page.form_fields["login-form"] == ["csrf_token", "name", "password"]
    label = " ".join(page.html.split("<label>")[1].split("<input")[0].split())
    assert label == "Your account name"
    assert "own account" in page.words("login-hint")
    assert page.ids["login-name"]["autocomplete"] == "username"
    assert page.ids["login-name"]["aria-describedby"] == "login-hint"


def test_the_login_form_still_logs_in_by_name_and_password(client):
    response = client.post("/login", json={"name": "Dana", "password": "correct horse battery"},
                           headers=csrf_headers(client))
    assert response.status_code == 200
    assert response.get_json()["role"] == "therapist"


def test_no_page_or_script_speaks_of_a_shared_password_or_any_name():
    stale = re.compile(r"therapist password|any name|the password for everyone|shared password", re.IGNORECASE)
    files = sorted((WEB / "templates").glob("*.html")) + sorted((WEB / "static").glob("*.js"))
    assert [f.name for f in files if stale.search(f.read_text())] == []
