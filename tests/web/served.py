"""serve(cfg) in its own process, as production runs it: plain HTTP, or HTTPS with a given certificate."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "systemd" / "config.example.toml"
#: serve() with the example config's [web] pointed at the test's socket, state and certificate
#: ("" and "" for plain HTTP); port 0 = any free port.
SERVE_SCRIPT = """
import dataclasses, logging, sys
logging.basicConfig(level=logging.INFO)  # web.serve logs "Serving on ..." at INFO
from controller.config import load_config
from web.serve import serve
if len(sys.argv) > 6:  # a shorter request-head deadline, so a slowloris test takes seconds, not tens of them
    import web.serve as server_module
    server_module.HEAD_DEADLINE_S = float(sys.argv[6])
cfg = load_config(sys.argv[1])
web = dataclasses.replace(cfg.web, host="127.0.0.1", port=0, ipc_socket=sys.argv[2], state_dir=sys.argv[3],
                          tls_cert=sys.argv[4], tls_key=sys.argv[5])
serve(dataclasses.replace(cfg, web=web))
"""
LISTENING = re.compile(r"Serving on (https?)://127\.0\.0\.1:(\d+)")
START_TIMEOUT_S = 20.0


class Served:
    """The running server: its port, its scheme, and everything it printed so far."""

    def __init__(self, port: int, scheme: str, output: list[str]):
        self.port = port
        self.scheme = scheme
        self.output = output


@contextlib.contextmanager
def serve_process(socket_path: str, state_dir: str | Path, tls: tuple[str | Path, str | Path] | None = None,
                  head_deadline_s: float | None = None) -> Iterator[Served]:
    """Run serve(cfg) in a subprocess until it says where it listens; stop it afterwards."""
    cert, key = (str(tls[0]), str(tls[1])) if tls else ("", "")
    extra = [] if head_deadline_s is None else [str(head_deadline_s)]
    env = {**os.environ, "PYTHONWARNINGS": "error", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-u", "-c", SERVE_SCRIPT, str(EXAMPLE_CONFIG), socket_path,
                             str(state_dir), cert, key, *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=ROOT, env=env)
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def pump():
        for line in proc.stdout:
            output.append(line)
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        match = None
        while match is None:
            remaining = deadline - time.monotonic()
            if proc.poll() is not None:
                reader.join(5)  # everything it printed before it ended
            assert remaining > 0 and proc.poll() is None, f"serve() did not start: {''.join(output)}"
            try:
                line = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            match = LISTENING.search(line)
        yield Served(int(match.group(2)), match.group(1), output)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            reader.join(5)
            proc.stdout.close()


def next_status(response, lines: int = 2000, where=lambda status: True) -> dict | None:
    """The next ``data:`` status of an SSE response for which ``where`` holds, within ``lines`` lines; else None."""
    for _ in range(lines):
        line = response.readline().decode()
        if line.startswith("data: "):
            status = json.loads(line[len("data: "):])
            if where(status):
                return status
    return None
