"""Connections to the clinic's PostgreSQL as ``[clinic]`` says: TLS, the password from its file, never shown.

The password is read from ``[clinic] password_file`` at each connection (a rotated
credential is picked up) and goes to libpq alone: no message, log line or exception
here ever holds it. Connection failures are psycopg's own errors (``psycopg.OperationalError``);
:func:`describe` turns any of them into one line for a log.
"""

from __future__ import annotations

import re

import psycopg
from psycopg.conninfo import make_conninfo

from controller.config import ClinicConfig

#: Longest line :func:`describe` returns: a log line, not a dump.
MAX_DESCRIPTION = 400
#: A password=... pair, should a message ever echo a connection string (libpq's do not).
_PASSWORD_PAIR = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


class ClinicError(Exception):
    """The clinic record cannot be used: no password, a schema this code does not know, a failed migration."""


def read_password(path: str) -> str:
    """The password alone in ``path`` (one trailing newline dropped); ClinicError naming the option if unusable."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ClinicError(f"[clinic] password_file = {path}: cannot read it ({exc.strerror or type(exc).__name__}); "
                          "it must hold the password alone, readable by this service's user") from None
    except UnicodeDecodeError:
        raise ClinicError(f"[clinic] password_file = {path}: not UTF-8 text; it must hold the password "
                          "alone") from None
    password = text.removesuffix("\n").removesuffix("\r")
    if not password:
        raise ClinicError(f"[clinic] password_file = {path}: the file is empty; it must hold the password alone")
    return password


def conninfo(clinic_cfg: ClinicConfig, *, application_name: str = "treadmill-replicator",
             timeout_s: float | None = None) -> str:
    """The libpq connection string: ``[clinic] dsn`` with the TLS options, the timeout and the password added."""
    options: dict[str, object] = {"sslmode": clinic_cfg.sslmode, "application_name": application_name}
    for key in ("sslrootcert", "sslcert", "sslkey"):
        if getattr(clinic_cfg, key):
            options[key] = getattr(clinic_cfg, key)
    # A server that vanishes mid-query (a pulled cable, a hung host) is noticed in about 10 s, not after the
    # kernel's two hours: TCP keepalives, and a send not acknowledged in 10 s fails (tcp_user_timeout, ms).
    options.update(keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
                   tcp_user_timeout=10000)
    # libpq takes whole seconds (and treats 1 as 2); never 0, which would mean "wait forever".
    options["connect_timeout"] = max(1, round(timeout_s if timeout_s is not None else clinic_cfg.connect_timeout_s))
    if clinic_cfg.password_file:
        options["password"] = read_password(clinic_cfg.password_file)
    try:
        return make_conninfo(clinic_cfg.dsn, **options)
    except psycopg.ProgrammingError as exc:
        # The DSN itself is at fault; its text may hold secrets, so only libpq's complaint is shown.
        raise ClinicError(f"[clinic] dsn: not a libpq connection string: {describe(exc)}") from None


def connect(clinic_cfg: ClinicConfig, *, autocommit: bool = False, application_name: str = "treadmill-replicator",
            timeout_s: float | None = None) -> psycopg.Connection:
    """A new connection to the clinic record; the caller closes it (``with connect(...) as conn:``).

    Raises ClinicError for an unusable password file or DSN, and psycopg.OperationalError when the
    server cannot be reached, refuses the certificate or the login.
    """
    info = conninfo(clinic_cfg, application_name=application_name, timeout_s=timeout_s)
    return psycopg.connect(info, autocommit=autocommit)


def describe(exc: BaseException) -> str:
    """One line for a log: libpq's message, whitespace folded, never a password, at most MAX_DESCRIPTION long."""
    text = " ".join(str(exc).split())
    text = _PASSWORD_PAIR.sub(r"\1(not shown)", text)
    if isinstance(exc, psycopg.Error) and exc.sqlstate and exc.sqlstate not in text:
        text = f"{text} (SQLSTATE {exc.sqlstate})"
    if not text:
        text = type(exc).__name__
    elif not isinstance(exc, ClinicError):
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= MAX_DESCRIPTION else text[:MAX_DESCRIPTION - 1] + "…"
