"""The doctor's voice line: can this Pi speak the prompts, and does the voice service say it can?

Wired into ``treadmill-safety doctor`` by the command line (cli/main.py), after the
controller's own checks. One line:

- SKIP when [voice] enabled = false;
- FAIL when espeak-ng is missing, lacks the language's voice, or would read it as English;
- then, while the voice service runs, what its health file says (the sound device as
  the service's user opens it, the controller link, the last prompt and its latency);
  while it does not, this user plays a tenth of a second of silence on [voice] device (a SKIP
  when it fails for a user outside group audio, as the controller's user is).
"""

from __future__ import annotations

import grp
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from controller.config import Config
from controller.doctor.context import Report
from voice.health import DEFAULT_HEALTH_FILE, read_health
from voice.player import aplay_argv, play_file
from voice.prompts import words
from voice.service import voice_language
from voice.speech import ESPEAK, ESPEAK_VOICES, EngineError, check_language, engine_version, render, write_silence

CHECK = "voice prompts"
VOICE_USER = "treadmill-voice"


def _may_use_sound_cards() -> bool:
    """Whether this process may open /dev/snd/* (root, or a member of group audio)."""
    if os.geteuid() == 0:
        return True
    try:
        audio = grp.getgrnam("audio").gr_gid
    except KeyError:
        return False
    return audio == os.getegid() or audio in os.getgroups()


def _device_hint(device: str) -> str:
    return (f"check [voice] device = {device!r} against `aplay -L`, that the speaker is plugged in and switched "
            f"on, and that the user playing is in group audio ({VOICE_USER} is); listen to every prompt with "
            "`treadmill-safety voice --say-all --wav-dir /tmp/prompts` and `aplay -D DEVICE /tmp/prompts/*.wav`")


def check_voice(cfg: Config, report: Report, *, health_file: Path = DEFAULT_HEALTH_FILE,
                argv_for: Callable[[Path], list[str]] | None = None, engine: str = ESPEAK) -> None:
    """Print the voice line; the engine is checked here, the device through the service when it runs."""
    v = cfg.voice
    if not v.enabled:
        report.skip(CHECK, "[voice] enabled = false: no spoken prompts")
        return
    language = voice_language(cfg)
    voice = ESPEAK_VOICES[language]
    device = v.device or "default"
    with tempfile.TemporaryDirectory(prefix="treadmill-doctor-voice-") as tmp:
        try:
            version = engine_version(engine)
            check_language(language, engine)
            info = render(words(language)["stopped_stand_still"], language, v.rate_wpm, v.volume_pct,
                          Path(tmp) / "trip.wav", engine)
        except EngineError as exc:
            report.fail(CHECK, f"espeak-ng cannot speak the {language} prompts: {exc}",
                        "sudo apt-get install espeak-ng (it brings the voices, espeak-ng-data), then check with "
                        f"`treadmill-safety voice --say-all --wav-dir /tmp/prompts --language {language}`")
            return
        engine_text = f"{version}, voice {voice}: the trip prompt renders ({info.duration_s:.1f} s)"
        health = read_health(health_file)
        if health is None:
            ok, detail = play_file(argv_for or aplay_argv(v.device), write_silence(Path(tmp) / "silence.wav"))
            if not ok and not _may_use_sound_cards():
                report.skip(CHECK, f"{engine_text}; ALSA device {device!r} not checked: this user is not in group "
                                   f"audio ({detail}); the voice service ({VOICE_USER}, in group audio) checks it "
                                   "when it starts: start treadmill-voice and run doctor again")
                return
            if not ok:
                report.fail(CHECK, f"{engine_text}; but ALSA device {device!r} does not play: {detail}",
                            _device_hint(device))
                return
            report.ok(CHECK, f"{engine_text}; ALSA device {device!r} opened; the voice service is not running "
                             f"(no {health_file}): start treadmill-voice and run doctor again to see its state")
            return
    _service_line(report, health, health_file, engine_text, device)


def _service_line(report: Report, health: dict[str, Any], health_file: Path, engine_text: str, device: str) -> None:
    if "unreadable" in health:
        report.fail(CHECK, f"{engine_text}; the voice service's health file is unreadable: {health['unreadable']}",
                    "restart it: sudo systemctl restart treadmill-voice")
        return
    engine, dev = health.get("engine") or {}, health.get("device") or {}
    link = health.get("controller") or {}
    if engine.get("ok") is False:
        report.fail(CHECK, f"{engine_text}; but the voice service cannot render: {engine.get('detail')}",
                    "install espeak-ng (sudo apt-get install espeak-ng); the service tries again every minute")
        return
    if dev.get("ok") is False:
        report.fail(CHECK, f"{engine_text}; the voice service cannot play on ALSA device {device!r}: "
                           f"{dev.get('detail')}", _device_hint(device))
        return
    last = health.get("last_prompt")
    said = (f"last prompt {last['key']} {last['latency_ms']:g} ms after its event" if isinstance(last, dict)
            else "no prompt yet")
    connected = "connected to the controller" if link.get("connected") else \
        f"NOT connected to the controller ({link.get('detail') or 'no status yet'})"
    report.ok(CHECK, f"{engine_text}; the voice service ({health_file}) plays on {device!r} "
                     f"({dev.get('detail') or 'not tried yet'}), {connected}; {health.get('spoken', 0)} spoken, "
                     f"{health.get('failed', 0)} failed, {health.get('dropped', 0)} dropped as out of date; {said}")
