"""``treadmill-safety voice``: the spoken-prompt service, and ``--say-all`` to hear (or check) a language.

    treadmill-safety voice --config FILE                 # the service (systemd/treadmill-voice.service)
    treadmill-safety voice --say-all --wav-dir DIR [--language zh] [--config FILE]

``--say-all`` renders every prompt to DIR/KEY.wav with espeak-ng, without playing
anything, and prints each file's length; it exits 1 if any prompt fails, is
silent, is not 0.3 to 15 s long, or (Chinese) would be read as English. The
installer runs it to check that a language works on this Pi.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from cli.options import load_or_exit, setup_logging
from controller.config import LANGUAGES, VoiceConfig


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register ``voice``."""
    p = sub.add_parser("voice", help="speak prompts for the patient (a client of the controller's socket); "
                                     "--say-all renders every prompt to WAV files")
    p.add_argument("--config", help="path to config.toml (required for the service; --say-all reads [voice] "
                                    "rate_wpm, volume_pct and the language from it when given)")
    p.add_argument("--say-all", action="store_true", help="render every prompt to --wav-dir, play nothing, exit")
    p.add_argument("--wav-dir", help="with --say-all: where the WAV files go (created if needed)")
    p.add_argument("--language", choices=LANGUAGES, help="the prompts' language (overrides [voice] language)")
    p.add_argument("--ipc-socket", help="override [web] ipc_socket (the controller's socket)")
    p.add_argument("--health-file", help="where the service writes its health for doctor "
                                         "(default: $RUNTIME_DIRECTORY/health.json, else /run/treadmill-voice/health.json)")
    p.add_argument("--cache-dir", help="where the rendered prompts are kept "
                                       "(default: $CACHE_DIRECTORY, else a directory under the system's temp dir)")
    p.set_defaults(func=cmd_voice)


def cmd_voice(args: argparse.Namespace) -> int:
    """The service, or with --say-all the rendering of every prompt."""
    if args.say_all:
        return say_all(args)
    if not args.config:
        print("voice: --config is required to run the service (or use --say-all --wav-dir DIR)", file=sys.stderr)
        return 2
    return run_service(args)


def say_all(args: argparse.Namespace) -> int:
    """Render every prompt of one language to its own WAV file; 0 if each is a usable prompt."""
    from voice.prompts import words
    from voice.speech import ESPEAK_VOICES, MAX_PROMPT_S, MIN_PROMPT_S, EngineError, check_language, render
    from voice.service import voice_language
    if not args.wav_dir:
        print("voice: --say-all needs --wav-dir DIR", file=sys.stderr)
        return 2
    if args.config:
        cfg = load_or_exit(args.config)
        settings, language = cfg.voice, args.language or voice_language(cfg)
    else:
        settings, language = VoiceConfig(), args.language or "en"
    out = Path(args.wav_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"voice: cannot create {out}: {exc}", file=sys.stderr)
        return 2
    problems = []
    try:
        check_language(language)
    except EngineError as exc:
        problems.append(str(exc))
    for key, text in words(language).items():
        path = out / f"{key}.wav"
        try:
            info = render(text, language, settings.rate_wpm, settings.volume_pct, path)
        except EngineError as exc:
            problems.append(f"{key}: {exc}")
            continue
        fits = MIN_PROMPT_S <= info.duration_s <= MAX_PROMPT_S
        if not fits:
            problems.append(f"{key}: {info.duration_s:.2f} s long, outside {MIN_PROMPT_S:g} to {MAX_PROMPT_S:g} s")
        print(f"{path}  {info.duration_s:5.2f} s  peak {info.peak:5d}  {text}")
    print(f"{language} (espeak-ng voice {ESPEAK_VOICES[language]}, {settings.rate_wpm} words/min, "
          f"volume {settings.volume_pct} %): {len(words(language)) - len(problems)} of {len(words(language))} "
          "prompts usable")
    for problem in problems:
        print(f"voice: {problem}", file=sys.stderr)
    return 1 if problems else 0


def default_cache_dir() -> Path:
    """systemd's CacheDirectory= (it sets $CACHE_DIRECTORY), else one per user under the temp dir."""
    return Path(os.environ.get("CACHE_DIRECTORY") or Path(tempfile.gettempdir()) / f"treadmill-voice-{os.getuid()}")


def default_health_file() -> Path:
    """systemd's RuntimeDirectory= (it sets $RUNTIME_DIRECTORY), else where the unit puts it."""
    from voice.health import DEFAULT_HEALTH_FILE
    runtime = os.environ.get("RUNTIME_DIRECTORY")
    return Path(runtime.split(":")[0]) / "health.json" if runtime else DEFAULT_HEALTH_FILE


def run_service(args: argparse.Namespace) -> int:
    """Run the voice until SIGTERM or SIGINT; a disabled voice ([voice] enabled = false) exits at once."""
    cfg = load_or_exit(args.config)
    if args.language:
        cfg = dataclasses.replace(cfg, voice=dataclasses.replace(cfg.voice, language=args.language))
    listener = setup_logging()
    try:
        log = logging.getLogger("voice")
        if not cfg.voice.enabled:
            log.info("voice: [voice] enabled = false in %s: no prompts; exiting", args.config)
            return 0
        from voice.service import VoiceService
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: stop.set())
        service = VoiceService.from_config(
            cfg, cache_dir=Path(args.cache_dir) if args.cache_dir else default_cache_dir(),
            health_file=Path(args.health_file) if args.health_file else default_health_file(),
            socket_path=args.ipc_socket).start()
        try:
            while not stop.wait(1.0):
                pass
        finally:
            service.close()
        return 0
    finally:
        listener.stop()
