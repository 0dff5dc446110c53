"""Dashboard flood: every kind of request as fast as the machine allows, plus connections that never read.

It stands for other devices on the clinic's LAN misbehaving all at once.
``workers`` threads send requests back to back over kept-alive and fresh
connections: status, the page, static assets, limits, events and metrics, live
streams opened and dropped, unauthenticated and oversized POSTs, wrong
passwords, bad paths and garbage request lines. Meanwhile ``never_read`` sockets
ask for /api/stream (and ``status_never_read`` pipeline /api/status requests)
and never read a byte, and ``slowloris`` sockets send nothing or half a request
and dribble a header line now and then. It never stops the belt: no E-stop,
stop or demo request is among them.

``python -m bench.flood --port P --seconds S`` runs it as its own process and
prints a JSON summary when the requests end. With ``--hold-seconds H`` the
never-read and slowloris sockets then stay open, untouched, for up to H seconds
more (SIGTERM ends the hold early), and a second JSON line tells which of them
the server has dropped (``gone_at_server``, found by one last probe).
"""

from __future__ import annotations

import argparse
import fcntl
import http.client
import json
import os
import select
import signal
import socket
import statistics
import termios
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

#: A small receive buffer: a never-reading client's window closes after a few kB,
#: so the server meets its back-pressure within seconds rather than megabytes.
NEVER_READ_RCVBUF = 4096
#: Each status never-read socket sends this many pipelined requests at once.
PIPELINED_STATUS = 50
#: How often a dribbling slowloris socket sends one more header line.
DRIBBLE_S = 2.0
#: How often the idle sockets are looked at (answered yet? dropped by the server?).
WATCH_S = 0.1
#: Bounds every blocking call of a worker, so a stalled server cannot hang the flood.
TIMEOUT_S = 5.0
OVERSIZED_BODY = b'{"speed_kmh": 1, "pad": "' + b"x" * (128 * 1024) + b'"}'
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass
class _Idle:
    """A socket that never reads: what it is, when it opened, its answer's status code, when the server dropped it."""

    sock: socket.socket
    kind: str
    opened_t: float
    answer: str | None = None
    dropped_t: float | None = None


class Flood:
    """Request workers, never-read sockets and slowloris sockets against one dashboard."""

    def __init__(self, host: str, port: int, *, workers: int = 6, never_read: int = 36,
                 status_never_read: int = 8, slowloris: int = 20, source: str = "", skip: tuple[str, ...] = ()):
        self.host, self.port = host, port
        self.workers = workers
        self.skip = skip
        self.source = (source, 0) if source else None
        self.stop = threading.Event()
        self.statuses: Counter[str] = Counter()
        self.by_kind: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.idle: list[_Idle] = []
        self._idle_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._n_never_read, self._n_status, self._n_slowloris = never_read, status_never_read, slowloris
        self._threads: list[threading.Thread] = []
        self.started_t = self.ended_t = 0.0

    # ---- counting --------------------------------------------------------------------

    def _count(self, kind: str, status: int) -> None:
        with self._lock:
            self.by_kind[kind] += 1
            self.statuses[str(status)] += 1

    def _error(self, kind: str, exc: BaseException) -> None:
        with self._lock:
            self.errors[f"{kind}: {type(exc).__name__}"] += 1

    # ---- connections -----------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT_S, source_address=self.source)

    def _socket(self, rcvbuf: int | None = None) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # Before connect(): the window offered in the handshake follows it.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        try:
            if self.source:
                sock.bind(self.source)
            sock.settimeout(TIMEOUT_S)
            sock.connect((self.host, self.port))
        except OSError:
            sock.close()
            raise
        return sock

    def _request(self, raw: str) -> bytes:
        return f"{raw} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode()

    # ---- the request workers ---------------------------------------------------------

    def _shots(self) -> list[tuple[str, Callable[[http.client.HTTPConnection], int]]]:
        """One round of requests: (kind, function of a kept-alive connection -> HTTP status)."""

        def get(path: str) -> Callable[[http.client.HTTPConnection], int]:
            return lambda conn: self._exchange(conn, "GET", path)

        def post(path: str, body: bytes, headers: dict[str, str] | None = None):
            return lambda conn: self._exchange(conn, "POST", path, body, headers or JSON_HEADERS)

        shots = [
            ("status", get("/api/status")),
            ("page", get("/")),
            ("static", get("/static/app.js")),
            ("status", get("/api/status")),
            ("static", get("/static/style.css")),
            ("limits", get("/api/limits")),
            ("stream opened and dropped", lambda conn: self._stream_once()),
            ("unauthenticated post", post("/api/reset", b"{}")),
            ("status", get("/api/status")),
            ("unauthenticated post", post("/api/start", b'{"speed_kmh": 3}')),
            ("wrong password", lambda conn: self._wrong_password_once()),
            ("bad path", get("/api/no-such-thing")),
            ("bad path", get("/static/../../etc/passwd")),
            ("events", get("/api/events?limit=50")),
            ("oversized body", post("/api/speed", OVERSIZED_BODY)),
            ("garbage request", lambda conn: self._garbage_once()),
            ("metrics", get("/metrics")),
            ("status on a fresh connection", lambda conn: self._fresh_status_once()),
        ]
        return [(kind, shot) for kind, shot in shots if kind not in self.skip]

    def _exchange(self, conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None,
                  headers: dict[str, str] | None = None) -> int:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        if resp.will_close:
            conn.close()
        return resp.status

    def _stream_once(self) -> int:
        """Open /api/stream, read up to its first event (or its 503), drop it."""
        conn = self._connection()
        try:
            conn.request("GET", "/api/stream")
            resp = conn.getresponse()
            if resp.status == 200:
                deadline = time.monotonic() + TIMEOUT_S
                while time.monotonic() < deadline:
                    line = resp.readline()
                    if not line or line.startswith((b"data:", b"event:")):
                        break
            return resp.status
        finally:
            conn.close()

    def _garbage_once(self) -> int:
        """A request line that is no HTTP at all, on its own connection; the status the server answers."""
        with self._socket() as sock:
            sock.sendall(b"\x16\x03\x01 NOT HTTP \xff\xfe\r\n\r\n")
            head = sock.recv(64)
        parts = head.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ConnectionError(f"no HTTP answer to garbage: {head!r}")
        return int(parts[1])

    def _wrong_password_once(self) -> int:
        """A login with a valid CSRF token and a wrong password (401; 429 once the per-address limit is hit)."""
        conn = self._connection()
        try:
            conn.request("GET", "/api/session")
            resp = conn.getresponse()
            token = json.loads(resp.read())["csrf_token"]
            self._count("session", resp.status)
            cookie = (resp.getheader("Set-Cookie") or "").split(";", 1)[0]
            body = json.dumps({"name": "flood", "password": "not-the-password"}).encode()
            return self._exchange(conn, "POST", "/login", body, {**JSON_HEADERS, "X-CSRFToken": token,
                                                                  "Cookie": cookie})
        finally:
            conn.close()

    def _fresh_status_once(self) -> int:
        conn = self._connection()
        try:
            return self._exchange(conn, "GET", "/api/status")
        finally:
            conn.close()

    def _work(self, offset: int) -> None:
        shots = self._shots()
        conn = self._connection()
        i = offset
        try:
            while not self.stop.is_set():
                kind, shot = shots[i % len(shots)]
                i += 1
                try:
                    self._count(kind, shot(conn))
                except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
                    # An answer that is not what the dashboard sends (no JSON, no token) is an error too.
                    self._error(kind, exc)
                    conn.close()
                    conn = self._connection()
        finally:
            conn.close()

    # ---- the connections that never read ----------------------------------------------

    def _open_idle_sockets(self) -> None:
        for n in range(self._n_never_read + self._n_status + self._n_slowloris):
            if self.stop.is_set():
                return
            if n < self._n_never_read:
                kind, rcvbuf, first = "stream", NEVER_READ_RCVBUF, self._request("GET /api/stream")
            elif n < self._n_never_read + self._n_status:
                kind, rcvbuf, first = "status", NEVER_READ_RCVBUF, self._request("GET /api/status") * PIPELINED_STATUS
            elif n % 2:  # half a request line; the other slowloris sockets send nothing at all
                kind, rcvbuf, first = "slowloris dribbling", None, b"GET /api/sta"
            else:
                kind, rcvbuf, first = "slowloris", None, b""
            try:
                sock = self._socket(rcvbuf)
            except OSError as exc:
                self._error("opening a never-read socket", exc)
                continue
            try:
                sock.sendall(first)
            except OSError as exc:
                self._error("opening a never-read socket", exc)
                sock.close()
                continue
            with self._lock:
                self.idle.append(_Idle(sock, kind, time.monotonic()))

    def _watch_idle(self) -> None:
        """Note when each idle socket is first answered and when the server drops it; dribble the slowloris ones.

        Reads nothing: FIONREAD tells that bytes wait, MSG_PEEK looks at the status line.
        """
        next_dribble = time.monotonic() + DRIBBLE_S
        while not self._idle_stop.wait(WATCH_S):
            now = time.monotonic()
            with self._lock:
                idle = list(self.idle)
            for item in idle:
                if item.dropped_t is not None:
                    continue
                if not _is_open(item.sock):
                    item.dropped_t = now
                elif item.answer is None and _bytes_waiting(item.sock) >= 12:
                    try:
                        head = item.sock.recv(12, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                        item.answer = head[9:12].decode(errors="replace")
                    except OSError:
                        pass
                elif item.kind == "slowloris dribbling" and now >= next_dribble:
                    try:
                        item.sock.send(b"X-Wait: 1\r\n")
                    except OSError:
                        pass
            if now >= next_dribble:
                next_dribble = now + DRIBBLE_S

    def idle_report(self) -> dict:
        """The idle sockets by kind: opened, answered (status code), seen closed by the server, open on our side.

        ``open_s`` is how long each stayed open (min, median, max), up to now for those not seen closed. A
        connection the server's kernel gives up on (TCP_USER_TIMEOUT) sends no reset: until probe_stalled()
        it still looks open from here.
        """
        now = time.monotonic()
        report: dict[str, dict] = {}
        with self._lock:
            idle = list(self.idle)
        for kind in ("stream", "status", "slowloris", "slowloris dribbling"):
            items = [i for i in idle if i.kind == kind]
            open_s = sorted((i.dropped_t or now) - i.opened_t for i in items)
            report[kind] = {
                "opened": len(items), "answered": dict(Counter(i.answer or "nothing" for i in items)),
                "closed_by_server": sum(i.dropped_t is not None for i in items),
                "open": sum(i.dropped_t is None for i in items),
                "unread_bytes": sum(_bytes_waiting(i.sock) for i in items if i.dropped_t is None),
                "open_s": [round(open_s[0], 2), round(statistics.median(open_s), 2), round(open_s[-1], 2)]
                if open_s else []}
        return {"idle": report}

    def probe_stalled(self, wait_s: float = 0.5) -> dict[str, int]:
        """How many never-read sockets, answered and still open on our side, the server no longer has.

        Each gets one CRLF: a server that still holds the connection takes it (it reads no request while
        its answer is unsent); one that dropped it answers with a reset. Sent only at the end: it is
        traffic, and the sockets are closed right after.
        """
        with self._lock:
            probed = [i for i in self.idle if i.kind in ("stream", "status") and i.answer and i.dropped_t is None]
        for item in probed:
            try:
                item.sock.send(b"\r\n")
            except OSError:
                pass
        deadline = time.monotonic() + wait_s
        gone: list[_Idle] = []
        while time.monotonic() < deadline and len(gone) < len(probed):
            time.sleep(WATCH_S / 10)
            gone = [i for i in probed if not _is_open(i.sock)]
        return {kind: sum(i.kind == kind for i in gone) for kind in ("stream", "status")}

    def close_idle_sockets(self) -> None:
        """Stop watching the idle sockets and close them."""
        self._idle_stop.set()
        if self._watcher is not None:
            self._watcher.join(TIMEOUT_S)
        with self._lock:
            for item in self.idle:
                item.sock.close()

    # ---- running ---------------------------------------------------------------------

    def __enter__(self) -> "Flood":
        self.started_t = time.monotonic()
        opener = threading.Thread(target=self._open_idle_sockets, name="flood-idle", daemon=True)
        opener.start()
        self._threads = [threading.Thread(target=self._work, args=(n * 3,), name=f"flood-{n}", daemon=True)
                         for n in range(self.workers)]
        for t in self._threads:
            t.start()
        opener.join(TIMEOUT_S * 2)
        self._watcher = threading.Thread(target=self._watch_idle, name="flood-watch", daemon=True)
        self._watcher.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        for t in self._threads:
            t.join(TIMEOUT_S * 2)
        self.ended_t = time.monotonic()

    def summary(self) -> dict:
        """What the request phase did."""
        seconds = max(1e-9, (self.ended_t or time.monotonic()) - self.started_t)
        idle = self.idle_report()
        with self._lock:
            requests = sum(self.by_kind.values())
            return {"phase": "flood", "seconds": round(seconds, 2), "workers": self.workers,
                    "requests": requests, "requests_per_s": round(requests / seconds, 1),
                    "by_kind": dict(self.by_kind), "statuses": dict(self.statuses), "errors": dict(self.errors),
                    **idle}


def _is_open(sock: socket.socket) -> bool:
    """Whether the peer has neither closed nor reset the connection (and we have not closed it)."""
    if sock.fileno() < 0:
        return False
    poller = select.poll()
    poller.register(sock, select.POLLRDHUP | select.POLLERR | select.POLLHUP)
    return not poller.poll(0)


def _bytes_waiting(sock: socket.socket) -> int:
    buf = bytearray(4)
    try:
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, buf)
    except OSError:
        return 0
    return int.from_bytes(buf, "little")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True, help="how long requests are sent")
    parser.add_argument("--workers", type=int, default=6, help="request threads")
    parser.add_argument("--never-read", type=int, default=36, help="/api/stream sockets that never read")
    parser.add_argument("--status-never-read", type=int, default=8,
                        help=f"sockets that pipeline {PIPELINED_STATUS} /api/status requests and never read")
    parser.add_argument("--slowloris", type=int, default=20, help="sockets that send nothing or half a request")
    parser.add_argument("--hold-seconds", type=float, default=0.0,
                        help="keep the never-read and slowloris sockets open this long after the requests end")
    parser.add_argument("--source", default=None,
                        help="the flood's own address; by default 127.0.0.2 towards a 127.x host, else the "
                             "system's choice: the login limit is per client address, so the flood's wrong "
                             "passwords do not lock out clients at other addresses")
    parser.add_argument("--skip", default="", help="kinds of request to leave out, comma-separated (e.g. 'events')")
    parser.add_argument("--nice", type=int, default=10, help="added to this process's nice value")
    args = parser.parse_args(argv)
    source = args.source if args.source is not None else ("127.0.0.2" if args.host.startswith("127.") else "")
    # On the LAN the flood would run on other devices; here it shares the machine with the
    # dashboard it floods (Nice=5) and the controller (SCHED_RR), so it yields to both.
    os.nice(args.nice)
    flood = Flood(args.host, args.port, workers=args.workers, never_read=args.never_read,
                  status_never_read=args.status_never_read, slowloris=args.slowloris, source=source,
                  skip=tuple(k.strip() for k in args.skip.split(",") if k.strip()))
    ended = threading.Event()
    # SIGTERM ends the run early (the flood or the hold) and still prints the summaries.
    signal.signal(signal.SIGTERM, lambda signum, frame: (flood.stop.set(), ended.set()))
    try:
        with flood:
            flood.stop.wait(args.seconds)
        print(json.dumps(flood.summary()), flush=True)
        if args.hold_seconds > 0:
            held_t = time.monotonic()
            ended.wait(args.hold_seconds)
            report = {"phase": "hold", "seconds": round(time.monotonic() - held_t, 2), **flood.idle_report()}
            report["gone_at_server"] = flood.probe_stalled()
            print(json.dumps(report), flush=True)
    finally:
        flood.close_idle_sockets()


if __name__ == "__main__":
    main()
