"""The prompts rendered to WAV files with espeak-ng, the distribution's offline speech engine.

Each prompt is a fixed sentence, so each is rendered once (``espeak-ng -w``) and
kept in a cache directory named after everything that shapes the sound: the
engine's version, the voice, the rate, the volume and the words. Playing a
prompt is then only playing a file (player.py): no synthesis on the way from an
event to the speaker. Nothing is downloaded, ever: the voices come with the
espeak-ng-data package.
"""

from __future__ import annotations

import array
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

from voice.prompts import PROMPTS, words

ESPEAK = "espeak-ng"
#: espeak-ng's voice for each language. Mandarin is "cmn-latn-pinyin": in espeak-ng 1.51 (Debian 12)
#: the plain "cmn" voice turns each character into pinyin with a tone digit and then reads that as
#: English ("hao three"); the pinyin voice reads the same pinyin as Mandarin (espeak-ng issue #1236).
ESPEAK_VOICES = {"en": "en", "zh": "cmn-latn-pinyin"}
#: A prompt the test and the installer accept: long enough to be a word, short enough to be a prompt.
MIN_PROMPT_S, MAX_PROMPT_S = 0.3, 15.0
#: Peak sample (of 32767) below which a rendering counts as silent.
SILENT_PEAK = 500
#: espeak-ng ends every rendering with about 0.43 s of silence: cut to this, so a prompt frees the
#: speaker for the next one sooner (a waiting prompt goes out of date less often).
TRAILING_SILENCE_S = 0.08
#: A sample below this (of 32767) counts as silence when trimming.
QUIET_SAMPLE = 300
RENDER_TIMEOUT_S = 30.0


class EngineError(Exception):
    """espeak-ng is missing, lacks the language's voice, or rendered nothing usable."""


@dataclass(frozen=True)
class WavInfo:
    """What a rendered WAV holds: its length and loudness."""

    duration_s: float
    peak: int
    rms: float

    @property
    def silent(self) -> bool:
        """No sample rises above the silence threshold."""
        return self.peak < SILENT_PEAK


def wav_info(path: Path) -> WavInfo:
    """Length and loudness of a 16-bit PCM WAV (what espeak-ng writes)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise EngineError(f"{path}: {8 * wav.getsampwidth()}-bit samples, expected 16-bit PCM")
        frames = wav.readframes(wav.getnframes())
        rate, channels = wav.getframerate(), wav.getnchannels()
    samples = array.array("h")
    samples.frombytes(frames)
    if sys.byteorder == "big":
        samples.byteswap()
    peak = max(map(abs, samples), default=0)
    rms = (sum(s * s for s in samples) / len(samples)) ** 0.5 if samples else 0.0
    return WavInfo(len(samples) / channels / rate if rate else 0.0, peak, rms)


def trim_trailing_silence(path: Path, keep_s: float = TRAILING_SILENCE_S) -> None:
    """Cut a mono 16-bit WAV's trailing silence down to ``keep_s`` (rewritten in place)."""
    with wave.open(str(path), "rb") as wav:
        params = wav.getparams()
        frames = wav.readframes(wav.getnframes())
    if params.sampwidth != 2 or params.nchannels != 1:
        return
    samples = array.array("h")
    samples.frombytes(frames)
    if sys.byteorder == "big":
        samples.byteswap()
    last = len(samples) - 1
    while last >= 0 and abs(samples[last]) < QUIET_SAMPLE:
        last -= 1
    end = min(len(samples), last + 1 + int(keep_s * params.framerate))
    if end >= len(samples):
        return
    with wave.open(str(path), "wb") as wav:
        wav.setparams(params)
        wav.writeframes(frames[:2 * end])


def engine_path(executable: str = ESPEAK) -> str:
    """The espeak-ng executable; EngineError naming the package when it is not installed."""
    found = shutil.which(executable)
    if found is None:
        raise EngineError(f"{executable} is not installed (sudo apt-get install espeak-ng)")
    return found


def engine_version(executable: str = ESPEAK) -> str:
    """``espeak-ng --version``'s first line, e.g. "eSpeak NG text-to-speech: 1.51 Data at: ..."."""
    out = _run([engine_path(executable), "--version"], "")
    return " ".join(out.split()[:4]) if out else "unknown version"


def _run(argv: list[str], text: str) -> str:
    try:
        done = subprocess.run(argv, input=text.encode(), capture_output=True, timeout=RENDER_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineError(f"{argv[0]} failed: {exc}") from exc
    err = done.stderr.decode(errors="replace").strip()
    if done.returncode != 0:
        raise EngineError(f"{Path(argv[0]).name} exited with {done.returncode}: {err or 'no message'}")
    if err:  # e.g. "Error: voice 'xyz' not found" comes with exit status 0 on some versions
        raise EngineError(f"{Path(argv[0]).name}: {err}")
    return done.stdout.decode(errors="replace")


def render(text: str, language: str, rate_wpm: int, volume_pct: int, wav_path: Path,
           executable: str = ESPEAK) -> WavInfo:
    """Render ``text`` in ``language`` to ``wav_path``; EngineError if it fails or comes out silent."""
    voice = ESPEAK_VOICES[language]
    # The text goes in on stdin (UTF-8, -b 1): no sentence is ever read as an option.
    _run([engine_path(executable), "-b", "1", "-v", voice, "-s", str(int(rate_wpm)), "-a", str(int(volume_pct)),
          "-w", str(wav_path)], text)
    try:
        trim_trailing_silence(wav_path)
        info = wav_info(wav_path)
    except (OSError, EOFError, wave.Error) as exc:
        raise EngineError(f"{ESPEAK} wrote no readable WAV for {text!r}: {exc}") from exc
    if info.silent:
        raise EngineError(f"{ESPEAK} rendered {text!r} in voice {voice} as silence")
    return info


def phonemes(text: str, language: str, executable: str = ESPEAK) -> str:
    """The phonemes espeak-ng would speak for ``text`` (``-x``); "(en)" in them marks a switch to English."""
    return _run([engine_path(executable), "-q", "-b", "1", "-x", "-v", ESPEAK_VOICES[language]], text).strip()


def check_language(language: str, executable: str = ESPEAK) -> None:
    """EngineError if any prompt of ``language`` would be read in another language (a missing dictionary)."""
    if language == "en":
        return
    for key, text in words(language).items():
        spoken = phonemes(text, language, executable)
        if "(en)" in spoken:
            raise EngineError(f"espeak-ng voice {ESPEAK_VOICES[language]} reads the {language} prompt {key} "
                              f"({text!r}) as English: {spoken!r}")


def render_all(language: str, rate_wpm: int, volume_pct: int, directory: Path,
               executable: str = ESPEAK) -> dict[str, Path]:
    """Every prompt of ``language`` to ``directory/KEY.wav``; EngineError on the first that fails."""
    directory.mkdir(parents=True, exist_ok=True)
    sounds = {}
    for key, text in words(language).items():
        path = directory / f"{key}.wav"
        render(text, language, rate_wpm, volume_pct, path, executable)
        sounds[key] = path
    return sounds


def cache_key(language: str, rate_wpm: int, volume_pct: int, version: str) -> str:
    """A directory name that changes whenever anything that shapes the sound changes."""
    digest = hashlib.sha256(repr((version, ESPEAK_VOICES[language], TRAILING_SILENCE_S, sorted(words(language).items())))
                            .encode()).hexdigest()[:12]
    return f"{language}-{int(rate_wpm)}wpm-{int(volume_pct)}pct-{digest}"


def cached_prompts(cache_dir: Path, language: str, rate_wpm: int, volume_pct: int,
                   executable: str = ESPEAK) -> dict[str, Path]:
    """The rendered prompts, from the cache when a complete set for these settings is there.

    A new set is rendered beside the cache and renamed into place whole, so a crash mid-way
    never leaves a half set that looks complete.
    """
    target = cache_dir / cache_key(language, rate_wpm, volume_pct, engine_version(executable))
    keys = [p.key for p in PROMPTS]
    if all((target / f"{key}.wav").is_file() for key in keys):
        return {key: target / f"{key}.wav" for key in keys}
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".render-", dir=cache_dir))
    try:
        render_all(language, rate_wpm, volume_pct, staging, executable)
        for old in cache_dir.glob(f"{language}-*"):
            if old.is_dir() and old != target:
                shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {key: target / f"{key}.wav" for key in keys}


def write_silence(path: Path, duration_s: float = 0.1, rate: int = 22050) -> Path:
    """A short silent WAV: playing it opens the sound device without a sound (the device check)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\0\0" * int(rate * duration_s))
    return path
