"""Measurements taken from the bench's pin histories, emulator logs and event log."""

from __future__ import annotations

import pytest

from controller.therapy.runner import SessionError
from sim.bench import STALE_INPUT_TRIPS, SimBench, wait_until


def relay_opened_at(bench: SimBench, after_t: float = 0.0) -> float | None:
    """Monotonic time the relay pin first went to 'de-energized' after ``after_t``."""
    for t, energized in bench.relay_history:
        if t >= after_t and not energized:
            return t
    return None


def wait_tripped(bench: SimBench, timeout_s: float = 3.0) -> bool:
    """Wait until the controller reports STOPPED with the relay open."""
    return wait_until(lambda: bench.controller.status.get("state") == "STOPPED" and not bench.relay_energized,
                      timeout_s)


def trips(bench: SimBench) -> list[dict]:
    """Trip events from the event log, oldest first."""
    bench.controller.history.flush()
    return list(reversed(bench.controller.history.recent(200, kind="trip")))


def reset_when_healthy(bench: SimBench, timeout_s: float = 3.0):
    """Try a reset until it is accepted or the deadline passes; return the last reply."""
    from controller.safety.types import CommandKind
    replies = []
    wait_until(lambda: replies.append(bench.command(CommandKind.RESET)) or replies[-1].ok, timeout_s, poll_s=0.05)
    return replies[-1]


#: Trips a shared test machine causes by itself (sim/bench.py).
ENVIRONMENT_TRIPS = STALE_INPUT_TRIPS


def on_a_calm_machine(make_bench, scenario, expected: tuple[str, ...] = ()) -> None:
    """Run a long scenario on a fresh bench; again (at most twice) only if a machine stall tripped it.

    ``expected`` are the trip codes the scenario causes on purpose.
    """
    for _ in range(3):
        bench = make_bench()
        try:
            scenario(bench)
            return
        except (AssertionError, SessionError):  # a refused session request: "the controller is STOPPED"
            codes = [e["code"] for e in trips(bench) if e["code"] not in expected]
            if not codes or not all(code.startswith(ENVIRONMENT_TRIPS) for code in codes):
                raise
            print(f"a machine stall tripped the controller ({codes}): running the scenario again")
    pytest.fail("three machine stalls in a row")
