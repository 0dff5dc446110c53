"""What HTTPS costs the dashboard: a new connection plus ``GET /api/session``, over TLS and over plain HTTP.

Two dashboard processes run side by side on the simulated controller, as in
production (``treadmill-safety web`` under cheroot): one plain, one with a
self-signed ECDSA P-256 certificate. Each round opens a new connection to each
(alternating, so drift hits both alike), sends one request, reads the answer and
closes: the TLS figure includes the full handshake, verified against the
certificate as a tablet that trusts it would. Then the same request on one
kept-open connection, which is what a browser does between page loads.

    python -m bench.tls [--rounds 200]
"""

from __future__ import annotations

import argparse
import http.client
import logging
import ssl
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import save
from sim.bench import SimBench
from sim.dashboard import free_port, spawn_dashboard, stop_process, trusting
from web.tls import generate_self_signed

WARM_UP = 10


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """n, median, p95, p99 and max, in milliseconds."""
    ordered = sorted(s * 1000.0 for s in seconds)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 3)

    return {"n": len(ordered), "median": round(statistics.median(ordered), 3), "p95": at(0.95), "p99": at(0.99),
            "max": round(ordered[-1], 3)}


def one_request(conn: http.client.HTTPConnection) -> None:
    conn.request("GET", "/api/session")
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"GET /api/session answered {response.status}")


def new_connection_s(port: int, context: ssl.SSLContext | None) -> tuple[float, str]:
    """Seconds for connect (+ handshake) + one request + its answer; and the protocol spoken."""
    t0 = time.perf_counter()
    conn = (http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10) if context
            else http.client.HTTPConnection("127.0.0.1", port, timeout=10))
    try:
        one_request(conn)
        elapsed = time.perf_counter() - t0
        protocol = conn.sock.version() if context else "plain HTTP"
    finally:
        conn.close()
    return elapsed, protocol


def kept_open_s(port: int, context: ssl.SSLContext | None, rounds: int) -> list[float]:
    """Seconds per request on one connection kept open (after one request to open it)."""
    conn = (http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10) if context
            else http.client.HTTPConnection("127.0.0.1", port, timeout=10))
    times = []
    try:
        one_request(conn)
        for _ in range(rounds):
            t0 = time.perf_counter()
            one_request(conn)
            times.append(time.perf_counter() - t0)
    finally:
        conn.close()
    return times


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200, help="new connections to each server (default 200)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        socket_path = str(Path(tmp) / "control.sock")
        cert, key = Path(tmp) / "tls" / "dashboard.crt", Path(tmp) / "tls" / "dashboard.key"
        generate_self_signed(cert, key, ["localhost"], ["127.0.0.1"])
        context = trusting(cert)
        plain_port, tls_port = free_port(), free_port()
        with SimBench(state_dir=Path(tmp) / "state", ipc_socket=socket_path, start_gap_mm=1000.0):
            plain = spawn_dashboard(plain_port, socket_path, Path(tmp) / "web-plain", stderr=subprocess.DEVNULL)
            served = spawn_dashboard(tls_port, socket_path, Path(tmp) / "web-tls", stderr=subprocess.DEVNULL,
                                     tls=(cert, key))
            try:
                if plain is None or served is None:
                    raise RuntimeError("a dashboard did not start")
                for _ in range(WARM_UP):
                    new_connection_s(plain_port, None)
                    new_connection_s(tls_port, context)
                plain_s, tls_s, protocols = [], [], set()
                for _ in range(args.rounds):
                    plain_s.append(new_connection_s(plain_port, None)[0])
                    elapsed, protocol = new_connection_s(tls_port, context)
                    tls_s.append(elapsed)
                    protocols.add(protocol)
                kept_plain, kept_tls = kept_open_s(plain_port, None, args.rounds), kept_open_s(tls_port, context,
                                                                                               args.rounds)
            finally:
                for proc in (plain, served):
                    if proc is not None:
                        stop_process(proc)
    result = {
        "request": "GET /api/session",
        "certificate": "self-signed ECDSA P-256 (web/tls.py), verified by the client",
        "tls_protocols": sorted(protocols),
        "new_connection_ms": {"plain": summary_ms(plain_s), "tls": summary_ms(tls_s)},
        "kept_open_ms": {"plain": summary_ms(kept_plain), "tls": summary_ms(kept_tls)},
    }
    new, kept = result["new_connection_ms"], result["kept_open_ms"]
    result["tls_extra_per_new_connection_ms"] = round(new["tls"]["median"] - new["plain"]["median"], 3)
    path = save("tls", result)
    print(f"new connection + GET /api/session, {args.rounds} each ({', '.join(sorted(protocols))}): "
          f"plain median {new['plain']['median']:.2f} / p95 {new['plain']['p95']:.2f} ms; "
          f"TLS median {new['tls']['median']:.2f} / p95 {new['tls']['p95']:.2f} ms "
          f"(+{result['tls_extra_per_new_connection_ms']:.2f} ms a connection); on a kept-open connection: "
          f"plain {kept['plain']['median']:.2f} / TLS {kept['tls']['median']:.2f} ms median -> {path}")
    return result


if __name__ == "__main__":
    main()
