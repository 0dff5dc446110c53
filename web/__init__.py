"""The therapist's dashboard: a Flask client of the controller's IPC socket.

A separate process from the controller: a dashboard under load or crashed can
neither delay nor prevent a trip. It imports nothing from ``hardware/``, and
from ``controller/`` only the config, the CSV layouts (``export_formats``,
shared with the ``export`` command so both downloads have the same columns) and
the atomic file writer (``files``) and the reader of its TLS certificate
(``certificate``, which the doctor shares). Every value rule is the controller's: the
dashboard checks a request's shape and size and passes on the controller's
named refusals.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, Response

from controller.config import Config
from web import api, audit_api, auth, errors, history, i18n, metrics, patient_display, users, views
from web.extensions import csrf
from web.link import ControllerLink
from web.state import load_secret_key

#: Each SSE stream holds one of cheroot's worker threads for as long as it is open;
#: this many streams leave the rest of serve.THREADS for stops and commands.
DEFAULT_MAX_SSE_STREAMS = 32

#: Served with every response: nothing on the page comes from anywhere else,
#: and no other site may frame it (a framed E-stop button could be hidden).
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Same-origin requests only: over HTTPS, Flask-WTF refuses a POST whose Referer is
    # missing or names another host (WTF_CSRF_SSL_STRICT); other sites get none.
    "Referrer-Policy": "same-origin",
}
#: Over HTTPS only: the browser uses nothing but HTTPS for this host for a year, so a
#: typed http:// address or a forged plain-HTTP page cannot catch a password.
HSTS = "max-age=31536000"


def create_app(cfg: Config | None = None, *, ipc_socket: str | None = None, state_dir: str | None = None,
               test_config: dict[str, Any] | None = None) -> Flask:
    """Build the dashboard app: socket and state dir from ``cfg.web`` unless given explicitly."""
    socket_path = ipc_socket or (cfg.web.ipc_socket if cfg is not None else None)
    state_path = state_dir or (cfg.web.state_dir if cfg is not None else None)
    missing = [name for name, value in (("ipc_socket", socket_path), ("state_dir", state_path)) if not value]
    if missing:
        raise ValueError(f"create_app needs a Config or explicit {' and '.join(missing)}")

    app = Flask(__name__)
    app.config.from_mapping(
        # Never a literal: generated once into the state dir, mode 0600.
        SECRET_KEY=load_secret_key(state_path),
        STATE_DIR=str(Path(state_path)),
        IPC_SOCKET=str(socket_path),
        IPC_TIMEOUT_S=2.0,
        DISPLAY_UNITS=cfg.display.units if cfg is not None else "km/h",
        DISPLAY_LANGUAGE=cfg.display.language if cfg is not None else "en",
        # Which way the patient faces when walking backwards: the patient display's "step back" or "forward".
        REVERSE_FACES_EDGE=cfg.treadmill.carries_toward_edge("reverse") if cfg is not None else True,
        SESSION_COOKIE_NAME="treadmill_dashboard",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        # A login lasts a clinic day, not forever on a shared tablet.
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        # The token lives as long as the session: a page left open for hours
        # must not start failing every command after the default 1 h.
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_HEADERS=["X-CSRFToken"],
        MAX_CONTENT_LENGTH=64 * 1024,
        MAX_SSE_STREAMS=DEFAULT_MAX_SSE_STREAMS,
        LOGIN_RATE_LIMIT=auth.DEFAULT_LOGIN_RATE,
        # Served over HTTPS ([web] tls_cert set): Secure cookies and HSTS.
        TLS=bool(cfg.web.tls_cert) if cfg is not None else False,
        ACCOUNT_LOGIN_RATE_LIMIT=auth.DEFAULT_ACCOUNT_LOGIN_RATE,
        SESSION_IDLE_S=cfg.web.session_idle_min * 60 if cfg is not None else auth.DEFAULT_SESSION_IDLE_S,
        # This treadmill's [clinic] (a ClinicConfig) when it belongs to a clinic record, else None: the
        # clinic overview (/clinic) exists only then.
        CLINIC=cfg.clinic if cfg is not None and cfg.clinic.enabled else None,
    )
    if test_config:
        app.config.update(test_config)
    # A Secure cookie never travels in clear text; plain HTTP (make demo, tests) could not send it back.
    app.config["SESSION_COOKIE_SECURE"] = bool(app.config["TLS"])

    errors.init_app(app)
    i18n.init_app(app)
    csrf.init_app(app)
    ControllerLink(app.config["IPC_SOCKET"], app.config["MAX_SSE_STREAMS"],
                   timeout_s=app.config["IPC_TIMEOUT_S"]).init_app(app)
    auth.init_app(app)
    users.init_app(app)
    audit_api.init_app(app)
    api.init_app(app)
    history.init_app(app)
    metrics.init_app(app)
    views.init_app(app)
    patient_display.init_app(app)
    if app.config["CLINIC"] is not None:
        # Only a clinic's treadmill needs psycopg and the clinic package.
        from web import clinic_overview
        clinic_overview.init_app(app)

    @app.after_request
    def _headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if app.config["TLS"]:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        if response.mimetype == "application/json":
            # Status and session answers must never come from a cache.
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app
