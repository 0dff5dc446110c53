"""pytest fixtures for the clinic record, offered to every test dir by tests/conftest.py.

``postgres`` is one throw-away server for the whole session (stopped at its end, whatever
failed); ``clinic_db`` is a fresh database migrated to the latest schema for one test, and
``clinic_empty_db`` one with no schema at all. A test that needs PostgreSQL fails, never
skips, where it is not installed: the message names ``bash .ci/system-packages``.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import psycopg
import pytest

from controller.config import ClinicConfig
from sim.postgres import PostgresServer, PostgresUnavailable

_numbers = itertools.count(1)


@dataclass
class ClinicDatabase:
    """One test's database on the session's server."""

    server: PostgresServer
    name: str

    def cfg(self, treadmill_id: str = "treadmill-a", **overrides) -> ClinicConfig:
        """A ``[clinic]`` section for this database (scram with the password file, TLS verify-full)."""
        return self.server.clinic_config(self.name, treadmill_id, **overrides)

    def connect(self, *, autocommit: bool = True, treadmill_id: str = "treadmill-a") -> psycopg.Connection:
        """A connection as a treadmill makes it (clinic.connect.connect); the caller closes it."""
        from clinic.connect import connect
        return connect(self.cfg(treadmill_id), autocommit=autocommit, application_name="tests")

    def admin_connect(self) -> psycopg.Connection:
        """A superuser connection to this database over the server's socket; the caller closes it."""
        return self.server.admin_connect(self.name)


@pytest.fixture(scope="session")
def postgres():
    """The session's PostgreSQL server; it is stopped and its temp dir removed at the session's end."""
    server = None
    try:
        try:
            server = PostgresServer()
            server.start()
        except PostgresUnavailable as exc:
            pytest.fail(str(exc), pytrace=False)
        yield server
    finally:
        if server is not None:
            server.close()


def _fresh_database(server: PostgresServer) -> ClinicDatabase:
    return ClinicDatabase(server, server.create_database(f"clinic_{os.getpid()}_{next(_numbers)}"))


@pytest.fixture
def clinic_empty_db(postgres):
    """A new database with no schema, owned by the test role; dropped after the test."""
    if not postgres.running:
        postgres.start()  # a test before this one stopped it
    db = _fresh_database(postgres)
    try:
        yield db
    finally:
        if postgres.running:
            postgres.drop_database(db.name)


@pytest.fixture
def clinic_db(clinic_empty_db):
    """A new database migrated to the latest schema (clinic.schema.LATEST); dropped after the test."""
    from clinic.schema import migrate
    with clinic_empty_db.connect() as conn:
        migrate(conn)
    return clinic_empty_db
