"""A throw-away PostgreSQL server (tests, benchmarks): initdb in a temp dir, TLS on, scram logins, no fsync.

As root the server runs as Debian's ``postgres`` user (it refuses root); otherwise as the
caller. It listens on 127.0.0.1 at a free port with a self-signed certificate for 127.0.0.1
and localhost, and takes over TCP only TLS (``hostssl``) scram logins of one role made for
the tests, whose password sits in a file the tests own. The administrator connects over
the server's own Unix socket. The server's log is ``<temp dir>/log/server.log``; a start
that fails quotes its end. Set CLINIC_PG_KEEP=1 to keep the temp dir after the run.
"""

from __future__ import annotations

import atexit
import dataclasses
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

from controller.config import ClinicConfig

#: The one command that installs PostgreSQL with the suite's other system packages.
SETUP_COMMAND = "bash .ci/system-packages"
#: The role the clinic's treadmills log in as, in the tests.
TEST_ROLE = "clinic_tester"
SERVER_USER = "postgres"
#: Bounds every pg_ctl wait (start, stop): a slow shared machine, not a hang.
PG_CTL_TIMEOUT_S = 60
#: What a fast throw-away server may skip: it never survives a crash.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "ssl": "on",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "password_encryption": "'scram-sha-256'",
    "max_connections": "60",
    "shared_buffers": "32MB",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] %q%u@%d '",
}


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server programs are missing, or the server would not start: the message says why."""


def find_bindir() -> Path:
    """The directory holding initdb and pg_ctl: Debian's newest /usr/lib/postgresql/N/bin, else PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0, reverse=True)
    on_path = shutil.which("initdb")
    for initdb in [*candidates, *([on_path] if on_path else [])]:
        if os.access(Path(initdb).with_name("pg_ctl"), os.X_OK):
            return Path(initdb).parent
    raise PostgresUnavailable(
        "PostgreSQL's server programs (initdb, pg_ctl) are not installed: not in /usr/lib/postgresql/*/bin "
        f"nor on PATH. Install the suite's system packages with: {SETUP_COMMAND} (as root; it lists postgresql)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 free at this moment (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster in a temp dir: start(), stop(), restart(), close(); databases on demand."""

    def __init__(self, bindir: Path | None = None):
        self.bindir = bindir or find_bindir()
        self._as_root = os.geteuid() == 0
        if self._as_root:
            try:
                self._server_user = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise PostgresUnavailable(f"the tests run as root and PostgreSQL refuses root, but there is no "
                                          f"'{SERVER_USER}' user to run it as: {SETUP_COMMAND} creates it "
                                          "(Debian's postgresql package)") from None
        self.base = Path(tempfile.mkdtemp(prefix="clinic-pg-"))
        self.base.chmod(0o755)  # the server user traverses it; the password file below stays 0600
        self.data_dir = self.base / "data"
        self.socket_dir = self.base / "sock"
        self.log_file = self.base / "log" / "server.log"
        self.cert_file = self.base / "tls" / "server.crt"
        self.key_file = self.base / "tls" / "server.key"
        #: The test role's password, alone in a file only the tests' user can read.
        self.password_file = self.base / "clinic-password"
        self.port = 0
        self.role = TEST_ROLE
        self._running = False
        self._initialized = False

    # --- the server's lifetime

    def start(self) -> PostgresServer:
        """Initialize the cluster on first use, then start it and wait until it accepts connections."""
        if self._running:
            return self
        if not self._initialized:
            self._initialize()
        first = self.port == 0
        for _attempt in range(3 if first else 1):
            if first:
                self.port = free_port()
            result = self._pg_ctl("start", "-l", str(self.log_file), "-o", f"-p {self.port}")
            if result.returncode == 0:
                break
            if not (first and "could not bind" in self.log_tail()):
                raise PostgresUnavailable(f"the test PostgreSQL server did not start (pg_ctl exit "
                                          f"{result.returncode}): {result.stderr.strip()}\n"
                                          f"--- end of {self.log_file}:\n{self.log_tail()}")
        else:
            raise PostgresUnavailable(f"no free port for the test PostgreSQL server:\n{self.log_tail()}")
        self._running = True
        atexit.register(self.stop)
        if first:
            self._create_role()
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown: sessions are ended); safe to call twice."""
        if not self._running:
            return
        self._running = False
        atexit.unregister(self.stop)
        result = self._pg_ctl("stop", "-m", "fast")
        if result.returncode != 0 and "Is server running?" not in result.stderr:
            raise PostgresUnavailable(f"pg_ctl stop failed: {result.stderr.strip()}\n{self.log_tail()}")

    def restart(self) -> None:
        """Stop, then start on the same port (connections made before are broken)."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._running

    def close(self) -> None:
        """Stop the server and remove its temp dir (kept when CLINIC_PG_KEEP=1)."""
        try:
            self.stop()
        finally:
            if os.environ.get("CLINIC_PG_KEEP") != "1":
                shutil.rmtree(self.base, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log, for a failure's message."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"

    # --- databases and connections

    def admin_connect(self, dbname: str = "postgres") -> psycopg.Connection:
        """An autocommit superuser connection over the server's Unix socket; the caller closes it."""
        return psycopg.connect(host=str(self.socket_dir), port=self.port, user=SERVER_USER, dbname=dbname,
                               autocommit=True, connect_timeout=10)

    def create_database(self, name: str) -> str:
        """A new, empty database owned by the test role; returns its name."""
        with self.admin_connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING 'UTF8'").format(
                sql.Identifier(name), sql.Identifier(self.role)))
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, ending any session still in it."""
        with self.admin_connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def dsn(self, dbname: str) -> str:
        """The libpq connection string a treadmill's config would hold (no password: that is in the file)."""
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={self.role}"

    def clinic_config(self, dbname: str, treadmill_id: str = "treadmill-a", **overrides) -> ClinicConfig:
        """A ``[clinic]`` section for this server: scram with the password file, verify-full against our cert."""
        cfg = ClinicConfig(treadmill_id=treadmill_id, dsn=self.dsn(dbname), password_file=str(self.password_file),
                           sslmode="verify-full", sslrootcert=str(self.cert_file), connect_timeout_s=10.0)
        return dataclasses.replace(cfg, **overrides)

    # --- set-up

    def _run(self, argv: list[str], timeout_s: float) -> subprocess.CompletedProcess:
        """Run a PostgreSQL program as the server's user (``postgres`` when we are root)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        kwargs = {}
        if self._as_root:
            env["HOME"] = self._server_user.pw_dir
            kwargs = {"user": self._server_user.pw_uid, "group": self._server_user.pw_gid, "extra_groups": []}
        return subprocess.run(argv, cwd=self.base, env=env, capture_output=True, text=True,
                              timeout=timeout_s, check=False, **kwargs)

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess:
        return self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-w",
                          "-t", str(PG_CTL_TIMEOUT_S), *args], PG_CTL_TIMEOUT_S + 30)

    def _owned_dir(self, path: Path) -> Path:
        path.mkdir(mode=0o700)
        if self._as_root:
            os.chown(path, self._server_user.pw_uid, self._server_user.pw_gid)
        return path

    def _initialize(self) -> None:
        from web.tls import generate_self_signed
        for path in (self.data_dir, self.socket_dir, self.log_file.parent, self.cert_file.parent):
            self._owned_dir(path)
        self.cert_file.parent.chmod(0o755)
        generate_self_signed(self.cert_file, self.key_file, ["localhost"], ["127.0.0.1"])
        if self._as_root:
            for path in (self.cert_file, self.key_file):
                os.chown(path, self._server_user.pw_uid, self._server_user.pw_gid)
        result = self._run([str(self.bindir / "initdb"), "-D", str(self.data_dir), "--username", SERVER_USER,
                            "--auth-local=trust", "--auth-host=reject", "--encoding=UTF8", "--locale=C",
                            "--no-sync", "--no-instructions"], 120)
        if result.returncode != 0:
            raise PostgresUnavailable(f"initdb failed (exit {result.returncode}): {result.stderr.strip()}")
        settings = dict(SETTINGS, unix_socket_directories=f"'{self.socket_dir}'",
                        ssl_cert_file=f"'{self.cert_file}'", ssl_key_file=f"'{self.key_file}'")
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# sim/postgres.py\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
        # The socket dir is the server user's alone, so "trust" there lets in only it and root (or the
        # caller when not root). Over TCP: TLS and scram, for the test role only.
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"hostssl all {self.role} 127.0.0.1/32 scram-sha-256\n"
            f"hostssl all {self.role} ::1/128 scram-sha-256\n", encoding="utf-8")
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
        self._initialized = True

    def _create_role(self) -> None:
        password = self.password_file.read_text(encoding="utf-8").strip()
        with self.admin_connect() as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(self.role), sql.Literal(password)))
