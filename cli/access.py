"""``treadmill-safety user ...`` and ``audit verify``: accounts and the audit trail from the shell.

Run them as the dashboard's user, so the database stays its own:
``sudo -u treadmill-web treadmill-safety user add NAME --role admin --config FILE``.
Every account change leaves an audit row naming the system user who ran the
command. ``set-password`` (the old shared password) is kept for one release as
a deprecated alias of ``user passwd``/``user add`` for an account called
"therapist".
"""

from __future__ import annotations

import argparse
import getpass
import os
import sqlite3
import sys
from datetime import datetime
from pathlib import Path
from typing import Callable

from cli.options import add_web_options, web_config

#: The account the deprecated ``set-password`` sets (it had no name to give).
LEGACY_ACCOUNT = "therapist"


def _state_dir(args: argparse.Namespace) -> Path:
    return Path(web_config(args).web.state_dir)


def _refuse_foreign_owner(state_dir: Path) -> str | None:
    """As root, refuse a state dir that belongs to another user: files root creates there lock the dashboard out."""
    if os.geteuid() != 0 or not state_dir.exists():
        return None
    owner = state_dir.stat().st_uid
    if owner == 0:
        return None
    import pwd
    try:
        user = pwd.getpwuid(owner).pw_name
    except KeyError:
        user = str(owner)
    return (f"{state_dir} belongs to {user}; run this as that user so the dashboard can still read its "
            f"files: sudo -u {user} treadmill-safety {' '.join(sys.argv[1:])}")


def _read_password(args: argparse.Namespace, prompt: str) -> str:
    """The new password from stdin (--password-stdin) or typed twice; refused if the two differ."""
    from web.accounts import AccountError
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass(prompt)
    if getpass.getpass("again: ") != password:
        raise AccountError("password", "the two entries differ")
    return password


def system_user() -> str:
    """Who runs the command: the real user, and through sudo the one who called it."""
    import pwd
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = str(os.getuid())
    invoker = os.environ.get("SUDO_USER")
    return f"{invoker} via sudo as {user}" if invoker and invoker != user else user


def _audit(state_dir: Path, action: str, target: str, detail: dict) -> None:
    from web.audit import AuditTrail, Entry
    who = system_user()
    AuditTrail(state_dir).append(Entry(actor=None, role=None, address=f"command line ({who})",
                                       action=f"user {action}", target=target, outcome=200, detail=detail))


def _run(args: argparse.Namespace, change: Callable[[Path], str]) -> int:
    """Run one account command: the refusals name the field; success prints one line."""
    from web.accounts import AccountError
    state_dir = _state_dir(args)
    refusal = _refuse_foreign_owner(state_dir)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    try:
        print(change(state_dir))
    except AccountError as exc:
        print(f"{exc}; nothing changed", file=sys.stderr)
        return 1 if exc.status == 404 else 2
    except (OSError, sqlite3.Error) as exc:
        print(f"{state_dir}: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    """Create an account (the password is prompted, or one line from --password-stdin)."""
    from web.accounts import AccountStore

    def add(state_dir: Path) -> str:
        password = _read_password(args, f"password for {args.name}: ")
        account = AccountStore(state_dir).add(args.name, args.role, password)
        _audit(state_dir, "add", account.name, {"name": account.name, "role": account.role})
        return f"account {account.name!r} ({account.role}) created in {state_dir}"
    return _run(args, add)


def cmd_user_list(args: argparse.Namespace) -> int:
    """One line per account: name, role, enabled or disabled, last login."""
    from web.accounts import AccountStore

    def show(state_dir: Path) -> str:
        found = AccountStore(state_dir).list()
        if not found:
            return "no accounts (create one with: treadmill-safety user add NAME --role admin)"
        width = max(len(a.name) for a in found)
        return "\n".join(
            f"{a.name:<{width}}  {a.role:<9}  {'enabled ' if a.enabled else 'DISABLED'}  last login: "
            f"{datetime.fromtimestamp(a.last_login).isoformat(timespec='seconds') if a.last_login else 'never'}"
            for a in found)
    return _run(args, show)


def _change(args: argparse.Namespace, action: str, **values: object) -> int:
    from web.accounts import AccountStore

    def change(state_dir: Path) -> str:
        account = AccountStore(state_dir).change(args.name, **values)
        _audit(state_dir, action, account.name, {k: v for k, v in values.items() if k != "password"})
        return f"account {account.name!r}: {action} done"
    return _run(args, change)


def cmd_user_disable(args: argparse.Namespace) -> int:
    """Disable an account: its logins end at their next request."""
    return _change(args, "disable", enabled=False)


def cmd_user_enable(args: argparse.Namespace) -> int:
    """Enable a disabled account again."""
    return _change(args, "enable", enabled=True)


def cmd_user_passwd(args: argparse.Namespace) -> int:
    """Set an account's password: its logins end at their next request."""
    from web.accounts import AccountError
    try:
        password = _read_password(args, f"new password for {args.name}: ")
    except AccountError as exc:
        print(f"{exc}; nothing changed", file=sys.stderr)
        return 2
    return _change(args, "passwd", password=password)


def cmd_set_password(args: argparse.Namespace) -> int:
    """Deprecated: the old shared password becomes the password of an account called "therapist"."""
    from web.accounts import AccountStore
    print(f"set-password is deprecated and goes in the next release: give each person an account with "
          f"'treadmill-safety user add NAME --role therapist|admin --config {args.config}' "
          f"(and 'user passwd NAME' to change a password). This run sets the password of the "
          f"account {LEGACY_ACCOUNT!r}.", file=sys.stderr)
    args.password_stdin = args.stdin
    args.name = LEGACY_ACCOUNT
    args.role = "therapist"
    state_dir = _state_dir(args)
    if _refuse_foreign_owner(state_dir) is None and AccountStore(state_dir).get(LEGACY_ACCOUNT) is None:
        return cmd_user_add(args)
    return cmd_user_passwd(args)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Check the audit trail's hash chain: exit 0 if intact, 1 naming the first row at fault."""
    from web.accounts import access_db_path
    from web.audit import AuditTrail
    state_dir = _state_dir(args)
    refusal = _refuse_foreign_owner(state_dir)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    if not access_db_path(state_dir).exists():
        print(f"audit trail: none at {access_db_path(state_dir)} (no account was ever made)", file=sys.stderr)
        return 1
    ok, _, message = AuditTrail(state_dir).verify()
    print(f"audit trail {'OK' if ok else 'BROKEN'}: {message}", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The ``user``, ``audit`` and deprecated ``set-password`` subcommands."""
    from web.accounts import ROLES

    user = sub.add_parser("user", help="dashboard accounts: add, list, disable, enable, passwd")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    for name, func, text in (("add", cmd_user_add, "create an account (password prompted)"),
                             ("list", cmd_user_list, "list the accounts"),
                             ("disable", cmd_user_disable, "disable an account (its logins end)"),
                             ("enable", cmd_user_enable, "enable a disabled account"),
                             ("passwd", cmd_user_passwd, "set an account's password (its logins end)")):
        p = user_sub.add_parser(name, help=text)
        if name != "list":
            p.add_argument("name", help="the account's name (1 to 40 printable characters)")
        if name == "add":
            p.add_argument("--role", required=True, choices=ROLES, help="therapist or admin (admins manage accounts)")
        if name in ("add", "passwd"):
            p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
        add_web_options(p)
        p.set_defaults(func=func)

    audit = sub.add_parser("audit", help="the dashboard's audit trail")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    p = audit_sub.add_parser("verify", help="check the trail's hash chain; names the first row at fault")
    add_web_options(p)
    p.set_defaults(func=cmd_audit_verify)

    p = sub.add_parser("set-password", help="deprecated: use 'user add' / 'user passwd'")
    add_web_options(p)
    p.add_argument("--stdin", action="store_true", help="read the password from standard input")
    p.set_defaults(func=cmd_set_password)
