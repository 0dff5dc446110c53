"""The clinic overview in Chromium: two simulated treadmills, each a controller process with its replicator,
a real PostgreSQL server between them, and treadmill A's dashboard. A trip on B shows on the overview within
2 s of B's relay opening (its trip event's time), and the page goes grey when the record goes away."""

from __future__ import annotations

import secrets
import time

import pytest
from playwright.sync_api import expect

from sim.dashboard import free_port, spawn_dashboard, stop_process
from sim.bench import STALE_INPUT_TRIPS, wait_until
from sim.clinic import ClinicTreadmill
from tests.e2e.test_dashboard import log_in

VIEWPORT = {"width": 1280, "height": 800}
#: The issue's goal: a trip on one treadmill is on the overview within this long.
TRIP_SHOWN_WITHIN_S = 2.0


@pytest.fixture
def clinic_site(clinic_db, tmp_path, browser):
    """Treadmills A and B (controller and replicator processes each) and A's dashboard with one therapist."""
    from web.accounts import AccountStore
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    nodes, web = [], None
    try:
        a = ClinicTreadmill(tmp_path / "A", clinic_db.cfg("A", dashboard_url=url), max_backoff_s=1.0).start()
        nodes.append(a)
        b = ClinicTreadmill(tmp_path / "B", clinic_db.cfg("B", dashboard_url="http://127.0.0.1:9/"),
                            max_backoff_s=1.0).start()
        nodes.append(b)
        password = secrets.token_urlsafe(12)
        AccountStore(tmp_path / "A" / "web").add("ann", "therapist", password)
        web = spawn_dashboard(port, str(a.socket), tmp_path / "A" / "web", config=a.config)
        assert web is not None, "A's dashboard did not start"
        yield url, password, a, b, clinic_db
    finally:
        if web is not None:
            stop_process(web)
        for node in nodes:
            node.stop()
        if not clinic_db.server.running:
            clinic_db.server.start()


def drift_b_to_the_edge(b: ClinicTreadmill, page) -> dict:
    """B's belt runs (its row says so), then its patient is carried to the edge; B's stop-zone trip event.

    A stall of this shared machine may open B's watchdog relay (a standing belt under RUNNING) or trip it on a
    stale input first: then, as a therapist would, the simulation recovers and it goes again (twice at most)."""
    for _ in range(3):
        assert b.reset(), b.status()["reasons"]
        b.command("start", 1.0)
        if not wait_until(lambda: b.status()["belt_speed_mps"] > 0.2, 10.0, poll_s=0.05):
            continue
        expect(page.locator("#clinic-row-B td.clinic-state")).to_have_attribute("data-state", "RUNNING",
                                                                               timeout=10_000)
        before = b.status()["trip_count"]
        b.call("demo", {"action": "drift_back"})
        if not wait_until(lambda: b.status()["trip_count"] > before, 10.0, poll_s=0.05):
            continue
        trip = b.call("events", {"kind": "trip", "limit": 1})[0]
        if trip["code"] == "stop_zone":
            return trip
        assert trip["code"].startswith(STALE_INPUT_TRIPS), trip
    pytest.fail("three machine stalls in a row spoiled B's drift to the edge")


def test_the_overview_shows_both_treadmills_and_a_trip_on_one_within_2_s(clinic_site, browser, tmp_path):
    url, password, a, b, db = clinic_site
    assert a.reset(), "A stands READY beside B"
    page = log_in(browser, url, "ann", password, VIEWPORT)
    try:
        expect(page.locator("#nav-clinic")).to_be_visible()
        page.click("#nav-clinic")
        for tid in ("A", "B"):
            expect(page.locator(f"#clinic-row-{tid}")).to_have_attribute("data-live", "1", timeout=20_000)
        expect(page.locator("#clinic-row-A .clinic-this")).to_be_visible()
        expect(page.locator("#clinic-row-A a.clinic-dashboard-link")).to_have_attribute("href", url)
        expect(page.locator("#clinic-row-B td.clinic-replication")).to_have_attribute("data-current", "1")

        page.evaluate("""() => {
            window.__rowB = [];
            const note = () => {
                const cell = document.querySelector('#clinic-row-B td.clinic-last-trip');
                const state = document.querySelector('#clinic-row-B td.clinic-state');
                if (cell && state) window.__rowB.push({t: Date.now() / 1000, trip: cell.dataset.tripWall || null,
                                                      state: state.dataset.state || null});
            };
            new MutationObserver(note).observe(document.querySelector('#clinic-table tbody'),
                                               {childList: true, subtree: true, attributes: true});
        }""")
        trip = drift_b_to_the_edge(b, page)
        # The row's trip time is the status that first counted the trip: within a push of the event's.
        assert wait_until(lambda: any(r["trip"] and abs(float(r["trip"]) - trip["wall_time"]) < 0.5
                                      for r in page.evaluate("window.__rowB") if r["state"] == "STOPPED"),
                          5.0, poll_s=0.05), page.evaluate("window.__rowB")[-3:]
        shown = next(r for r in page.evaluate("window.__rowB") if r["state"] == "STOPPED" and r["trip"]
                     and abs(float(r["trip"]) - trip["wall_time"]) < 0.5)
        delay = shown["t"] - trip["wall_time"]
        print(f"\ntrip on B -> shown on A's overview: {delay * 1000:.0f} ms")
        assert 0 <= delay <= TRIP_SHOWN_WITHIN_S
        expect(page.locator("#clinic-row-B .clinic-trip-reason")).not_to_be_empty()
        expect(page.locator("#clinic-row-A")).to_have_attribute("data-live", "1")
        page.screenshot(path=str(tmp_path / "clinic-overview.png"))

        # The record goes away: within a few seconds nothing on the page claims to be live.
        db.server.stop()
        went = time.monotonic()
        expect(page.locator("#clinic-overview")).to_have_attribute("data-state", "unreachable", timeout=6_000)
        expect(page.locator("#clinic-row-B")).to_have_attribute("data-live", "0")
        assert time.monotonic() - went <= 6.0
        db.server.start()
        expect(page.locator("#clinic-row-B")).to_have_attribute("data-live", "1", timeout=20_000)
    finally:
        page.close()
