"""Connecting as ``[clinic]`` says, on a real PostgreSQL server: TLS verify-full, the password file, never shown."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from cli.clinic import cmd_clinic_migrate, cmd_clinic_status
from clinic.connect import ClinicError, connect, describe
from clinic.schema import LATEST, current_version
from sim.postgres import free_port
from web.tls import generate_self_signed

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "systemd" / "config.example.toml"


def messages(exc: BaseException) -> list[str]:
    """Everything an exception could put in a log: its text, repr and description, and those of its causes."""
    out = []
    while exc is not None:
        out += [str(exc), repr(exc), describe(exc)]
        exc = exc.__cause__ or exc.__context__
    return out


def write_config(path: Path, clinic: dict[str, object]) -> Path:
    """The example config with its [clinic] section replaced by ``clinic``."""
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8").split("\n[clinic]\n")[0]
    section = "".join(f"{key} = {json.dumps(value)}\n" for key, value in clinic.items())
    path.write_text(f"{text}\n[clinic]\n{section}", encoding="utf-8")
    return path


def clinic_section(cfg) -> dict[str, object]:
    return {key: value for key, value in dataclasses.asdict(cfg).items() if value not in ("", None)}


def test_verify_full_against_the_servers_ca_connects_over_tls_as_the_role(clinic_db):
    with connect(clinic_db.cfg(), autocommit=True) as conn:
        ssl, user, app = conn.execute("SELECT s.ssl, current_user, current_setting('application_name') "
                                      "FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()").fetchone()
        assert (ssl, user, app) == (True, clinic_db.server.role, "treadmill-replicator")
        assert current_version(conn) == LATEST


def test_verify_full_against_another_ca_is_refused(clinic_db, tmp_path):
    other = generate_self_signed(tmp_path / "other.crt", tmp_path / "other.key", ["localhost"], ["127.0.0.1"])
    with pytest.raises(psycopg.OperationalError) as caught:
        connect(clinic_db.cfg(sslrootcert=str(other.path)), timeout_s=10).close()
    assert "certificate verify failed" in describe(caught.value)


def test_a_login_without_tls_is_refused_by_the_server(clinic_db):
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        connect(clinic_db.cfg(sslmode="disable"), timeout_s=10).close()


def test_a_missing_password_file_names_the_option_and_never_the_password(clinic_db, tmp_path):
    missing = tmp_path / "nowhere" / "clinic-password"
    with pytest.raises(ClinicError) as caught:
        connect(clinic_db.cfg(password_file=str(missing)))
    assert str(caught.value).startswith(f"[clinic] password_file = {missing}: cannot read it")
    assert describe(caught.value) == str(caught.value)


def test_an_empty_password_file_is_refused_by_name(clinic_db, tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ClinicError, match=r"\[clinic\] password_file = .*empty: the file is empty"):
        connect(clinic_db.cfg(password_file=str(empty)))


def test_no_message_of_any_failure_holds_a_password(clinic_db, tmp_path, capsys):
    real = clinic_db.server.password_file.read_text().strip()
    wrong_file = tmp_path / "wrong-password"
    wrong = "not-the-Password-4711"
    wrong_file.write_text(wrong + "\n")
    other = generate_self_signed(tmp_path / "other.crt", tmp_path / "other.key", ["localhost"], ["127.0.0.1"])
    failures = [clinic_db.cfg(password_file=str(wrong_file)),
                clinic_db.cfg(password_file=str(tmp_path / "missing")),
                clinic_db.cfg(sslrootcert=str(other.path)),
                clinic_db.cfg(dsn=clinic_db.cfg().dsn + " dbname"),
                clinic_db.cfg(dsn=f"host=127.0.0.1 port={free_port()} dbname=x user=y")]
    texts = []
    for cfg in failures:
        with pytest.raises((ClinicError, psycopg.Error)) as caught:
            connect(cfg, timeout_s=10).close()
        texts += messages(caught.value)
    assert any("password authentication failed" in text for text in texts)
    config = write_config(tmp_path / "config.toml", clinic_section(clinic_db.cfg(password_file=str(wrong_file))))
    assert cmd_clinic_status(argparse.Namespace(config=str(config))) == 1
    texts += list(capsys.readouterr())
    leaks = [text for text in texts if real in text or wrong in text]
    assert leaks == []


def test_describe_hides_a_password_pair_and_fits_one_line():
    exc = psycopg.OperationalError("failed for 'host=h password=s3cret user=u'\n\tagain password = 'a b'")
    line = describe(exc)
    assert "s3cret" not in line and "a b" not in line and "\n" not in line
    assert line.startswith("OperationalError: failed for 'host=h password=(not shown) user=u'")


# --- the command line, called as cli/main.py calls it


def status(config: Path) -> int:
    return cmd_clinic_status(argparse.Namespace(config=str(config), clinic_command="status"))


def migrate_command(config: Path) -> int:
    return cmd_clinic_migrate(argparse.Namespace(config=str(config), clinic_command="migrate"))


def test_clinic_migrate_then_status_on_an_empty_database(clinic_empty_db, tmp_path, capsys):
    config = write_config(tmp_path / "config.toml", clinic_section(clinic_empty_db.cfg()))
    assert status(config) == 0
    out = capsys.readouterr().out
    assert f"schema version: server 0, this code {LATEST}" in out
    assert "pending migrations: 0001_clinic_record, 0002_live_status (run: treadmill-safety clinic migrate" in out

    assert migrate_command(config) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:2] == ["applied 0001_clinic_record", "applied 0002_live_status"]
    assert f"schema version 0 -> {LATEST}" in out

    assert migrate_command(config) == 0
    assert capsys.readouterr().out == f"clinic record: schema version {LATEST}, nothing to apply\n"
    assert status(config) == 0
    out = capsys.readouterr().out
    assert f"schema version: server {LATEST}, this code {LATEST}\nup to date\n" in out


def test_clinic_status_without_a_server_exits_1_with_one_line(tmp_path, capsys, postgres):
    cfg = postgres.clinic_config("nowhere", dsn=f"host=127.0.0.1 port={free_port()} dbname=x user=y")
    config = write_config(tmp_path / "config.toml", clinic_section(cfg))
    assert status(config) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("clinic status: cannot connect to the clinic record: ")
    assert "127.0.0.1" in err and err.count("\n") == 1


def test_clinic_status_refuses_a_server_newer_than_this_code(clinic_db, tmp_path, capsys):
    with clinic_db.connect() as conn:
        conn.execute("INSERT INTO schema_version (version, name) VALUES (%s, 'later')", (LATEST + 1,))
    config = write_config(tmp_path / "config.toml", clinic_section(clinic_db.cfg()))
    assert status(config) == 1
    assert "newer than this code's" in capsys.readouterr().err
    assert migrate_command(config) == 1
    assert "update this treadmill's software" in capsys.readouterr().err


def test_clinic_commands_without_a_treadmill_id_exit_2(tmp_path, capsys):
    config = write_config(tmp_path / "config.toml", {"treadmill_id": ""})
    assert status(config) == 2
    assert migrate_command(config) == 2
    err = capsys.readouterr().err
    assert err.count("[clinic] treadmill_id is empty in") == 2


def test_the_installed_command_runs_clinic_status_and_migrate(clinic_empty_db, tmp_path):
    config = write_config(tmp_path / "config.toml", clinic_section(clinic_empty_db.cfg()))
    run = [sys.executable, "-m", "cli.main", "clinic"]
    result = subprocess.run([*run, "migrate", "--config", str(config)], cwd=REPO, capture_output=True,
                            text=True, timeout=60, check=False)
    assert (result.returncode, result.stderr) == (0, ""), result
    assert "applied 0001_clinic_record" in result.stdout
    result = subprocess.run([*run, "status", "--config", str(config)], cwd=REPO, capture_output=True,
                            text=True, timeout=60, check=False)
    assert (result.returncode, result.stderr) == (0, ""), result
    assert "up to date" in result.stdout
