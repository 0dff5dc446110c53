"""bench/cpu_slice.py: threads confined to a share of one CPU get about that share, and leave no trace.

The shares are measured from the kernel's own account of a spinning thread's CPU time
(/proc/self/task/TID/schedstat) over about a second. The bounds are generous, for a shared,
noisy 2-core machine: a confined thread may get less than its share when others crowd its CPU,
never much more.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import cpu_slice
from bench.cpu_slice import CGROUP_PREFIX, CpuSlice, controller_threads, thread_cpu_s

#: How long each share is measured over.
WINDOW_S = 1.0


def _fifo_permitted() -> bool:
    probe = "import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))"
    return subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True).returncode == 0


def _cgroup_v1_writable() -> bool:
    mounts = [m for kind, m, opts, _ in cpu_slice._mounts() if kind == "cgroup" and opts & {"cpu", "cpuset"}]
    return len(mounts) >= 2 and all(os.access(m, os.W_OK) for m in mounts)


#: The ways this machine offers to confine threads: each available one is tested, none is skipped.
#: A machine that offers none fails test_this_machine_can_confine_the_controller (the Pi-budget
#: benchmark cannot run there).
METHODS = [m for m, ok in (("cgroup-v1", _cgroup_v1_writable()), ("hog", _fifo_permitted())) if ok]


def test_this_machine_can_confine_the_controller():
    assert METHODS, "neither a writable cgroup v1 (cpu, cpuset) nor SCHED_FIFO: bench.pi_budget cannot run here"


class Spinner:
    """A thread that burns CPU until stopped."""

    def __init__(self, name: str = "spinner") -> None:
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, name=name, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set():
            pass

    @property
    def tid(self) -> int:
        assert self.thread.native_id is not None
        return self.thread.native_id

    def share_over(self, window_s: float = WINDOW_S) -> float:
        """The share of one CPU the thread ran over the next ``window_s`` (a measurement window, not a wait)."""
        c0, t0 = thread_cpu_s(self.tid), time.monotonic()
        threading.Event().wait(window_s)  # the window measured, not a wait for a condition
        return (thread_cpu_s(self.tid) - c0) / (time.monotonic() - t0)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive()


@pytest.fixture
def spinner() -> Iterator[Spinner]:
    s = Spinner()
    try:
        yield s
    finally:
        s.stop()


def _cgroup_lines(tid: int) -> set[str]:
    return set(Path(f"/proc/self/task/{tid}/cgroup").read_text().split())


def _our_cgroup_dirs() -> list[Path]:
    mine = f"{CGROUP_PREFIX}-{os.getpid()}-"
    found = []
    for _kind, mount, _opts, _root in cpu_slice._mounts():
        for d, dirs, _files in os.walk(mount):
            found += [Path(d) / x for x in dirs if x.startswith(mine)]
            dirs[:] = []  # ours are children of this process's cgroup: the top level here
    return found


@pytest.mark.parametrize("method", METHODS[:1])
def test_a_spinning_thread_confined_to_a_quarter_of_one_core_gets_about_a_quarter(spinner, method):
    with CpuSlice(0.25, [spinner.thread]) as sl:
        assert os.sched_getaffinity(spinner.tid) == {sl.cpu}
        share = spinner.share_over()
    assert 0.10 <= share <= 0.35, f"{sl.method}: {share:.2f} of one core"
    assert sl.tids == {spinner.tid}
    assert 0.05 <= sl.describe()["used"]["cpu_share_used_by_confined_threads"] <= 0.4


@pytest.mark.parametrize("method", METHODS)
def test_each_method_keeps_a_spinning_thread_well_under_a_full_core(spinner, method):
    with CpuSlice(0.25, [spinner.thread], method=method) as sl:
        share = spinner.share_over()
    assert 0.05 <= share <= 0.5, f"{sl.method}: {share:.2f} of one core"
    assert ("cgroup v1" in sl.method) if method == "cgroup-v1" else sl.method.startswith("affinity")


@pytest.mark.parametrize("method", METHODS)
def test_a_full_share_still_confines_to_one_cpu(spinner, method):
    with CpuSlice(1.0, [spinner.thread], method=method) as sl:
        assert os.sched_getaffinity(spinner.tid) == {sl.cpu}
        share = spinner.share_over(0.5)
    assert share >= 0.3, f"{sl.method}: {share:.2f} of one core at a full share"
    assert "hog at" not in sl.method


@pytest.mark.parametrize("method", METHODS)
def test_threads_a_confined_thread_starts_later_are_confined_too(method):
    go, seen = threading.Event(), {}

    def parent() -> None:
        go.wait(5)
        child = threading.Thread(target=lambda: seen.update(
            affinity=os.sched_getaffinity(0), cgroups=_cgroup_lines(threading.get_native_id())), name="child")
        child.start()
        child.join(5)

    t = threading.Thread(target=parent, name="parent", daemon=True)
    t.start()
    with CpuSlice(0.5, [t], method=method) as sl:
        go.set()
        t.join(5)
    assert seen["affinity"] == {sl.cpu}
    if method.startswith("cgroup"):
        assert any(CGROUP_PREFIX in line for line in seen["cgroups"]), seen["cgroups"]


@pytest.mark.parametrize("method", METHODS)
def test_leaving_puts_the_thread_back_and_removes_what_it_made_even_after_an_exception(spinner, method):
    before_cgroups, before_affinity = _cgroup_lines(spinner.tid), os.sched_getaffinity(spinner.tid)
    hog_pid = None
    with pytest.raises(RuntimeError, match="inside"), CpuSlice(0.25, [spinner.thread], method=method) as sl:
        assert os.sched_getaffinity(spinner.tid) == {sl.cpu}
        if method == "hog":
            hog_pid = sl._backend.proc.pid
        else:
            assert _our_cgroup_dirs(), "no cgroup made"
            assert _cgroup_lines(spinner.tid) != before_cgroups
        raise RuntimeError("inside")
    assert _cgroup_lines(spinner.tid) == before_cgroups
    assert os.sched_getaffinity(spinner.tid) == before_affinity
    assert _our_cgroup_dirs() == []
    if hog_pid is not None:
        assert not Path(f"/proc/{hog_pid}").exists() or "Z" in Path(f"/proc/{hog_pid}/stat").read_text().split()[2]


@pytest.mark.parametrize("method", METHODS[:1])
def test_threads_started_later_by_an_unconfined_thread_are_caught_by_the_reapplier(method):
    from tests.waiting import expect
    later: list[Spinner] = []
    try:
        with CpuSlice(0.5, lambda: [s.thread for s in later], reapply_s=0.01) as sl:
            later.append(Spinner("started-later"))
            expect(lambda: later[0].tid in sl.tids, 2.0, "the re-applier to confine the new thread")
            assert os.sched_getaffinity(later[0].tid) == {sl.cpu}
    finally:
        for s in later:
            s.stop()


def test_controller_threads_leave_out_the_main_thread_the_caller_and_the_simulator():
    stop = threading.Event()
    names = ["decision", "tof-reader", "sim-safety-circuit", "patient-runner", "treadmill-emulator", "ipc-accept"]
    threads = [threading.Thread(target=stop.wait, args=(5,), name=n, daemon=True) for n in names]
    for t in threads:
        t.start()
    try:
        picked = {t.name for t in controller_threads()}
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    assert {"decision", "tof-reader", "ipc-accept"} <= picked
    assert not picked & {"sim-safety-circuit", "patient-runner", "treadmill-emulator", "MainThread"}


def test_a_quota_below_the_kernels_minimum_or_a_share_out_of_range_is_refused():
    with pytest.raises(ValueError, match="longer period"):
        CpuSlice(0.1, [], period_us=4000)
    with pytest.raises(ValueError, match="share"):
        CpuSlice(0.0, [])
    with pytest.raises(ValueError, match="share"):
        CpuSlice(1.5, [])


def test_the_cgroup_v2_method_writes_a_threaded_child_with_cpu_max_and_takes_it_away(tmp_path, monkeypatch):
    # Against a stand-in directory tree (no cgroup v2 cpu controller here): what it writes, in order.
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    monkeypatch.setattr(cpu_slice, "_own_cgroup", lambda controller, tid=None: "/")
    removed = []
    monkeypatch.setattr(cpu_slice.os, "rmdir", lambda d: removed.append(Path(d)))
    tid = threading.get_native_id()
    backend = cpu_slice._CgroupV2(0.25, 4000, min(os.sched_getaffinity(0)), mount=tmp_path)
    backend.add(tid)
    child = backend.dir
    assert child.parent == tmp_path and child.name.startswith(CGROUP_PREFIX)
    assert (child / "cgroup.type").read_text() == "threaded"
    assert (child / "cpu.max").read_text() == "1000 4000"
    assert (child / "cgroup.threads").read_text() == str(tid)
    assert backend.description.startswith("cgroup v2 cpu.max 1000 4000")
    backend.close()
    assert (tmp_path / "cgroup.threads").read_text() == str(tid)
    assert removed == [child]
