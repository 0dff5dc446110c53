"""``GET /metrics``: the controller's status in the Prometheus text format.

Built at scrape time by a custom collector from the controller's status (the
shared subscription's newest push while it is live, else one ``status``
request), on a registry of this app's own (``app.extensions["metrics_registry"]``)
so that several apps in one process never collide. Read-only, so anyone may
scrape it. It never answers 500: with the controller offline it exports
``treadmill_controller_up 0`` and nothing else of the controller, and a
malformed or partial status only loses the values it lacks.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable, Iterator

from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from web.ipc_client import ControllerError, ControllerOffline
from web.link import EXTENSION_KEY as LINK_KEY
from web.link import ControllerLink

log = logging.getLogger(__name__)

EXTENSION_KEY = "metrics_registry"
#: Every state the controller has: one ``treadmill_state`` series each.
STATES = ("STOPPED", "READY", "RUNNING", "STOPPING")
#: status key → (metric name, help) for the plain gauges; absent or null values are left out.
GAUGES = (
    ("gap_mm", "treadmill_gap_mm", "Patient's gap to the rear edge of the deck (nearest sensor), mm"),
    ("belt_speed_mps", "treadmill_belt_speed_mps", "Measured belt speed, m/s"),
    ("cap_kmh", "treadmill_speed_cap_kmh", "Speed cap of the present mode, km/h"),
    ("stop_distance_mm", "treadmill_stop_distance_mm", "Present stop distance (trip when the gap is inside it), mm"),
)
#: status key → (metric name, help) for the 1/0 gauges.
FLAGS = (
    ("relay_energized", "treadmill_relay_energized", "1 while the safety relay is energized (belt may run)"),
    ("warning", "treadmill_warning", "1 while the patient is inside the warn zone"),
)
#: status["counters"] key → (metric name without _total, help).
COUNTERS = (
    ("sensor_faults", "treadmill_sensor_faults", "Distance sensor faults since the controller started"),
    ("link_faults", "treadmill_link_faults", "Treadmill serial link faults since the controller started"),
    ("decisions", "treadmill_decisions", "Decision steps run since the controller started"),
    ("wakeups", "treadmill_decision_wakeups", "Times the decision thread woke (an input, a deadline, a heartbeat "
                                               "edge) since the controller started"),
)

bp = Blueprint("metrics", __name__)


def _number(value: Any) -> float | None:
    """A finite int or float as float; None for anything else (null, bool, string ...)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _count(value: Any) -> float | None:
    """A non-negative finite number (a counter's value), else None."""
    number = _number(value)
    return number if number is not None and number >= 0 else None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _latency_buckets(latency: dict[str, Any]) -> tuple[list[tuple[str, float]], float] | None:
    """The histogram's (le, cumulative count) pairs ending in +Inf, and the sum; None if malformed."""
    bounds, counts = latency.get("buckets_s"), latency.get("counts")
    total, sum_s = _count(latency.get("count")), _count(latency.get("sum_s"))
    if not isinstance(bounds, list) or not isinstance(counts, list) or len(bounds) != len(counts):
        return None
    if total is None or sum_s is None:
        return None
    les = [_number(b) for b in bounds]
    cums = [_count(c) for c in counts]
    if any(v is None for v in les) or any(v is None for v in cums):
        return None
    if any(b >= a for a, b in zip(les[1:], les)) or any(b > a for a, b in zip(cums[1:], cums)):
        return None  # bounds must rise, counts must be cumulative
    if cums and cums[-1] > total:
        return None
    pairs = [(floatToGoString(le), cum) for le, cum in zip(les, cums)]
    pairs.append(("+Inf", total))
    return pairs, sum_s


def clinic_families(status: dict[str, Any], now_wall: float) -> Iterator[Metric]:
    """A treadmill of a clinic record (its status has "clinic"): the outbox's rows, its oldest row's age and
    whether the replicator reaches the clinic's server. Nothing for a treadmill without a clinic."""
    clinic = status.get("clinic")
    if not isinstance(clinic, dict):
        return
    storage = _mapping(status.get("storage"))
    rows = _count(storage.get("outbox"))
    if rows is not None:
        yield GaugeMetricFamily("treadmill_clinic_outbox_rows",
                                "History rows written here that the clinic record has not got yet", value=rows)
        oldest = _number(storage.get("outbox_oldest_wall"))
        # No row waiting is age 0; a clock that stepped back is 0, never a negative age; rows waiting
        # since an unknown time leave the age out.
        age_s = 0.0 if rows == 0 else None if oldest is None else max(0.0, now_wall - oldest)
        if age_s is not None:
            yield GaugeMetricFamily("treadmill_clinic_outbox_oldest_age_seconds",
                                    "Age of the oldest row waiting for the clinic record (0 when none waits), "
                                    "seconds", value=age_s)
    connected = clinic.get("connected")
    if isinstance(connected, bool):
        yield GaugeMetricFamily("treadmill_clinic_replicator_connected",
                                "1 while the replicator reports reaching the clinic record's server, else 0",
                                value=1.0 if connected else 0.0)


def status_families(status: dict[str, Any], now_wall: float | None = None) -> Iterator[Metric]:
    """The controller's metric families from one status snapshot (without treadmill_controller_up);
    ``now_wall`` (default: the present unix time) is what the outbox's oldest row's age is counted to."""
    state = status.get("state")
    if isinstance(state, str):
        family = GaugeMetricFamily("treadmill_state", "Controller state: 1 for the present state, 0 for the others",
                                   labels=["state"])
        for name in STATES + (() if state in STATES else (state,)):
            family.add_metric([name], 1.0 if name == state else 0.0)
        yield family

    for key, name, doc in GAUGES:
        value = _number(status.get(key))
        if value is not None:
            yield GaugeMetricFamily(name, doc, value=value)
    for key, name, doc in FLAGS:
        value = status.get(key)
        if isinstance(value, bool):
            yield GaugeMetricFamily(name, doc, value=1.0 if value else 0.0)

    counters = _mapping(status.get("counters"))
    trips = CounterMetricFamily("treadmill_trips", "Trips (the relay opened) since the controller started, by reason",
                                labels=["reason"])
    for reason, value in sorted(_mapping(counters.get("trips_by_reason")).items()):
        value = _count(value)
        if isinstance(reason, str) and value is not None:
            trips.add_metric([reason], value)
    if trips.samples:
        yield trips
    for key, name, doc in COUNTERS:
        value = _count(counters.get(key))
        if value is not None:
            yield CounterMetricFamily(name, doc, value=value)

    histogram = _latency_buckets(_mapping(status.get("decision_latency")))
    if histogram is not None:
        buckets, sum_s = histogram
        yield HistogramMetricFamily("treadmill_decision_latency_seconds",
                                    "Time one decision step took (read sensors, decide, drive relay and belt)",
                                    buckets=buckets, sum_value=sum_s)

    yield from clinic_families(status, time.time() if now_wall is None else now_wall)


class ControllerCollector(Collector):
    """Asks for the controller's status on every scrape and yields its metric families."""

    def __init__(self, fetch_status: Callable[[], Any]):
        self._fetch_status = fetch_status

    def collect(self) -> Iterator[Metric]:
        try:
            status = self._fetch_status()
        except (ControllerOffline, ControllerError) as exc:
            log.debug("metrics: controller status unavailable: %s", exc)
            status = None
        up = isinstance(status, dict)
        families: list[Metric] = []
        if up:
            try:
                families = list(status_families(status))
            except Exception:  # noqa: BLE001 - a scrape must never 500; the log says what broke
                log.exception("metrics: could not build metrics from the controller's status")
                families = []
        yield GaugeMetricFamily("treadmill_controller_up", "1 if the controller answered with its status, else 0",
                                value=1.0 if up else 0.0)
        yield from families


def _link_status(link: ControllerLink) -> dict[str, Any] | None:
    """As /api/status: the live subscription's newest push, else one status request."""
    return link.pushed_status() or link.client.status()


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus scrape: anyone may read it; 200 even when the controller is offline."""
    body = generate_latest(current_app.extensions[EXTENSION_KEY])
    response = Response(body, status=200, headers={"Content-Type": CONTENT_TYPE_LATEST})
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    """Give the app its own registry with the controller collector, and serve GET /metrics."""
    registry = CollectorRegistry(auto_describe=False)

    def fetch() -> dict[str, Any] | None:
        return _link_status(app.extensions[LINK_KEY])

    registry.register(ControllerCollector(fetch))
    app.extensions[EXTENSION_KEY] = registry
    app.register_blueprint(bp)
