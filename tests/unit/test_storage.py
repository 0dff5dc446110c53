"""Event log and therapist settings: off the safety path, atomic, never lost."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from controller.safety_types import Event
from controller.storage import EventLog, SettingsStore, atomic_write_text
from tests.unit.rig import example_config


def test_events_are_written_to_sqlite_in_wal_mode_with_their_figures(tmp_path):
    log = EventLog(tmp_path)
    log.start()
    log.put(Event(1.0, "trip", "stop_zone", "patient too close", figures={"gap_mm": 240.0}))
    log.put(Event(2.0, "command", "reset", "ready", actor="ann"))
    assert log.flush()
    rows = log.recent(10)
    log.close()
    assert [r["code"] for r in rows] == ["reset", "stop_zone"]
    assert rows[1]["figures"] == {"gap_mm": 240.0} and rows[0]["actor"] == "ann"
    import sqlite3
    assert sqlite3.connect(log.path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"




def test_an_unwritable_state_dir_never_raises_into_the_caller(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    log = EventLog(blocker)  # events.db would have to live inside a regular file
    log.start()
    log.put(Event(1.0, "trip", "estop", "E-stop"))
    assert log.flush()
    log.close()
    assert log.write_errors >= 1 and "cannot open" in log.last_error


def test_settings_round_trip_and_are_written_atomically(tmp_path):
    cfg = example_config()
    store = SettingsStore(tmp_path)
    limits = dataclasses.replace(cfg.limits, reverse_cap_kmh=1.5)
    store.save(limits, "forward")
    assert store.load(cfg) == (limits, "forward", [])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".settings")], "no temp file left"


def test_saved_settings_outside_todays_ceilings_fall_back_to_the_config(tmp_path):
    cfg = example_config()
    store = SettingsStore(tmp_path)
    store.path.write_text(json.dumps({"limits": {**dataclasses.asdict(cfg.limits), "reverse_cap_kmh": 2.5},
                                      "mode": "reverse"}))
    limits, mode, errors = store.load(cfg)
    assert limits == cfg.limits and mode == "reverse"
    assert any("max_reverse_cap_kmh" in str(e) for e in errors)


def test_corrupt_settings_fall_back_to_the_config(tmp_path):
    cfg = example_config()
    store = SettingsStore(tmp_path)
    store.path.write_text("{not json")
    limits, mode, errors = store.load(cfg)
    assert limits == cfg.limits and errors and "unreadable" in str(errors[0])


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "settings.json"
    atomic_write_text(path, "old")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]
