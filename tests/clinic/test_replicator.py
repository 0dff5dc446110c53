"""The replicator against a real PostgreSQL server and real controller processes, one cycle at a time:
idempotent shipping, bounded batches, the patient conflict rule between two treadmills, the audit trail."""

from __future__ import annotations

import random

import pytest

from clinic.replicator import Backoff, Replicator
from controller.config import load_config
from controller.ipc_client import ControllerOffline
from sim.bench import wait_until
from sim.clinic import ClinicTreadmill

PATIENT = {"patient_id": "P-3", "display_name": "G.H.", "notes": "", "mode": "reverse", "speed_cap_kmh": 1.5,
           "base_stop_mm": 250, "warn_margin_mm": 200, "target_min": 20, "sessions_per_day": 2}
THERAPIST = {"actor": "Ann", "authorized": True}


@pytest.fixture
def treadmills(clinic_db, tmp_path):
    """Start controller processes (no replicator process: the test runs the replicator's cycles itself)."""
    started: list[tuple[ClinicTreadmill, Replicator, object]] = []

    def make(treadmill_id: str, **clinic_overrides) -> tuple[ClinicTreadmill, Replicator, object]:
        node = ClinicTreadmill(tmp_path / treadmill_id, clinic_db.cfg(treadmill_id, **clinic_overrides),
                               replicate=False).start()
        replicator = Replicator(load_config(node.config))
        conn = None
        try:
            conn = replicator._open()
        finally:
            started.append((node, replicator, conn))
        return node, replicator, conn
    try:
        yield make
    finally:
        for node, _, conn in started:
            if conn is not None:
                conn.close()
            node.stop()


def drain(replicator: Replicator, conn, rounds: int = 200) -> int:
    """Cycles until nothing waits; returns how many it took."""
    for n in range(1, rounds + 1):
        if not replicator.cycle(conn):
            return n
    raise AssertionError(f"still shipping after {rounds} cycles")


def walk_a_short_session(node: ClinicTreadmill) -> int:
    assert node.reset()
    sid = node.call("session_start", {"patient_id": "P-3", "planned_min": 5, "pain_before": 1, "speed_kmh": 1.0,
                                      **THERAPIST})["session"]["session_id"]
    assert wait_until(lambda: (node.status()["session"] or {}).get("elapsed_s", 0) >= 2.0, 10.0, poll_s=0.1)
    node.call("session_end", THERAPIST)
    assert wait_until(lambda: node.status()["session"] is None, 10.0, poll_s=0.1)
    return sid


def counts(conn, treadmill_id: str) -> dict[str, int]:
    return {table: conn.execute(f"SELECT count(*) FROM {table} WHERE treadmill_id = %s",
                                (treadmill_id,)).fetchone()[0] for table in ("sessions", "samples", "events")}


def test_a_batch_shipped_but_never_acknowledged_is_shipped_again_and_nothing_is_doubled(treadmills, clinic_db):
    node, replicator, conn = treadmills("A")
    node.call("patient_save", {"patient": PATIENT, "create": True, **THERAPIST})
    sid = walk_a_short_session(node)
    total = node.call("session_samples", {"session_id": sid, "limit": 1})["total"]
    assert total >= 15

    real_call = replicator.client.call

    def lost_ack(method, params=None):
        if method == "outbox_ack":
            raise ControllerOffline("the answer was lost")
        return real_call(method, params)
    replicator.client.call = lost_ack
    with pytest.raises(ControllerOffline):
        replicator.ship_batch(conn)  # on the server, but the outbox does not know it
    replicator.client.call = real_call
    drain(replicator, conn)

    assert wait_until(lambda: node.status()["storage"]["outbox"] == 0, 2.0)
    with clinic_db.connect() as check:
        shipped = counts(check, "A")
        assert shipped["sessions"] == 1 and shipped["samples"] == total
        assert shipped["events"] > 0
        assert check.execute("SELECT count(DISTINCT (session_local_id, seq)) FROM samples").fetchone()[0] == total
        row = check.execute("SELECT status, pain_before FROM sessions WHERE local_id = %s", (sid,)).fetchone()
        assert row == ("ended", 1)


def test_batches_stay_within_batch_rows(treadmills, clinic_db):
    node, replicator, conn = treadmills("A", batch_rows=10)
    node.call("patient_save", {"patient": PATIENT, "create": True, **THERAPIST})
    walk_a_short_session(node)
    backlog = node.status()["storage"]["outbox"]
    assert backlog > 30
    replicator.ship_batch(conn)
    assert wait_until(lambda: node.status()["storage"]["outbox"] == backlog - 10, 2.0), "one batch: ten rows"
    after = backlog - 10
    with clinic_db.connect() as check:
        assert sum(counts(check, "A").values()) <= 10
    cycles = drain(replicator, conn)
    assert cycles >= after // 10 and wait_until(lambda: node.status()["storage"]["outbox"] == 0, 2.0)


def test_of_two_edits_made_on_one_version_the_first_shipped_wins_and_the_other_treadmill_is_told(
        treadmills, clinic_db):
    a, rep_a, conn_a = treadmills("A")
    b, rep_b, conn_b = treadmills("B")
    a.call("patient_save", {"patient": PATIENT, "create": True, **THERAPIST})
    drain(rep_a, conn_a)
    rep_b.pull(conn_b)
    assert b.call("patient", {"patient_id": "P-3"})["patient"]["version"] == 1
    assert a.call("patient", {"patient_id": "P-3"})["patient"]["version"] == 1

    a.call("patient_save", {"patient": {**PATIENT, "notes": "from A", "version": 1}, "create": False, **THERAPIST})
    b.call("patient_save", {"patient": {**PATIENT, "notes": "from B", "version": 1}, "create": False, **THERAPIST})
    drain(rep_a, conn_a)
    drain(rep_b, conn_b)

    with clinic_db.connect() as check:
        assert check.execute("SELECT notes, version, updated_by FROM patients").fetchall() == \
            [("from A", 2, "treadmill A")]
    on_b = b.call("patient", {"patient_id": "P-3"})["patient"]
    assert (on_b["notes"], on_b["version"]) == ("from A", 2), "the clinic's row replaced B's edit"
    refused = b.call("events", {"kind": "refused"})[0]
    assert refused["code"] == "clinic_conflict"
    assert "made on version 1, and the clinic record has version 2 (changed by treadmill A)" in refused["message"]

    # B edits again, now on the version it has: taken.
    b.call("patient_save", {"patient": {**PATIENT, "notes": "B again", "version": 2}, "create": False, **THERAPIST})
    drain(rep_b, conn_b)
    rep_a.pull(conn_a)
    assert a.call("patient", {"patient_id": "P-3"})["patient"]["notes"] == "B again"
    with clinic_db.connect() as check:
        assert check.execute("SELECT version FROM patients").fetchone()[0] == 3


def test_a_second_edit_saved_while_the_first_is_shipped_is_taken_not_refused(treadmills, clinic_db):
    """The first edit is on the server but this treadmill has not heard yet when the second is saved: the
    second is made on the first's version, not refused as a conflict with this treadmill's own change."""
    a, replicator, conn = treadmills("A")
    a.call("patient_save", {"patient": PATIENT, "create": True, **THERAPIST})
    drain(replicator, conn)
    a.call("patient_save", {"patient": {**PATIENT, "notes": "first", "version": 1}, "create": False, **THERAPIST})
    real_call, saved = replicator.client.call, []

    def second_edit_before_the_ack(method, params=None):
        if method == "outbox_ack" and not saved:
            saved.append(a.call("patient_save", {"patient": {**PATIENT, "notes": "second", "version": 1},
                                                 "create": False, **THERAPIST}))
        return real_call(method, params)
    replicator.client.call = second_edit_before_the_ack
    drain(replicator, conn)
    assert saved, "the second edit was saved between the shipping and the acknowledgement"
    with clinic_db.connect() as check:
        assert check.execute("SELECT notes, version FROM patients").fetchall() == [("second", 3)]
    local = a.call("patient", {"patient_id": "P-3"})["patient"]
    assert (local["notes"], local["version"]) == ("second", 3)
    assert a.call("events", {"kind": "refused"}) == []


def test_the_same_patient_id_made_on_two_treadmills_is_kept_once_the_second_refused(treadmills, clinic_db):
    a, rep_a, conn_a = treadmills("A")
    b, rep_b, conn_b = treadmills("B")
    a.call("patient_save", {"patient": {**PATIENT, "display_name": "made on A"}, "create": True, **THERAPIST})
    b.call("patient_save", {"patient": {**PATIENT, "display_name": "made on B"}, "create": True, **THERAPIST})
    drain(rep_a, conn_a)
    drain(rep_b, conn_b)
    assert b.call("patient", {"patient_id": "P-3"})["patient"]["display_name"] == "made on A"
    assert "already in the clinic record (made by treadmill A)" in b.call("events", {"kind": "refused"})[0]["message"]


def test_the_dashboards_audit_trail_is_shipped_row_for_row_with_its_hash_chain(treadmills, clinic_db):
    from web.audit import AuditTrail, Entry, row_hash
    node, replicator, conn = treadmills("A")
    trail = AuditTrail(node.directory / "web")
    for i in range(7):
        trail.append(Entry(actor="ann", role="therapist", address="10.0.0.5", action="POST /api/stop",
                           target="/api/stop", outcome=200, detail=f"{{\"n\": {i}}}"))
    replicator.audit_db = node.directory / "web" / "access.db"
    drain(replicator, conn)
    with clinic_db.connect() as check:
        rows = check.execute("SELECT local_id, time, actor, role, address, action, target, outcome, detail, "
                             "prev_hash, hash FROM audit WHERE treadmill_id = 'A' ORDER BY local_id").fetchall()
    assert len(rows) == 7
    prev = "0" * 64
    for row in rows:
        fields = dict(zip(("id", "time", "actor", "role", "address", "action", "target", "outcome", "detail"), row))
        assert row[9] == prev and row_hash(prev, fields) == row[10], "the chain verifies on the server"
        prev = row[10]
    trail.append(Entry(actor="ann", role="therapist", address="10.0.0.5", action="POST /api/reset",
                       target="/api/reset", outcome=200, detail="{}"))
    replicator.cycle(conn)
    with clinic_db.connect() as check:
        assert check.execute("SELECT count(*) FROM audit").fetchone()[0] == 8


def test_backoff_doubles_from_one_second_to_its_ceiling_with_a_little_jitter():
    backoff = Backoff(30.0, random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    for delay, base in zip(delays, (1, 2, 4, 8, 16, 30, 30, 30)):
        assert base <= delay <= base * 1.2
    backoff.reset()
    assert 1.0 <= backoff.next_delay() <= 1.2
