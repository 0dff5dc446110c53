"""The clinic record's migrations on a real PostgreSQL server: empty, previous version, concurrent, refused, broken."""

from __future__ import annotations

import re
import threading

import psycopg
import pytest

from clinic import schema
from clinic.connect import ClinicError
from clinic.schema import LATEST, MIGRATIONS, current_version, load_migrations, migrate

#: Every table each migration file creates, read from the files: a new file's tables are checked too.
TABLES = {version: set(re.findall(r"CREATE TABLE (\w+)", sql)) for version, _name, sql in MIGRATIONS}


def tables(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {name for (name,) in rows}


def versions(conn: psycopg.Connection) -> list[tuple[int, str]]:
    return conn.execute("SELECT version, name FROM schema_version ORDER BY version").fetchall()


def test_the_files_are_numbered_from_one_without_a_gap_and_each_creates_tables():
    assert [version for version, _name, _sql in MIGRATIONS] == list(range(1, LATEST + 1))
    assert LATEST >= 2
    assert TABLES[1] >= {"patients", "sessions", "samples", "events", "audit"}
    assert TABLES[2] == {"live_status"}


def test_a_gap_in_the_numbers_or_a_stray_name_is_refused(tmp_path):
    (tmp_path / "0001_first.sql").write_text("SELECT 1;")
    (tmp_path / "0003_third.sql").write_text("SELECT 3;")
    with pytest.raises(ClinicError, match="migration 0002 is missing before 0003_third.sql"):
        load_migrations(tmp_path)
    (tmp_path / "0003_third.sql").unlink()
    (tmp_path / "2_Second.sql").write_text("SELECT 2;")
    with pytest.raises(ClinicError, match="NNNN_name.sql"):
        load_migrations(tmp_path)


def test_an_empty_database_is_migrated_to_the_latest_with_every_table(clinic_empty_db):
    with clinic_empty_db.connect() as conn:
        assert current_version(conn) == 0
        assert migrate(conn) == list(range(1, LATEST + 1))
        assert current_version(conn) == LATEST
        assert tables(conn) >= set().union(*TABLES.values()) | {"schema_version"}
        assert versions(conn) == [(1, "clinic_record"), (2, "live_status")]


def test_a_database_at_version_one_with_data_keeps_it_when_migrated(clinic_empty_db):
    with clinic_empty_db.connect() as conn:
        assert migrate(conn, target=1) == [1]
        assert "live_status" not in tables(conn)
        conn.execute("INSERT INTO patients (patient_id, display_name, notes, mode, speed_cap_kmh, base_stop_mm, "
                     "warn_margin_mm, target_min, sessions_per_day, created_wall, updated_wall, updated_by) "
                     "VALUES ('P-7', 'Ann', 'knee', 'retro', 3.0, 400, 150, 20, 2, 1000.0, 1000.0, 'a: admin')")
        conn.execute("INSERT INTO sessions (treadmill_id, local_id, patient_id, status, started_wall, ended_wall, "
                     "planned_min, mode, duration_s, distance_m, max_kmh, warnings, trips, pain_before) "
                     "VALUES ('a', 1, 'P-7', 'done', 1000.0, 1600.0, 10, 'retro', 600, 250.5, 2.5, 1, 0, 3)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO samples (treadmill_id, session_local_id, seq, t_s, gap_mm, belt_kmh, "
                            "state, warning) VALUES ('a', 1, %s, %s, %s, 2.0, 1, 0)",
                            [(seq, seq * 0.1, 800.0 - seq) for seq in range(50)])
        before = conn.execute("SELECT p.changed, s.changed, s.distance_m FROM patients p, sessions s").fetchone()

        assert migrate(conn) == list(range(2, LATEST + 1))

        assert current_version(conn) == LATEST
        assert "live_status" in tables(conn)
        assert conn.execute("SELECT patient_id, display_name, version FROM patients").fetchall() == [("P-7", "Ann", 1)]
        assert conn.execute("SELECT p.changed, s.changed, s.distance_m FROM patients p, sessions s").fetchone() == before
        assert conn.execute("SELECT count(*), min(seq), max(seq), sum(gap_mm) FROM samples").fetchone() == (
            50, 0, 49, sum(800.0 - seq for seq in range(50)))


def test_migrating_again_applies_nothing(clinic_db):
    with clinic_db.connect() as conn:
        assert migrate(conn) == []
        assert migrate(conn, target=1) == []  # never backwards
        assert [v for v, _name in versions(conn)] == list(range(1, LATEST + 1))


def test_a_connection_in_a_transaction_is_refused_rather_than_migrated_inside_it(clinic_empty_db):
    with clinic_empty_db.connect(autocommit=False) as conn:
        conn.execute("SELECT 1")
        with pytest.raises(ValueError, match="no transaction open"):
            migrate(conn)
        conn.rollback()
        assert migrate(conn) == list(range(1, LATEST + 1))
        assert current_version(conn) == LATEST


def test_two_replicators_migrating_one_empty_database_at_once_apply_each_version_once(clinic_empty_db):
    start = threading.Barrier(2, timeout=30)
    applied: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def replicator(index: int) -> None:
        try:
            with clinic_empty_db.connect() as conn:
                start.wait()
                applied[index] = migrate(conn)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=replicator, args=(i,), name=f"replicator-{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert sorted(applied[0] + applied[1]) == list(range(1, LATEST + 1))
    with clinic_empty_db.connect() as conn:
        assert [v for v, _name in versions(conn)] == list(range(1, LATEST + 1))


def test_a_server_newer_than_this_code_is_refused_with_a_clear_error(clinic_db):
    with clinic_db.connect() as conn:
        conn.execute("INSERT INTO schema_version (version, name) VALUES (%s, 'from_a_newer_release')", (LATEST + 1,))
        with pytest.raises(ClinicError, match=rf"schema version {LATEST + 1}, newer than this code's {LATEST}: "
                                              "update this treadmill's software"):
            migrate(conn)
        assert current_version(conn) == LATEST + 1


def test_a_broken_migration_leaves_the_version_and_the_schema_unchanged(clinic_db, monkeypatch):
    broken = "CREATE TABLE half_done (x integer);\nINSERT INTO half_done VALUES (1);\nSELEC 'typo';\n"
    monkeypatch.setattr(schema, "MIGRATIONS", [*MIGRATIONS, (LATEST + 1, "broken", broken)])
    with clinic_db.connect() as conn:
        with pytest.raises(ClinicError, match=rf"migration {LATEST + 1:04d}_broken.sql failed, none of it applied "
                                              rf"\(the schema stays at version {LATEST}\): .*SELEC") as caught:
            migrate(conn)
        assert isinstance(caught.value.__cause__, psycopg.errors.SyntaxError)
        assert current_version(conn) == LATEST
        assert conn.execute("SELECT to_regclass('half_done')").fetchone() == (None,)
        assert "half_done" not in tables(conn)
