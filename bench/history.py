"""What a therapy session costs the SD card: write rate and database growth per hour.

Two parts:

- **Live**: a real session on the simulated treadmill (SimBench) for ``--seconds``:
  transactions committed per second, records per second, timeline samples per second,
  and the bytes this process sent to storage (``/proc/self/io`` write_bytes: WAL
  appends and checkpoints).
- **An hour of session**: the session bookkeeping fed one hour of synthetic statuses at
  the decision tick (100 Hz) and written exactly as the controller writes it (one
  record per second), then checkpointed: the growth of ``history.db`` per hour.
"""

from __future__ import annotations

import argparse
import logging
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from bench.common import save
from controller.storage import records
from controller.safety.types import CommandKind
from controller.therapy.tracker import SessionTracker
from sim.bench import SimBench, sim_config, wait_until
from controller.storage.store import HistoryStore

PATIENT = {"patient_id": "BENCH", "display_name": "bench", "notes": "", "mode": "reverse", "speed_cap_kmh": 1.5,
           "base_stop_mm": 250, "warn_margin_mm": 200, "target_min": 30, "sessions_per_day": 2}
THERAPIST = {"actor": "bench", "authorized": True}


def write_bytes() -> int:
    """Bytes this process caused to be sent to storage so far."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def live(seconds: float) -> dict:
    """A real session on the bench: what reaches the database per second."""
    with tempfile.TemporaryDirectory() as state:
        bench = SimBench(sim_config(state), state_dir=state, start_gap_mm=1000.0).start()
        try:
            runner, store = bench.controller.sessions, bench.controller.history
            runner.request("save", {"patient": PATIENT, "create": True, **THERAPIST})
            assert wait_until(lambda: bench.command(CommandKind.RESET).ok, 5.0, poll_s=0.05), "reset refused"
            sid = runner.request("start", {"patient_id": "BENCH", "planned_min": 60, "pain_before": 2,
                                           **THERAPIST})["session"]["session_id"]
            assert wait_until(lambda: runner.snapshot and runner.snapshot["elapsed_s"] > 3.0, 10.0)
            store.flush()
            commits0, written0, bytes0, t0 = store.commits, store.written, write_bytes(), time.monotonic()
            rows0 = store.read(lambda conn: records.samples(conn, sid, 0, 0))[1]
            time.sleep(seconds)  # a benchmark window, not a test: the session simply runs
            store.flush()
            wall = time.monotonic() - t0
            rows1 = store.read(lambda conn: records.samples(conn, sid, 0, 0))[1]
            state_at_end = bench.controller.status["state"]
            result = {"seconds": round(wall, 1), "state_at_end": state_at_end,
                      "commits_per_s": round((store.commits - commits0) / wall, 2),
                      "records_per_s": round((store.written - written0) / wall, 2),
                      "samples_per_s": round((rows1 - rows0) / wall, 2),
                      "bytes_to_storage_per_s": round((write_bytes() - bytes0) / wall)}
        finally:
            bench.close()
    return result


def one_hour(sample_hz: float = 10.0, seed: int = 1) -> dict:
    """An hour of session written as the controller writes it; the database growth after a checkpoint."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as state:
        store = HistoryStore(state)
        store.start()
        try:
            wall = time.time()
            store.call(lambda conn: records.insert_patient(conn, PATIENT, wall))
            store.flush()
            before = _checkpointed_size(store)
            sid = store.call(lambda conn: records.insert_session(conn, "BENCH", wall, 60.0, "reverse", 2))
            tracker = SessionTracker(sid, "BENCH", 3600.0, 0.0, end_warning_s=30.0, sample_hz=sample_hz,
                                     started_wall=wall)
            gap, t = 700.0, 0.0
            for second in range(3600):
                for _ in range(100):
                    t += 0.01
                    gap = min(1100.0, max(480.0, gap + rng.gauss(0.0, 2.0)))
                    tracker.feed({"t_mono": t, "state": "RUNNING", "belt_speed_mps": 1.5 / 3.6, "gap_mm": gap,
                                  "warning": False, "reasons": {}, "target_mps": 1.5 / 3.6})
                first, rows = tracker.take_samples()
                figures = tracker.figures()
                store.record(lambda conn, first=first, rows=rows, figures=figures: (
                    records.insert_samples(conn, sid, first, rows), records.update_session(conn, sid, **figures)))
                if second % 600 == 0:
                    store.flush(10.0)
            store.flush(30.0)
            after = _checkpointed_size(store)
            samples = store.read(lambda conn: records.samples(conn, sid, 0, 0))[1]
        finally:
            store.close()
    return {"samples_per_hour": samples, "growth_bytes_per_hour": after - before,
            "bytes_per_sample": round((after - before) / samples, 1)}


def _checkpointed_size(store: HistoryStore) -> int:
    """The database file's size once the WAL is folded into it."""
    conn = sqlite3.connect(store.path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return store.path.stat().st_size


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the live session window")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    result = {"live": live(args.seconds), "one_hour": one_hour()}
    path = save("history", result)
    lv, hr = result["live"], result["one_hour"]
    print(f"session writes over {lv['seconds']} s ({lv['state_at_end']}): {lv['commits_per_s']} commits/s, "
          f"{lv['records_per_s']} records/s, {lv['samples_per_s']} samples/s, "
          f"{lv['bytes_to_storage_per_s'] / 1024:.1f} KiB/s to storage; an hour of session: "
          f"{hr['samples_per_hour']} samples, history.db +{hr['growth_bytes_per_hour'] / 1e6:.2f} MB "
          f"({hr['bytes_per_sample']} B/sample) -> {path}")
    return result


if __name__ == "__main__":
    main()
