"""The clinic overview: every treadmill of the clinic, as the clinic record's ``live_status`` rows say.

Registered only when ``[clinic]`` is configured. Each treadmill's replicator upserts its row about once
a second; this page reads them from PostgreSQL and only watches: commands are given on each treadmill's
own dashboard, where its safety core decides. A row's age is the server's clock against the server's
clock (``updated_at``), never a Pi's, so a Pi with a wrong clock cannot look live.

One connection per dashboard process, shared under a lock and made anew after a failure: a tablet that
polls twice a second must not open a connection each time.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

import psycopg
from flask import Blueprint, Flask, Response, current_app, jsonify, render_template
from flask_babel import gettext

from clinic.connect import ClinicError, connect, describe
from controller.config import ClinicConfig
from web.auth import current_account, login_required
from web.errors import json_error

log = logging.getLogger(__name__)

bp = Blueprint("clinic", __name__)

#: Where create_app keeps this process's reader.
EXTENSION_KEY = "clinic_overview"
#: A row updated longer ago than this is not live: its replicator (or its Pi) has gone quiet.
LIVE_MAX_AGE_S = 3.0
#: Replication is current while nothing waits in the outbox, or the oldest waiting row is this young.
REPLICATION_CURRENT_S = 10.0
#: How long one overview may take, connecting included, before it is answered "unreachable".
DEFAULT_TIMEOUT_S = 2.0
APPLICATION_NAME = "treadmill-dashboard"

#: The columns the page shows, as the replicator writes them (clinic/migrations/0002_live_status.sql).
COLUMNS = ("treadmill_id", "dashboard_url", "state", "warning", "reasons", "belt_kmh", "patient_id", "session_id",
           "session_phase", "session_elapsed_s", "session_planned_s", "trip_count", "last_trip_wall",
           "last_trip_reasons", "controller_link", "outbox_backlog", "outbox_oldest_wall")
#: Every row with its age on the server's clock, and the server's time now, in one statement.
OVERVIEW_SQL = (f"SELECT {', '.join(COLUMNS)}, "
                "extract(epoch FROM clock_timestamp() - updated_at)::float8 AS age_s "
                "FROM live_status ORDER BY treadmill_id")
SERVER_TIME_SQL = "SELECT extract(epoch FROM clock_timestamp())::float8"

Connect = Callable[..., psycopg.Connection]


class ClinicUnreachable(Exception):
    """The clinic record could not be read now; the message is one line and never holds a password."""


def is_live(age_s: float) -> bool:
    """A row the replicator refreshed within the last few seconds, on the server's clock."""
    return age_s <= LIVE_MAX_AGE_S


def replication_current(outbox_backlog: int, outbox_oldest_wall: float | None, server_wall: float) -> bool:
    """Nothing waits to be shipped, or what waits is only seconds old."""
    if outbox_backlog == 0:
        return True
    return outbox_oldest_wall is not None and server_wall - outbox_oldest_wall <= REPLICATION_CURRENT_S


class ClinicReader:
    """Reads the overview from the clinic record over one shared connection, made anew after a failure."""

    def __init__(self, clinic_cfg: ClinicConfig, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 connector: Connect = connect):
        self._cfg = clinic_cfg
        self._timeout_s = timeout_s
        self._connect = connector
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self._closed = False
        #: The last failure's description while the record stays away: logged once, not on every poll.
        self._failing: str | None = None

    def overview(self) -> dict[str, Any]:
        """``{"treadmills": [...], "server_time": ...}``; raises ClinicUnreachable within about the timeout."""
        # A request stuck behind another that waits on a dead server gives up in time as well.
        if not self._lock.acquire(timeout=self._timeout_s):
            raise ClinicUnreachable(f"the clinic record did not answer within {self._timeout_s:g} s")
        try:
            body = self._overview_locked()
        except ClinicUnreachable as exc:
            if self._failing is None:
                log.warning("clinic overview: the clinic record is unreachable: %s", exc)
            self._failing = str(exc)
            raise
        else:
            if self._failing is not None:
                log.info("clinic overview: the clinic record answers again")
            self._failing = None
            return body
        finally:
            self._lock.release()

    def _overview_locked(self) -> dict[str, Any]:
        if self._closed:
            raise ClinicUnreachable("the dashboard is shutting down")
        reused = self._conn is not None
        try:
            return self._read()
        except (psycopg.Error, ClinicError) as exc:
            died = reused and self._conn is not None and self._conn.broken
            self._drop()
            if not died:
                raise ClinicUnreachable(describe(exc)) from exc
        # The shared connection died since the last read (a server restart): one more try on a new one.
        try:
            return self._read()
        except (psycopg.Error, ClinicError) as exc:
            self._drop()
            raise ClinicUnreachable(describe(exc)) from exc

    def _read(self) -> dict[str, Any]:
        if self._conn is None:
            self._conn = self._open()
        with self._conn.cursor() as cur:
            cur.execute(SERVER_TIME_SQL)
            (server_wall,) = cur.fetchone()
            cur.execute(OVERVIEW_SQL)
            rows = cur.fetchall()
        own_id = self._cfg.treadmill_id
        treadmills = []
        for values in rows:
            row = dict(zip((*COLUMNS, "age_s"), values))
            row["age_s"] = max(0.0, row["age_s"])
            row["live"] = is_live(row["age_s"])
            row["replication_current"] = replication_current(row["outbox_backlog"], row["outbox_oldest_wall"],
                                                             server_wall)
            row["this"] = row["treadmill_id"] == own_id
            treadmills.append(row)
        return {"treadmills": treadmills, "server_time": server_wall}

    def _open(self) -> psycopg.Connection:
        conn = self._connect(self._cfg, autocommit=True, application_name=APPLICATION_NAME,
                             timeout_s=self._timeout_s)
        try:
            # The server gives up on a read that takes longer than the page may wait.
            conn.execute(f"SET statement_timeout = {int(self._timeout_s * 1000)}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                log.debug("closing a failed clinic connection", exc_info=True)

    def close(self) -> None:
        """Close the connection; safe to call twice. Waits for a read under way, at most its timeout."""
        got = self._lock.acquire(timeout=self._timeout_s)
        try:
            self._closed = True
            self._drop()
        finally:
            if got:
                self._lock.release()


def _reader() -> ClinicReader:
    return current_app.extensions[EXTENSION_KEY]


@bp.get("/clinic")
def page() -> str | tuple[str, int]:
    """The overview page for a logged-in account; otherwise the page that says to log in."""
    if current_account() is None:
        return render_template("notice.html", title=gettext("Log in first"),
                               message=gettext("These pages show patient data. Log in on the dashboard, "
                                               "then come back.")), 401
    return render_template("clinic.html", page="clinic", units=current_app.config["DISPLAY_UNITS"])


@bp.get("/api/clinic/overview")
@login_required
def overview() -> Response:
    """Every treadmill's live row, with its age and freshness judged on the server's clock."""
    try:
        body = _reader().overview()
    except ClinicUnreachable as exc:
        return json_error(503, "clinic_unreachable", f"clinic record unreachable: {exc}")
    return jsonify({"ok": True, **body})


@bp.app_context_processor
def _nav() -> dict[str, object]:
    """The header's "Clinic" link shows where this blueprint is registered: a treadmill of a clinic."""
    return {"clinic_overview": True}


def init_app(app: Flask) -> None:
    """Register the overview with a reader of ``app.config["CLINIC"]`` (a ClinicConfig); ``CLINIC_TIMEOUT_S``
    bounds each answer (default 2 s)."""
    app.config.setdefault("CLINIC_TIMEOUT_S", DEFAULT_TIMEOUT_S)
    app.extensions[EXTENSION_KEY] = ClinicReader(app.config["CLINIC"], timeout_s=app.config["CLINIC_TIMEOUT_S"])
    app.register_blueprint(bp)
