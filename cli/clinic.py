"""``treadmill-safety clinic migrate|status``: the clinic record's schema in PostgreSQL, from the shell.

    treadmill-safety clinic status --config FILE    # the server's schema version and this code's
    treadmill-safety clinic migrate --config FILE   # apply the pending migrations, one transaction each

Both connect as ``[clinic]`` says (the DSN, the password file, TLS). ``status`` exits 0 when the
schema is this code's or older (``migrate``, or the replicator at its start, brings it up), 1
when the server cannot be reached or is newer than this code, and 2 without ``[clinic]
treadmill_id``. ``migrate`` exits 0 when the schema is up to date, 1 if it could not get there.
"""

from __future__ import annotations

import argparse
import sys

import psycopg

from cli.options import load_or_exit
from clinic.connect import ClinicError, connect, describe
from clinic.schema import LATEST, MIGRATIONS, current_version, migrate, newer_server_message

#: Names this command's sessions on the server (pg_stat_activity).
APPLICATION_NAME = "treadmill-safety clinic"


def add_clinic_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``clinic migrate`` and ``clinic status``."""
    clinic = subparsers.add_parser("clinic", help="the clinic record in PostgreSQL: its schema version, "
                                                  "and applying its migrations")
    clinic_sub = clinic.add_subparsers(dest="clinic_command", required=True)
    for name, func, text in (("migrate", cmd_clinic_migrate,
                              "apply the clinic record's pending schema migrations (each in its own transaction)"),
                             ("status", cmd_clinic_status,
                              "the server's schema version against this code's; exit 1 if it cannot be reached")):
        p = clinic_sub.add_parser(name, help=text)
        p.add_argument("--config", required=True, help="path to config.toml (its [clinic] section)")
        p.set_defaults(func=func)


def _clinic_config(args: argparse.Namespace, command: str):
    """The [clinic] section, or None after saying why this treadmill has none."""
    cfg = load_or_exit(args.config)
    if not cfg.clinic.enabled:
        print(f"clinic {command}: [clinic] treadmill_id is empty in {args.config}: this treadmill keeps its "
              "history on its own; set treadmill_id and dsn to join a clinic record", file=sys.stderr)
        return None
    return cfg.clinic


def _failed(command: str, exc: BaseException) -> int:
    """One line on stderr naming the problem; exit status 1."""
    if isinstance(exc, psycopg.OperationalError):
        print(f"clinic {command}: cannot connect to the clinic record: {describe(exc)}", file=sys.stderr)
    else:
        print(f"clinic {command}: {describe(exc)}", file=sys.stderr)
    return 1


def cmd_clinic_status(args: argparse.Namespace) -> int:
    """Print the server's schema version against this code's; 1 if unreachable or newer than this code."""
    clinic = _clinic_config(args, "status")
    if clinic is None:
        return 2
    try:
        with connect(clinic, autocommit=True, application_name=APPLICATION_NAME) as conn:
            server_version = current_version(conn)
            where = f"{conn.info.host}:{conn.info.port} database {conn.info.dbname} as {conn.info.user}"
    except (ClinicError, psycopg.Error) as exc:
        return _failed("status", exc)
    print(f"clinic record: {where} (treadmill {clinic.treadmill_id})")
    print(f"schema version: server {server_version}, this code {LATEST}")
    if server_version > LATEST:
        print(f"clinic status: {newer_server_message(server_version)}", file=sys.stderr)
        return 1
    if server_version < LATEST:
        pending = ", ".join(f"{v:04d}_{name}" for v, name, _sql in MIGRATIONS[server_version:])
        print(f"pending migrations: {pending} (run: treadmill-safety clinic migrate --config {args.config})")
    else:
        print("up to date")
    return 0


def cmd_clinic_migrate(args: argparse.Namespace) -> int:
    """Apply the pending migrations and print each; 1 if the server is unreachable, newer, or a file fails."""
    clinic = _clinic_config(args, "migrate")
    if clinic is None:
        return 2
    try:
        with connect(clinic, autocommit=True, application_name=APPLICATION_NAME) as conn:
            before = current_version(conn)
            applied = migrate(conn)
    except (ClinicError, psycopg.Error) as exc:
        return _failed("migrate", exc)
    names = {version: name for version, name, _sql in MIGRATIONS}
    for version in applied:
        print(f"applied {version:04d}_{names[version]}")
    if applied:
        print(f"clinic record: schema version {before} -> {LATEST}")
    else:
        print(f"clinic record: schema version {LATEST}, nothing to apply")
    return 0
