"""``treadmill-safety user ...``, the deprecated ``set-password`` and ``audit verify``, run as the installer would."""

from __future__ import annotations

import io
import os

import pytest

from cli.main import main as cli_main
from web.accounts import AccountStore
from web.audit import AuditTrail

CONFIG = "systemd/config.example.toml"


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    """Run the command line against a fresh state dir; returns (exit code, stdout, stderr)."""
    state = tmp_path / "web"

    def call(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = cli_main([*argv, "--config", CONFIG, "--state-dir", str(state)])
        out, err = capsys.readouterr()
        return code, out, err

    call.state = state
    return call


def test_add_list_disable_enable_and_passwd(run):
    assert run("user", "list")[1].startswith("no accounts")
    code, out, _ = run("user", "add", "Ada", "--role", "admin", "--password-stdin", stdin="first secret 1\n")
    assert code == 0 and "'Ada' (admin) created" in out
    assert run("user", "add", "Dana", "--role", "therapist", "--password-stdin", stdin="dana secret 1\n")[0] == 0
    store = AccountStore(run.state)
    assert store.verify("Ada", "first secret 1") is not None
    listing = run("user", "list")[1].splitlines()
    assert [line.split()[:3] for line in listing] == [["Ada", "admin", "enabled"], ["Dana", "therapist", "enabled"]]
    assert run("user", "disable", "Dana")[0] == 0
    assert store.get("Dana").enabled is False and store.verify("Dana", "dana secret 1") is None
    assert "DISABLED" in run("user", "list")[1]
    assert run("user", "enable", "Dana")[0] == 0
    assert run("user", "passwd", "Dana", "--password-stdin", stdin="dana secret 2\n")[0] == 0
    assert store.verify("Dana", "dana secret 2") is not None and store.verify("Dana", "dana secret 1") is None
    # Every change is in the trail, naming the system user who ran it; no password in it.
    rows = AuditTrail(run.state).rows()
    assert [r["action"] for r in reversed(rows)] == ["user add", "user add", "user disable", "user enable",
                                                       "user passwd"]
    assert all(r["address"].startswith("command line (") and "secret" not in r["detail"] for r in rows)
    assert AuditTrail(run.state).verify()[0] is True


@pytest.mark.parametrize("argv, stdin, words", [
    (("user", "add", "Ada", "--role", "admin", "--password-stdin"), "short\n", "password: 8 to 1024 characters"),
    (("user", "add", "  ", "--role", "admin", "--password-stdin"), "long enough 1\n", "name: 1 to 40"),
    (("user", "passwd", "Nobody", "--password-stdin"), "long enough 1\n", "no account named 'Nobody'"),
    (("user", "disable", "Nobody"), "", "no account named 'Nobody'"),
])
def test_a_refused_command_names_the_field_and_changes_nothing(run, argv, stdin, words):
    code, _, err = run(*argv, stdin=stdin)
    assert code in (1, 2)
    assert words in err and "nothing changed" in err
    assert AccountStore(run.state).list() == []
    assert AuditTrail(run.state).rows() == []


def test_a_taken_name_in_another_case_is_refused(run):
    run("user", "add", "Ada", "--role", "admin", "--password-stdin", stdin="first secret 1\n")
    code, _, err = run("user", "add", "ADA", "--role", "therapist", "--password-stdin", stdin="other secret 1\n")
    assert code == 2 and "exists already" in err
    assert [a.role for a in AccountStore(run.state).list()] == ["admin"]


def test_the_last_enabled_admin_cannot_be_disabled(run):
    run("user", "add", "Ada", "--role", "admin", "--password-stdin", stdin="first secret 1\n")
    code, _, err = run("user", "disable", "Ada")
    assert code == 2 and "last enabled admin" in err
    assert AccountStore(run.state).get("Ada").enabled is True


def test_set_password_still_works_for_one_release_and_says_what_to_run_instead(run):
    code, out, err = run("set-password", "--stdin", stdin="shared secret 1\n")
    assert code == 0
    assert "deprecated" in err and "user add NAME" in err
    assert AccountStore(run.state).verify("therapist", "shared secret 1").role == "therapist"
    code, _, err = run("set-password", "--stdin", stdin="shared secret 2\n")
    assert code == 0 and "deprecated" in err
    assert AccountStore(run.state).verify("therapist", "shared secret 2") is not None


def test_audit_verify_without_a_trail_fails_and_creates_nothing(run):
    code, _, err = run("audit", "verify")
    assert code == 1 and "none at" in err
    assert not (run.state / "access.db").exists()


def test_the_trail_names_who_ran_the_command_through_sudo(run, monkeypatch):
    monkeypatch.setenv("SUDO_USER", "installer")
    run("user", "add", "Ada", "--role", "admin", "--password-stdin", stdin="first secret 1\n")
    assert AuditTrail(run.state).rows()[0]["address"].startswith("command line (installer via sudo as ")


def test_as_root_a_state_dir_of_another_user_is_refused_with_the_command_to_run(run):
    if os.geteuid() != 0:
        # The rule is root's; as another user, the file system itself refuses a foreign 0700 directory.
        run.state.mkdir(mode=0o700)
        assert run("user", "list")[0] == 0
        return
    run.state.mkdir(mode=0o700)
    os.chown(run.state, 65534, 65534)
    code, _, err = run("user", "add", "Ada", "--role", "admin", "--password-stdin", stdin="first secret 1\n")
    assert code == 2 and "sudo -u" in err
    assert not (run.state / "access.db").exists()
