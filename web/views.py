"""The therapist's page: one HTML document; everything live comes from the API."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, render_template

from web.auth import current_therapist

bp = Blueprint("views", __name__)


@bp.get("/")
def index() -> str:
    """The dashboard page (the CSRF token sits in a <meta> tag for app.js)."""
    return render_template("index.html", therapist=current_therapist(),
                           units=current_app.config["DISPLAY_UNITS"])


@bp.get("/favicon.ico")
def favicon() -> Response:
    """No icon: an empty answer instead of a 404 in every browser's console."""
    return Response(status=204)


def init_app(app: Flask) -> None:
    """Register the page's blueprint."""
    app.register_blueprint(bp)
