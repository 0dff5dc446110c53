"""The speaker: plays rendered prompts one at a time, the most urgent first.

The lowest seam is the command that plays one WAV file (``argv_for(wav)``):
production runs ``aplay -q -D DEVICE FILE`` from alsa-utils; the tests run the
same aplay into an ALSA ``file`` device whose far end records when the first
samples arrive. A prompt more urgent than the one being spoken kills its player
(a trip never waits for "one minute left" to end); each waiting prompt is
dropped once it is out of date (prompts.py: ``max_delay_s``), and a newer one
of its group replaces it.
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from voice.prompter import Cue
from voice.prompts import BY_KEY, URGENT, Prompt

log = logging.getLogger(__name__)

APLAY = "aplay"
#: A player still running this long after it started is hung (a prompt lasts at most 15 s): it is killed.
PLAYER_TIMEOUT_S = 30.0


def complaint(stderr: bytes, returncode: int | None = None) -> str:
    """A player's error output in one short line: its last two lines, without alsa-lib's source locations
    ("ALSA lib pcm.c:2666:(snd_pcm_open_noupdate) Unknown PCM x" -> "Unknown PCM x")."""
    lines = [re.sub(r"^ALSA lib [^ ]+:\d+:\([^)]*\) ", "", ln.strip())
             for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    return "; ".join(lines[-2:]) or (f"exit status {returncode}" if returncode is not None else "no message")


def aplay_argv(device: str = "", executable: str = APLAY) -> Callable[[Path], list[str]]:
    """The production player: aplay on the [voice] device ("" = ALSA's default)."""
    def argv(wav: Path) -> list[str]:
        return [executable, "-q", "-D", device or "default", str(wav)]
    return argv


@dataclass(frozen=True)
class Played:
    """How one prompt went: started (``t_start``, monotonic, when its player was running) or failed."""

    cue: Cue
    t_start: float | None
    ok: bool
    detail: str = ""
    #: Cut off by a more urgent prompt (still counts as said).
    interrupted: bool = False


@dataclass
class _Waiting:
    prompt: Prompt
    cue: Cue


class Speaker:
    """Plays prompts on its own thread; ``say`` never blocks on audio."""

    def __init__(self, argv_for: Callable[[Path], list[str]], *, clock: Callable[[], float] = time.monotonic,
                 on_started: Callable[[Cue, float], None] | None = None,
                 on_done: Callable[[Played], None] | None = None):
        self.argv_for = argv_for
        self.clock = clock
        self.on_started = on_started or (lambda cue, t: None)
        self.on_done = on_done or (lambda played: None)
        self._cond = threading.Condition()
        self._sounds: dict[str, Path] = {}
        self._waiting: list[_Waiting] = []
        self._current: tuple[Prompt, subprocess.Popen] | None = None
        self._cut: set[int] = set()
        self._closed = False
        self._thread: threading.Thread | None = None
        #: Prompts dropped unsaid because they were out of date or replaced, by key.
        self.dropped: dict[str, int] = {}

    def start(self) -> "Speaker":
        """Start the playing thread."""
        self._thread = threading.Thread(target=self._run, name="voice-speaker", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Cut off what is playing, drop what waits, stop the thread. Idempotent."""
        with self._cond:
            self._closed = True
            self._waiting.clear()
            self._cut_current()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(2.0)

    def set_sounds(self, sounds: dict[str, Path]) -> None:
        """The rendered WAV of each prompt key (replaces the previous set)."""
        with self._cond:
            self._sounds = dict(sounds)

    def say(self, cue: Cue) -> None:
        """Queue a prompt; a more urgent one cuts off what is being said. Never blocks on audio."""
        prompt = BY_KEY[cue.key]
        with self._cond:
            if self._closed:
                return
            for old in [w for w in self._waiting if w.prompt.group == prompt.group
                        or (prompt.priority >= URGENT and w.prompt.priority < URGENT)]:
                self._drop(old)
            if self._current is not None and prompt.priority > self._current[0].priority:
                self._cut_current()
            self._waiting.append(_Waiting(prompt, cue))
            self._cond.notify_all()

    def dropped_total(self) -> int:
        """How many prompts were dropped unsaid so far."""
        with self._cond:
            return sum(self.dropped.values())

    def idle(self) -> bool:
        """Nothing playing and nothing waiting."""
        with self._cond:
            return self._current is None and not self._waiting

    # ---- the thread ---------------------------------------------------------------------

    def _drop(self, waiting: _Waiting) -> None:
        self._waiting.remove(waiting)
        self.dropped[waiting.cue.key] = self.dropped.get(waiting.cue.key, 0) + 1
        log.debug("prompt %s dropped unsaid", waiting.cue.key)

    def _cut_current(self) -> None:
        if self._current is not None:
            proc = self._current[1]
            self._cut.add(proc.pid)
            try:
                proc.kill()  # SIGKILL: the device is closed at once, the rest of the sound dropped
            except OSError:
                pass

    def _next(self) -> _Waiting | None:
        """The most urgent prompt still in date (oldest first among equals); out-of-date ones are dropped."""
        now = self.clock()
        for waiting in list(self._waiting):
            if now - waiting.cue.t_event > waiting.prompt.max_delay_s:
                self._drop(waiting)
        if not self._waiting:
            return None
        best = max(self._waiting, key=lambda w: w.prompt.priority)
        self._waiting.remove(best)
        return best

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._waiting)
                if self._closed:
                    return
                item = self._next()
                if item is None:
                    continue
                wav = self._sounds.get(item.cue.key)
                proc, error = None, None
                if wav is None:
                    error = "not rendered (see the speech engine's error)"
                else:
                    try:
                        # Started under the lock: a more urgent say() finds it in _current and can cut it.
                        proc = subprocess.Popen(self.argv_for(wav), stdin=subprocess.DEVNULL,
                                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                        self._current = (item.prompt, proc)
                    except OSError as exc:
                        error = f"cannot start the player: {exc}"
            if proc is None:
                self._report(Played(item.cue, None, False, error or ""))
                continue
            t_start = self.clock()
            self._started(item.cue, t_start)
            self._report(self._wait(item, proc, t_start))

    def _wait(self, item: _Waiting, proc: subprocess.Popen, t_start: float) -> Played:
        try:
            _, err = proc.communicate(timeout=PLAYER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            err = b"the player hung: killed"
        with self._cond:
            self._current = None
            cut = proc.pid in self._cut
            self._cut.discard(proc.pid)
        if cut:
            return Played(item.cue, t_start, True, "cut off by a more urgent prompt", interrupted=True)
        if proc.returncode != 0:
            return Played(item.cue, t_start, False, complaint(err, proc.returncode))
        return Played(item.cue, t_start, True)

    def _started(self, cue: Cue, t_start: float) -> None:
        try:
            self.on_started(cue, t_start)
        except Exception:  # noqa: BLE001 - a broken observer must not silence the speaker
            log.exception("voice: on_started failed")

    def _report(self, played: Played) -> None:
        try:
            self.on_done(played)
        except Exception:  # noqa: BLE001 - a broken observer must not silence the speaker
            log.exception("voice: on_done failed")


def play_file(argv_for: Callable[[Path], list[str]], wav: Path, timeout_s: float = 10.0) -> tuple[bool, str]:
    """Play one file and wait for it (the device checks); (ok, the player's complaint)."""
    try:
        done = subprocess.run(argv_for(wav), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"cannot run the player: {exc}"
    return done.returncode == 0, complaint(done.stderr, done.returncode)
