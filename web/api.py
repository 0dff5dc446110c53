"""The JSON API: status, live stream, events, commands, limits, session, demo.

Stop is always allowed; go needs authority: anyone may read and stop; reset,
start, speed, mode and limits need a logged-in account (a therapist or an admin). This layer decides
who is logged in and refuses a body of the wrong shape; the controller decides
what is safe and checks every value, and its named refusal comes back as 400.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Iterator

from flask import Blueprint, Flask, Response, current_app, jsonify
from flask_wtf.csrf import generate_csrf

from web.auth import actor, current_account, login_required
from web.errors import json_error
from web.extensions import csrf
from web.ipc_client import ControllerError, StatusHub
from web.link import ControllerLink, get_link
from web.validation import effective_ranges, json_object, query_int, query_text

bp = Blueprint("api", __name__, url_prefix="/api")

#: At most ~20 status events a second per stream: enough for a smooth display,
#: and a burst of pushes from the controller is coalesced to the newest.
STREAM_MIN_INTERVAL_S = 0.05
#: A comment line this often keeps proxies from closing an idle stream and lets
#: the server notice a client that went away.
STREAM_KEEPALIVE_S = 15.0
#: How long a new stream waits for the hub's first status before saying "offline".
STREAM_FIRST_STATUS_S = 1.0
#: How long the browser waits before reconnecting a dropped stream.
STREAM_RETRY_MS = 2000


def _command(command: str, value: Any = None) -> Response:
    """Send one command with this request's actor and authority; the controller's reply as JSON."""
    link = get_link()
    try:
        reply = link.client.command(command, actor(), current_account() is not None, value)
    finally:
        link.note_command()
    return jsonify(reply)


# --- reading: anyone -------------------------------------------------------------------------

@bp.get("/status")
def status() -> Response:
    """The controller's present status (409 when it is offline).

    Taken from the shared subscription while it is live (at most one push,
    ~50 ms, old); asked of the controller directly otherwise.
    """
    link = get_link()
    return jsonify(link.pushed_status() or link.client.status())


@bp.get("/events")
def events() -> Response:
    """Recent events, newest first (?limit=, ?kind=; the controller says which values it takes)."""
    limit = query_int("limit", default=50)
    kind = query_text("kind")
    return jsonify({"ok": True, "events": get_link().client.events(limit, kind)})


@bp.get("/limits")
def limits() -> Response:
    """Present limits, the installer's ceilings, the allowed ranges, the mode and units, and
    ``effective``: each limit's one range, its own within the ceilings (what the form shows)."""
    reply = get_link().client.limits()
    return jsonify({**reply, "effective": reply.get("effective") or effective_ranges(reply)})


@bp.get("/session")
def session_info() -> Response:
    """Who is logged in (name and role), and the CSRF token the page sends back in X-CSRFToken."""
    account = current_account()
    return jsonify({"logged_in": account is not None, "name": account.name if account else None,
                    "role": account.role if account else None, "csrf_token": generate_csrf()})


# --- stopping: anyone, always ----------------------------------------------------------------
# Deliberately exempt from CSRF and from login: stop is always allowed, and a
# page whose token went stale (session expired, dashboard restarted with a new
# secret, another tab logged out) must never be the reason an E-stop is refused.
# The worst a forged cross-site request can do here is stop the belt, which any
# bystander may do at the physical button. The body is ignored for the same
# reason: no input can make a stop fail here.

@bp.post("/estop")
@csrf.exempt
def estop() -> Response:
    """Emergency stop: the controller opens the safety circuit at once."""
    return _command("estop")


@bp.post("/stop")
@csrf.exempt
def stop() -> Response:
    """Controlled stop: the controller brakes the belt to a standstill."""
    return _command("stop")


# --- going: a logged-in therapist ------------------------------------------------------------

@bp.post("/reset")
@login_required
def reset() -> Response:
    """Clear a latched stop (the controller refuses while its cause persists)."""
    json_object(allowed=())
    return _command("reset")


@bp.post("/start")
@login_required
def start() -> Response:
    """Start the belt, at ``speed_kmh`` if given (the controller checks it against the cap of the mode)."""
    body = json_object(allowed=("speed_kmh",))
    return _command("start", body.get("speed_kmh"))


@bp.post("/speed")
@login_required
def speed() -> Response:
    """Set the target belt speed (km/h); the controller ramps to it."""
    body = json_object(allowed=("speed_kmh",), required=("speed_kmh",))
    return _command("set_speed", body["speed_kmh"])


@bp.post("/mode")
@login_required
def mode() -> Response:
    """Switch between reverse and forward walking (the controller wants a standing belt)."""
    body = json_object(allowed=("mode",), required=("mode",))
    return _command("set_mode", body["mode"])


@bp.put("/limits")
@login_required
def set_limits() -> Response:
    """Change some of the limits; the controller names any it does not know or allow, with the range."""
    # Passed on whole: the controller's one list of limits decides which keys exist.
    return _command("set_limits", json_object(allowed=None))


# --- demo: anyone, only on a demo controller -------------------------------------------------

@bp.post("/demo/<action>")
def demo(action: str) -> Response:
    """A demo action (patient drifts back, unplug a sensor ...), only when status.demo is true."""
    link = get_link()
    if not link.client.status().get("demo"):
        return json_error(404, "not_found", "no such demo control on this controller")
    try:
        reply = link.client.call("demo", {"action": action})
    except ControllerError as exc:
        # The action, from the URL, is the call's only parameter: the controller refusing it
        # (or it being too long to send) means there is no such control.
        if exc.code in ("unknown_method", "invalid", "too_long"):
            return json_error(404, "not_found", "no such demo control on this controller")
        raise
    return jsonify({"ok": True, **(reply if isinstance(reply, dict) else {"message": str(reply)})})


# --- live stream: anyone ---------------------------------------------------------------------

def sse_events(link: ControllerLink, hub: StatusHub, keepalive_s: float,
               view: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Iterator[str]:
    """Server-Sent Events: the newest status (or ``view`` of it) at most every 50 ms, 'offline' events,
    keep-alives."""
    yield f"retry: {STREAM_RETRY_MS}\n\n"
    # seq -1 never matches the hub's counter, so this returns at once with
    # the present status; a hub that has never published gets a short grace.
    seq, present = hub.wait_newer(-1, 0.0)
    if present is None and seq == 0:
        seq, present = hub.wait_newer(0, STREAM_FIRST_STATUS_S)
    while True:
        if present is None:
            yield 'event: offline\ndata: {"message": "controller offline"}\n\n'
        else:
            shown = present if view is None else view(present)
            yield f"data: {json.dumps(shown, separators=(',', ':'))}\n\n"
        next_send = time.monotonic() + STREAM_MIN_INTERVAL_S
        while True:
            asked = time.monotonic()
            new_seq, present = hub.wait_newer(seq, keepalive_s)
            if new_seq != seq:
                break
            if link.closed or time.monotonic() - asked < keepalive_s / 2:
                # wait_newer only returns early without news once the hub is closed.
                return
            yield ": keep-alive\n\n"
        delay_s = next_send - time.monotonic()
        if delay_s > 0:
            # Rate limit, then take the newest status (not the one that woke us).
            time.sleep(delay_s)
            new_seq, present = hub.wait_newer(-1, 0.0)
        seq = new_seq


def sse_response(view: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Response:
    """A live stream of the status (or ``view`` of it), holding one of the link's stream slots (503 when
    none is free) until the client goes."""
    link = get_link()
    link.start()
    if not link.acquire_stream():
        return json_error(503, "busy", f"too many live views open (at most {link.max_streams}); close one")
    keepalive_s = float(current_app.config.get("SSE_KEEPALIVE_S", STREAM_KEEPALIVE_S))
    response = Response(sse_events(link, link.hub, keepalive_s, view), mimetype="text/event-stream")
    # The server closes the iterator on disconnect, error or normal end: the
    # slot is given back even if the generator never ran.
    response.call_on_close(link.stream_releaser())
    response.headers["Cache-Control"] = "no-cache, no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response


@bp.get("/stream")
def stream() -> Response:
    """Live status as Server-Sent Events (503 when too many streams are open)."""
    return sse_response()


def init_app(app: Flask) -> None:
    """Register the API blueprint."""
    app.register_blueprint(bp)
