"""Every prompt rendered by the real espeak-ng, in every shipped language, through `voice --say-all`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from controller.config import LANGUAGES
from voice import speech
from voice.prompts import PROMPTS, words
from voice.speech import ESPEAK_VOICES, EngineError, cached_prompts, phonemes, wav_info

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def say_all(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", "voice", "--say-all", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


@pytest.mark.parametrize("language", LANGUAGES)
def test_say_all_renders_every_prompt_to_a_non_silent_wav_of_a_prompts_length(language, tmp_path):
    done = say_all("--wav-dir", str(tmp_path), "--language", language)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{p.key}.wav" for p in PROMPTS)
    for prompt in PROMPTS:
        info = wav_info(tmp_path / f"{prompt.key}.wav")
        assert 0.3 <= info.duration_s <= 15.0, (prompt.key, info)
        # Speech, not a click: loud peaks and real energy across the file.
        assert info.peak >= 5000 and info.rms >= 500, (prompt.key, info)
        assert f"{prompt.key}.wav" in done.stdout
    assert f"{len(PROMPTS)} of {len(PROMPTS)} prompts usable" in done.stdout


def test_the_languages_sound_different(tmp_path):
    """The Chinese files are Chinese speech, not the English ones again (a catalog that fell back)."""
    for language in LANGUAGES:
        assert say_all("--wav-dir", str(tmp_path / language), "--language", language).returncode == 0
    for prompt in PROMPTS:
        en, zh = ((tmp_path / lang / f"{prompt.key}.wav").read_bytes() for lang in ("en", "zh"))
        assert en != zh, prompt.key
    assert words("zh")["stopped_stand_still"] == "已停止：请站稳别动。"


def test_the_chinese_prompts_are_read_as_mandarin_not_spelled_out_in_english():
    """espeak-ng 1.51's plain "cmn" voice reads characters as pinyin in English ("hao three");
    every Chinese prompt must come out as Mandarin phonemes with tones, with no switch to English."""
    assert ESPEAK_VOICES["zh"] == "cmn-latn-pinyin"
    for key, text in words("zh").items():
        spoken = phonemes(text, "zh")
        assert "(en)" not in spoken, (key, spoken)
        assert any(tone in spoken for tone in ("55", "35", "214", "51", "21")), (key, spoken)


def test_say_all_takes_the_rate_and_volume_from_the_config(tmp_path):
    from sim.bench import EXAMPLE_CONFIG
    config = tmp_path / "config.toml"
    config.write_text(EXAMPLE_CONFIG.read_text().replace("rate_wpm = 140", "rate_wpm = 90")
                      .replace("volume_pct = 100", "volume_pct = 40"))
    slow = say_all("--wav-dir", str(tmp_path / "slow"), "--config", str(config))
    normal = say_all("--wav-dir", str(tmp_path / "normal"))
    assert slow.returncode == 0 and normal.returncode == 0, slow.stderr + normal.stderr
    assert "90 words/min, volume 40 %" in slow.stdout
    a, b = (wav_info(tmp_path / d / "session_complete.wav") for d in ("slow", "normal"))
    assert a.duration_s > 1.2 * b.duration_s and a.peak < b.peak


def test_say_all_fails_naming_the_missing_engine(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # no espeak-ng on this PATH
    done = subprocess.run([sys.executable, "-m", "cli", "voice", "--say-all", "--wav-dir", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert done.returncode == 1
    assert "espeak-ng is not installed (sudo apt-get install espeak-ng)" in done.stderr


def test_the_cache_renders_once_per_setting_and_replaces_an_old_set(tmp_path):
    first = cached_prompts(tmp_path, "en", 140, 100)
    stamps = {k: p.stat().st_mtime_ns for k, p in first.items()}
    again = cached_prompts(tmp_path, "en", 140, 100)
    assert again == first and {k: p.stat().st_mtime_ns for k, p in again.items()} == stamps
    faster = cached_prompts(tmp_path, "en", 180, 100)
    assert faster["stopping"].parent != first["stopping"].parent
    assert not first["stopping"].parent.exists(), "the old set of this language is removed"
    assert [p.name for p in tmp_path.iterdir()] == [faster["stopping"].parent.name]


def test_a_render_error_names_the_engine(tmp_path):
    with pytest.raises(EngineError, match="not installed"):
        speech.render("Stopping.", "en", 140, 100, tmp_path / "x.wav", executable=str(tmp_path / "espeak-ng"))
