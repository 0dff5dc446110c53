"""Every page as a therapist sees it on a tablet and a phone: the header with E-STOP always in view, no
sideways scrolling, touch targets of 44 px, no serious accessibility violation (axe-core), and, under
scripted faults, unknown values shown as "--" and no message that contradicts the state.

Screenshots of every page at every size are saved under build/e2e-screenshots/ (a CI artefact).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.e2e.test_dashboard import ensure_ready, expect_state, reset_until_running_again, status_of
from sim.bench import wait_until
from tests.hil.helpers import ENVIRONMENT_TRIPS

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "e2e-screenshots"
VIEWPORTS = {"tablet-landscape": {"width": 1024, "height": 768}, "tablet-portrait": {"width": 768, "height": 1024},
             "phone": {"width": 390, "height": 844}}
PATIENT = "E2E-LAYOUT"
#: The header may cover about a quarter of the screen, never more.
HEADER_SHARE = 0.27

# Everything a finger can act on, as the page shows it now.
TAPPABLE = """() => {
  const sel = 'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]:not([tabindex="-1"])';
  return Array.from(document.querySelectorAll(sel)).filter((el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden';
  }).map((el) => { const r = el.getBoundingClientRect();
    return { what: el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' "' + (el.textContent || el.name || '')
      .trim().slice(0, 30) + '"', w: r.width, h: r.height }; });
}"""

LAYOUT = """() => {
  const top = document.querySelector('#top').getBoundingClientRect();
  const estop = document.querySelector('#estop').getBoundingClientRect();
  return { scrollWidth: document.documentElement.scrollWidth, innerWidth, innerHeight,
           header: top.height, estopTop: estop.top, estopBottom: estop.bottom, estopHeight: estop.height };
}"""


def _pages(url: str, session_id: int) -> dict[str, str]:
    return {"dashboard": url, "patients": url + "patients", "patient": url + f"patients/{PATIENT}",
            "session": url + f"sessions/{session_id}"}


@pytest.fixture(scope="module")
def therapist(demo, browser):
    """One logged-in browser context for the module (logins are rate-limited per address)."""
    url, password = demo
    context = browser.new_context(viewport=VIEWPORTS["tablet-landscape"])
    page = context.new_page()
    page.goto(url)
    page.fill("#login-name", demo.user)
    page.fill("#login-password", password)
    page.click("#login-submit")
    expect(page.locator("#logout")).to_be_visible(timeout=5_000)
    page.close()
    yield context
    context.close()


def new_page(context, url: str, viewport: str):
    """A page of the logged-in context, at one of the VIEWPORTS, on the dashboard."""
    page = context.new_page()
    page.set_viewport_size(VIEWPORTS[viewport])
    page.goto(url)
    expect(page.locator("#logout")).to_be_visible(timeout=5_000)
    return page


@pytest.fixture(scope="module")
def session_id(demo, therapist):
    """A patient and one short session of theirs, started and ended with the header's End."""
    url, _ = demo
    page = new_page(therapist, url, "tablet-landscape")
    page.goto(url + "patients")
    form = page.locator("#new-patient")
    for name, value in (("patient_id", PATIENT), ("display_name", "L.O."), ("speed_cap_kmh", "1.5"),
                        ("base_stop_mm", "250"), ("warn_margin_mm", "200"), ("target_min", "20"),
                        ("sessions_per_day", "2")):
        form.locator(f"[name={name}]").fill(value)
    page.click("#new-patient-submit")
    expect(page.locator("#patients-table")).to_contain_text(PATIENT, timeout=5_000)
    page.goto(url)
    expect(page.locator("#logout")).to_be_visible(timeout=5_000)
    ensure_ready(page, url)
    page.select_option("#patient-select", PATIENT)
    page.wait_for_function(f"() => fetch('/api/status').then(r => r.json())"
                           f".then(s => s.selected_patient === '{PATIENT}')", timeout=5_000)
    # The start speed is shown before the start, never the patient's cap by default.
    expect(page.locator("#session-speed")).not_to_have_value("", timeout=5_000)
    assert float(page.input_value("#session-speed")) < 1.5, "a first session starts below the patient's cap"
    page.fill("#session-planned", "5")
    page.fill("#session-pain-before", "2")
    ensure_ready(page, url)
    page.click("#session-start")
    expect(page.locator("#header-session")).to_be_visible(timeout=5_000)
    sid = status_of(url)["session"]["session_id"]
    expect(page.locator("#session-timer")).not_to_have_text("--:-- / --:--", timeout=5_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / "session-dashboard-tablet.png"))
    # The session's timer and End are in the header of every page: end it from the patient's page.
    page.goto(url + f"patients/{PATIENT}")
    expect(page.locator("#header-session")).to_be_visible(timeout=5_000)
    expect(page.locator("#sessions-table tbody tr")).to_have_count(1, timeout=5_000)
    page.screenshot(path=str(SCREENSHOTS / "session-patient-tablet.png"))
    expect(page.locator("#session-end")).to_be_enabled(timeout=5_000)
    page.click("#session-end")
    page.wait_for_function("() => fetch('/api/status').then(r => r.json()).then(s => !s.session)", timeout=20_000)
    expect(page.locator("#header-session")).to_be_hidden(timeout=5_000)
    page.close()
    return sid


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_every_page_fits_keeps_estop_in_view_and_has_big_targets(demo, therapist, session_id, viewport):
    url, _ = demo
    page = new_page(therapist, url, viewport)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems = []
    for name, address in _pages(url, session_id).items():
        page.goto(address)
        expect(page.locator("#state-banner")).not_to_have_text("--", timeout=5_000)
        page.wait_for_load_state("networkidle")
        layout = page.evaluate(LAYOUT)
        if layout["scrollWidth"] > layout["innerWidth"]:
            problems.append(f"{name}: {layout['scrollWidth']} px wide in a {layout['innerWidth']} px viewport")
        if not (0 <= layout["estopTop"] and layout["estopBottom"] <= layout["innerHeight"]):
            problems.append(f"{name}: E-STOP not in view at the top ({layout})")
        if layout["header"] > HEADER_SHARE * layout["innerHeight"]:
            problems.append(f"{name}: header {layout['header']:.0f} px of {layout['innerHeight']} px")
        small = [t for t in page.evaluate(TAPPABLE) if t["w"] < 44 - 0.5 or t["h"] < 44 - 0.5]
        problems += [f"{name}: {t['what']} is {t['w']:.0f}x{t['h']:.0f} px" for t in small]
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{viewport}.png"))
        # Scrolled to the bottom, E-STOP is still on screen (the header is sticky).
        page.evaluate("() => window.scrollTo(0, document.documentElement.scrollHeight)")
        layout = page.evaluate(LAYOUT)
        if not (0 <= layout["estopTop"] and layout["estopBottom"] <= layout["innerHeight"]):
            problems.append(f"{name}: E-STOP scrolled away ({layout})")
    page.close()
    assert problems == []


def test_keyboard_focus_is_never_hidden_under_the_header(demo, therapist, session_id):
    url, _ = demo
    page = new_page(therapist, url, "phone")
    hidden = []
    for address in (url, url + f"patients/{PATIENT}"):
        page.goto(address)
        page.wait_for_load_state("networkidle")
        for _ in range(40):
            page.keyboard.press("Tab")
            where = page.evaluate("""() => { const el = document.activeElement;
              const top = document.querySelector('#top');
              if (!el || el === document.body || top.contains(el)) return null;
              const r = el.getBoundingClientRect();
              // Hidden: the header is what shows at the element's top edge.
              const over = document.elementFromPoint(r.left + Math.min(r.width / 2, 20), Math.max(0, r.top + 2));
              return { id: el.id || el.tagName, top: r.top, covered: Boolean(over && top.contains(over)) }; }""")
            if where and where["covered"]:
                hidden.append(where)
    page.close()
    assert hidden == []


def test_no_serious_or_critical_accessibility_violation_on_any_page(demo, therapist, session_id):
    url, _ = demo
    axe = Axe()
    page = new_page(therapist, url, "tablet-landscape")
    found = {}
    for name, address in _pages(url, session_id).items():
        page.goto(address)
        expect(page.locator("#state-banner")).not_to_have_text("--", timeout=5_000)
        page.wait_for_load_state("networkidle")
        violations = axe.run(page).response["violations"]
        serious = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in violations
                   if v["impact"] in ("serious", "critical")]
        if serious:
            found[name] = serious
    page.close()
    assert found == {}


# ---- scripted faults -----------------------------------------------------------------------------

#: Messages that claim a state; each must agree with the banner it sits under.
CONTRADICTS = """() => {
  const banner = document.querySelector('#state-banner').textContent.trim();
  const shown = Array.from(document.querySelectorAll('#stop-message, #header-message, #command-message'))
    .filter((el) => !el.hidden).map((el) => el.textContent.trim()).filter(Boolean);
  const bad = [];
  for (const text of shown) {
    if (/NOT DELIVERED/.test(text) && banner === 'STOPPED') bad.push(text);
    if (/^E-STOP: stopped/.test(text) && banner !== 'STOPPED') bad.push(text);
    if (/^Stop: stopping/.test(text) && banner === 'RUNNING') bad.push(text);
    if (/^ready$/.test(text) && banner !== 'READY') bad.push(text);
  }
  return { banner, shown, bad };
}"""


def _no_contradiction(page) -> dict:
    seen = page.evaluate(CONTRADICTS)
    assert seen["bad"] == [], seen
    return seen


def _demo(page, action: str) -> None:
    with page.expect_response(f"**/api/demo/{action}") as response:
        page.click(f"#demo-{action.replace('_', '-')}")
    assert response.value.status == 200, response.value.text()


def _start(page, url: str) -> None:
    reset_until_running_again(page, url, allowed=ENVIRONMENT_TRIPS + ("estop_command", "link_fault", "belt_stale",
                                                                      "sensor_fault", "sensor_stale"))
    ensure_ready(page, url)
    expect(page.locator("#start")).to_be_enabled(timeout=5_000)
    page.click("#start")
    expect_state(page, url, "RUNNING", 5_000)
    page.wait_for_function("() => document.querySelector('#belt-speed').textContent !== '--'", timeout=5_000)


def test_unplugged_cable_shows_the_speed_as_unknown_and_the_reason_in_plain_words(demo, therapist):
    url, _ = demo
    page = new_page(therapist, url, "tablet-landscape")
    _start(page, url)
    _demo(page, "unplug_treadmill")
    expect_state(page, url, "STOPPED", 5_000)
    expect(page.locator("#belt-speed")).to_have_text("--", timeout=5_000)
    expect(page.locator("#state-reasons")).to_contain_text("treadmill", timeout=5_000)
    # The plain sentence, with the technical message only behind "details".
    reasons = page.locator("#state-reasons summary").inner_text()
    assert "Reset" in reasons and "Errno" not in reasons and "_" not in reasons, reasons
    _no_contradiction(page)
    page.screenshot(path=str(SCREENSHOTS / "fault-cable-unplugged.png"))
    _demo(page, "recover")
    reset_until_running_again(page, url, allowed=ENVIRONMENT_TRIPS + ("link_fault", "belt_stale"))
    expect(page.locator("#belt-speed")).not_to_have_text("--", timeout=5_000)
    _no_contradiction(page)
    page.close()


def test_unplugged_sensor_reads_as_a_plain_sentence_naming_the_sensor(demo, therapist):
    url, _ = demo
    page = new_page(therapist, url, "phone")
    _start(page, url)
    _demo(page, "unplug_sensor")
    expect_state(page, url, "STOPPED", 5_000)
    expect(page.locator("#state-reasons summary")).to_contain_text("distance sensor", timeout=5_000)
    summary = page.locator("#state-reasons summary").inner_text()
    assert "OSError" not in summary and "0x" not in summary, summary
    # One line, however long the technical reasons are.
    line = page.evaluate("() => document.querySelector('#state-reasons summary').getBoundingClientRect().height")
    assert line <= 48, line
    header = page.evaluate("() => document.querySelector('#top').getBoundingClientRect().height")
    assert header <= HEADER_SHARE * VIEWPORTS["phone"]["height"], header
    _no_contradiction(page)
    page.screenshot(path=str(SCREENSHOTS / "fault-sensor-unplugged-phone.png"))
    _demo(page, "recover")
    page.close()


def test_frozen_controller_shows_offline_then_judges_the_undelivered_estop_again(demo, therapist):
    url, _ = demo
    page = new_page(therapist, url, "tablet-landscape")
    _demo(page, "recover")
    _start(page, url)
    os.kill(demo.pid, signal.SIGSTOP)
    try:
        frozen_at = time.monotonic()
        expect(page.locator("#state-banner")).to_have_text("OFFLINE", timeout=5_000)
        expect(page.locator("#belt-speed")).to_have_text("--")
        expect(page.locator("#gap-mm")).to_have_text("--")
        page.click("#estop")
        expect(page.locator("#stop-message")).to_contain_text("NOT DELIVERED", timeout=5_000)
        # The controller stays frozen for 5 s in all.
        assert wait_until(lambda: time.monotonic() - frozen_at >= 5.0, 10.0)
    finally:
        os.kill(demo.pid, signal.SIGCONT)
    # Back: the belt was stopped (the late E-stop, or the stale inputs tripped it); the message says so now.
    expect_state(page, url, "STOPPED", 10_000)
    expect(page.locator("#stop-message")).not_to_contain_text("NOT DELIVERED", timeout=2_000)
    _no_contradiction(page)
    page.close()
