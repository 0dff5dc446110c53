"""A sound card for the tests, at the lowest seam: real aplay, real alsa-lib, a FIFO where the DAC would be.

Each play runs ``aplay -q -D file:FILE=<fifo>,FORMAT=raw <wav>``: ALSA's ``file`` plugin writes
the samples aplay hands to the device into a FIFO made for that play. A thread reads the FIFO at
the card's pace (the WAV's byte rate, through a one-page pipe buffer, so aplay blocks as it would on
a card) and notes when the first samples arrived: the audio start. A player that is killed
mid-prompt shows as fewer bytes than the prompt holds.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import select
import shutil
import threading
import time
import wave
from dataclasses import dataclass
from pathlib import Path

APLAY = shutil.which("aplay") or "/usr/bin/aplay"
F_SETPIPE_SZ = 1031  # Linux fcntl.h


@dataclass
class Playback:
    """One play as the card saw it."""

    n: int
    key: str
    #: The prompt's full length in bytes of PCM.
    expected_bytes: int
    t_spawned: float
    t_first: float | None = None
    t_end: float | None = None
    nbytes: int = 0

    @property
    def cut_off(self) -> bool:
        """Ended before all of the prompt reached the card (its player was killed)."""
        return self.t_end is not None and self.nbytes < self.expected_bytes


class FifoSink:
    """``argv_for`` for voice.player.Speaker; ``playbacks`` holds what the card received, in order."""

    def __init__(self, directory: Path, paced: bool = True):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.paced = paced
        self.playbacks: list[Playback] = []
        self._numbers = itertools.count(1)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def argv_for(self, wav: Path) -> list[str]:
        n = next(self._numbers)
        fifo = self.directory / f"play{n}.fifo"
        os.mkfifo(fifo)
        with wave.open(str(wav), "rb") as w:
            byte_rate = w.getframerate() * w.getsampwidth() * w.getnchannels()
            expected = w.getnframes() * w.getsampwidth() * w.getnchannels()
        playback = Playback(n, Path(wav).stem, expected, time.monotonic())
        # Opened here, before aplay runs: a non-blocking reader needs no writer to open.
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            fcntl.fcntl(fd, F_SETPIPE_SZ, 4096)
        except OSError:
            pass
        thread = threading.Thread(target=self._read, args=(fd, playback, byte_rate), name=f"sink-{n}", daemon=True)
        with self._lock:
            self.playbacks.append(playback)
            self._threads.append(thread)
        thread.start()
        return [APLAY, "-q", "-D", f"file:FILE={fifo},FORMAT=raw", str(wav)]

    def _read(self, fd: int, playback: Playback, byte_rate: int) -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        try:
            while not self._stop.is_set():
                if not poller.poll(50):
                    continue
                chunk = os.read(fd, 4096)
                if not chunk:  # every writer has closed: aplay ended or was killed
                    if playback.t_first is not None or self._stop.is_set():
                        break
                    continue
                now = time.monotonic()
                if playback.t_first is None:
                    playback.t_first = now
                playback.nbytes += len(chunk)
                if self.paced:  # the card takes samples no faster than it plays them
                    due = playback.t_first + playback.nbytes / byte_rate
                    self._stop.wait(max(0.0, due - time.monotonic()))
        except OSError:
            pass
        finally:
            playback.t_end = time.monotonic()
            os.close(fd)

    def prompts(self) -> list[Playback]:
        """The plays of prompts (not the device check's silence) that reached the card, in order."""
        with self._lock:
            return [p for p in self.playbacks if p.key != "silence" and p.t_first is not None]

    def close(self) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(2.0)
