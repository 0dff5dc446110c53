"""Dashboard load: clients polling /api/status and clients holding /api/stream, bounded in time.

Used by the load test and the benchmarks; ``python -m bench.load --port P --seconds S``
runs it as its own process (as real tablets would be) and prints a JSON summary.
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import threading
import urllib.request


class Load:
    """``pollers`` threads GET /api/status in a loop; ``streams`` threads hold SSE streams open."""

    def __init__(self, host: str, port: int, pollers: int = 25, streams: int = 25):
        self.host, self.port = host, port
        self.stop = threading.Event()
        self.ok = 0
        self.errors = 0
        self.stream_bytes = 0
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._poll, daemon=True) for _ in range(pollers)]
        self.threads += [threading.Thread(target=self._stream, daemon=True) for _ in range(streams)]

    def _count(self, ok: bool, n_bytes: int = 0) -> None:
        with self._lock:
            if ok:
                self.ok += 1
            else:
                self.errors += 1
            self.stream_bytes += n_bytes

    def _poll(self) -> None:
        url = f"http://{self.host}:{self.port}/api/status"
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    resp.read()
                    self._count(resp.status == 200)
            except OSError:
                self._count(False)

    def _stream(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            conn.request("GET", "/api/stream")
            resp = conn.getresponse()
            while not self.stop.is_set():
                line = resp.readline()
                if not line:
                    break
                self._count(True, len(line))
        except OSError:
            self._count(False)
        finally:
            conn.close()

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--pollers", type=int, default=25)
    parser.add_argument("--streams", type=int, default=25)
    args = parser.parse_args(argv)
    with Load(args.host, args.port, args.pollers, args.streams) as load:
        # SIGTERM ends the run early and still prints the summary.
        signal.signal(signal.SIGTERM, lambda signum, frame: load.stop.set())
        load.stop.wait(args.seconds)
    print(json.dumps({"ok": load.ok, "errors": load.errors, "stream_bytes": load.stream_bytes}), flush=True)


if __name__ == "__main__":
    main()
