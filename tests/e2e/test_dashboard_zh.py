"""The dashboard in Simplified Chinese in a real browser against the demo: the language switch keeps the choice
in a cookie and reloads the page; the header, the nav, the panels and the words the page scripts write at run
time (the state banner, the mode, the link and the relay, a range hint on the patients page) are Chinese, with
no English label left in them; switching back gives English again.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.test_dashboard import log_in
from web.i18n import LANGUAGE_COOKIE

TABLET = {"width": 1024, "height": 768}
#: The banner's words in Chinese (header.js writes them from the controller's state).
STATE_ZH = re.compile(r"^(就绪|运行中|已停止|正在停止|警告|离线)$")
STATE_EN = re.compile(r"^(READY|RUNNING|STOPPED|STOPPING|WARNING|OFFLINE)$")
#: Labels the templates write, by element id.
STATIC_ZH = {"estop": "急停", "stop": "停止", "nav-dashboard": "控制面板", "nav-patients": "患者",
             "nav-account": "我的账户", "deck-title": "后边缘", "speed-title": "跑带", "therapy-title": "训练",
             "limits-title": "限值", "events-title": "事件", "logout": "退出登录", "reset": "复位",
             "limits-submit": "应用限值", "session-start": "开始训练"}
#: Labels the page scripts write at run time: any of these words, by element id.
LIVE_ZH = {"state-banner": STATE_ZH, "mode-label": re.compile(r"^(倒退行走|向前行走)$"),
           "link-state": re.compile(r"^(正常|已断开)$"),
           "relay-state": re.compile(r"^(闭合：跑带可以运行|断开：跑带无法运行)$")}


def _has_english(text: str) -> bool:
    return bool(re.search(r"[A-Za-z]", text))


@pytest.fixture
def page(demo, browser):
    """A fresh browser context (no language cookie), logged in on the dashboard."""
    url, password = demo
    page = log_in(browser, url, demo.user, password, TABLET)
    yield page
    page.context.close()


def _switch(page, language: str) -> None:
    """Choose ``language`` in the nav's switch: it sets the cookie and loads the page again."""
    with page.expect_navigation(timeout=10_000):
        page.select_option("#language-switch", language)
    expect(page.locator("html")).to_have_attribute("lang", language, timeout=5_000)


def test_the_language_switch_shows_the_dashboard_in_chinese_and_back(demo, page):
    url, _password = demo
    expect(page.locator("#estop")).to_have_text("E-STOP")
    expect(page.locator("#state-banner")).to_have_text(STATE_EN, timeout=10_000)

    _switch(page, "zh")
    assert {c["name"]: c["value"] for c in page.context.cookies()}[LANGUAGE_COOKIE] == "zh"
    assert page.url == url, "the switch reloads the same page without ?lang="
    for element, words in STATIC_ZH.items():
        expect(page.locator("#" + element)).to_have_text(words, timeout=5_000)
    for element, words in LIVE_ZH.items():
        expect(page.locator("#" + element)).to_have_text(words, timeout=10_000)
    texts = {element: page.locator("#" + element).inner_text().strip() for element in [*STATIC_ZH, *LIVE_ZH]}
    assert {element: text for element, text in texts.items() if _has_english(text)} == {}
    # The switch shows the chosen language; each language is named in itself.
    assert page.locator("#language-switch").input_value() == "zh"
    assert page.locator("#language-switch option[value=en]").inner_text() == "English"

    # The cookie carries the choice to the next page: the patients page, with a range hint its script writes.
    page.goto(url + "patients")
    expect(page.locator("html")).to_have_attribute("lang", "zh")
    expect(page.locator("#patients-title")).to_have_text("患者")
    expect(page.locator("#new-patient-submit")).to_have_text("添加患者")
    hint = page.locator("#new-speed_cap_kmh-range")
    expect(hint).to_contain_text("到", timeout=5_000)
    assert not re.search(r"\b(to|in|mode)\b", hint.inner_text()), hint.inner_text()

    # And back to English, on the dashboard.
    page.goto(url)
    _switch(page, "en")
    expect(page.locator("#estop")).to_have_text("E-STOP")
    expect(page.locator("#nav-dashboard")).to_have_text("Dashboard")
    expect(page.locator("#state-banner")).to_have_text(STATE_EN, timeout=10_000)
    expect(page.locator("#mode-label")).to_have_text(re.compile(r"^(reverse|forward) walking$"), timeout=5_000)
