"""Every therapist page in the language asked for: ``?lang=``, then the browser's cookie, then ``[display] language``.

The pages are rendered in Simplified Chinese and read back: the page says ``<html lang="zh">``, its header's
E-STOP and Stop, the nav and its own heading are Chinese, no English label is left in those places, and the
page carries the Chinese of every message its scripts may show (``#script-catalog``).
"""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from tests.web.helpers import ADMIN, login
from web.clinic_overview import EXTENSION_KEY as CLINIC_READER
from web.i18n import LANGUAGE_COOKIE, script_messages

#: Void elements: they never close, so they never hold text.
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
#: The header's words on every page, in Chinese (the glossary of web/translations/zh/LC_MESSAGES/messages.po).
HEADER_ZH = {"estop": "急停", "stop": "停止", "nav-dashboard": "控制面板", "nav-patients": "患者"}
HEADER_EN = {"estop": "E-STOP", "stop": "Stop", "nav-dashboard": "Dashboard", "nav-patients": "Patients"}
#: Each page (the admin sees every one) and its heading's id and Chinese words.
PAGES = {
    "/": ("deck-title", "后边缘"),
    "/patients": ("patients-title", "患者"),
    "/patients/P01": ("charts-title", "进展"),
    "/sessions/7": ("timeline-title", "时间线"),
    "/accounts": ("accounts-title", "账户"),
    "/account": ("account-title", "我的账户"),
    "/audit": ("audit-title", "审计日志"),
    "/clinic": ("clinic-title", "诊所"),
}
#: The admin's nav links, shown to the admin on every page.
ADMIN_NAV_ZH = {"nav-accounts": "账户", "nav-audit": "审计", "nav-account": "我的账户"}


class TextParser(HTMLParser):
    """The page's language, each element's text by id, and the JSON data blocks."""

    def __init__(self):
        super().__init__()
        self.lang: str | None = None
        self.text: dict[str, str] = {}
        self.attrs: dict[str, dict] = {}
        self.data: dict[str, str] = {}
        self._open: list[str | None] = []
        self._data_id: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang")
        if tag == "script" and a.get("type") == "application/json":
            self._data_id = a["id"]
            self.data[self._data_id] = ""
        if "id" in a:
            self.attrs[a["id"]] = a
            self.text.setdefault(a["id"], "")
        if tag not in VOID:
            self._open.append(a.get("id"))

    def handle_endtag(self, tag):
        if tag == "script":
            self._data_id = None
        if tag not in VOID and self._open:
            self._open.pop()

    def handle_data(self, data):
        if self._data_id:
            self.data[self._data_id] += data
            return
        for element in self._open:
            if element:
                self.text[element] += data

    def words(self, element: str) -> str:
        return " ".join(self.text[element].split())


def _page(client, path: str, **kwargs) -> TextParser:
    response = client.get(path, **kwargs)
    assert response.status_code == 200, (path, response.status_code)
    parser = TextParser()
    parser.feed(response.get_data(as_text=True))
    return parser


@pytest.fixture
def clinic_admin(admin_client, fake):
    """The admin's client, with patient P01 on file (its page and session 7's answer 200 either way)."""
    with fake.lock:
        fake.therapy.add_patient("P01")
    return admin_client


@pytest.fixture
def admin_on(request, clinic_admin, fake, make_app):
    """The admin's client for a page: /clinic is served by a treadmill of a clinic record (a real PostgreSQL
    database, clinic_db), every other page by the plain treadmill of ``clinic_admin``."""
    readers = []

    def client_for(path: str):
        if path != "/clinic":
            return clinic_admin
        app = make_app(fake.socket_path, {"CLINIC": request.getfixturevalue("clinic_db").cfg("A")})
        readers.append(app.extensions[CLINIC_READER])
        client = app.test_client()
        login(client, ADMIN)
        return client

    try:
        yield client_for
    finally:
        for reader in readers:
            reader.close()


@pytest.mark.parametrize("path", sorted(PAGES))
def test_every_page_speaks_chinese_when_asked(admin_on, path):
    page = _page(admin_on(path), path, query_string={"lang": "zh"})
    assert page.lang == "zh"
    assert {i: page.words(i) for i in HEADER_ZH} == HEADER_ZH
    assert {i: page.words(i) for i in ADMIN_NAV_ZH} == ADMIN_NAV_ZH
    heading, words = PAGES[path]
    assert page.words(heading) == words
    # The switch names the language in itself and shows it chosen.
    assert page.attrs["language-switch"]["data-cookie"] == LANGUAGE_COOKIE
    # No English label is left in the header, the nav or the heading.
    for element in [*HEADER_ZH, *ADMIN_NAV_ZH, heading, "session-pause", "session-resume", "session-end"]:
        assert not any(c.isascii() and c.isalpha() for c in page.words(element)), (element, page.words(element))


def test_a_therapist_page_and_its_notice_speak_chinese_too(client, therapist_client):
    """A therapist's page in Chinese; the log-in notice (no login, 401) in Chinese as well."""
    page = _page(therapist_client, "/patients", query_string={"lang": "zh"})
    assert page.words("new-patient-title") == "新患者"
    assert page.words("nav-role") == "（治疗师）"
    fresh = therapist_client.application.test_client()
    response = fresh.get("/patients", query_string={"lang": "zh"})
    assert response.status_code == 401
    notice = TextParser()
    notice.feed(response.get_data(as_text=True))
    assert notice.lang == "zh"
    assert notice.words("notice-title") == "请先登录"
    assert notice.words("notice-dashboard") == "前往控制面板"


def test_the_forms_labels_and_choices_are_chinese(clinic_admin):
    """Labels from templates and macros (the profile form, the limits) and the translated role choices."""
    patients = _page(clinic_admin, "/patients", query_string={"lang": "zh"})
    assert patients.words("new-patient-submit") == "添加患者"
    html = clinic_admin.get("/patients", query_string={"lang": "zh"}).get_data(as_text=True)
    assert '<label for="new-patient_id">患者编号（诊所化名）</label>' in html
    assert '<label for="new-mode">模式</label>' in html
    dashboard = _page(clinic_admin, "/", query_string={"lang": "zh"})
    assert dashboard.words("limits-submit") == "应用限值"
    assert dashboard.words("reset") == "复位"
    assert dashboard.words("mode") == "倒退行走 向前行走"
    accounts = _page(clinic_admin, "/accounts", query_string={"lang": "zh"})
    assert accounts.words("new-account-role") == "治疗师管理员"
    assert accounts.words("new-account-role-range") == "可选：治疗师, 管理员"
    account = _page(clinic_admin, "/account", query_string={"lang": "zh"})
    assert account.words("account-role") == "管理员"


def test_the_browsers_cookie_picks_chinese(clinic_admin):
    clinic_admin.set_cookie(LANGUAGE_COOKIE, "zh")
    page = _page(clinic_admin, "/")
    assert page.lang == "zh"
    assert {i: page.words(i) for i in HEADER_ZH} == HEADER_ZH
    # ?lang= comes before the cookie: a kiosk address can pin its language.
    page = _page(clinic_admin, "/", query_string={"lang": "en"})
    assert page.lang == "en"
    assert {i: page.words(i) for i in HEADER_EN} == HEADER_EN


def test_an_unknown_language_falls_back_to_the_configured_one(clinic_admin, fake, make_app):
    page = _page(clinic_admin, "/", query_string={"lang": "xx"})
    assert page.lang == "en"
    assert {i: page.words(i) for i in HEADER_EN} == HEADER_EN
    assert json.loads(page.data["script-catalog"]) == {}
    # A clinic that chose Chinese ([display] language = "zh") gets it for an unknown ?lang= and an unknown cookie.
    chinese = make_app(fake.socket_path, {"DISPLAY_LANGUAGE": "zh"}).test_client()
    login(chinese, ADMIN)
    page = _page(chinese, "/", query_string={"lang": "xx"})
    assert page.lang == "zh"
    assert {i: page.words(i) for i in HEADER_ZH} == HEADER_ZH
    chinese.set_cookie(LANGUAGE_COOKIE, "klingon")
    assert _page(chinese, "/").lang == "zh"


@pytest.mark.parametrize("path", sorted(PAGES))
def test_the_script_catalog_translates_every_script_message(admin_on, path):
    """Each page carries the Chinese of every message the scripts may show: none missing, empty or English."""
    messages = script_messages()
    assert len(messages) > 100, "the scripts' messages were not found"
    page = _page(admin_on(path), path, query_string={"lang": "zh"})
    catalog = json.loads(page.data["script-catalog"])
    assert sorted(set(messages) - set(catalog)) == []
    assert sorted(m for m in messages if not catalog[m] or catalog[m] == m) == []


def test_the_state_words_the_banner_shows_are_in_the_catalog(clinic_admin):
    """The banner's words are written by header.js at run time: each state has its Chinese."""
    page = _page(clinic_admin, "/", query_string={"lang": "zh"})
    catalog = json.loads(page.data["script-catalog"])
    assert {state: catalog[state] for state in ("READY", "RUNNING", "STOPPED", "STOPPING", "WARNING", "OFFLINE")} == {
        "READY": "就绪", "RUNNING": "运行中", "STOPPED": "已停止", "STOPPING": "正在停止", "WARNING": "警告",
        "OFFLINE": "离线"}
