"""serve(cfg) under cheroot in its own process: statuses stream out, and an E-stop gets through."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest

from tests.waiting import expect
from tests.web.served import next_status, serve_process
from web import DEFAULT_MAX_SSE_STREAMS
from web.serve import SOCKET_TIMEOUT_S, THREADS

#: The request-head deadline of the slowloris test's server (web.serve.HEAD_DEADLINE_S is 10 s).
DRIBBLE_DEADLINE_S = 3.0


def estop(port: int, timeout_s: float) -> None:
    """An anonymous E-stop over a new plain-HTTP connection: it must be answered 200."""
    post = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        post.request("POST", "/api/estop", body=b"", headers={"Content-Length": "0"})
        response = post.getresponse()
        assert response.status == 200, response.read()
    finally:
        post.close()


def test_stream_slots_leave_threads_free_for_stop_requests():
    assert THREADS - DEFAULT_MAX_SSE_STREAMS >= 16


@pytest.fixture
def served(fake, tmp_path):
    """The dashboard served by serve(cfg) over plain HTTP in a subprocess; yields its port."""
    with serve_process(fake.socket_path, tmp_path / "web") as server:
        assert server.scheme == "http"
        yield server.port


def test_serve_streams_statuses_through_cheroot_without_buffering_them(served, fake):
    conn = http.client.HTTPConnection("127.0.0.1", served, timeout=5)
    try:
        conn.request("GET", "/api/stream")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type").startswith("text/event-stream")
        status = next_status(response, 200)
        assert status is not None and status["state"] == "STOPPED"
        fake.update(gap_mm=444.0)
        assert next_status(response, where=lambda status: status["gap_mm"] == 444.0) is not None, \
            "the changed status never came through"
    finally:
        conn.close()


def test_serve_passes_an_anonymous_estop_while_a_stream_is_open(served, fake):
    stream = http.client.HTTPConnection("127.0.0.1", served, timeout=5)
    post = http.client.HTTPConnection("127.0.0.1", served, timeout=5)
    try:
        stream.request("GET", "/api/stream")
        assert stream.getresponse().status == 200
        post.request("POST", "/api/estop", body=b"", headers={"Content-Length": "0"})
        response = post.getresponse()
        assert response.status == 200, response.read()
        assert json.loads(response.read())["ok"] is True
        assert [c["command"] for c in fake.commands] == ["estop"]
    finally:
        stream.close()
        post.close()


def test_clients_that_connect_and_say_nothing_hold_no_worker(served, fake):
    """More silent connections than workers (a browser's spare ones, a slowloris): an E-stop still gets through.

    cheroot alone gives each new connection a worker that waits in a blocking read for the whole timeout.
    """
    silent = [socket.create_connection(("127.0.0.1", served), timeout=5) for _ in range(THREADS + 8)]
    try:
        started = time.monotonic()
        estop(served, timeout_s=SOCKET_TIMEOUT_S / 2)
        assert time.monotonic() - started < SOCKET_TIMEOUT_S / 2
        assert [c["command"] for c in fake.commands] == ["estop"]
        # They are still open: the server waits for them without a worker, and closes none early.
        for sock in silent:
            sock.setblocking(False)
            try:
                assert sock.recv(1) != b"", "the server closed a silent connection"
            except BlockingIOError:
                pass  # nothing to read, and still connected
    finally:
        for sock in silent:
            sock.close()


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has ended this connection (end of stream or a reset), reading without waiting."""
    sock.setblocking(False)
    try:
        while sock.recv(4096):
            pass  # an answer before the end (none is expected here)
        return True
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


#: How a slowloris starts its request, and what it sends now and then afterwards.
DRIBBLES = {
    "head": (b"GET /api/status HTTP/1.1\r\nHost: dashboard\r\n", b"X-Wait: 1\r\n"),
    "body": (b"POST /api/estop HTTP/1.1\r\nHost: dashboard\r\nContent-Type: application/json\r\n"
             b"Content-Length: 60000\r\n\r\n{", b" "),
}


@pytest.mark.parametrize("kind", sorted(DRIBBLES))
def test_clients_dribbling_their_request_heads_or_bodies_are_cut_at_the_deadline(fake, tmp_path, kind):
    """A slowloris: a request line, then a header line (or a byte of the body) now and then, each within
    the read timeout.

    More of them than workers: cheroot alone would let them keep every worker for as long as they
    dribble, and an E-stop would never be read. Each is cut the head deadline after its worker took it (here
    a short one, DRIBBLE_DEADLINE_S, so the test takes seconds; the server's own is HEAD_DEADLINE_S).
    """
    with serve_process(fake.socket_path, tmp_path / "web", head_deadline_s=DRIBBLE_DEADLINE_S) as server:
        _dribblers_are_cut(server.port, fake, *DRIBBLES[kind])


def _dribblers_are_cut(served: int, fake, start: bytes, drip: bytes) -> None:
    dribblers = [socket.create_connection(("127.0.0.1", served), timeout=5) for _ in range(THREADS + 4)]
    stop = threading.Event()

    def dribble():
        while not stop.wait(1.0):  # the client's pace, well inside the read timeout
            for sock in dribblers:
                try:
                    sock.send(drip)
                except OSError:
                    pass  # cut already

    pacer = threading.Thread(target=dribble, daemon=True)
    try:
        for sock in dribblers:
            sock.sendall(start)
        pacer.start()
        started = time.monotonic()
        estop(served, timeout_s=DRIBBLE_DEADLINE_S + 10)
        waited_s = time.monotonic() - started
        print(f"E-stop answered after {waited_s:.1f} s behind {len(dribblers)} dribbling clients")
        assert waited_s < DRIBBLE_DEADLINE_S + 5
        assert [c["command"] for c in fake.commands] == ["estop"]
        # The last few got a worker only when the first were cut.
        expect(lambda: all(closed_by_server(sock) for sock in dribblers),
               started + 2 * DRIBBLE_DEADLINE_S + 5 - time.monotonic(), "every dribbling client cut")
    finally:
        stop.set()
        pacer.join(5)
        for sock in dribblers:
            sock.close()
