"""The throw-away server itself: a machine without PostgreSQL fails with the one command that installs it."""

from __future__ import annotations

import pytest

from sim import postgres as pg


def test_without_postgresql_the_error_names_the_set_up_script(monkeypatch):
    monkeypatch.setattr(pg.glob, "glob", lambda pattern: [])
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pg.PostgresUnavailable, match="bash .ci/system-packages"):
        pg.find_bindir()


def test_the_server_restarts_on_its_port_and_keeps_its_databases(postgres, clinic_db):
    port = postgres.port
    postgres.restart()
    assert postgres.port == port
    with clinic_db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] >= 2


def test_the_test_role_logs_in_with_scram_over_tls_only(postgres, clinic_db):
    with postgres.admin_connect() as admin:
        stored = admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (postgres.role,)).fetchone()
        assert stored[0].startswith("SCRAM-SHA-256$")
    with clinic_db.connect() as conn:
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert row == (True,)
