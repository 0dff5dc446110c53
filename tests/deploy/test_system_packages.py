"""The system packages the tests need (.ci/system-packages): `make test` stops at once without them.

Run as an unprivileged user (``nobody`` when the suite runs as root), with an empty dpkg
database standing in for a fresh machine, so the non-root path is checked even where the
packages are installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: The one line a newcomer sees: every package the script lists, in its order.
INSTRUCTION = "missing system packages for the tests; run: sudo apt-get install -y chromium systemd make espeak-ng alsa-utils fonts-wqy-microhei postgresql\n"


def as_unprivileged(argv: list[str]) -> list[str]:
    """``argv`` run as nobody when the suite is root; as the caller otherwise."""
    if os.geteuid() != 0:
        return argv
    return [shutil.which("setpriv") or "/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup",
            "--clear-groups", "--", *argv]


@pytest.fixture
def world_dir():
    """A directory that ``nobody`` can read and enter (pytest's tmp_path is the caller's only)."""
    path = Path(tempfile.mkdtemp(prefix="sysdeps-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture
def empty_dpkg(world_dir: Path) -> Path:
    """A dpkg database with nothing installed: a fresh machine as dpkg-query sees it."""
    admin = world_dir / "dpkg"
    for sub in ("info", "updates"):
        (admin / sub).mkdir(parents=True)
    (admin / "status").write_text("")
    for p in (admin, admin / "info", admin / "updates"):
        p.chmod(0o755)
    (admin / "status").chmod(0o644)
    return admin


def run(argv: list[str], cwd: Path, admindir: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    if admindir is not None:
        env["DPKG_ADMINDIR"] = str(admindir)
    return subprocess.run(as_unprivileged(argv), cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def checkout(world_dir: Path) -> Path:
    """The Makefile and .ci/ copied where nobody can read them (the clone may sit under /root)."""
    path = world_dir / "checkout"
    path.mkdir()
    shutil.copy(REPO / "Makefile", path / "Makefile")
    shutil.copytree(REPO / ".ci", path / ".ci")
    for p in [path, *path.rglob("*")]:
        p.chmod(0o755)
    return path


def test_unprivileged_check_without_packages_names_the_one_command(empty_dpkg, checkout):
    result = run(["bash", ".ci/system-packages"], checkout, empty_dpkg)
    assert result.returncode == 1, result
    assert result.stderr == INSTRUCTION
    assert result.stdout == ""


def test_unprivileged_make_test_stops_before_the_venv_and_the_suite(empty_dpkg, checkout):
    """make stops before it creates .venv, let alone starts pytest."""
    result = run(["make", "test"], checkout, empty_dpkg)
    assert result.returncode != 0, result
    assert INSTRUCTION in result.stderr, result.stderr
    assert "pytest" not in result.stdout + result.stderr
    assert not (checkout / ".venv").exists()


def test_check_passes_with_this_machines_packages(checkout):
    """The suite runs after set-up, so every listed package is installed here: the check is silent."""
    result = run(["bash", ".ci/system-packages"], checkout)
    assert (result.returncode, result.stderr) == (0, "")
