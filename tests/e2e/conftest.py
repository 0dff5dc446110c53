"""End-to-end fixtures: ``treadmill-safety demo`` as a real subprocess, headless Debian Chromium."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from sim.dashboard import CHROMIUM, CHROMIUM_ARGS, free_port



class Demo(tuple):
    """``(url, password)``; ``pid`` is the demo process, which runs the controller and the simulation."""

    pid: int


@pytest.fixture(scope="module")
def demo(browser):
    """The demo's URL and one-time password, read from its first two lines.

    It depends on the browser so Chromium's start-up load is over before the controller runs.
    """
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "demo", "--port", str(port)],
                            stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout.readline() for _ in range(2)), daemon=True)
    reader.start()
    reader.join(60)
    try:
        assert len(lines) == 2, f"demo printed {lines!r}"
        assert lines[0] == f"dashboard: http://127.0.0.1:{port}/\n"
        assert lines[1].startswith("password: ") and len(lines[1].split()[1]) >= 8
        running = Demo((lines[0].split()[1], lines[1].split()[1]))
        running.pid = proc.pid
        yield running
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()


@pytest.fixture(scope="module")
def browser():
    # An error, never a skip: the browser test is part of the suite on every machine.
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM}: run `sudo bash .ci/system-packages` (make test runs it)",
                    pytrace=False)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
