"""The machine under the reliability tests: its stalls, the CPU it denies our threads, production priorities.

A shared test machine sometimes stops everything for tens of milliseconds. A deadline
missed during such a stall says nothing about the controller; one missed without it does.
``StallWatch`` tells them apart with one canary process per CPU: pinned there, above the
controller's priority and in a process of its own (no GIL shared), it records each stretch
it was kept from running beyond its 1 ms sleep by 2 ms. No task the controller, the
dashboard or a load generator runs can delay it; the kernel's own work or a stall of the
virtual machine can. Where real-time priority is not permitted, it runs at normal priority.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Controller priority in its systemd unit (CPUSchedulingPolicy=rr, CPUSchedulingPriority=10); the dashboard's Nice.
CONTROLLER_RR_PRIORITY = 10
DASHBOARD_NICE = 5
CANARY_RR_PRIORITY = 20

_CANARY = """
import os, sys, time
cpu, priority = int(sys.argv[1]), int(sys.argv[2])
period_s, late_s = 0.001, 0.002
os.sched_setaffinity(0, {cpu})
try:
    os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
except (PermissionError, OSError):
    print("normal-priority", flush=True)
last = time.monotonic()
while True:
    time.sleep(period_s)
    now = time.monotonic()
    if now - last > period_s + late_s:
        print(cpu, last + period_s, now, flush=True)
    last = now
"""


class StallWatch:
    """One canary per CPU while in use; the stalls they saw, as (cpu, start, end) in CLOCK_MONOTONIC."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen] = []
        self._readers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.stalls: list[tuple[int, float, float]] = []
        self.real_time = True

    def __enter__(self) -> "StallWatch":
        for cpu in sorted(os.sched_getaffinity(0)):
            proc = subprocess.Popen([sys.executable, "-c", _CANARY, str(cpu), str(CANARY_RR_PRIORITY)],
                                    stdout=subprocess.PIPE, text=True)
            reader = threading.Thread(target=self._read, args=(proc,), name="stall-watch", daemon=True)
            reader.start()
            self._procs.append(proc)
            self._readers.append(reader)
        return self

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("normal-priority"):
                self.real_time = False
                continue
            cpu, start, end = line.split()
            with self._lock:
                self.stalls.append((int(cpu), float(start), float(end)))

    def stalled_s(self, t0: float, t1: float) -> float:
        """How long the most stalled CPU was stalled within [t0, t1]."""
        per_cpu: dict[int, float] = {}
        with self._lock:
            for cpu, s, e in self.stalls:
                if s < t1 and e > t0:
                    per_cpu[cpu] = per_cpu.get(cpu, 0.0) + min(e, t1) - max(s, t0)
        return max(per_cpu.values(), default=0.0)

    def snapshot(self) -> list[tuple[int, float, float]]:
        with self._lock:
            return list(self.stalls)

    def __exit__(self, *exc_info: object) -> None:
        for proc in self._procs:
            proc.kill()
            proc.wait(5)
        for reader in self._readers:
            reader.join(5)
        for proc in self._procs:
            if proc.stdout is not None:
                proc.stdout.close()


def run_delays(thread_names: tuple[str, ...]) -> dict[int, float]:
    """Per named thread of this process, the time it has spent runnable but waiting for a CPU (s).

    From /proc/self/task/*/schedstat (its second field): CPU taken by other processes and the
    machine, as opposed to waits inside the process (locks, the GIL), which it leaves out.
    """
    out: dict[int, float] = {}
    for t in threading.enumerate():
        if t.name.startswith(thread_names) and t.native_id is not None:
            try:
                out[t.native_id] = int(Path(f"/proc/self/task/{t.native_id}/schedstat").read_text().split()[1]) / 1e9
            except (OSError, IndexError, ValueError):
                continue
    return out


def most_delayed_s(before: dict[int, float], after: dict[int, float]) -> float:
    """The longest any one thread waited for a CPU between two ``run_delays`` readings."""
    return max((after[tid] - before.get(tid, 0.0) for tid in after), default=0.0)


@contextmanager
def production_priority() -> Iterator[str]:
    """This thread, and the threads it starts meanwhile, run at SCHED_RR 10 as the controller's unit gives them.

    The thread is put back afterwards; threads started inside keep the priority until they end. Run
    the test's own thread inside too: a normally scheduled thread could be preempted while it holds
    the GIL the controller needs.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(CONTROLLER_RR_PRIORITY))
    except (PermissionError, OSError):
        yield "normal (SCHED_RR not permitted here)"
        return
    try:
        yield f"SCHED_RR {CONTROLLER_RR_PRIORITY}"
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def renice_all_threads(pid: int, nice: int) -> None:
    """Nice is per thread on Linux: set it on every thread the process already has."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.setpriority(os.PRIO_PROCESS, int(tid), nice)
        except ProcessLookupError:
            pass
