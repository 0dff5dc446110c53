"""Running as a systemd service: self-check, READY=1, watchdog pings, STATUS, clean stop."""

from __future__ import annotations

import logging
import time
from typing import Callable

from controller.notify import Notifier
from controller.safety.core import SafetyCore

log = logging.getLogger(__name__)

SELF_CHECK_TIMEOUT_S = 5.0


def describe(core: SafetyCore) -> str:
    """One line for ``systemctl status``: the state and its first reasons."""
    text = core.state.value
    if core.reasons:
        text += ": " + "; ".join(list(core.reasons.values())[:2])
    return text[:200]


def healthy_tick_hook(notifier: Notifier, core_of: Callable[[], SafetyCore | None]) -> Callable:
    """The loop's on_healthy_tick: runs on the decision thread, so a hung loop stops the pings."""
    def hook(state) -> None:
        core = core_of()
        if core is not None:
            notifier.healthy_tick(describe(core))
    return hook


def self_check(core: SafetyCore, timeout_s: float = SELF_CHECK_TIMEOUT_S) -> list[str]:
    """Wait until every sensor has delivered a sample and the treadmill answers; else the problems."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = time.monotonic()
        problems = [f"sensor {sid}: " + (tr.fault_message if tr.faulted() else "no sample")
                    for sid, tr in core.sensors.items() if tr.t_sample is None or tr.faulted()]
        if core.belt.t_fault is not None:
            problems.append(f"treadmill link: {core.belt.fault_message}")
        elif not core.belt.is_fresh(now):
            problems.append("treadmill link: no speed reading")
        if not problems or now >= deadline:
            return problems
        time.sleep(0.05)


def announce_ready(core: SafetyCore, notifier: Notifier, timeout_s: float = SELF_CHECK_TIMEOUT_S) -> list[str]:
    """Self-check, then READY=1; on failure report it in STATUS and return the problems."""
    problems = self_check(core, timeout_s)
    if problems:
        notifier.send("STATUS=self-check failed: " + "; ".join(problems)[:400])
        log.error("hardware self-check failed: %s", "; ".join(problems))
        return problems
    notifier.ready(f"self-check passed ({len(core.sensors)} sensor(s), treadmill answering); {describe(core)}")
    log.info("hardware self-check passed; READY")
    return []
