"""/patient: the patient's own screen. Read-only but for Stop, no login, no personal data."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from tests.web.test_header import _cause_codes
from tests.web.test_stream import SseReader, _status_of
from web.patient_display import AFTER_STOP, CUES, GENERIC_STOP, PATIENT_REASONS, cue, patient_view
from web.reasons import PLAIN_REASONS

SECRET_PID = "PX-0042"
SESSION = {"session_id": 9, "patient_id": SECRET_PID, "phase": "walking", "elapsed_s": 190.0,
           "planned_s": 300.0, "remaining_s": 110.0, "end_warning": False, "paused_reason": None}


class Page(HTMLParser):
    """The ids, buttons, scripts and JSON blocks of a page."""

    def __init__(self):
        super().__init__()
        self.ids, self.buttons, self.scripts, self.json, self._json_id = {}, [], [], {}, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids[a["id"]] = a
        if tag == "button":
            self.buttons.append(a.get("id"))
        if tag == "script" and a.get("src"):
            self.scripts.append(a["src"])
        if tag == "script" and a.get("type") == "application/json":
            self._json_id = a.get("id")

    def handle_data(self, data):
        if self._json_id:
            self.json[self._json_id] = data

    def handle_endtag(self, tag):
        if tag == "script":
            self._json_id = None


def _page(client, path="/patient"):
    response = client.get(path)
    parser = Page()
    parser.feed(response.get_data(as_text=True))
    return response, parser


def test_anyone_opens_the_patient_display_and_it_offers_stop_and_nothing_else(client):
    response, page = _page(client)
    assert response.status_code == 200
    # No login form, no start, speed, reset or limits: one Stop.
    assert page.buttons == ["pd-stop"]
    assert [i for i in ("reset", "start", "speed", "login-name", "estop") if i in page.ids] == []
    assert page.scripts == ["/static/i18n.js", "/static/patient_display.js"]
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    for script in page.scripts:
        asset = client.get(script)
        assert asset.status_code == 200
        asset.close()


def test_no_patient_id_reaches_the_patient_display(fake, client):
    """The clinic id of the patient walking never leaves the server on the display's page or stream."""
    fake.update(session=dict(SESSION), selected_patient=SECRET_PID, state="RUNNING")
    response, _ = _page(client)
    assert SECRET_PID not in response.get_data(as_text=True)
    status = client.get("/api/patient/status")
    assert status.status_code == 200
    assert SECRET_PID not in status.get_data(as_text=True)
    assert status.get_json()["session"] == {"phase": "walking", "elapsed_s": 190.0, "planned_s": 300.0,
                                            "remaining_s": 110.0}
    reader = SseReader(client.get("/api/patient/stream", buffered=False))
    try:
        block = reader.find(lambda b: (_status_of(b) or {}).get("session") is not None)
    finally:
        reader.close()
    assert SECRET_PID not in block
    assert set(_status_of(block)) == {"seq", "t_wall", "state", "cue", "belt_speed_mps", "link_ok", "reasons",
                                      "session"}


def test_the_stream_follows_the_status_with_the_cue(fake, client):
    reader = SseReader(client.get("/api/patient/stream", buffered=False))
    try:
        reader.find(lambda b: (_status_of(b) or {}).get("cue") == "stopped")
        fake.update(state="RUNNING", reasons={}, warning_causes=["warn_zone"], warning=True)
        shown = _status_of(reader.find(lambda b: (_status_of(b) or {}).get("cue") == "step_back"))
        assert shown["state"] == "RUNNING" and shown["reasons"] == []
        fake.update(state="STOPPED", reasons={"stop_zone": "gap 120 mm < stop 300 mm"}, warning_causes=[])
        shown = _status_of(reader.find(lambda b: (_status_of(b) or {}).get("cue") == "stopped"
                                       and (_status_of(b) or {}).get("reasons")))
        assert shown["reasons"] == ["stop_zone"]
        assert "gap 120 mm" not in json.dumps(shown), "the technical message stays on the dashboard"
    finally:
        reader.close()


@pytest.mark.parametrize("status, expected", [
    ({"state": "RUNNING", "warning_causes": []}, "good"),
    ({"state": "READY", "warning_causes": []}, "good"),
    ({"state": "RUNNING", "warning_causes": ["overspeed"]}, "good"),
    ({"state": "RUNNING", "warning_causes": ["warn_zone", "overspeed"]}, "step_back"),
    ({"state": "STOPPING", "warning_causes": ["warn_zone"]}, "step_back"),
    ({"state": "STOPPED", "warning_causes": ["warn_zone"]}, "stopped"),
    ({"state": "READY", "estop_open": True, "warning_causes": []}, "stopped"),
])
def test_the_cue_says_good_step_back_or_stopped(status, expected):
    assert cue(status) == expected and expected in CUES


def test_the_trips_own_cause_comes_first_as_on_the_dashboard():
    """The controller's order: the cause it tripped on first, whatever it noted while stopped."""
    shown = patient_view({"state": "STOPPED", "reasons": {"estop_command": "", "stop_zone": "", "startup": ""}})
    assert shown["reasons"] == ["estop_command", "stop_zone", "startup"]
    assert patient_view({"state": "RUNNING", "reasons": {"stop_zone": ""}})["reasons"] == []


@pytest.mark.parametrize("mode, reverse_faces_edge, expected", [
    ("reverse", True, "step_back"),      # the usual retro-walking set-up: the patient faces the edge
    ("reverse", False, "step_forward"),  # a belt carrying the patient away: the edge is behind them
    ("forward", True, "step_forward"),   # walking forwards: the edge is behind them
])
def test_the_warn_cue_points_away_from_the_edge_for_the_way_the_patient_faces(mode, reverse_faces_edge, expected):
    status = {"state": "RUNNING", "mode": mode, "warning_causes": ["warn_zone"]}
    assert cue(status, reverse_faces_edge) == expected
    assert patient_view(status, reverse_faces_edge)["cue"] == expected


def test_every_trip_code_has_a_sentence_for_the_patient():
    """A trip the controller can raise never leaves the patient with the generic sentence."""
    assert sorted(set(PLAIN_REASONS) - set(PATIENT_REASONS)) == []
    assert sorted(_cause_codes() - set(PATIENT_REASONS)) == []
    assert sorted(set(PATIENT_REASONS) - set(PLAIN_REASONS)) == [], "a sentence for a code no one raises"


def test_the_display_speaks_the_clinic_language(client):
    """?lang=zh (a kiosk address may pin it): the stop sentences and the page are Chinese."""
    response, page = _page(client, "/patient?lang=zh")
    text = response.get_data(as_text=True)
    assert '<html lang="zh">' in text
    sentences = json.loads(page.json["stop-sentences"])
    assert sentences["stop_zone"] != PATIENT_REASONS["stop_zone"] and "边缘" in sentences["stop_zone"]
    assert sentences[""] != GENERIC_STOP
    assert AFTER_STOP not in text
    catalog = json.loads(page.json["script-catalog"])
    assert catalog["Step back"] and catalog["Step back"] != "Step back"


def test_an_offline_controller_gets_409_not_a_stale_status(offline_client):
    assert offline_client.get("/api/patient/status").status_code == 409
