"""The doctor's voice line: the real engine and aplay, the service's health file."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from controller.config import load_config
from controller.doctor.context import Report
from sim.bench import EXAMPLE_CONFIG
from voice.doctor import CHECK, check_voice

APLAY = shutil.which("aplay") or "aplay"


@pytest.fixture
def cfg():
    base = load_config(EXAMPLE_CONFIG)
    return dataclasses.replace(base, voice=dataclasses.replace(base.voice, language="zh"))


def line(cfg, **kw) -> str:
    lines: list[str] = []
    report = Report(lines.append)
    check_voice(cfg, report, **kw)
    assert len(lines) == 1 and lines[0].split(" ", 1)[1].startswith(f"{CHECK}:"), lines
    assert report.failed == lines[0].startswith("FAIL ")
    return lines[0]


def healthy(tmp_path, **changes) -> object:
    state = {"engine": {"ok": True, "detail": "eSpeak NG 1.51"}, "device": {"ok": True, "detail": "opened"},
             "controller": {"connected": True, "detail": ""}, "spoken": 4, "failed": 0, "dropped": 1,
             "last_prompt": {"key": "step_back", "wall": 0.0, "latency_ms": 12.5}, **changes}
    path = tmp_path / "health.json"
    path.write_text(json.dumps(state))
    return path


def test_disabled_is_a_skip(cfg, tmp_path):
    off = dataclasses.replace(cfg, voice=dataclasses.replace(cfg.voice, enabled=False))
    assert line(off, health_file=tmp_path / "none.json") == f"SKIP {CHECK}: [voice] enabled = false: no spoken prompts"


def test_a_missing_engine_fails_with_the_package_to_install(cfg, tmp_path):
    text = line(cfg, health_file=tmp_path / "none.json", engine=str(tmp_path / "espeak-ng"))
    assert text.startswith(f"FAIL {CHECK}: espeak-ng cannot speak the zh prompts:")
    assert "sudo apt-get install espeak-ng" in text and "--say-all" in text


def test_without_the_service_the_doctor_opens_the_device_itself(cfg, tmp_path, sink):
    text = line(cfg, health_file=tmp_path / "none.json", argv_for=sink.argv_for)
    assert text.startswith(f"PASS {CHECK}: eSpeak NG") and "voice cmn-latn-pinyin" in text
    assert "ALSA device 'default' opened; the voice service is not running" in text
    assert [p.key for p in sink.playbacks] == ["silence"]


def test_a_device_that_does_not_open_fails_with_what_to_check(cfg, tmp_path):
    broken = dataclasses.replace(cfg, voice=dataclasses.replace(cfg.voice, device="no_such_card"))
    text = line(broken, health_file=tmp_path / "none.json", argv_for=lambda wav: [APLAY, "-q", "-D", "no_such_card",
                                                                                 str(wav)])
    assert text.startswith(f"FAIL {CHECK}:") and "ALSA device 'no_such_card' does not play:" in text
    assert "no_such_card" in text.split("does not play:", 1)[1]  # aplay's own complaint
    assert "aplay -L" in text and "group audio" in text


def test_the_running_services_health_is_shown(cfg, tmp_path):
    text = line(cfg, health_file=healthy(tmp_path))
    assert text.startswith(f"PASS {CHECK}:") and "connected to the controller" in text
    assert "4 spoken, 0 failed, 1 dropped as out of date; last prompt step_back 12.5 ms after its event" in text


def test_the_services_audio_failure_is_a_fail(cfg, tmp_path):
    path = healthy(tmp_path, device={"ok": False, "detail": "prompt stopping not spoken: audio open error: "
                                                            "Device or resource busy"})
    text = line(cfg, health_file=path)
    assert text.startswith(f"FAIL {CHECK}:") and "Device or resource busy" in text and "aplay -L" in text


def test_an_unreadable_health_file_is_a_fail(cfg, tmp_path):
    path = tmp_path / "health.json"
    path.write_text("{not json")
    assert "health file is unreadable" in line(cfg, health_file=path)
