"""``treadmill-safety demo`` as a real subprocess: start it, read its first lines, end it with Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

#: How long the demo may take to print its first lines (the controller must become READY first).
DEMO_START_TIMEOUT_S = 60.0


def start_demo(port: int, *extra: str) -> subprocess.Popen:
    """``treadmill-safety demo --port PORT`` and ``extra`` options, its standard output a pipe of text."""
    return subprocess.Popen([sys.executable, "-m", "cli.main", "demo", "--port", str(port), *extra],
                            stdout=subprocess.PIPE, text=True)


def first_lines(proc: subprocess.Popen, count: int, timeout_s: float = DEMO_START_TIMEOUT_S) -> list[str]:
    """The first ``count`` lines the process prints, or fewer if they do not come within the deadline."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout.readline() for _ in range(count)), daemon=True)
    reader.start()
    reader.join(timeout_s)
    return list(lines)


def assert_login_lines(lines: list[str], url: str) -> tuple[str, str]:
    """The demo's first three lines are exactly its address, its account and that account's password."""
    assert len(lines) >= 3, f"demo printed {lines!r}"
    assert lines[0] == f"dashboard: {url}\n"
    assert lines[1] == "user: demo-therapist\n"
    assert lines[2].startswith("password: ") and len(lines[2].split()) == 2 and len(lines[2].split()[1]) >= 8
    return lines[1].split()[1], lines[2].split()[1]


def end_demo(proc: subprocess.Popen) -> None:
    """Ctrl-C, as a visitor ends it: the demo exits 0."""
    proc.send_signal(signal.SIGINT)
    try:
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
