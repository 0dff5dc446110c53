"""End-to-end fixtures: ``treadmill-safety demo`` as a real subprocess, headless Debian Chromium."""

from __future__ import annotations

import os

import pytest

from sim.dashboard import CHROMIUM, CHROMIUM_ARGS, free_port
from tests.e2e.demo import assert_login_lines, end_demo, first_lines, start_demo



class Demo(tuple):
    """``(url, password)``; ``user`` is the demo's therapist account, ``pid`` the demo process (controller and
    simulation)."""

    user: str
    pid: int


@pytest.fixture(scope="module")
def demo(browser):
    """The demo's URL and one-time password, read from its first three lines (the user is ``demo.user``).

    It depends on the browser so Chromium's start-up load is over before the controller runs.
    """
    port = free_port()
    proc = start_demo(port)
    try:
        url = f"http://127.0.0.1:{port}/"
        user, password = assert_login_lines(first_lines(proc, 3), url)
        running = Demo((url, password))
        running.user = user
        running.pid = proc.pid
        yield running
    finally:
        end_demo(proc)


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
