"""systemd's notify protocol against a real datagram socket set as NOTIFY_SOCKET."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from controller.notify import Notifier
from controller.safety.types import CommandKind
from controller.service import announce_ready, healthy_tick_hook
from sim.bench import EXAMPLE_CONFIG, SimBench, wait_until


class NotifySocket:
    """A datagram socket standing in for systemd; records (monotonic time, message)."""

    def __init__(self, path: str):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            self.messages.append((time.monotonic(), data.decode()))

    def lines(self, key: str) -> list[tuple[float, str]]:
        return [(t, line) for t, m in list(self.messages) for line in m.splitlines() if line.startswith(key)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path):
    ns = NotifySocket(str(tmp_path / "notify.sock"))
    try:
        yield ns
    finally:
        ns.close()


def test_the_service_announces_ready_after_its_self_check_and_stops_cleanly(tmp_path, notify_socket):
    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text(EXAMPLE_CONFIG.read_text()
                        .replace('state_dir = "/var/lib/treadmill-safety"', f'state_dir = "{tmp_path / "state"}"')
                        .replace('ipc_socket = "/run/treadmill-safety/control.sock"',
                                 f'ipc_socket = "{tmp_path / "control.sock"}"')
                        .replace('ipc_group = "treadmill"', 'ipc_group = ""'))
    env = {**os.environ, "NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "1000000"}
    t_spawn = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "run", "--config", str(cfg_path), "--simulate"],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: notify_socket.lines("READY=1"), 20.0), notify_socket.messages
        t_ready, _ = notify_socket.lines("READY=1")[0]
        print(f"\n[service] start -> READY=1: {(t_ready - t_spawn) * 1000:.0f} ms")
        ready_msg = next(m for t, m in notify_socket.messages if "READY=1" in m)
        assert "STATUS=self-check passed (2 sensor(s), treadmill answering)" in ready_msg
        assert "STOPPED" in ready_msg, "a (re)started controller comes up stopped"
        assert wait_until(lambda: len([t for t, _ in notify_socket.lines("WATCHDOG=1") if t > t_ready]) >= 3, 5.0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert notify_socket.lines("STOPPING=1")
        assert not (tmp_path / "control.sock").exists(), "the socket is removed on exit"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def test_no_ready_when_a_sensor_is_missing(tmp_path, notify_socket):
    bench = SimBench(state_dir=tmp_path / "state")
    bench.chips["right"].inject_fault("absent")
    notifier = Notifier(socket_path=notify_socket.path, watchdog_usec="")
    try:
        bench.start()
        problems = announce_ready(bench.controller.loop.core, notifier, timeout_s=1.0)
        assert problems and any("sensor right" in p for p in problems)
        assert wait_until(lambda: notify_socket.lines("STATUS=self-check failed"), 2.0)
        assert not notify_socket.lines("READY=1")
    finally:
        bench.close()
        notifier.close()


def test_watchdog_pings_stop_when_the_decision_loop_hangs_and_status_follows_the_state(tmp_path, notify_socket):
    notifier = Notifier(socket_path=notify_socket.path, watchdog_usec="200000")  # pings every 0.1 s
    holder: dict = {"core": None}  # the loop exists once the bench starts
    bench = SimBench(state_dir=tmp_path / "state",
                     on_healthy_tick=healthy_tick_hook(notifier, lambda: holder["core"]))
    release = threading.Event()
    try:
        bench.start()
        holder["core"] = bench.controller.loop.core
        assert not announce_ready(bench.controller.loop.core, notifier)
        assert wait_until(lambda: len(notify_socket.lines("WATCHDOG=1")) >= 5, 3.0)
        assert wait_until(lambda: bench.command(CommandKind.RESET).ok, 3.0)
        assert wait_until(lambda: any(line == "STATUS=READY" for _, line in notify_socket.lines("STATUS=")), 2.0)
        pings = notify_socket.lines("WATCHDOG=1")
        gaps = [b[0] - a[0] for a, b in zip(pings, pings[1:])]
        assert max(gaps) < 0.2 + 0.05, "healthy: a ping every 0.1 s"

        def hang(*args):
            release.wait(10)

        # The loop wakes for inputs: it hangs in the step of the next sensor sample.
        bench.controller.loop.core.on_distance = hang
        t_hang = time.monotonic()
        assert wait_until(lambda: time.monotonic() - t_hang > 0.6, 1.0)
        late = [t for t, _ in notify_socket.lines("WATCHDOG=1") if t > t_hang + 0.15]
        assert late == [], "a hung loop sends no watchdog ping"
    finally:
        release.set()
        bench.close()
        notifier.close()
