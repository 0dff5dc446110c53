"""`treadmill-safety voice`'s command line: what it refuses, and a disabled voice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sim.bench import EXAMPLE_CONFIG

REPO = Path(__file__).resolve().parents[2]


def voice(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", "voice", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=60)


def test_a_disabled_voice_exits_at_once_saying_why(tmp_path):
    config = tmp_path / "config.toml"
    text = EXAMPLE_CONFIG.read_text()
    voice_section = text.index("[voice]")
    config.write_text(text[:voice_section] + text[voice_section:].replace("enabled = true", "enabled = false", 1))
    done = voice("--config", str(config), "--health-file", str(tmp_path / "health.json"))
    assert done.returncode == 0 and "[voice] enabled = false" in done.stderr, done.stderr
    assert not (tmp_path / "health.json").exists()


def test_the_service_needs_a_config_and_say_all_a_directory():
    done = voice()
    assert done.returncode == 2 and "--config is required" in done.stderr
    done = voice("--say-all")
    assert done.returncode == 2 and "--say-all needs --wav-dir DIR" in done.stderr


def test_an_invalid_voice_setting_is_refused_naming_it(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(EXAMPLE_CONFIG.read_text().replace("rate_wpm = 140", "rate_wpm = 400"))
    done = voice("--config", str(config), "--say-all", "--wav-dir", str(tmp_path / "out"))
    assert done.returncode == 2 and "[voice] rate_wpm = 400" in done.stderr, done.stderr
