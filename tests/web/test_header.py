"""The header on every page: state, reasons in plain words, E-STOP and Stop, and the session strip."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.web.helpers import PageParser
from web.reasons import PLAIN_REASONS, UNKNOWN_REASON, plain_reason

ROOT = Path(__file__).resolve().parents[2]
HEADER_IDS = ["state-banner", "state-reasons", "offline", "storage-warning", "estop", "stop", "stop-message",
              "header-session", "session-timer", "session-phase", "session-pause", "session-resume", "session-end",
              "plain-reasons", "nav-dashboard", "nav-patients", "main"]


class DataParser(PageParser):
    """Also keeps the text of the JSON data block."""

    def __init__(self):
        super().__init__()
        self.data: dict[str, str] = {}
        self._data_id: str | None = None

    def handle_starttag(self, tag, attrs):
        super().handle_starttag(tag, attrs)
        a = dict(attrs)
        if tag == "script" and a.get("type") == "application/json":
            self._data_id = a["id"]
            self.data[self._data_id] = ""

    def handle_data(self, data):
        super().handle_data(data)
        if self._data_id:
            self.data[self._data_id] += data

    def handle_endtag(self, tag):
        super().handle_endtag(tag)
        if tag == "script":
            self._data_id = None


def _parse(client, path):
    response = client.get(path)
    parser = DataParser()
    parser.feed(response.get_data(as_text=True))
    return response, parser


@pytest.mark.parametrize("path", ["/", "/patients", "/patients/P01", "/sessions/7"])
def test_every_page_has_the_header_with_stop_and_the_session_strip(therapist_client, path):
    response, parser = _parse(therapist_client, path)
    assert response.status_code == 200
    assert [i for i in HEADER_IDS if i not in parser.ids] == []
    assert "/static/header.js" in parser.refs
    # E-STOP and Stop never hide; the session's buttons are a therapist's.
    assert "hidden" not in parser.ids["estop"] and "hidden" not in parser.ids["stop"]
    assert json.loads(parser.data["plain-reasons"]) == {**{k: list(v) for k, v in PLAIN_REASONS.items()},
                                                        "": list(UNKNOWN_REASON)}


def test_the_header_reasons_come_in_the_page_language(therapist_client):
    """?lang=zh: the plain reasons and the switch are Chinese; the unknown code's pair travels under ""."""
    response, parser = _parse(therapist_client, "/?lang=zh")
    page = response.get_data(as_text=True)
    assert '<html lang="zh">' in page
    reasons = json.loads(parser.data["plain-reasons"])
    assert reasons["stop_zone"][0] == "患者离后边缘太近"
    assert set(reasons) == set(PLAIN_REASONS) | {""}
    assert "语言" in page


def test_the_log_in_notice_has_the_header_too(client):
    response, parser = _parse(client, "/patients")
    assert response.status_code == 401
    assert "estop" in parser.ids and "stop" in parser.ids and "notice-title" in parser.ids
    assert "hidden" in parser.ids["nav-who"]


def _cause_codes() -> set[str]:
    """Every reason code the controller can raise or refuse a reset with: ``Cause("code"`` in its source."""
    codes = set()
    for path in (ROOT / "controller").rglob("*.py"):
        text = path.read_text()
        codes |= set(re.findall(r'Cause\(\s*f?"([a-z_]+)', text))
        # The reasons the core starts with.
        codes |= set(re.findall(r'self\.reasons[^=]*= \{"([a-z_]+)"', text))
    return codes


def test_every_reason_the_controller_can_give_has_a_plain_sentence_and_a_next_step():
    codes = _cause_codes()
    assert {"stop_zone", "estop", "link_fault", "sensor_fault", "startup"} <= codes  # the scan finds them
    assert sorted(codes - set(PLAIN_REASONS)) == []
    assert sorted(set(PLAIN_REASONS) - codes) == [], "a sentence for a code the controller never gives"
    for sentence, step in PLAIN_REASONS.values():
        assert sentence and step and "_" not in sentence + step


def test_a_sensor_reason_names_the_sensor_and_an_unknown_code_is_still_plain():
    assert plain_reason("sensor_fault:left") == ("Left distance sensor not answering", "Check its cable, then Reset")
    assert plain_reason("sensor_obstructed:right")[0] == "Something is right in front of the right distance sensor"
    assert plain_reason("from_a_newer_controller") == UNKNOWN_REASON
