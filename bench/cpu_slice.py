"""Confine some threads of this process to a share of ONE CPU: a slow Pi Zero 2 W on a fast machine.

``CpuSlice(share)`` is a context manager. Inside it the chosen threads (Linux TIDs) run on one
CPU only and get at most ``share`` of it, by the first method this machine allows:

1. **cgroup v2** (``cpu.max`` + ``cpuset.cpus``), when this process's cgroup v2 directory offers the
   ``cpu`` and ``cpuset`` controllers and is writable: a *threaded* child cgroup, so that single
   threads can be placed in it (``cgroup.threads``). CFS bandwidth only: with CONFIG_RT_GROUP_SCHED
   a real-time thread cannot join a v2 cpu cgroup, and the method is then refused.
2. **cgroup v1**: a fresh cgroup under the ``cpu`` hierarchy (``cpu.cfs_period_us``,
   ``cpu.cfs_quota_us`` = share x period; where the kernel has RT group scheduling also
   ``cpu.rt_period_us``/``cpu.rt_runtime_us``, so that SCHED_RR/FIFO threads, which CFS quotas do not
   touch, get the same share) and one under ``cpuset`` (one CPU, ``cpuset.mems`` copied from the
   parent). v1 places single threads through ``tasks``.
3. **hog**, where no cgroup can be written: the threads are pinned to the CPU
   (``os.sched_setaffinity``), and a competing process pinned to the same CPU at SCHED_FIFO
   ``HOG_PRIORITY`` (above the controller's SCHED_RR 10, below the stall canaries' 20) spins for
   (1 - share) of every period and sleeps for the rest.

A short period (``DEFAULT_PERIOD_US``, 4 ms) makes the slice behave like a slower CPU rather than
a fast one with long stalls. At share 1.0 the threads are still confined to one CPU (a full core),
so that runs at different shares differ only in the share. On exit the threads go back where they
were (their cgroups, their affinity), the hog stops and the cgroups are removed, also after an
exception. ``method`` says what was done, e.g. ``"cgroup v1 cpu.cfs_quota_us 1000/4000 us + cpuset
cpu 1"``, so results can say so.

Which threads: ``threads`` is an iterable of threads or TIDs (applied once), or a callable that
returns them; a callable is applied again every ``reapply_s`` by a thread of this module
("cpu-slice-reapply"), so threads started later are caught within that time. The default,
``controller_threads``, is every live thread of this process except the main thread, the calling
thread and the simulator's threads (``SIMULATOR_THREAD_PREFIXES``). Threads started by a confined
thread inherit its cgroup (and its affinity) at once; threads started by an unconfined thread (a
controller restarted from a test's main thread) run unconfined until the next re-application.

All threads of one process share the GIL: a confined thread throttled while it holds the GIL holds
up the unconfined ones until its next period. A Pi would run the simulator elsewhere; here that
cost lands on the simulator, not on the controller, so it does not flatter the figures.
"""

from __future__ import annotations

import errno
import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

#: CFS (and RT) bandwidth period: short, so a slice is a slower CPU, not a fast one that stalls.
DEFAULT_PERIOD_US = 4000
#: The kernel refuses a CFS quota (or period) below 1 ms.
MIN_CFS_QUOTA_US = 1000
#: How often a callable ``threads`` is applied again (catches threads started later).
DEFAULT_REAPPLY_S = 0.05
#: The hog's SCHED_FIFO priority: above the controller's production SCHED_RR 10 (it must take the
#: CPU from it), below the reliability suite's stall canaries at 20 (tests/reliability/machine.py).
HOG_PRIORITY = 15
#: Threads that belong to the simulation, the measurement or this module, never to the controller:
#: the bench's safety-circuit poller and anything else it names "sim-...", the patient model, the
#: treadmill emulator (hardware/sim), the reliability suite's stall-watch readers and this module's
#: re-applier.
SIMULATOR_THREAD_PREFIXES = ("sim-", "patient-runner", "treadmill-emulator", "stall-watch", "cpu-slice")
#: cgroup directories this module creates are named so (plus pid and a counter).
CGROUP_PREFIX = "treadmill-cpu-slice"
METHODS = ("auto", "cgroup-v2", "cgroup-v1", "hog")

ThreadsArg = Iterable["threading.Thread | int"] | Callable[[], Iterable["threading.Thread | int"]]

_counter = itertools.count()


class Unavailable(Exception):
    """This method of confinement cannot be used on this machine."""


def controller_threads(exclude_prefixes: tuple[str, ...] = SIMULATOR_THREAD_PREFIXES) -> list[threading.Thread]:
    """Live, started threads of this process that are not the main thread, not the calling thread and
    not named with one of ``exclude_prefixes`` (the simulator's and the measurement's threads)."""
    skip = {threading.main_thread(), threading.current_thread()}
    return [t for t in threading.enumerate()
            if t not in skip and t.native_id is not None and t.is_alive() and not t.name.startswith(exclude_prefixes)]


def _tids(threads: Iterable[threading.Thread | int]) -> set[int]:
    out = set()
    for t in threads:
        tid = t if isinstance(t, int) else t.native_id
        if tid is not None:
            out.add(int(tid))
    return out


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read(path: Path) -> str:
    return path.read_text().strip()


def _gone(exc: OSError) -> bool:
    """The thread ended meanwhile."""
    return exc.errno == errno.ESRCH


def _mounts() -> list[tuple[str, str, set[str], str]]:
    """(fstype, mount point, super options, the cgroup mounted there) of every cgroup mount, from
    /proc/self/mountinfo (a container may mount its own cgroup, not the hierarchy's root, at the point)."""
    out = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) >= 5 and len(rfields) >= 3 and rfields[0] in ("cgroup", "cgroup2"):
            out.append((rfields[0], fields[4].replace("\\040", " "), set(rfields[2].split(",")), fields[3]))
    return out


def _own_cgroup(controller: str | None, tid: int | None = None) -> str | None:
    """This process's (or thread's) path in the v1 hierarchy holding ``controller``; None: the v2 one."""
    where = f"/proc/self/task/{tid}/cgroup" if tid is not None else "/proc/self/cgroup"
    for line in Path(where).read_text().splitlines():
        _, names, path = line.split(":", 2)
        if controller is None and names == "":
            return path
        if controller is not None and controller in names.split(","):
            return path
    return None


def _cgroup_dir(mount: Path, mounted: str, path: str | None) -> Path:
    """The directory of cgroup ``path`` (as /proc/self/cgroup names it) under a mount of cgroup ``mounted``."""
    rel = os.path.relpath(path or "/", mounted or "/")
    return mount if rel == "." else mount / rel


def _pick_cpu(cpu: int | None) -> int:
    allowed = sorted(os.sched_getaffinity(0))
    if cpu is None:
        return allowed[-1]
    if cpu not in allowed:
        raise ValueError(f"cpu {cpu} is not one this process may use: {allowed}")
    return cpu


class _Backend:
    description = ""

    def stats(self) -> dict:
        """The kernel's account of the throttling, where it keeps one."""
        return {}

    def add(self, tid: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _PerThread(_Backend):
    """A back-end that moves single threads in (``_place``) and out (``_unplace``), keeping each
    thread's CPU affinity to give back on close."""

    added: dict[int, set[int]]

    def _place(self, tid: int) -> None:
        raise NotImplementedError

    def _unplace(self, tid: int) -> None:
        """Undo ``_place`` (the affinity is restored besides)."""

    def add(self, tid: int) -> None:
        if tid in self.added:
            return
        try:
            affinity = os.sched_getaffinity(tid)
            self._place(tid)
            self.added[tid] = affinity
        except OSError as exc:
            if not _gone(exc):
                raise

    def _release_threads(self) -> None:
        for tid, affinity in list(self.added.items()):
            try:
                self._unplace(tid)
                os.sched_setaffinity(tid, affinity)
            except OSError:
                pass
        self.added.clear()


class _CgroupV1(_Backend):
    """A child cgroup in the v1 ``cpu`` and ``cpuset`` hierarchies; single threads through ``tasks``."""

    def __init__(self, share: float, period_us: int, cpu: int):
        mounts = [(m, opts, root) for kind, m, opts, root in _mounts() if kind == "cgroup"]
        cpu_mount = next(((Path(m), root) for m, opts, root in mounts if "cpu" in opts), None)
        set_mount = next(((Path(m), root) for m, opts, root in mounts if "cpuset" in opts), None)
        if cpu_mount is None or set_mount is None:
            raise Unavailable("no cgroup v1 cpu and cpuset hierarchies mounted")
        name = f"{CGROUP_PREFIX}-{os.getpid()}-{next(_counter)}"
        self.cpu_mount, self.set_mount = cpu_mount, set_mount
        self.cpu_parent = _cgroup_dir(*cpu_mount, _own_cgroup("cpu"))
        self.set_parent = _cgroup_dir(*set_mount, _own_cgroup("cpuset"))
        self.cpu_dir, self.set_dir = self.cpu_parent / name, self.set_parent / name
        #: tid -> (cpu cgroup dir, cpuset cgroup dir, affinity) it came from.
        self.origin: dict[int, tuple[Path, Path, set[int]]] = {}
        self.made: list[Path] = []
        try:
            for d in (self.cpu_dir, self.set_dir):
                d.mkdir()
                self.made.append(d)
            _write(self.set_dir / "cpuset.cpus", str(cpu))
            _write(self.set_dir / "cpuset.mems", _read(self.set_parent / "cpuset.effective_mems")
                   or _read(self.set_parent / "cpuset.mems"))
            _write(self.cpu_dir / "cpu.cfs_period_us", str(period_us))
            quota = "-1" if share >= 1.0 else str(round(share * period_us))
            _write(self.cpu_dir / "cpu.cfs_quota_us", quota)
            parts = [f"cpu.cfs_quota_us {'max' if quota == '-1' else quota}/{period_us} us"]
            if (self.cpu_dir / "cpu.rt_runtime_us").exists():
                rt = self._rt_runtime(share, period_us)
                _write(self.cpu_dir / "cpu.rt_period_us", str(period_us))
                _write(self.cpu_dir / "cpu.rt_runtime_us", str(rt))
                parts.append(f"cpu.rt_runtime_us {rt}/{period_us} us")
        except OSError as exc:
            self.close()
            raise Unavailable(f"cgroup v1: {exc}") from exc
        except BaseException:
            self.close()
            raise
        self.description = f"cgroup v1 {' + '.join(parts)} + cpuset cpu {cpu}"

    def _rt_runtime(self, share: float, period_us: int) -> int:
        """share x period, within the real-time bandwidth the parent has left (at most 95% by default)."""
        parent_ratio = self._ratio(self.cpu_parent)
        taken = sum(self._ratio(d) for d in self.cpu_parent.iterdir()
                    if d.is_dir() and d != self.cpu_dir and (d / "cpu.rt_runtime_us").exists())
        free = max(0.0, parent_ratio - taken)
        return max(0, min(round(share * period_us), int(free * period_us) - 1))

    @staticmethod
    def _ratio(d: Path) -> float:
        runtime = int(_read(d / "cpu.rt_runtime_us"))
        if runtime < 0:  # unlimited: the parent's own limit applies; /proc/sys/kernel has it for the root
            runtime, period = (int(_read(Path(f"/proc/sys/kernel/sched_rt_{k}_us"))) for k in ("runtime", "period"))
            return 1.0 if runtime < 0 else runtime / period
        return runtime / int(_read(d / "cpu.rt_period_us"))

    def add(self, tid: int) -> None:
        try:
            if tid not in self.origin:  # where it came from, read once, before it moves
                self.origin[tid] = (_cgroup_dir(*self.cpu_mount, _own_cgroup("cpu", tid)),
                                    _cgroup_dir(*self.set_mount, _own_cgroup("cpuset", tid)),
                                    os.sched_getaffinity(tid))
            _write(self.set_dir / "tasks", str(tid))
            _write(self.cpu_dir / "tasks", str(tid))
        except FileNotFoundError:
            return  # the thread ended: /proc/self/task/TID is gone
        except OSError as exc:
            if not _gone(exc):
                raise

    def stats(self) -> dict:
        try:
            stat = dict(line.split() for line in _read(self.cpu_dir / "cpu.stat").splitlines())
        except (OSError, ValueError):
            return {}
        return {"cfs_periods": int(stat.get("nr_periods", 0)), "cfs_periods_throttled": int(stat.get("nr_throttled", 0)),
                "cfs_throttled_ms": round(int(stat.get("throttled_time", 0)) / 1e6, 1)}

    def close(self) -> None:
        for tid, (came_cpu, came_set, affinity) in list(self.origin.items()):
            for d in (came_cpu, came_set):
                try:
                    _write(d / "tasks", str(tid))
                except OSError:
                    pass
            try:
                os.sched_setaffinity(tid, affinity)
            except OSError:
                pass
        self.origin.clear()
        for d in reversed(self.made):
            parent = self.cpu_parent if d == self.cpu_dir else self.set_parent
            _empty_and_remove(d, parent / "tasks", "tasks")
        self.made.clear()


def _empty_and_remove(d: Path, parent_tasks: Path, member_file: str, attempts: int = 20) -> None:
    """Move what is left in cgroup ``d`` (threads confined threads started) to the parent, remove ``d``."""
    for _ in range(attempts):
        try:
            left = _read(d / member_file).split()
        except OSError:
            left = []
        for tid in left:
            try:
                _write(parent_tasks, tid)
            except OSError:
                pass
        try:
            os.rmdir(d)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                return


class _CgroupV2(_PerThread):
    """A threaded child of this process's cgroup v2 directory; single threads through ``cgroup.threads``."""

    def __init__(self, share: float, period_us: int, cpu: int, mount: Path | None = None):
        mounted = "/"
        if mount is None:
            mount, mounted = next(((Path(m), root) for kind, m, _, root in _mounts() if kind == "cgroup2"),
                                  (None, "/"))
        own = _own_cgroup(None)
        if mount is None or own is None:
            raise Unavailable("no cgroup v2 hierarchy")
        self.base = _cgroup_dir(mount, mounted, own)
        try:
            available = set(_read(self.base / "cgroup.controllers").split())
        except OSError as exc:
            raise Unavailable(f"cgroup v2: {exc}") from exc
        if not {"cpu", "cpuset"} <= available:
            raise Unavailable(f"cgroup v2 at {self.base} offers {sorted(available) or 'no controllers'}, "
                              "not cpu and cpuset")
        if not os.access(self.base, os.W_OK):
            raise Unavailable(f"cgroup v2 at {self.base} is not writable")
        self.dir = self.base / f"{CGROUP_PREFIX}-{os.getpid()}-{next(_counter)}"
        self.added: dict[int, set[int]] = {}
        self.enabled: list[str] = []
        self.made = False
        try:
            enabled = set(_read(self.base / "cgroup.subtree_control").split())
            self.dir.mkdir()
            self.made = True
            _write(self.dir / "cgroup.type", "threaded")
            for c in ("cpu", "cpuset"):
                if c not in enabled:
                    _write(self.base / "cgroup.subtree_control", f"+{c}")
                    self.enabled.append(c)
            _write(self.dir / "cpuset.cpus", str(cpu))
            quota = "max" if share >= 1.0 else str(round(share * period_us))
            _write(self.dir / "cpu.max", f"{quota} {period_us}")
        except OSError as exc:
            self.close()
            raise Unavailable(f"cgroup v2: {exc}") from exc
        except BaseException:
            self.close()
            raise
        self.description = f"cgroup v2 cpu.max {quota} {period_us} + cpuset.cpus {cpu} (threaded)"

    def _place(self, tid: int) -> None:
        _write(self.dir / "cgroup.threads", str(tid))

    def _unplace(self, tid: int) -> None:
        _write(self.base / "cgroup.threads", str(tid))

    def close(self) -> None:
        self._release_threads()
        if self.made:
            _empty_and_remove(self.dir, self.base / "cgroup.threads", "cgroup.threads")
            self.made = False
        for c in reversed(self.enabled):
            try:
                _write(self.base / "cgroup.subtree_control", f"-{c}")
            except OSError:
                pass
        self.enabled.clear()


_HOG = r"""
import os, sys, time
cpu, priority, period_ns, busy_ns = (int(a) for a in sys.argv[1:5])
parent = os.getppid()
os.sched_setaffinity(0, {cpu})
try:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    print("SCHED_FIFO", flush=True)
except (PermissionError, OSError):
    print("normal", flush=True)
t = time.monotonic_ns()
while os.getppid() == parent:          # never outlive the bench
    end = t + busy_ns
    while time.monotonic_ns() < end:
        pass
    t += period_ns
    now = time.monotonic_ns()
    if t > now:
        time.sleep((t - now) / 1e9)
    else:
        t = now                       # kept from the CPU meanwhile: start a fresh period
"""


class _Hog(_PerThread):
    """Pin the threads to the CPU; a SCHED_FIFO process there takes (1 - share) of every period."""

    def __init__(self, share: float, period_us: int, cpu: int, priority: int = HOG_PRIORITY):
        self.cpu = cpu
        self.added: dict[int, set[int]] = {}
        self.proc: subprocess.Popen | None = None
        busy_us = round((1.0 - share) * period_us)
        how = "no hog (full core)"
        if busy_us > 0:
            self.proc = subprocess.Popen([sys.executable, "-c", _HOG, str(cpu), str(priority),
                                          str(period_us * 1000), str(busy_us * 1000)],
                                         stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
            assert self.proc.stdout is not None
            policy = self.proc.stdout.readline().strip()
            if not policy:
                self.close()
                raise Unavailable("the hog process did not start")
            how = (f"hog at SCHED_FIFO {priority}" if policy == "SCHED_FIFO"
                   else "hog at normal priority (SCHED_FIFO not permitted: the share is approximate)")
            how += f" spinning {busy_us}/{period_us} us"
        self.description = f"affinity cpu {cpu} + {how}"

    def _place(self, tid: int) -> None:
        os.sched_setaffinity(tid, {self.cpu})

    def close(self) -> None:
        self._release_threads()
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None


class CpuSlice:
    """Confine threads to ``share`` of one CPU while in the ``with`` block; see the module's docstring.

    ``method``: "auto" (cgroup v2, else v1, else the hog), or one of "cgroup-v2", "cgroup-v1", "hog".
    After entry: ``method`` (what was done), ``period_us``, ``cpu``, ``tids`` (confined so far),
    ``describe()`` (a dict for results).
    """

    def __init__(self, share: float, threads: ThreadsArg = controller_threads, *, period_us: int = DEFAULT_PERIOD_US,
                 cpu: int | None = None, method: str = "auto", reapply_s: float | None = DEFAULT_REAPPLY_S,
                 hog_priority: int = HOG_PRIORITY):
        if not 0.0 < share <= 1.0:
            raise ValueError(f"share must be in (0, 1], got {share}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if period_us < MIN_CFS_QUOTA_US or (share < 1.0 and share * period_us < MIN_CFS_QUOTA_US):
            raise ValueError(f"share x period must be at least {MIN_CFS_QUOTA_US} us (the kernel's smallest "
                             f"CFS quota): {share} x {period_us} us; use a longer period")
        self.share = share
        self.period_us = period_us
        self.requested_method = method
        self.cpu = _pick_cpu(cpu)
        self._threads = threads
        self._reapply_s = reapply_s
        self._hog_priority = hog_priority
        self._backend: _Backend | None = None
        self._stop = threading.Event()
        self._reapplier: threading.Thread | None = None
        self._lock = threading.Lock()
        self.method = ""
        #: Why the methods tried before the one used were refused.
        self.refused: list[str] = []
        self.tids: set[int] = set()
        #: Name (or TID) of every thread confined, by TID.
        self.names: dict[int, str] = {}
        #: CPU time of each confined thread when it was confined; what they used inside, once left.
        self._cpu0: dict[int, float] = {}
        self._cpu_last: dict[int, float] = {}
        self._t0 = self._t1 = 0.0
        self.used: dict = {}
        #: Errors placing a thread (other than its having ended), kept for the result; the first raises on entry.
        self.errors: list[str] = []

    # ---- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> CpuSlice:
        order = {"auto": ("cgroup-v2", "cgroup-v1", "hog")}.get(self.requested_method, (self.requested_method,))
        for name in order:
            try:
                self._backend = self._make(name)
                break
            except Unavailable as exc:
                self.refused.append(f"{name}: {exc}")
        if self._backend is None:
            raise RuntimeError(f"no way to confine threads here: {self.refused}")
        self.method = self._backend.description
        self._t0 = time.monotonic()
        try:
            self.apply()
            if self.errors:
                raise RuntimeError(f"could not confine threads ({self.method}): {self.errors}")
            if callable(self._threads) and self._reapply_s:
                self._reapplier = threading.Thread(target=self._reapply, name="cpu-slice-reapply", daemon=True)
                self._reapplier.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _make(self, name: str) -> _Backend:
        if name == "cgroup-v2":
            return _CgroupV2(self.share, self.period_us, self.cpu)
        if name == "cgroup-v1":
            return _CgroupV1(self.share, self.period_us, self.cpu)
        return _Hog(self.share, self.period_us, self.cpu, self._hog_priority)

    def apply(self, threads: Iterable[threading.Thread | int] | None = None) -> set[int]:
        """Confine ``threads`` (default: the ``threads`` given at construction) now; the TIDs newly confined."""
        if threads is None:
            threads = self._threads() if callable(self._threads) else self._threads
        new = set()
        threads = list(threads)
        names = {t.native_id: t.name for t in threads if isinstance(t, threading.Thread)}
        with self._lock:
            if self._backend is None:
                return new
            for tid in _tids(threads) - self.tids:
                try:
                    self._backend.add(tid)
                except OSError as exc:
                    self._error(f"TID {tid}: {exc}")
                    continue
                if Path(f"/proc/self/task/{tid}").exists():
                    try:
                        self._cpu0[tid] = self._cpu_last[tid] = thread_cpu_s(tid)
                    except OSError:
                        continue
                    self.tids.add(tid)
                    self.names[tid] = names.get(tid, str(tid))
                    new.add(tid)
        return new

    def _reapply(self) -> None:
        while not self._stop.wait(self._reapply_s):
            self._sample_cpu()
            try:
                self.apply()
            except Exception as exc:  # a failed round must not end the re-applier: the next may do
                self._error(f"re-apply: {exc}")

    def _sample_cpu(self) -> None:
        """Each confined thread's CPU time so far: a thread that ends keeps what it used until the last sample."""
        for tid in list(self._cpu0):
            try:
                self._cpu_last[tid] = thread_cpu_s(tid)
            except OSError:
                pass

    def _error(self, what: str) -> None:
        if len(self.errors) < 100:
            self.errors.append(what)

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._reapplier is not None and self._reapplier is not threading.current_thread():
            self._reapplier.join(5)
            self._reapplier = None
        with self._lock:
            if self._backend is not None:
                self._t1 = time.monotonic()
                self._sample_cpu()
                cpu = sum(self._cpu_last[tid] - c0 for tid, c0 in self._cpu0.items())
                wall = max(1e-9, self._t1 - self._t0)
                # A thread that ended inside counts until the re-applier's last sample of it (<= reapply_s before).
                self.used = {"seconds": round(wall, 1), "cpu_share_used_by_confined_threads": round(cpu / wall, 4),
                             **self._backend.stats()}
                self._backend.close()
                self._backend = None

    def describe(self) -> dict:
        """What the confinement was, for results."""
        return {"share_of_one_core": self.share, "cpu": self.cpu, "period_us": self.period_us,
                "method": self.method, "threads_confined": sorted(set(self.names.values())),
                "tids_confined": len(self.tids),
                **({"used": self.used} if self.used else {}),
                **({"refused_methods": self.refused} if self.refused else {}),
                **({"errors": self.errors[:10]} if self.errors else {})}


def thread_cpu_s(tid: int) -> float:
    """CPU time a thread of this process has run (s), from /proc/self/task/TID/schedstat (ns)."""
    return int(Path(f"/proc/self/task/{tid}/schedstat").read_text().split()[0]) / 1e9
