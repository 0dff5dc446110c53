"""The history charts in headless Chromium: readable labels at phone and tablet widths, m:ss time axes,
the stop and warn bands, sessions of one day apart, and no chart wider than the screen.

The pure helpers of web/static/charts.js are checked in a blank page (no demo needed); the charts
themselves on the demo, after two short sessions of one patient on the same day.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests.e2e.test_dashboard import ensure_ready, log_in

CHARTS_JS = Path(__file__).resolve().parents[2] / "web" / "static" / "charts.js"
#: Loaded before charts.js, as on every page: its _() (web/static/i18n.js).
I18N_JS = CHARTS_JS.with_name("i18n.js")
PHONE = {"width": 390, "height": 844}
TABLET = {"width": 1024, "height": 768}
PID = "E2E-CHARTS"


def test_chart_helpers_format_mm_ss_and_choose_fewer_ticks_on_narrow_charts(browser):
    page = browser.new_page()
    page.set_content("<!doctype html><svg xmlns='http://www.w3.org/2000/svg'></svg>")
    page.add_script_tag(path=str(I18N_JS))
    page.add_script_tag(path=str(CHARTS_JS))
    got = page.evaluate("""() => {
        const C = window.Charts;
        const day = (t) => new Date(t * 1000).toDateString();
        return {
            mmss: [0, 0.4, 9, 59.6, 60, 75, 600, 3599, 4500, -3, null].map(C.mmss),
            phone: C.timeTicks(15, C.maxTicks(300, 72)),
            tablet: C.timeTicks(15, C.maxTicks(870, 72)),
            hour: C.timeTicks(3600, C.maxTicks(300, 72)),
            order: [...C.sessionOrder([{x: 200, key: 2}, {x: 100, key: 1}, {x: 200, key: 3}, {x: 100, key: 1}])
                     .index.entries()],
            // Two sessions on each of two days 30 ticks apart: labelled once a day; too close: the later skipped.
            labels: C.dateLabelIndexes([0, 3600, 86400, 90000], 1, day),
            crowded: C.dateLabelIndexes([0, 86400, 2 * 86400, 3 * 86400], 2, day),
        };
    }""")
    assert got["mmss"] == ["0:00", "0:00", "0:09", "1:00", "1:00", "1:15", "10:00", "59:59", "75:00", "0:00",
                           "0:00"]
    # 300 px holds 4 labels of 72 px: every 5 s of 15 s, every 20 min of an hour; 870 px holds 12: every 2 s.
    assert got["phone"] == [0, 5, 10, 15]
    assert got["tablet"] == [0, 2, 4, 6, 8, 10, 12, 14]
    assert got["hour"] == [0, 1200, 2400, 3600]
    assert got["order"] == [[1, 0], [2, 1], [3, 2]]
    assert got["labels"] == [0, 2]
    assert got["crowded"] == [0, 2]
    page.close()


def short_session(page, url: str) -> int:
    """Start a session of PID, walk about 4 s, end it; its session id."""
    ensure_ready(page, url)
    reply = page.evaluate("""(pid) => window.Requests.send('POST', '/api/sessions',
        {patient_id: pid, planned_min: 1, pain_before: 2})""", PID)
    assert reply["ok"], reply
    sid = reply["body"]["session"]["session_id"]
    # About 4 s of walking (the session's own clock), then the end and its ramp-down.
    page.wait_for_function("() => fetch('/api/status').then(r => r.json())"
                           ".then(s => s.session && s.session.elapsed_s >= 4)", timeout=15_000)
    reply = page.evaluate("() => window.Requests.send('POST', '/api/sessions/current/end', {})")
    assert reply["ok"], reply
    page.wait_for_function("() => fetch('/api/status').then(r => r.json()).then(s => !s.session)", timeout=30_000)
    return sid


# Every <text> of a chart: its font size on screen (computed size x the SVG's scale), and the
# bounding boxes of the time labels; the page's width against the viewport's.
MEASURE = """(id) => {
    const svg = document.getElementById(id);
    const scale = svg.getScreenCTM().a;
    const texts = [...svg.querySelectorAll('text')];
    const xTicks = [...svg.querySelectorAll('text.x-tick')].map((t) => {
        const r = t.getBoundingClientRect();
        return {text: t.textContent, left: r.left, right: r.right};
    });
    return {
        sizes: texts.map((t) => parseFloat(getComputedStyle(t).fontSize) * scale),
        onScreen: texts.map((t) => t.getBoundingClientRect().height),
        xTicks,
        viewBoxWidth: svg.viewBox.baseVal.width,
        clientWidth: svg.getBoundingClientRect().width - 2 * svg.clientLeft,
        right: svg.getBoundingClientRect().right,
        scrollWidth: document.documentElement.scrollWidth,
        innerWidth: window.innerWidth,
        stopBand: (svg.querySelector('path.band-stop') || {getAttribute: () => ''}).getAttribute('d'),
        warnBand: (svg.querySelector('path.band-warn') || {getAttribute: () => ''}).getAttribute('d'),
        dots: [...svg.querySelectorAll('circle.dot.walked')].map((c) => c.getAttribute('cx')),
    };
}"""


def check_readable(m: dict, where: str) -> None:
    assert m["sizes"] and min(m["sizes"]) >= 11.99, f"{where}: text sizes {m['sizes']}"
    assert min(m["onScreen"]) >= 12, f"{where}: text boxes {m['onScreen']}"
    assert abs(m["viewBoxWidth"] - m["clientWidth"]) <= 1, f"{where}: viewBox {m['viewBoxWidth']} vs {m['clientWidth']}"
    ticks = sorted(m["xTicks"], key=lambda t: t["left"])
    assert len(ticks) >= 2, f"{where}: time labels {ticks}"
    assert all(a["right"] <= b["left"] for a, b in zip(ticks, ticks[1:])), f"{where}: labels overlap: {ticks}"
    assert m["right"] <= m["innerWidth"], f"{where}: the chart ends at {m['right']} px in {m['innerWidth']}"
    assert m["scrollWidth"] <= m["innerWidth"], f"{where}: page {m['scrollWidth']} px wide in {m['innerWidth']}"


def test_the_timeline_and_the_progress_charts_are_readable_on_a_phone_and_a_tablet(demo, browser):
    url, password = demo
    page = log_in(browser, url, demo.user, password, TABLET)
    reply = page.evaluate("""(pid) => window.Requests.send('POST', '/api/patients', {patient_id: pid,
        display_name: 'C.', notes: '', mode: 'reverse', speed_cap_kmh: 1.5, base_stop_mm: 250,
        warn_margin_mm: 200, target_min: 20, sessions_per_day: 2})""", PID)
    assert reply["ok"], reply
    first, second = short_session(page, url), short_session(page, url)

    page.goto(f"{url}sessions/{second}")
    for size, name in ((TABLET, "tablet"), (PHONE, "phone")):
        page.set_viewport_size(size)
        expect(page.locator("#timeline-note")).to_contain_text("samples", timeout=10_000)
        page.wait_for_function("(w) => Math.abs(document.getElementById('timeline').viewBox.baseVal.width -"
                               " document.getElementById('timeline').clientWidth) <= 1 && innerWidth === w"
                               " && document.querySelector('#timeline text.x-tick')",
                               arg=size["width"], timeout=5_000)
        m = page.evaluate(MEASURE, "timeline")
        check_readable(m, f"timeline, {name}")
        assert all(t["text"].count(":") == 1 and t["text"].split(":")[1].isdigit() and
                   len(t["text"].split(":")[1]) == 2 and t["text"].split(":")[0].isdigit() for t in m["xTicks"]), \
            m["xTicks"]
        assert m["stopBand"].startswith("M") and m["warnBand"].startswith("M"), (m["stopBand"], m["warnBand"])

    page.goto(f"{url}patients/{PID}")
    expect(page.locator("#chart-duration circle.dot.walked")).to_have_count(2, timeout=10_000)
    for size, name in ((PHONE, "phone"), (TABLET, "tablet")):
        page.set_viewport_size(size)
        page.wait_for_function("(w) => innerWidth === w && [...document.querySelectorAll('.chart-svg')].every("
                               "(s) => Math.abs(s.viewBox.baseVal.width - s.clientWidth) <= 1)",
                               arg=size["width"], timeout=5_000)
        for chart in ("chart-duration", "chart-pain", "chart-closest"):
            m = page.evaluate(MEASURE, chart)
            assert m["sizes"] and min(m["sizes"]) >= 11.99, f"{chart}, {name}: {m['sizes']}"
            assert m["right"] <= m["innerWidth"], f"{chart}, {name}: ends at {m['right']} in {m['innerWidth']}"
            assert m["scrollWidth"] <= m["innerWidth"], \
                f"patient page, {name}: {m['scrollWidth']} px wide in {m['innerWidth']}"
        dots = page.evaluate(MEASURE, "chart-duration")["dots"]
        assert len(set(dots)) == 2, f"two sessions of one day share an x: {dots} ({first}, {second})"
    page.close()
