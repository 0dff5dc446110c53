"""CI's lock check (`make check-lock`): the lock matches pyproject.toml, and it installs on the Pi.

    python .ci/check_lock.py LOCK RESOLVED

RESOLVED is LOCK resolved again by uv from pyproject.toml, keeping the pins that still fit:
any pin that differs means pyproject.toml changed without `make lock`. Then every pin is
downloaded, hash-checked, for each Pi target: wheels only, except the packages named in
SDIST_ONLY, which have no wheel for that target and build from source on the Pi.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
#: Raspberry Pi OS releases on a 64-bit Pi: (name, Python, glibc).
TARGETS = [("Bookworm", "3.11", 36), ("Trixie", "3.13", 41)]
MACHINE = "aarch64"
#: Packages with no aarch64 wheel for that Python: pure-Python or C sources (README, "Building on the Pi").
SDIST_ONLY = {
    "3.11": {"adafruit-extended-bus"},
    "3.13": {"adafruit-extended-bus", "lgpio"},
}


def pins(path: Path) -> list[str]:
    """The lock's requirement lines (name==version ; markers), hashes and comments left out."""
    text = path.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.split(" --hash")[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def for_target(path: Path, python: str) -> dict[str, str]:
    """name -> its whole line with hashes, for the pins whose markers hold on an aarch64 Pi with this Python."""
    env = {"python_version": python, "python_full_version": python + ".0", "platform_machine": MACHINE,
           "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
           "implementation_name": "cpython", "platform_python_implementation": "CPython"}
    out = {}
    for line in path.read_text().replace("\\\n", " ").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        spec, _, hashes = line.partition(" --hash")
        req = Requirement(spec)
        # A name may stand twice, with disjoint markers: the line that holds here wins.
        if req.marker is None or req.marker.evaluate(env):
            out[req.name] = spec.split(";")[0].strip() + " --hash" + hashes
    return out


def download(lines: list[str], args: list[str], dest: Path) -> None:
    req = dest / "requirements.txt"
    req.write_text("\n".join(lines) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                    "--no-deps", "--require-hashes", "-r", str(req), "-d", str(dest), *args], check=True)


def main(lock: Path, resolved: Path) -> int:
    ours, again = pins(lock), pins(resolved)
    if ours != again:
        print(f"{lock} does not match pyproject.toml; run `make lock`. Pins that differ:")
        for line in sorted(set(ours) ^ set(again)):
            print(("  lock:     " if line in ours else "  resolved: ") + line)
        return 1
    print(f"{lock}: {len(ours)} pins match pyproject.toml")
    for name, python, glibc in TARGETS:
        chosen = for_target(lock, python)
        sdists = SDIST_ONLY[python]
        missing = sdists - chosen.keys()
        if missing:
            print(f"SDIST_ONLY names packages not in the lock for {name}: {sorted(missing)}")
            return 1
        abi = "cp" + python.replace(".", "")
        platforms = [f"--platform=manylinux_2_{minor}_{MACHINE}" for minor in range(17, glibc + 1)]
        platforms += ["--platform=manylinux2014_" + MACHINE, "--platform=linux_" + MACHINE]
        with tempfile.TemporaryDirectory() as tmp:
            download([line for n, line in chosen.items() if n not in sdists],
                     ["--only-binary=:all:", *platforms, f"--python-version={python}",
                      "--implementation=cp", f"--abi={abi}", "--abi=abi3", "--abi=none"], Path(tmp))
            with tempfile.TemporaryDirectory() as tmp2:
                download([chosen[n] for n in sorted(sdists)], ["--no-binary=:all:"], Path(tmp2))
        print(f"{name} (Python {python}, {MACHINE}): {len(chosen) - len(sdists)} wheels, "
              f"{len(sdists)} from source ({', '.join(sorted(sdists))}), every hash checked")
    # This machine: the two pip commands of systemd/install.sh, in a new venv (pip refuses a
    # lock that misses a dependency), then the imports the Pi's controller needs.
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([*pip, "--require-hashes", "-r", str(lock)], check=True)
        subprocess.run([*pip, "--no-deps", "--no-build-isolation", str(REPO)], check=True,
                       cwd=tmp, env={**os.environ, "PIP_NO_CACHE_DIR": "1"})
        subprocess.run([str(venv / "bin" / "python"), "-c",
                        "import cli.main, lgpio, adafruit_vl53l0x, adafruit_extended_bus"], check=True, cwd=tmp)
    print("this machine: installed from the lock with --require-hashes, then the project with --no-deps")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
