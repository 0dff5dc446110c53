"""What the reliability suite tried, counted across the session for the README's table.

Each reliability test adds what it did: faults injected and tripped, bad inputs
tried (by kind), crashes seen (each test also asserts that this stays 0). The
conftest prints the tally at the end of the run and, when
``TREADMILL_RELIABILITY_REPORT`` names a file, writes it there as JSON
(``python -m bench.reliability`` does this).
"""

from __future__ import annotations

import os
import threading
from collections import Counter

from hypothesis import HealthCheck, settings


class Tally:
    """Thread-safe counters, keyed like ``"bad inputs: serial bytes"``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, what: str, n: int = 1) -> None:
        with self._lock:
            self._counts[what] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))


TALLY = Tally()

#: Scales every fuzz test's example count: FUZZ_EXAMPLES=10 for a deeper run than CI's.
SCALE = max(1, int(os.environ.get("FUZZ_EXAMPLES", "1")))


def fuzz(max_examples: int) -> settings:
    """Hypothesis settings for a fuzz test: repeatable in CI (derandomized), no example database.

    Hypothesis prints the failing example (and a reproduce_failure blob) when one fails.
    """
    return settings(max_examples=max_examples * SCALE, deadline=None, derandomize=True, database=None,
                    print_blob=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
