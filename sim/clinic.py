"""Simulated treadmills of one clinic: each a controller process on simulated hardware with its replicator.

    node = ClinicTreadmill(directory, clinic_cfg).start()   # run --simulate + replicate, as on a Pi
    node.call("status"); node.reset(); node.stop()

Used by the clinic tests and benchmarks (tests/hil/test_clinic_*.py, bench/clinic.py): every
treadmill is its own ``treadmill-safety run --simulate`` process, as on its own Pi, with
``treadmill-safety replicate`` beside it, both on a config file written from the example config.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from controller.config import ClinicConfig
from controller.ipc_client import ControllerError, ControllerOffline, SocketClient
from sim.bench import EXAMPLE_CONFIG, wait_until
from sim.dashboard import stop_process

START_TIMEOUT_S = 30.0


def set_options(text: str, options: dict[str, dict[str, Any]]) -> str:
    """The config text with ``options[section][key]`` set (each key must already be in its section)."""
    for section, values in options.items():
        match = re.search(rf"^\[{re.escape(section)}\]\s*$", text, re.MULTILINE)
        if match is None:
            raise KeyError(f"no section [{section}] in the config")
        end = re.search(r"^\[", text[match.end():], re.MULTILINE)
        stop = match.end() + end.start() if end else len(text)
        body = text[match.end():stop]
        for key, value in values.items():
            literal = json.dumps(value) if not isinstance(value, bool) else str(value).lower()
            body, n = re.subn(rf"^{re.escape(key)} = .*$", lambda m, lit=literal, k=key: f"{k} = {lit}", body,
                              count=1, flags=re.MULTILINE)
            if n != 1:
                raise KeyError(f"no option {key} in [{section}]")
        text = text[:match.end()] + body + text[stop:]
    return text


def write_config(path: Path, *, state_dir: Path, ipc_socket: Path, web_state_dir: Path,
                 clinic: ClinicConfig | None = None, extra: dict[str, dict[str, Any]] | None = None) -> Path:
    """A config for a simulated treadmill: the example's, with its own state, socket and [clinic]."""
    options: dict[str, dict[str, Any]] = {
        "storage": {"state_dir": str(state_dir)},
        "web": {"ipc_socket": str(ipc_socket), "state_dir": str(web_state_dir)},
    }
    if clinic is not None:
        options["clinic"] = dataclasses.asdict(clinic)
    for section, values in (extra or {}).items():
        options.setdefault(section, {}).update(values)
    path.write_text(set_options(EXAMPLE_CONFIG.read_text(), options))
    return path


def spawn_replicator(config: Path, log, max_backoff_s: float = 2.0) -> subprocess.Popen:
    """``treadmill-safety replicate`` on ``config``, below the controller's priority as its unit runs it
    (Nice=10), its output to the open file ``log``."""
    return subprocess.Popen([sys.executable, "-m", "cli.main", "replicate", "--config", str(config),
                             "--max-backoff-s", str(max_backoff_s)], stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: os.nice(10))


class ClinicTreadmill:
    """One simulated treadmill of a clinic: its controller process and, beside it, its replicator process."""

    def __init__(self, directory: Path, clinic: ClinicConfig, *, max_backoff_s: float = 2.0,
                 replicate: bool = True, extra: dict[str, dict[str, Any]] | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.clinic = clinic
        self.treadmill_id = clinic.treadmill_id
        self.socket = self.directory / "control.sock"
        self.config = write_config(self.directory / "config.toml", state_dir=self.directory / "state",
                                   ipc_socket=self.socket, web_state_dir=self.directory / "web", clinic=clinic,
                                   extra=extra)
        self.max_backoff_s = max_backoff_s
        self.replicate = replicate
        self.client = SocketClient(str(self.socket), timeout_s=5.0)
        self.controller: subprocess.Popen | None = None
        self.replicator: subprocess.Popen | None = None
        self._logs: list[Any] = []

    def _spawn(self, *args: str, log_name: str) -> subprocess.Popen:
        log = open(self.directory / log_name, "ab")
        self._logs.append(log)
        return subprocess.Popen([sys.executable, "-m", "cli.main", *args], stdout=log, stderr=subprocess.STDOUT)

    def start(self) -> "ClinicTreadmill":
        self.controller = self._spawn("run", "--simulate", "--config", str(self.config), log_name="controller.log")
        if not wait_until(self._answers, START_TIMEOUT_S, poll_s=0.1):
            self.stop()
            raise RuntimeError(f"treadmill {self.treadmill_id}: the controller did not come up:\n{self.log()}")
        if self.replicate:
            self.start_replicator()
        return self

    def start_replicator(self) -> None:
        log = open(self.directory / "replicator.log", "ab")
        self._logs.append(log)
        self.replicator = spawn_replicator(self.config, log, self.max_backoff_s)

    def stop_replicator(self) -> None:
        if self.replicator is not None:
            stop_process(self.replicator, 10.0)
            self.replicator = None

    def _answers(self) -> bool:
        if self.controller is not None and self.controller.poll() is not None:
            return True  # it ended: start() reports it
        try:
            self.client.call("status")
            return self.controller is not None and self.controller.poll() is None
        except (ControllerOffline, ControllerError):
            return False

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return self.client.call(method, params)

    def status(self) -> dict[str, Any]:
        return self.client.call("status")

    def command(self, command: str, value: Any = None, actor: str = "therapist") -> dict[str, Any]:
        return self.client.call("command", {"command": command, "actor": actor, "authorized": True,
                                            "value": value})

    def reset(self, timeout_s: float = 10.0) -> bool:
        """The simulation recovered (the patient at the start, the watchdog relay closed: a stall of this
        shared machine may have opened it), then a reset, tried until the inputs are fresh and it is accepted."""
        self.call("demo", {"action": "recover"})
        def attempt() -> bool:
            try:
                self.command("reset")
                return True
            except ControllerError:
                return False
        return wait_until(attempt, timeout_s, poll_s=0.1)

    def log(self) -> str:
        out = []
        for name in ("controller.log", "replicator.log"):
            path = self.directory / name
            if path.exists():
                out.append(f"--- {name} ---\n" + path.read_text(errors="replace")[-4000:])
        return "\n".join(out)

    def stop(self) -> None:
        self.stop_replicator()
        if self.controller is not None:
            stop_process(self.controller, 10.0)
            self.controller = None
        for log in self._logs:
            log.close()
        self._logs.clear()

    def __enter__(self) -> "ClinicTreadmill":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

