"""Dashboard fixtures, flaskr style: fake controller → app → client; helpers.login logs in."""

from __future__ import annotations

import os
import tempfile

import pytest

from tests.web.fake_controller import FakeController
from tests.web.helpers import ADMIN, DISABLED, PASSWORD, THERAPIST, login
from web import create_app
from web.accounts import ACCESS_DB, AccountStore
from web.link import EXTENSION_KEY


@pytest.fixture
def fake():
    """A started fake controller (STOPPED, no demo); closed afterwards."""
    controller = FakeController().start()
    try:
        yield controller
    finally:
        controller.close()


#: The fixture accounts' hashes: real scrypt, at a lower cost than the product's (web.accounts.PASSWORD_METHOD,
#: which tests/web/test_auth.py checks), so that the suite's hundreds of logins take seconds, not minutes.
FIXTURE_HASH_METHOD = "scrypt:1024:8:1"


@pytest.fixture(scope="session")
def access_db_bytes(tmp_path_factory):
    """An access.db with a therapist, an admin and a disabled therapist, made once."""
    path = tmp_path_factory.mktemp("access")
    store = AccountStore(path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("web.accounts.PASSWORD_METHOD", FIXTURE_HASH_METHOD)
        store.add(THERAPIST, "therapist", PASSWORD)
        store.add(ADMIN, "admin", PASSWORD)
        store.add(DISABLED, "therapist", PASSWORD)
    store.change(DISABLED, enabled=False)
    return (path / ACCESS_DB).read_bytes()


@pytest.fixture
def state_dir(tmp_path, access_db_bytes):
    """The dashboard's state dir with those accounts (a copy of the database, 0600)."""
    path = tmp_path / "dashboard"
    path.mkdir(mode=0o700)
    fd = os.open(path / ACCESS_DB, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(access_db_bytes)
    return path


def _close(app) -> None:
    app.extensions[EXTENSION_KEY].close()


@pytest.fixture
def make_app(state_dir):
    """Build apps against a socket path (closed afterwards)."""
    apps = []

    def make(socket_path: str, config: dict | None = None, state: str | None = None):
        settings = {"TESTING": True, "SSE_KEEPALIVE_S": 0.5}
        settings.update(config or {})
        app = create_app(ipc_socket=socket_path, state_dir=str(state or state_dir), test_config=settings)
        apps.append(app)
        return app

    try:
        yield make
    finally:
        for app in apps:
            _close(app)


@pytest.fixture
def app(fake, make_app):
    """The dashboard, talking to the fake controller (closed before the fake)."""
    return make_app(fake.socket_path)


@pytest.fixture
def client(app):
    """A test client of the dashboard."""
    return app.test_client()


@pytest.fixture
def offline_socket():
    """A socket path nobody listens on: the controller is not running."""
    with tempfile.TemporaryDirectory(prefix="no-ctl-") as tmp:
        yield os.path.join(tmp, "control.sock")


@pytest.fixture
def offline_client(make_app, offline_socket):
    """A test client of a dashboard whose controller is offline."""
    return make_app(offline_socket).test_client()


@pytest.fixture
def clinic(client, fake):
    """A logged-in therapist's client and CSRF header; the belt READY and patient P01 on file."""
    fake.update(state="READY", reasons={})
    with fake.lock:
        fake.therapy.add_patient("P01")
    return client, login(client)


@pytest.fixture
def therapist_client(client):
    """The test client, logged in as a therapist."""
    login(client)
    return client


@pytest.fixture
def admin_client(client):
    """The test client, logged in as an admin."""
    login(client, ADMIN)
    return client
