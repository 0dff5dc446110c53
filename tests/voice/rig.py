"""The voice beside a bench's controller, as production runs it: a client of the API socket.

Used by the HIL tests (tests/hil/test_voice*.py) and the latency benchmark (bench/voice.py):
the real VoiceService (espeak-ng renderings, aplay) playing into a FifoSink, and an
independent subscriber that records every status the controller pushed, to time events by.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from sim.bench import wait_until
from tests.hil.ipc_client import JsonLinesClient
from tests.voice.sink import FifoSink
from voice.prompter import Prompter
from voice.service import VoiceService
from voice.speech import cached_prompts

#: The HIL bench's sessions last seconds, not minutes: the time marks are scaled (production 60 s, 30 s).
BENCH_MARKS = ((10.0, "one_minute_left"), (5.0, "thirty_seconds_left"))
#: The example config's [voice] settings.
RATE_WPM, VOLUME_PCT = 140, 100


class StatusRecorder:
    """Every pushed status, in order, from a subscription of its own (not the voice's)."""

    def __init__(self, socket_path: str | Path):
        self.client = JsonLinesClient(socket_path, timeout_s=5.0)
        self.client.send(b'{"id": 1, "method": "subscribe", "params": {}}\n')
        self.statuses: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-recorder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                message = self.client.read()
                if message.get("push") == "status":
                    self.statuses.append(message["status"])
        except (OSError, AssertionError, ValueError):
            pass

    def first(self, predicate: Callable[[dict[str, Any]], bool], after_t: float = 0.0) -> float | None:
        """t_mono of the first status at or after ``after_t`` that ``predicate`` holds for."""
        return next((s["t_mono"] for s in list(self.statuses) if s["t_mono"] >= after_t and predicate(s)), None)

    def close(self) -> None:
        self._stop.set()
        self.client.close()
        self._thread.join(2.0)


def render_cache(cache_dir: Path, language: str = "en") -> Path:
    """Render the prompts into ``cache_dir`` now, before a bench runs: eleven espeak-ng runs on a small
    machine are a stall that trips the controller on stale inputs (the service finds them cached)."""
    cached_prompts(cache_dir, language, RATE_WPM, VOLUME_PCT)
    return cache_dir


def start_voice(socket_path: str | Path, directory: Path, *, language: str = "en",
                prompter: Prompter | None = None, cache_dir: Path | None = None) -> tuple[VoiceService, FifoSink]:
    """The voice service on the controller's socket, playing into a FIFO card; ready (prompts rendered,
    device checked, subscribed) when this returns."""
    sink = FifoSink(directory / "card")
    service = VoiceService(socket_path=str(socket_path), language=language, rate_wpm=RATE_WPM, volume_pct=VOLUME_PCT,
                           cache_dir=cache_dir or directory / "cache", argv_for=sink.argv_for,
                           health_file=directory / "health.json",
                           prompter=prompter or Prompter(remaining_prompts=BENCH_MARKS)).start()
    try:
        if not service.wait_ready(60.0):
            raise RuntimeError("the voice did not render its prompts within 60 s")
        if not wait_until(lambda: service.link.online, 5.0):
            raise RuntimeError(f"the voice did not subscribe to {socket_path}")
    except BaseException:
        service.close()
        sink.close()
        raise
    return service, sink
