"""The clinic overview (/clinic, /api/clinic/overview) against a real PostgreSQL server.

Rows are written into ``live_status`` as a replicator would; the overview reads them with their age on the
server's clock. A stopped server is answered 503 ``clinic_unreachable`` within the page's patience.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.web.helpers import login, parse_page
from web.clinic_overview import APPLICATION_NAME, EXTENSION_KEY, LIVE_MAX_AGE_S

#: The overview's promise: an answer, good or 503, within about 2 s; the tests allow 3.
ANSWER_WITHIN_S = 3.0


@pytest.fixture
def clinic_app(fake, make_app, clinic_db):
    """The dashboard of treadmill A, a treadmill of the clinic record ``clinic_db``; its reader closed after."""
    app = make_app(fake.socket_path, {"CLINIC": clinic_db.cfg("A")})
    try:
        yield app
    finally:
        app.extensions[EXTENSION_KEY].close()


@pytest.fixture
def watcher(clinic_app):
    """A logged-in therapist's client of treadmill A's dashboard."""
    client = clinic_app.test_client()
    login(client)
    return client


def put_row(clinic_db, treadmill_id: str, *, age_s: float = 0.0, **values) -> None:
    """Upsert a live_status row as a replicator does; ``age_s`` sets updated_at that far in the server's past."""
    columns = {"state": "READY", **values}
    for key in ("reasons", "last_trip_reasons"):
        if key in columns:
            columns[key] = json.dumps(columns[key])
    names = ["treadmill_id", *columns]
    sql = (f"INSERT INTO live_status ({', '.join(names)}, updated_at) "
           f"VALUES ({', '.join(['%s'] * len(names))}, clock_timestamp() - make_interval(secs => %s)) "
           f"ON CONFLICT (treadmill_id) DO UPDATE SET "
           + ", ".join(f"{name} = EXCLUDED.{name}" for name in [*columns, "updated_at"]))
    with clinic_db.connect() as conn:
        conn.execute(sql, [treadmill_id, *columns.values(), age_s])
        conn.commit()


def overview(client) -> dict:
    response = client.get("/api/clinic/overview")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["ok"] is True
    return body


def by_id(body: dict) -> dict[str, dict]:
    return {t["treadmill_id"]: t for t in body["treadmills"]}


def test_rows_in_live_status_show_up_with_their_figures(watcher, clinic_db):
    trip_wall = time.time() - 120
    put_row(clinic_db, "A", dashboard_url="https://treadmill-a.clinic.lan", state="RUNNING", warning=True,
            belt_kmh=1.2, patient_id="P01", session_id=7, session_phase="walking", session_elapsed_s=65.0,
            session_planned_s=600.0, trip_count=2, last_trip_wall=trip_wall, last_trip_reasons=["gap_stop"])
    put_row(clinic_db, "B", state="STOPPED", reasons=["estop"])
    body = overview(watcher)
    assert [t["treadmill_id"] for t in body["treadmills"]] == ["A", "B"]
    assert abs(body["server_time"] - time.time()) < 5
    a, b = by_id(body)["A"], by_id(body)["B"]
    assert {key: a[key] for key in ("dashboard_url", "state", "warning", "belt_kmh", "patient_id", "session_id",
                                    "session_phase", "session_elapsed_s", "session_planned_s", "trip_count",
                                    "last_trip_reasons")} == {
        "dashboard_url": "https://treadmill-a.clinic.lan", "state": "RUNNING", "warning": True, "belt_kmh": 1.2,
        "patient_id": "P01", "session_id": 7, "session_phase": "walking", "session_elapsed_s": 65.0,
        "session_planned_s": 600.0, "trip_count": 2, "last_trip_reasons": ["gap_stop"]}
    assert a["last_trip_wall"] == pytest.approx(trip_wall)
    assert a["this"] is True and b["this"] is False
    assert b["state"] == "STOPPED" and b["reasons"] == ["estop"] and b["patient_id"] is None
    assert b["session_id"] is None and b["last_trip_wall"] is None and b["dashboard_url"] == ""
    for row in (a, b):
        assert row["live"] is True and 0 <= row["age_s"] <= LIVE_MAX_AGE_S
        assert row["replication_current"] is True and row["outbox_backlog"] == 0


def test_no_treadmill_yet_is_an_empty_list(watcher):
    body = overview(watcher)
    assert body["treadmills"] == [] and isinstance(body["server_time"], float)


def test_a_row_not_updated_for_10_s_reads_not_live(watcher, clinic_db):
    put_row(clinic_db, "A")
    put_row(clinic_db, "B", age_s=10.0, state="RUNNING")
    rows = by_id(overview(watcher))
    assert rows["A"]["live"] is True
    assert rows["B"]["live"] is False and rows["B"]["age_s"] >= 10.0


def test_replication_is_behind_while_an_old_row_waits_in_the_outbox(watcher, clinic_db):
    now = overview(watcher)["server_time"]
    put_row(clinic_db, "A", outbox_backlog=0)
    put_row(clinic_db, "B", outbox_backlog=3, outbox_oldest_wall=now - 2)
    put_row(clinic_db, "C", outbox_backlog=1200, outbox_oldest_wall=now - 60)
    rows = by_id(overview(watcher))
    assert [rows[t]["replication_current"] for t in "ABC"] == [True, True, False]
    assert rows["C"]["outbox_backlog"] == 1200 and rows["C"]["outbox_oldest_wall"] == pytest.approx(now - 60)


def test_requests_share_one_connection(watcher, clinic_db):
    for _ in range(5):
        overview(watcher)
    with clinic_db.connect() as conn:
        (count,) = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                                "AND datname = current_database()", [APPLICATION_NAME]).fetchone()
    assert count == 1


def test_a_server_restart_between_polls_costs_no_answer(watcher, clinic_db, postgres):
    put_row(clinic_db, "A")
    overview(watcher)
    postgres.restart()
    # The shared connection died with the old server: the next poll reads on a new one.
    assert by_id(overview(watcher))["A"]["live"] is True


def test_the_page_and_its_answers_need_a_login(clinic_app):
    anonymous = clinic_app.test_client()
    page = anonymous.get("/clinic")
    assert page.status_code == 401
    assert "notice-title" in parse_page(page.get_data(as_text=True)).ids
    answer = anonymous.get("/api/clinic/overview")
    assert answer.status_code == 401
    assert answer.get_json()["code"] == "login_required"


def test_a_logged_in_therapist_sees_the_page_linked_from_the_header(watcher):
    page = watcher.get("/clinic")
    assert page.status_code == 200
    parsed = parse_page(page.get_data(as_text=True))
    assert {"clinic-overview", "clinic-table", "clinic-unreachable", "stop", "estop"} <= set(parsed.ids)
    assert parsed.ids["nav-clinic"]["aria-current"] == "page"
    assert "/static/clinic.js" in parsed.refs
    assert parsed.inline_scripts == 0 and parsed.inline_handlers == [] and parsed.style_attrs == []
    # Watching only: no form, no command button on the page itself (the header's stops stay).
    assert parsed.form_fields == {}
    home = parse_page(watcher.get("/").get_data(as_text=True))
    assert home.ids["nav-clinic"]["href"] == "/clinic"


def test_without_a_clinic_there_is_no_overview(therapist_client):
    assert therapist_client.get("/clinic").status_code == 404
    assert therapist_client.get("/api/clinic/overview").status_code == 404
    assert "nav-clinic" not in parse_page(therapist_client.get("/").get_data(as_text=True)).ids


def _unreachable_within_deadline(client, secret: str) -> None:
    started = time.monotonic()
    response = client.get("/api/clinic/overview")
    took_s = time.monotonic() - started
    assert response.status_code == 503, response.get_json()
    body = response.get_json()
    assert body["ok"] is False and body["code"] == "clinic_unreachable"
    assert "\n" not in body["message"] and body["message"]
    assert secret not in body["message"]
    assert took_s < ANSWER_WITHIN_S


def test_a_stopped_server_is_answered_503_in_time_and_the_overview_comes_back(watcher, clinic_db, postgres):
    put_row(clinic_db, "A")
    overview(watcher)
    secret = Path(clinic_db.cfg("A").password_file).read_text().strip()
    postgres.stop()
    try:
        # The shared connection breaks, then each new attempt is refused.
        _unreachable_within_deadline(watcher, secret)
        _unreachable_within_deadline(watcher, secret)
    finally:
        postgres.start()
    assert by_id(overview(watcher))["A"]["state"] == "READY"
