"""``make demo``: the controller on simulated hardware and the dashboard, two processes over IPC.

The first three lines printed are exactly::

    dashboard: http://127.0.0.1:PORT/
    user: demo-therapist
    password: <one-time password>

(``https://`` with ``--tls``: a throw-away self-signed certificate for 127.0.0.1
and localhost, whose path and SHA-256 fingerprint follow on later lines.) Then
``admin: demo-admin <password>``, an admin account for the Accounts and Audit
pages. The demo's accounts live in its temporary directory and go with it.
The controller starts READY (the demo resets it once inputs are fresh), so a
visitor logs in and presses Start. Demo buttons on the page act on the
simulation (patient drifts back, console speeds up, a sensor or the treadmill
is unplugged); every safety function can be seen working. Ctrl-C ends it.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

from controller.safety.types import CommandKind
from sim.bench import EXAMPLE_CONFIG, SimBench, wait_until
from sim.demo import spawn_voice

WEB_START_TIMEOUT_S = 20.0
#: The demo's one account: a therapist (not an admin), with a password made for this run.
DEMO_USER = "demo-therapist"
#: An admin too, so a visitor can see the Accounts and Audit pages (its line follows the first three).
DEMO_ADMIN = "demo-admin"


#: A pseudonymous patient so the session panel has someone to choose (short sessions for the demo).
DEMO_PATIENT = {"patient_id": "DEMO-1", "display_name": "Demo patient", "notes": "created by the demo",
                "mode": "reverse", "speed_cap_kmh": 1.5, "base_stop_mm": 250, "warn_margin_mm": 200,
                "target_min": 20, "sessions_per_day": 2}


#: Debian's Chromium (installed by .ci/system-packages); Playwright drives it and never downloads one.
#: The flags keep it off the network: no background fetches, no QUIC, no sync.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def answers(url: str, context: ssl.SSLContext | None = None) -> bool:
    """Whether a GET of ``url`` returns 200 within a second (HTTPS verified with ``context``)."""
    try:
        with urllib.request.urlopen(url, timeout=1.0, context=context) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def trusting(cert_path: str | Path) -> ssl.SSLContext:
    """A client context that trusts exactly this certificate (and checks the host name against it)."""
    return ssl.create_default_context(cafile=str(cert_path))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_dashboard(port: int, socket_path: str, state_dir: str | Path, *, stderr=None,
                    tls: tuple[Path, Path] | None = None, config: str | Path = EXAMPLE_CONFIG) -> subprocess.Popen | None:
    """Start ``treadmill-safety web`` on 127.0.0.1:port (normal priority) and wait until it answers.

    Plain HTTP, or HTTPS with ``tls = (cert, key)``, the readiness check trusting that certificate;
    ``config`` is the example config unless another is given (a clinic's treadmill's, sim/clinic.py).
    Returns the process, or None (and the process is ended) if it did not come up in time.
    """
    cert, key = (str(tls[0]), str(tls[1])) if tls else ("", "")
    web = subprocess.Popen([sys.executable, "-m", "cli.main", "web", "--config", str(config),
                            "--host", "127.0.0.1", "--port", str(port), "--ipc-socket", socket_path,
                            "--state-dir", str(state_dir), "--tls-cert", cert, "--tls-key", key], stderr=stderr)
    try:  # the dashboard stays below the controller, whatever priority this process has
        os.sched_setscheduler(web.pid, os.SCHED_OTHER, os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, web.pid, 0)
    except (PermissionError, OSError):
        pass
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/api/status"
    context = trusting(cert) if tls else None
    if wait_until(lambda: answers(url, context) or web.poll() is not None, WEB_START_TIMEOUT_S, poll_s=0.1) \
            and web.poll() is None:
        return web
    stop_process(web)
    return None


def stop_process(proc: subprocess.Popen, timeout_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it does not end in time."""
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def favour_this_process(rt_priority: int = 10) -> str:
    """Ask for CPU ahead of the dashboard and the browser, as the systemd unit does on the Pi.

    A starved process misses sensor samples and trips (correctly, but needlessly):
    on a small shared machine a browser's rendering can hold both cores for tens of
    milliseconds. Round-robin real-time scheduling needs root; otherwise a better
    nice value is tried, and otherwise the demo runs at normal priority.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(rt_priority))
        return "SCHED_RR"
    except (PermissionError, OSError, AttributeError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -5)
        return "nice -5"
    except (PermissionError, OSError):
        return "normal"


def run_dashboard_demo(args: argparse.Namespace) -> int:
    """Run until interrupted; exit 0 on Ctrl-C or SIGTERM."""
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    favour_this_process()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    with tempfile.TemporaryDirectory(prefix="treadmill-demo-") as tmp:
        socket_path = str(Path(tmp) / "control.sock")
        web_state = Path(tmp) / "web"
        from web.accounts import AccountStore
        password, admin_password = secrets.token_urlsafe(9), secrets.token_urlsafe(9)
        AccountStore(web_state).add(DEMO_USER, "therapist", password)
        AccountStore(web_state).add(DEMO_ADMIN, "admin", admin_password)
        tls = None
        if args.tls:
            from web.tls import generate_self_signed
            tls = (Path(tmp) / "tls" / "dashboard.crt", Path(tmp) / "tls" / "dashboard.key")
            certificate = generate_self_signed(*tls, ["localhost"], ["127.0.0.1"])
        with SimBench(state_dir=Path(tmp) / "state", ipc_socket=socket_path, start_gap_mm=1000.0,
                      sway_mm=25.0) as bench:
            bench.controller.sessions.request("save", {"patient": DEMO_PATIENT, "create": True, "actor": "demo",
                                                       "authorized": True})
            if not wait_until(lambda: bench.command(CommandKind.RESET, actor="demo").ok, 10.0, poll_s=0.05):
                print(f"demo: the simulated controller did not become READY: "
                      f"{bench.controller.status.get('reasons')}", file=sys.stderr)
                return 1
            web = spawn_dashboard(args.port, socket_path, web_state, tls=tls)
            if web is None:
                print(f"demo: the dashboard did not start on port {args.port} "
                      "(is the port in use? try --port)", file=sys.stderr)
                return 1
            # The patient's spoken prompts on this machine's default sound device; without one it logs once.
            voice = spawn_voice(socket_path, Path(tmp))
            try:
                print(f"dashboard: {'https' if tls else 'http'}://127.0.0.1:{args.port}/", flush=True)
                print(f"user: {DEMO_USER}", flush=True)
                print(f"password: {password}", flush=True)
                if tls:
                    print(f"certificate: {certificate.path} (self-signed for this demo: 127.0.0.1, localhost)",
                          flush=True)
                    print(f"SHA-256 fingerprint: {certificate.fingerprint} (the browser warns once: compare it "
                          "with the certificate's details before going on)", flush=True)
                print(f"admin: {DEMO_ADMIN} {admin_password} (accounts and the audit trail)", flush=True)
                print(f"log in as {DEMO_USER} with this password, press Start (or choose patient DEMO-1 and "
                      "start a session), then try the demo buttons; "
                      "Ctrl-C ends the demo", flush=True)
                while not stop.wait(0.5):
                    if web.poll() is not None:
                        print("demo: the dashboard process ended", file=sys.stderr)
                        return 1
            finally:
                stop_process(voice)
                stop_process(web)
    return 0
