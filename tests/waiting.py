"""Waiting on conditions with deadlines: the only way tests wait."""

from __future__ import annotations

import time
from typing import Callable

import pytest

from sim.bench import wait_until

__all__ = ["wait_until", "expect", "holds_for"]

#: How often a condition is re-checked.
POLL_S = 0.002


def expect(predicate: Callable[[], object], timeout_s: float = 2.0, what: str = "condition") -> None:
    """Fail the test unless ``predicate`` comes true within ``timeout_s``."""
    if not wait_until(predicate, timeout_s, POLL_S):
        pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


def holds_for(predicate: Callable[[], object], duration_s: float, what: str = "condition") -> None:
    """Assert ``predicate`` stays true for ``duration_s``: the only way to observe an absence."""
    deadline = time.monotonic() + duration_s
    while time.monotonic() < deadline:
        assert predicate(), f"{what} stopped holding"
        time.sleep(POLL_S)
