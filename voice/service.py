"""The voice service: the status link, the prompter and the speaker, wired together.

Threads (all daemon threads of the ``treadmill-safety voice`` process):

- ``voice-link``: reads the controller's status pushes and feeds the prompter;
  each prompt goes straight to the speaker (no work on the way).
- ``voice-speaker``: runs one player at a time; a more urgent prompt kills it.
- ``voice-upkeep``: renders the prompts (once per settings, then from the cache) and
  checks the sound device at the start, and again every ``retry_s`` while either fails.
- ``voice-health``: writes the health file when something changed.

Failures never stop the service: a missing espeak-ng, a missing voice or a sound
device that does not open is logged once per episode (again when it works again)
and written to the health file, where ``doctor`` shows it.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from controller.config import Config
from voice.health import Health
from voice.link import StatusLink
from voice.player import Played, Speaker, aplay_argv, play_file
from voice.prompter import Cue, Prompter
from voice.speech import ESPEAK, ESPEAK_VOICES, EngineError, cached_prompts, check_language, engine_version, \
    write_silence

log = logging.getLogger(__name__)

#: How often a failed rendering or device check is tried again.
RETRY_S = 60.0


def voice_language(cfg: Config) -> str:
    """The prompts' language: [voice] language, or the [display] language when that is ""."""
    return cfg.voice.language or cfg.display.language


class VoiceService:
    """Speaks the prompts the controller's statuses call for; never stops on an audio failure."""

    def __init__(self, *, socket_path: str, language: str, rate_wpm: int, volume_pct: int, cache_dir: Path,
                 argv_for: Callable[[Path], list[str]], health_file: Path | None,
                 prompter: Prompter | None = None, engine: str = ESPEAK, retry_s: float = RETRY_S):
        self.language, self.rate_wpm, self.volume_pct = language, rate_wpm, volume_pct
        self.cache_dir = Path(cache_dir)
        self.engine = engine
        self.retry_s = retry_s
        self.prompter = prompter or Prompter()
        self.health = Health(health_file, language=language, voice=ESPEAK_VOICES[language])
        self.speaker = Speaker(argv_for, on_started=self._on_started, on_done=self._on_done)
        self.link = StatusLink(socket_path, self._on_status, on_online=self._on_online)
        #: (cue, monotonic time its player started), newest last: what was said, for tests and the bench.
        self.started: list[tuple[Cue, float]] = []
        self.engine_ok: bool | None = None
        self.device_ok: bool | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, cfg: Config, *, cache_dir: Path, health_file: Path | None, socket_path: str | None = None,
                    argv_for: Callable[[Path], list[str]] | None = None, **kw: Any) -> "VoiceService":
        """The service as [voice] and [web] ipc_socket configure it (playing with aplay on [voice] device)."""
        v = cfg.voice
        kw.setdefault("prompter", Prompter(reverse_faces_edge=cfg.treadmill.carries_toward_edge("reverse")))
        return cls(socket_path=socket_path or cfg.web.ipc_socket, language=voice_language(cfg), rate_wpm=v.rate_wpm,
                   volume_pct=v.volume_pct, cache_dir=cache_dir, argv_for=argv_for or aplay_argv(v.device),
                   health_file=health_file, **kw)

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> "VoiceService":
        """Start every thread; the prompts are rendered (or taken from the cache) before the link starts."""
        self.health.start()
        self.speaker.start()
        self._thread = threading.Thread(target=self._upkeep, name="voice-upkeep", daemon=True)
        self._thread.start()
        return self

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until the prompts were rendered (or failed to be) and the link started."""
        return self._ready.wait(timeout_s)

    def close(self) -> None:
        """Stop listening, cut off any prompt, write the last health. Idempotent."""
        self._stop.set()
        self.link.close()
        self.speaker.close()
        if self._thread is not None:
            self._thread.join(5.0)
        self.health.close()

    # ---- rendering and the device check -------------------------------------------------------

    def _upkeep(self) -> None:
        self._prepare()
        if self._stop.is_set():
            return
        self.link.start()
        self._ready.set()
        while not self._stop.wait(self.retry_s):
            # While the speaker plays, its own result answers the question (and a check would hold the device).
            if (not self.engine_ok or not self.device_ok) and self.speaker.idle():
                self._prepare()

    def _prepare(self) -> None:
        if not self.engine_ok:
            try:
                check_language(self.language, self.engine)
                sounds = cached_prompts(self.cache_dir, self.language, self.rate_wpm, self.volume_pct, self.engine)
                version = engine_version(self.engine)
            except (EngineError, OSError) as exc:
                if self.engine_ok is not False:
                    log.error("voice: the prompts cannot be rendered: %s; the voice stays silent and tries again "
                              "every %g s", exc, self.retry_s)
                self.engine_ok = False
                self.health.update(engine={"ok": False, "detail": str(exc)})
                return
            self.speaker.set_sounds(sounds)
            if self.engine_ok is False:
                log.info("voice: the prompts are rendered now")
            self.engine_ok = True
            self.health.update(engine={"ok": True, "detail": f"{version}, voice {ESPEAK_VOICES[self.language]}: "
                                                             f"{len(sounds)} prompts in {self.cache_dir}"})
        self._check_device()

    def _check_device(self) -> None:
        """Play a tenth of a second of silence: the device opens, or the player says why not."""
        try:
            silence = write_silence(self.cache_dir / "silence.wav")
        except OSError as exc:
            ok, detail = False, f"cannot write {self.cache_dir / 'silence.wav'}: {exc}"
        else:
            ok, detail = play_file(self.speaker.argv_for, silence)
        self._device_result(ok, "opened" if ok else detail)

    def _device_result(self, ok: bool, detail: str) -> None:
        if not ok and self.device_ok is not False:
            log.error("voice: the sound device does not play: %s (logged once; again when it works)", detail)
        elif ok and self.device_ok is False:
            log.info("voice: the sound device plays again")
        self.device_ok = ok
        self.health.update(device={"ok": ok, "detail": detail})

    # ---- the link and the speaker's reports -------------------------------------------------------

    def _on_status(self, status: dict[str, Any]) -> None:
        try:
            cues = self.prompter.feed(status)
        except Exception:  # noqa: BLE001 - a status the prompter cannot read must not end the subscription
            log.exception("voice: could not read a status")
            return
        for cue in cues:
            self.speaker.say(cue)

    def _on_online(self, online: bool, detail: str) -> None:
        self.health.update(controller={"connected": online, "detail": detail})

    def _on_started(self, cue: Cue, t_start: float) -> None:
        self.started.append((cue, t_start))
        del self.started[:-200]
        latency_ms = round((t_start - cue.t_event) * 1000.0, 1)
        log.info("voice: %s: player started %.0f ms after its event", cue.key, latency_ms)
        self.health.update(last_prompt={"key": cue.key, "wall": time.time(), "latency_ms": latency_ms})

    def _on_done(self, played: Played) -> None:
        self.health.update(dropped=self.speaker.dropped_total())
        if played.ok:
            self.health.count("spoken")
            if not self.device_ok:
                self._device_result(True, "played a prompt")
            return
        self.health.count("failed")
        if played.t_start is None and not self.engine_ok:
            return  # not rendered: the engine's error was logged once already
        self._device_result(False, f"prompt {played.cue.key} not spoken: {played.detail}")
