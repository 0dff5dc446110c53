"""Export of the history for the clinic's records: a consistent database copy plus JSON and CSV.

Safe while the controller runs: the copy is taken with SQLite's online backup
from a read-only connection (one read snapshot; the writer is never blocked),
and every other file is made from that copy, so all of them agree.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Callable

from controller.storage import records
from controller.storage.export_formats import samples_csv, sessions_csv
from controller.storage.database import StorageError, open_readonly


def export_history(db_path: Path, out_dir: Path, *, now: Callable[[], float] = time.time) -> Path:
    """Write ``out_dir/treadmill-history-YYYYmmdd-HHMMSS/`` and return it; StorageError if it cannot."""
    db_path, out_dir = Path(db_path), Path(out_dir)
    source = open_readonly(db_path)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now()))
    target = out_dir / f"treadmill-history-{stamp}"
    # Built under a hidden name and renamed at the end: a half-written export is never mistaken for one.
    work = out_dir / f".{target.name}.partial"
    try:
        try:
            if target.exists():
                raise StorageError(f"cannot export to {target}: it already exists")
            if out_dir.exists() and not out_dir.is_dir():
                raise StorageError(f"cannot export to {out_dir}: it is not a folder")
            out_dir.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(work, ignore_errors=True)
            (work / "samples").mkdir(parents=True)
        except OSError as exc:
            raise StorageError(f"cannot export to {out_dir}: {exc}") from exc
        try:
            _write_export(source, work)
            os.rename(work, target)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read {db_path}: {exc}") from exc
        except OSError as exc:
            raise StorageError(f"cannot export to {out_dir}: {exc}") from exc
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        source.close()
    return target


def _write_export(source: sqlite3.Connection, work: Path) -> None:
    copy = sqlite3.connect(work / "history.db")
    try:
        source.backup(copy)  # all pages in one step: one consistent snapshot of the source
        copy.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
        _write_text(work / "patients.json", json.dumps(records.list_patients(copy), indent=2) + "\n")
        sessions = records.all_sessions(copy)
        _write_text(work / "sessions.csv", sessions_csv(sessions))
        for s in sessions:  # one timeline at a time: a year of sessions need not fit in memory
            rows, _ = records.samples(copy, s["session_id"])
            _write_text(work / "samples" / f"session-{s['session_id']}.csv", samples_csv(rows))
    finally:
        copy.close()


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
