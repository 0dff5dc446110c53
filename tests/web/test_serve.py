"""serve(cfg) under waitress in its own process: statuses stream out, and an E-stop gets through."""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from web import DEFAULT_MAX_SSE_STREAMS
from web.serve import THREADS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "systemd" / "config.example.toml"
#: serve() with the example config's [web] pointed at the test's socket and state; port 0 = any free port.
SERVE_SCRIPT = """
import dataclasses, logging, sys
logging.basicConfig(level=logging.INFO)  # waitress logs "Serving on ..." at INFO
from controller.config import load_config
from web.serve import serve
cfg = load_config(sys.argv[1])
web = dataclasses.replace(cfg.web, host="127.0.0.1", port=0, ipc_socket=sys.argv[2], state_dir=sys.argv[3])
serve(dataclasses.replace(cfg, web=web))
"""
LISTENING = re.compile(r"Serving on http://127\.0\.0\.1:(\d+)")


def test_stream_slots_leave_threads_free_for_stop_requests():
    assert THREADS - DEFAULT_MAX_SSE_STREAMS >= 16


@pytest.fixture
def served(fake, tmp_path):
    """The dashboard served by serve(cfg) in a subprocess; yields its port."""
    env = {**os.environ, "PYTHONWARNINGS": "error", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-u", "-c", SERVE_SCRIPT, str(EXAMPLE_CONFIG), fake.socket_path,
                             str(tmp_path / "web")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT, env=env)
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def pump():
        for line in proc.stdout:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 20.0
        port = None
        while port is None:
            remaining = deadline - time.monotonic()
            assert remaining > 0 and proc.poll() is None, f"serve() did not start: {''.join(output)}"
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            output.append(line)
            match = LISTENING.search(line)
            if match:
                port = int(match.group(1))
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            proc.stdout.close()
            reader.join(5)


def test_serve_streams_statuses_through_waitress_without_buffering_them(served, fake):
    conn = http.client.HTTPConnection("127.0.0.1", served, timeout=5)
    try:
        conn.request("GET", "/api/stream")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type").startswith("text/event-stream")
        status = None
        for _ in range(200):
            line = response.readline().decode()
            if line.startswith("data: "):
                status = json.loads(line[len("data: "):])
                break
        assert status is not None and status["state"] == "STOPPED"
        fake.update(gap_mm=444.0)
        for _ in range(2000):
            line = response.readline().decode()
            if line.startswith("data: ") and json.loads(line[len("data: "):])["gap_mm"] == 444.0:
                break
        else:
            pytest.fail("the changed status never came through")
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
