"""GET /api/stream: Server-Sent Events from the shared StatusHub, bounded in number."""

from __future__ import annotations

import json
import threading
import time

import pytest

from web.link import EXTENSION_KEY

MAX_READ_BYTES = 256 * 1024


class SseReader:
    """Reads a streaming test-client response event by event, with deadlines and a byte budget."""

    def __init__(self, response):
        self.response = response
        self._chunks = iter(response.response)
        self._buffer = ""
        self.read_bytes = 0

    def _next_chunk(self, deadline: float) -> str:
        # The generator blocks until the hub has news or a keep-alive is due
        # (SSE_KEEPALIVE_S = 0.5 s in the tests), so each next() is bounded.
        assert time.monotonic() < deadline, "deadline passed while reading the stream"
        chunk = next(self._chunks)
        self.read_bytes += len(chunk)
        assert self.read_bytes < MAX_READ_BYTES, "read more than the byte budget"
        return chunk.decode() if isinstance(chunk, bytes) else chunk

    def next_event(self, timeout_s: float = 5.0) -> str:
        """The next complete event block (the text before a blank line)."""
        deadline = time.monotonic() + timeout_s
        while "\n\n" not in self._buffer:
            self._buffer += self._next_chunk(deadline)
        block, _, self._buffer = self._buffer.partition("\n\n")
        return block

    def find(self, predicate, timeout_s: float = 5.0) -> str:
        """The first event block for which ``predicate`` holds."""
        deadline = time.monotonic() + timeout_s
        while True:
            block = self.next_event(max(0.0, deadline - time.monotonic()))
            if predicate(block):
                return block

    def close(self) -> None:
        self.response.close()


def _status_of(block: str) -> dict | None:
    data = [line[len("data: "):] for line in block.splitlines() if line.startswith("data: ")]
    if not data or block.startswith("event:"):
        return None
    return json.loads("\n".join(data))


@pytest.fixture
def open_stream():
    """Open SSE streams on a client; every one is closed afterwards."""
    readers: list[SseReader] = []

    def open_(client):
        response = client.get("/api/stream", buffered=False)
        if response.status_code != 200:
            return response
        reader = SseReader(response)
        readers.append(reader)
        return reader

    try:
        yield open_
    finally:
        for reader in readers:
            reader.close()


def test_stream_sends_the_status_as_an_sse_data_event(client, open_stream):
    reader = open_stream(client)
    assert reader.response.mimetype == "text/event-stream"
    assert reader.response.headers["Cache-Control"].startswith("no-cache")
    assert reader.next_event() == "retry: 2000"
    status = _status_of(reader.find(lambda b: _status_of(b) is not None))
    assert status["state"] == "STOPPED"
    assert status["gap_mm"] == 900.0


def test_stream_follows_the_controllers_status(client, fake, open_stream):
    reader = open_stream(client)
    reader.find(lambda b: _status_of(b) is not None)
    fake.update(gap_mm=321.0, warning=True)
    status = _status_of(reader.find(lambda b: (_status_of(b) or {}).get("gap_mm") == 321.0))
    assert status["warning"] is True


def test_stream_sends_at_most_about_twenty_statuses_a_second(client, fake, open_stream):
    reader = open_stream(client)
    reader.find(lambda b: _status_of(b) is not None)
    stop = threading.Event()

    def flood():
        n = 0
        while not stop.is_set():
            n += 1
            fake.update(trip_count=n)

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    try:
        start = time.monotonic()
        times = []
        while len(times) < 10:
            if _status_of(reader.next_event()) is not None:
                times.append(time.monotonic())
        elapsed = times[-1] - times[0]
    finally:
        stop.set()
        flooder.join(2.0)
    assert elapsed >= 9 * 0.05 * 0.9, f"10 statuses in {elapsed:.3f} s"
    assert time.monotonic() - start < 5.0


def test_stream_says_offline_and_keeps_alive_when_the_controller_is_unreachable(offline_client, open_stream):
    reader = open_stream(offline_client)
    block = reader.find(lambda b: b.startswith("event: offline"))
    assert "controller offline" in block
    assert reader.find(lambda b: b.startswith(":")) == ": keep-alive"


def test_stream_says_offline_when_the_controller_goes_away(client, fake, open_stream):
    reader = open_stream(client)
    reader.find(lambda b: _status_of(b) is not None)
    fake.close()
    assert reader.find(lambda b: b.startswith("event: offline"))


def test_streams_are_limited_and_a_closed_one_frees_its_slot(make_app, fake, open_stream):
    app = make_app(fake.socket_path, {"MAX_SSE_STREAMS": 2})
    client = app.test_client()
    first, second = open_stream(client), open_stream(client)
    first.next_event()
    second.next_event()
    refused = client.get("/api/stream", buffered=False)
    assert refused.status_code == 503
    assert refused.get_json()["code"] == "busy"
    first.close()
    assert app.extensions[EXTENSION_KEY].open_streams == 1
    third = open_stream(client)
    assert third.next_event() == "retry: 2000"


def test_streams_end_when_the_app_shuts_its_link(app, client, open_stream):
    reader = open_stream(client)
    reader.find(lambda b: _status_of(b) is not None)
    app.extensions[EXTENSION_KEY].close()
    with pytest.raises(StopIteration):
        for _ in range(1000):
            reader.next_event()
