"""GET /metrics: the controller's status in the Prometheus text format, for anyone, never a 500."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from tests.waiting import expect
from tests.web.fake_controller import LATENCY_BUCKETS_S, FakeController
from web.metrics import EXTENSION_KEY, STATES

CONTROLLER_FAMILIES = {
    "treadmill_state", "treadmill_gap_mm", "treadmill_belt_speed_mps", "treadmill_speed_cap_kmh",
    "treadmill_stop_distance_mm", "treadmill_relay_energized", "treadmill_warning", "treadmill_trips",
    "treadmill_sensor_faults", "treadmill_link_faults", "treadmill_decisions", "treadmill_decision_wakeups",
    "treadmill_decision_latency_seconds",
}


def _scrape(client) -> dict[str, object]:
    """GET /metrics, asserting 200 and the Prometheus content type; families by name."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.data
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
    return {family.name: family for family in text_string_to_metric_families(response.get_data(as_text=True))}


def _values(family) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of one family."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}


def _single(families, name: str) -> float:
    samples = families[name].samples
    assert len(samples) == 1, samples
    return samples[0].value


def test_metrics_match_the_controllers_status(client, fake):
    families = _scrape(client)
    assert CONTROLLER_FAMILIES | {"treadmill_controller_up"} <= families.keys()
    assert families["treadmill_controller_up"].type == "gauge"
    assert _single(families, "treadmill_controller_up") == 1.0
    assert _single(families, "treadmill_gap_mm") == 900.0
    assert _single(families, "treadmill_belt_speed_mps") == 0.0
    assert _single(families, "treadmill_speed_cap_kmh") == 2.0
    assert _single(families, "treadmill_stop_distance_mm") == 250.0
    assert _single(families, "treadmill_relay_energized") == 0.0
    assert _single(families, "treadmill_warning") == 0.0
    for name in ("treadmill_sensor_faults", "treadmill_link_faults", "treadmill_decisions"):
        assert families[name].type == "counter"
        assert families[name].samples[0].name == f"{name}_total"
    assert _single(families, "treadmill_sensor_faults") == 2.0
    assert _single(families, "treadmill_link_faults") == 1.0
    assert _single(families, "treadmill_decisions") == 1000.0


def test_state_is_a_state_set_with_one_series_per_state(client, fake):
    state = _values(_scrape(client)["treadmill_state"])
    assert state == {("treadmill_state", (("state", s),)): (1.0 if s == "STOPPED" else 0.0) for s in STATES}

    fake.update(state="RUNNING", relay_energized=True, warning=True, belt_speed_mps=0.5)
    expect(lambda: _single(_scrape(client), "treadmill_belt_speed_mps") == 0.5, what="the new status in /metrics")
    families = _scrape(client)
    state = _values(families["treadmill_state"])
    assert state == {("treadmill_state", (("state", s),)): (1.0 if s == "RUNNING" else 0.0) for s in STATES}
    assert _single(families, "treadmill_relay_energized") == 1.0
    assert _single(families, "treadmill_warning") == 1.0


def test_trips_are_a_counter_by_reason(client, fake):
    trips = _scrape(client)["treadmill_trips"]
    assert trips.type == "counter"
    assert _values(trips) == {("treadmill_trips_total", (("reason", "estop"),)): 1.0,
                              ("treadmill_trips_total", (("reason", "stop_zone"),)): 3.0}


def test_decision_latency_is_a_cumulative_histogram_ending_in_inf_equal_to_count(client, fake):
    histogram = _scrape(client)["treadmill_decision_latency_seconds"]
    assert histogram.type == "histogram"
    latency = fake.status["decision_latency"]
    buckets = [(float(s.labels["le"]), s.value) for s in histogram.samples if s.name.endswith("_bucket")]
    assert buckets == [(le, float(c)) for le, c in zip(LATENCY_BUCKETS_S, latency["counts"])] + [(math.inf, 1000.0)]
    counts = [c for _, c in buckets]
    assert counts == sorted(counts), "buckets must be cumulative"
    by_name = {s.name: s.value for s in histogram.samples if not s.name.endswith("_bucket")}
    assert by_name == {"treadmill_decision_latency_seconds_count": 1000.0,
                       "treadmill_decision_latency_seconds_sum": 0.3125}


def test_a_null_gap_is_left_out(client, fake):
    fake.update(gap_mm=None)
    expect(lambda: "treadmill_gap_mm" not in _scrape(client), what="the gap to leave /metrics")
    assert _single(_scrape(client), "treadmill_controller_up") == 1.0


def test_a_malformed_status_loses_only_what_is_malformed(client, fake):
    fake.update(state=None, stop_distance_mm="far", warning="yes", counters={"trips_by_reason": [1], "decisions": -1},
                decision_latency={"buckets_s": [0.001, 0.01], "counts": [5, 3], "count": 5, "sum_s": 0.01},
                belt_speed_mps=0.25)
    expect(lambda: _single(_scrape(client), "treadmill_belt_speed_mps") == 0.25, what="the new status in /metrics")
    families = _scrape(client)
    assert _single(families, "treadmill_controller_up") == 1.0
    assert families.keys().isdisjoint({"treadmill_state", "treadmill_stop_distance_mm", "treadmill_warning",
                                       "treadmill_trips", "treadmill_decisions",
                                       "treadmill_decision_latency_seconds"})


def test_offline_controller_is_up_0_and_nothing_else_with_200(offline_client):
    families = _scrape(offline_client)
    assert set(families) == {"treadmill_controller_up"}
    assert _single(families, "treadmill_controller_up") == 0.0


def test_a_controller_that_goes_away_turns_up_to_0(client, fake):
    assert _single(_scrape(client), "treadmill_controller_up") == 1.0
    fake.close()
    expect(lambda: set(_scrape(client)) == {"treadmill_controller_up"}, what="the controller's metrics to go")
    assert _single(_scrape(client), "treadmill_controller_up") == 0.0


def test_metrics_need_no_login_and_no_csrf_token(app, fake):
    fresh = app.test_client()  # no session cookie at all
    response = fresh.get("/metrics")
    assert response.status_code == 200
    assert b"treadmill_controller_up 1.0" in response.data
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("state", STATES)
def test_every_state_sets_exactly_one_series(make_app, state):
    controller = FakeController(state=state).start()
    try:
        families = _scrape(make_app(controller.socket_path).test_client())
    finally:
        controller.close()
    samples = families["treadmill_state"].samples
    assert {s.labels["state"] for s in samples} == set(STATES)
    assert [s.labels["state"] for s in samples if s.value == 1.0] == [state]


def test_each_app_has_its_own_registry(make_app, fake, offline_socket):
    online, offline = make_app(fake.socket_path), make_app(offline_socket)
    assert online.extensions[EXTENSION_KEY] is not offline.extensions[EXTENSION_KEY]
    assert _single(_scrape(online.test_client()), "treadmill_controller_up") == 1.0
    assert _single(_scrape(offline.test_client()), "treadmill_controller_up") == 0.0
