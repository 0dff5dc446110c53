"""Deployment: the systemd units, the udev rule and install.sh (staged with DESTDIR, never on this host)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "systemd"
INSTALL = SYSTEMD / "install.sh"
CONTROLLER = "treadmill-controller.service"
DASHBOARD = "treadmill-dashboard.service"
VOICE = "treadmill-voice.service"
REPLICATOR = "treadmill-replicator.service"
UNITS = (CONTROLLER, DASHBOARD, VOICE, REPLICATOR)
RULES = "99-treadmill-safety.rules"
EXEC = "/opt/treadmill-safety/bin/treadmill-safety"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
#: No pager, no colours, no attempt to reach a running systemd.
ENV = {**os.environ, "SYSTEMD_PAGER": "cat", "PAGER": "cat", "SYSTEMD_COLORS": "0", "SYSTEMD_LOG_COLOR": "0"}
#: systemd-analyze security's "overall exposure" (0 safest, 10 worst): the controller and the dashboard stay
#: at 2.0 or lower, the voice (which needs the sound card and the audio group) at 2.5 or lower, the
#: replicator (the LAN for the clinic's server, the controller's socket) at 2.0 or lower.
DASHBOARD_MAX_EXPOSURE = 2.0
CONTROLLER_MAX_EXPOSURE = 2.0
VOICE_MAX_EXPOSURE = 2.5
REPLICATOR_MAX_EXPOSURE = 2.0
#: The private and local ranges the dashboard and the replicator may talk to; nothing on the internet.
PRIVATE_RANGES = ["localhost", "link-local", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value in order (systemd keys repeat, so configparser will not do)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: key outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a key=value line: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(unit: dict, key: str, section: str = "Service") -> str:
    values = unit[section].get(key)
    assert values is not None, f"{key}= missing from [{section}]"
    assert len(values) == 1, f"{key}= given {len(values)} times: {values}"
    return values[0]


@pytest.fixture(scope="module")
def controller() -> dict:
    return parse_unit(SYSTEMD / CONTROLLER)


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return parse_unit(SYSTEMD / DASHBOARD)


@pytest.fixture(scope="module")
def voice() -> dict:
    return parse_unit(SYSTEMD / VOICE)


@pytest.fixture(scope="module")
def replicator() -> dict:
    return parse_unit(SYSTEMD / REPLICATOR)


def analyze(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SYSTEMD_ANALYZE, *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=60)


def staged_units(tmp_path: Path, extra: str = "") -> Path:
    """Copies of the units whose ExecStart names a real executable in tmp_path.

    systemd-analyze verify checks that ExecStart's binary exists; /opt/treadmill-safety
    does not exist before install.sh runs. Only that path is rewritten; nothing else changes.
    """
    exe = tmp_path / "bin" / "treadmill-safety"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    for name in UNITS:
        text = (SYSTEMD / name).read_text()
        assert text.count(EXEC) == 1, f"{name}: expected one ExecStart on {EXEC}"
        (units / name).write_text(text.replace(EXEC, str(exe)) + extra)
    return units


# ---- systemd-analyze verify ------------------------------------------------------------


def test_verify_passes_with_no_output(tmp_path):
    units = staged_units(tmp_path)
    result = analyze("verify", "--man=no", *(str(units / name) for name in UNITS), cwd=units)
    output = (result.stdout + result.stderr).strip()
    # Every line systemd-analyze prints here is a finding: none is acceptable.
    assert result.returncode == 0 and output == "", output


def test_verify_reports_a_bad_unit(tmp_path):
    """The negative control: verify does look at our files (a typo is reported)."""
    units = staged_units(tmp_path)
    broken = units / CONTROLLER
    broken.write_text(broken.read_text().replace("ProtectHome=yes", "ProtectHome=yes\nProtectHomme=yes"))
    result = analyze("verify", "--man=no", str(broken), cwd=units)
    assert "ProtectHomme" in result.stdout + result.stderr


def test_verify_reports_a_missing_executable():
    """Why the staged copies: the units as shipped name /opt/..., which does not exist here."""
    if Path(EXEC).exists():  # installed on this machine: nothing to show
        return
    result = analyze("verify", "--man=no", str(SYSTEMD / CONTROLLER))
    lines = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.strip()]
    assert lines and all(f"Command {EXEC} is not executable" in ln for ln in lines), lines


# ---- systemd-analyze security ----------------------------------------------------------


def exposure(path: Path) -> float:
    result = analyze("security", "--offline=true", "--no-pager", str(path))
    text = result.stdout + result.stderr
    match = re.search(rf"Overall exposure level for {re.escape(path.name)}: (\d+(?:\.\d+)?)", text)
    assert match, text
    return float(match.group(1))


def test_dashboard_exposure_at_most_2():
    score = exposure(SYSTEMD / DASHBOARD)
    print(f"\n{DASHBOARD}: overall exposure {score}")
    assert 0.0 <= score <= DASHBOARD_MAX_EXPOSURE


def test_controller_exposure_at_most_2():
    score = exposure(SYSTEMD / CONTROLLER)
    print(f"\n{CONTROLLER}: overall exposure {score}")
    assert 0.0 <= score <= CONTROLLER_MAX_EXPOSURE


def test_voice_exposure_at_most_2_5():
    score = exposure(SYSTEMD / VOICE)
    print(f"\n{VOICE}: overall exposure {score}")
    assert 0.0 <= score <= VOICE_MAX_EXPOSURE


def test_replicator_exposure_at_most_2():
    score = exposure(SYSTEMD / REPLICATOR)
    print(f"\n{REPLICATOR}: overall exposure {score}")
    assert 0.0 <= score <= REPLICATOR_MAX_EXPOSURE


# ---- what the units must say -----------------------------------------------------------


def test_controller_is_supervised(controller):
    assert one(controller, "Type") == "notify"
    assert one(controller, "NotifyAccess") == "main"
    assert one(controller, "WatchdogSec") == "1s"
    assert one(controller, "WatchdogSignal") == "SIGTERM"
    assert one(controller, "Restart") == "always"
    assert one(controller, "RestartSec") == "1s"
    assert one(controller, "KillSignal") == "SIGTERM"
    assert one(controller, "TimeoutStopSec") == "5s"
    assert one(controller, "ExecStart") == f"{EXEC} run --config /etc/treadmill-safety/config.toml"


def test_controller_has_no_network_and_only_its_devices(controller):
    assert one(controller, "RestrictAddressFamilies") == "AF_UNIX"
    assert one(controller, "PrivateNetwork") == "yes"
    assert one(controller, "DevicePolicy") == "closed"
    allowed = sorted(controller["Service"]["DeviceAllow"])
    assert allowed == ["char-gpiochip rw", "char-i2c rw", "char-ttyACM rw", "char-ttyUSB rw"]
    # PrivateDevices would hide /dev/gpiochip*, /dev/i2c-* and the serial port.
    assert "PrivateDevices" not in controller["Service"]
    assert one(controller, "CapabilityBoundingSet") == ""
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "MemoryDenyWriteExecute",
                "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups",
                "RestrictNamespaces", "LockPersonality"):
        assert one(controller, key) == "yes", key
    assert one(controller, "ProtectSystem") == "strict"


def test_controller_runs_realtime_as_its_own_user(controller):
    assert one(controller, "User") == "treadmill"
    assert one(controller, "Group") == "treadmill"
    assert one(controller, "SupplementaryGroups").split() == ["gpio", "i2c", "dialout"]
    assert one(controller, "CPUSchedulingPolicy") == "rr"
    assert one(controller, "CPUSchedulingPriority") == "10"
    # Nice= does not apply to SCHED_RR; a value would only mislead.
    assert "Nice" not in controller["Service"]
    # ~@privileged would forbid chown(), which gives the socket to group treadmill.
    filters = " ".join(controller["Service"]["SystemCallFilter"])
    assert "@privileged" not in filters and "@chown" not in filters


def test_dashboard_has_no_devices(dashboard):
    assert "DeviceAllow" not in dashboard["Service"]
    assert one(dashboard, "PrivateDevices") == "yes"
    assert one(dashboard, "DevicePolicy") == "closed"
    assert one(dashboard, "User") == "treadmill-web"
    assert one(dashboard, "SupplementaryGroups") == "treadmill"
    assert one(dashboard, "Nice") == "5"
    assert one(dashboard, "RestrictAddressFamilies").split() == ["AF_UNIX", "AF_INET", "AF_INET6"]
    assert one(dashboard, "ExecStart") == f"{EXEC} web --config /etc/treadmill-safety/config.toml"
    assert one(dashboard, "After", "Unit").split() == ["network.target", CONTROLLER]
    assert one(dashboard, "Wants", "Unit") == CONTROLLER


def test_voice_has_the_sound_card_only_no_network_and_its_own_user(voice):
    assert one(voice, "User") == one(voice, "Group") == "treadmill-voice"
    # The controller's socket (group treadmill) and /dev/snd (group audio); nothing else.
    assert one(voice, "SupplementaryGroups").split() == ["treadmill", "audio"]
    assert one(voice, "ExecStart") == f"{EXEC} voice --config /etc/treadmill-safety/config.toml"
    assert one(voice, "DevicePolicy") == "closed"
    assert voice["Service"]["DeviceAllow"] == ["char-alsa rw"]
    assert "PrivateDevices" not in voice["Service"], "it would hide /dev/snd"
    assert one(voice, "RestrictAddressFamilies") == "AF_UNIX" and one(voice, "PrivateNetwork") == "yes"
    assert one(voice, "IPAddressDeny") == "any" and one(voice, "CapabilityBoundingSet") == ""
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "MemoryDenyWriteExecute", "ProtectKernelTunables",
                "ProtectKernelModules", "ProtectControlGroups", "RestrictNamespaces", "LockPersonality",
                "RestrictRealtime"):
        assert one(voice, key) == "yes", key
    assert one(voice, "ProtectSystem") == "strict"
    assert "ProcSubset" not in voice["Service"], "ALSA finds its cards in /proc/asound"
    # Below the controller (SCHED_RR), not below the dashboard (Nice=5).
    assert one(voice, "CPUSchedulingPolicy") == "other" and int(one(voice, "Nice")) < 5
    assert one(voice, "Restart") == "on-failure"
    assert one(voice, "After", "Unit").split() == ["sound.target", CONTROLLER]
    assert one(voice, "Wants", "Unit") == CONTROLLER


def test_replicator_runs_as_the_dashboards_user_below_it_with_no_devices(replicator, dashboard):
    """The dashboard's user (its audit trail, the clinic credential), a client of the socket, LAN only."""
    assert one(replicator, "User") == one(replicator, "Group") == one(dashboard, "User") == "treadmill-web"
    assert one(replicator, "SupplementaryGroups") == one(dashboard, "SupplementaryGroups") == "treadmill"
    assert one(replicator, "ExecStart") == f"{EXEC} replicate --config /etc/treadmill-safety/config.toml"
    # Exit 2: no [clinic] treadmill_id (or a bad config): restarting would not help.
    assert one(replicator, "Restart") == "on-failure"
    assert one(replicator, "RestartPreventExitStatus") == "2"
    # It reads the dashboard's audit trail and writes nothing of its own.
    assert one(replicator, "ReadOnlyPaths") == "/var/lib/" + one(dashboard, "StateDirectory")
    assert one(replicator, "ProtectSystem") == "strict"
    assert not any(key in replicator["Service"] for key in ("StateDirectory", "ReadWritePaths", "StateDirectoryMode"))
    assert "DeviceAllow" not in replicator["Service"]
    assert one(replicator, "PrivateDevices") == "yes" and one(replicator, "DevicePolicy") == "closed"
    assert one(replicator, "RestrictAddressFamilies").split() == ["AF_UNIX", "AF_INET", "AF_INET6"]
    assert one(replicator, "IPAddressDeny") == "any"
    assert one(replicator, "IPAddressAllow").split() == PRIVATE_RANGES
    assert one(dashboard, "IPAddressAllow").split() == PRIVATE_RANGES
    assert one(replicator, "CapabilityBoundingSet") == ""
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "MemoryDenyWriteExecute", "ProtectKernelTunables",
                "ProtectKernelModules", "ProtectControlGroups", "RestrictNamespaces", "LockPersonality",
                "RestrictRealtime"):
        assert one(replicator, key) == "yes", key
    # Replication may lag, a trip may not: below the controller (SCHED_RR) and the dashboard (Nice=5).
    assert "CPUSchedulingPriority" not in replicator["Service"]
    assert one(replicator, "CPUSchedulingPolicy") in ("other", "batch", "idle")
    assert int(one(replicator, "Nice")) > int(one(dashboard, "Nice"))
    assert one(replicator, "After", "Unit").split() == ["network-online.target", CONTROLLER]
    assert one(replicator, "Wants", "Unit").split() == ["network-online.target", CONTROLLER]


def test_the_voice_health_file_is_where_doctor_reads_it(voice):
    from voice.health import DEFAULT_HEALTH_FILE
    assert DEFAULT_HEALTH_FILE.parent == Path("/run") / one(voice, "RuntimeDirectory")
    assert one(voice, "RuntimeDirectoryMode") == "0755", "doctor runs as another user and reads it"
    assert one(voice, "CacheDirectory") == "treadmill-voice"


def test_units_match_the_example_config(controller, dashboard):
    """The directories systemd makes are the ones the config names, and the socket's group is the scheme's."""
    cfg = tomllib.loads((SYSTEMD / "config.example.toml").read_text())
    assert cfg["storage"]["state_dir"] == "/var/lib/" + one(controller, "StateDirectory")
    assert cfg["web"]["state_dir"] == "/var/lib/" + one(dashboard, "StateDirectory")
    socket = Path(cfg["web"]["ipc_socket"])
    assert socket.parent == Path("/run") / one(controller, "RuntimeDirectory")
    assert one(controller, "RuntimeDirectoryMode") == "0750"
    assert cfg["web"]["ipc_group"] == one(controller, "Group") == one(dashboard, "SupplementaryGroups")
    assert cfg["web"]["ipc_group"] in one(parse_unit(SYSTEMD / VOICE), "SupplementaryGroups").split()
    # The replicator reads the audit trail where the dashboard keeps it; the example joins no clinic.
    assert one(parse_unit(SYSTEMD / REPLICATOR), "ReadOnlyPaths") == cfg["web"]["state_dir"]
    assert cfg["clinic"]["treadmill_id"] == ""
    # The certificate and key install.sh generates; /etc stays readable under ProtectSystem=strict.
    assert (cfg["web"]["tls_cert"], cfg["web"]["tls_key"]) == (TLS_CERT, TLS_KEY)
    assert one(dashboard, "ProtectSystem") == "strict"
    assert not any(key in dashboard["Service"] for key in ("InaccessiblePaths", "TemporaryFileSystem"))


def test_udev_rule_names_the_adapter():
    text = (SYSTEMD / RULES).read_text()
    assert re.search(r'^#SUBSYSTEM=="tty", ATTRS\{idVendor\}=="0403", ATTRS\{idProduct\}=="6001", '
                     r'ATTRS\{serial\}=="[^"]+", SYMLINK\+="treadmill", GROUP="dialout", MODE="0660"$',
                     text, re.MULTILINE)
    assert "/dev/serial/by-id/" in text


# ---- install.sh with DESTDIR -----------------------------------------------------------


def install(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DESTDIR": str(root)}
    result = subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


TLS_CERT = "/etc/treadmill-safety/tls/dashboard.crt"
TLS_KEY = "/etc/treadmill-safety/tls/dashboard.key"
#: What install.sh would run to make the dashboard's certificate (nothing of it runs with DESTDIR).
CERTIFICATE_COMMANDS = (f"{EXEC} tls-cert --config /etc/treadmill-safety/config.toml",
                        f"chown root:treadmill-web {TLS_KEY}", f"chmod 0640 {TLS_KEY}")

EXPECTED = {
    "etc/systemd/system/" + CONTROLLER: SYSTEMD / CONTROLLER,
    "etc/systemd/system/" + DASHBOARD: SYSTEMD / DASHBOARD,
    "etc/systemd/system/" + VOICE: SYSTEMD / VOICE,
    "etc/systemd/system/" + REPLICATOR: SYSTEMD / REPLICATOR,
    "etc/udev/rules.d/" + RULES: SYSTEMD / RULES,
    "etc/treadmill-safety/config.toml": SYSTEMD / "config.example.toml",
}


def test_install_with_destdir_places_files_and_is_idempotent(tmp_path):
    root = tmp_path / "root"
    first = install(root)
    for rel, source in EXPECTED.items():
        target = root / rel
        assert target.read_bytes() == source.read_bytes(), rel
        assert stat.S_IMODE(target.stat().st_mode) == 0o644, rel
    for state in ("var/lib/treadmill-safety", "var/lib/treadmill-dashboard"):
        assert stat.S_IMODE((root / state).stat().st_mode) == 0o700, state
    # Nothing on the real system was touched: what needs it is only printed.
    for command in ("useradd --system", f"/opt/treadmill-safety/bin/pip install --require-hashes -r {REPO}/requirements-pi.lock",
                    "/opt/treadmill-safety/bin/pip install --no-deps", "systemctl daemon-reload",
                    "udevadm control --reload", f"systemctl enable {CONTROLLER} {DASHBOARD} {VOICE}"):
        assert re.search(rf"would run: {re.escape(command)}", first.stdout) or \
            (command == "useradd --system" and "treadmill-web" in first.stdout and "usermod" in first.stdout), command
    assert "installed /etc/treadmill-safety/config.toml" in first.stdout
    # The example config joins no clinic: the replicator is installed, not enabled, and the installer says how.
    assert not re.search(rf"would run: systemctl enable .*{REPLICATOR}", first.stdout)
    assert f"{REPLICATOR} is installed but left disabled" in first.stdout
    assert f"sudo systemctl enable --now {REPLICATOR}" in first.stdout
    # The certificate: generated after the program is installed, its key given to the dashboard's group.
    lines = first.stdout.splitlines()
    at = [next(i for i, ln in enumerate(lines) if ln.endswith(f"would run: {c}")) for c in CERTIFICATE_COMMANDS]
    assert at == sorted(at), "tls-cert first, then chown and chmod of its key"
    assert at[0] > next(i for i, ln in enumerate(lines) if "/opt/treadmill-safety/bin/pip install --no-deps" in ln)
    assert f"Certificate: none at {TLS_CERT}; generating a self-signed one" in first.stdout
    assert "fingerprint" in first.stdout and "tls-cert --force" in first.stdout
    assert (root / "etc/treadmill-safety/tls").is_dir() and list((root / "etc/treadmill-safety/tls").iterdir()) == []
    # The voice's user: in the socket's group and the audio group; its language checked after the program.
    assert re.search(r"would run: useradd --system --gid treadmill-voice --groups treadmill\\,audio .* treadmill-voice$",
                     first.stdout, re.MULTILINE) or "usermod --append --groups treadmill,audio treadmill-voice" \
        in first.stdout
    say_all = next(i for i, ln in enumerate(lines) if "voice --say-all --wav-dir" in ln)
    assert say_all > next(i for i, ln in enumerate(lines) if "/opt/treadmill-safety/bin/pip install --no-deps" in ln)

    config = root / "etc/treadmill-safety/config.toml"
    config.write_text(config.read_text() + "\n# edited by the installer\n")
    edited = config.read_text()
    second = install(root)
    assert config.read_text() == edited
    assert "kept the existing /etc/treadmill-safety/config.toml" in second.stdout
    for rel, source in EXPECTED.items():
        if rel != "etc/treadmill-safety/config.toml":
            assert (root / rel).read_bytes() == source.read_bytes(), rel


def test_uninstall_with_destdir_keeps_config_and_state(tmp_path):
    root = tmp_path / "root"
    install(root)
    config = root / "etc/treadmill-safety/config.toml"
    config.write_text("# the clinic's config\n")
    result = install(root, "--uninstall")
    for rel in [*("etc/systemd/system/" + name for name in UNITS), "etc/udev/rules.d/" + RULES,
                "opt/treadmill-safety"]:
        assert not (root / rel).exists(), rel
    assert config.read_text() == "# the clinic's config\n"
    assert (root / "var/lib/treadmill-safety").is_dir() and (root / "var/lib/treadmill-dashboard").is_dir()
    assert "Kept: /etc/treadmill-safety/" in result.stdout
    assert f"would run: systemctl disable --now {' '.join(UNITS)}" in result.stdout
    # Uninstalling twice is harmless too: nothing is left to disable (systemctl would fail on a missing unit).
    again = install(root, "--uninstall")
    assert "systemctl disable" not in again.stdout


def test_uninstall_disables_only_the_units_an_older_install_left(tmp_path):
    """An install from before the replicator has three units: systemctl is not asked about a fourth."""
    root = tmp_path / "root"
    install(root)
    (root / "etc/systemd/system" / REPLICATOR).unlink()
    result = install(root, "--uninstall")
    assert f"would run: systemctl disable --now {CONTROLLER} {DASHBOARD} {VOICE}\n" in result.stdout


def test_install_rejects_unknown_arguments(tmp_path):
    env = {**os.environ, "DESTDIR": str(tmp_path)}
    result = subprocess.run(["bash", str(INSTALL), "--bogus"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2 and "unknown argument: --bogus" in result.stderr


def test_install_keeps_a_certificate_that_exists_and_makes_none(tmp_path):
    """The clinic's own certificate (or one made before) is never replaced, its key never touched."""
    root = tmp_path / "root"
    tls = root / "etc/treadmill-safety/tls"
    tls.mkdir(parents=True)
    (tls / "dashboard.crt").write_text("the clinic's certificate\n")
    (tls / "dashboard.key").write_text("the clinic's key\n")
    (tls / "dashboard.key").chmod(0o600)
    result = install(root)
    assert f"Certificate: kept the existing {TLS_CERT} (never overwritten)" in result.stdout
    assert "tls-cert" not in result.stdout.replace("tls-cert --force", "")
    assert not any(f"would run: {c}" in result.stdout for c in CERTIFICATE_COMMANDS)
    assert (tls / "dashboard.crt").read_text() == "the clinic's certificate\n"
    assert (tls / "dashboard.key").read_text() == "the clinic's key\n"
    assert stat.S_IMODE((tls / "dashboard.key").stat().st_mode) == 0o600


def test_install_warns_when_the_kept_config_names_no_certificate(tmp_path):
    """An older config (before HTTPS) is kept as it is: the installer says which two lines to add."""
    root = tmp_path / "root"
    config = root / "etc/treadmill-safety/config.toml"
    config.parent.mkdir(parents=True)
    text = (SYSTEMD / "config.example.toml").read_text()
    config.write_text("\n".join(ln for ln in text.splitlines() if not ln.startswith("tls_")) + "\n")
    result = install(root)
    assert "[web] tls_cert and tls_key are not set" in result.stderr
    assert f'tls_cert = "{TLS_CERT}"' in result.stderr and f'tls_key = "{TLS_KEY}"' in result.stderr
    assert not any(f"would run: {c}" in result.stdout for c in CERTIFICATE_COMMANDS)


# ---- install.sh and the clinic record ------------------------------------------------------

CLINIC_PASSWORD = "/etc/treadmill-safety/clinic-password"
CLINIC_CA = "/etc/treadmill-safety/clinic-ca.crt"
CLINIC_STATUS = f"sudo -u treadmill-web {EXEC} clinic status --config /etc/treadmill-safety/config.toml"


def clinic_config(root: Path, **clinic: str) -> Path:
    """The example config under ``root`` with these [clinic] options set (each must be in the example)."""
    text = (SYSTEMD / "config.example.toml").read_text()
    head, sep, section = text.partition("\n[clinic]\n")
    assert sep, "the example config has a [clinic] section"
    for key, value in clinic.items():
        section, count = re.subn(rf"^{key} = .*$", f'{key} = "{value}"', section, count=1, flags=re.MULTILINE)
        assert count == 1, f"[clinic] {key} is not in the example"
    config = root / "etc/treadmill-safety/config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(head + sep + section)
    assert tomllib.loads(config.read_text())["clinic"]["treadmill_id"] == clinic.get("treadmill_id", "")
    return config


def test_install_leaves_the_replicator_disabled_without_a_treadmill_id(tmp_path):
    """A config with an empty [clinic] treadmill_id (or none at all) joins no clinic record."""
    for config_text in (None, "# an older config without [clinic]\n"):
        root = tmp_path / ("empty" if config_text is None else "older")
        config = clinic_config(root, treadmill_id="")
        if config_text is not None:
            config.write_text(config_text)
        result = install(root)
        assert (root / "etc/systemd/system" / REPLICATOR).read_bytes() == (SYSTEMD / REPLICATOR).read_bytes()
        assert f"would run: systemctl enable {CONTROLLER} {DASHBOARD} {VOICE}\n" in result.stdout
        assert REPLICATOR not in "".join(ln for ln in result.stdout.splitlines(True) if "would run:" in ln)
        assert "[clinic] treadmill_id is empty" in result.stdout
        assert f"put the password in {CLINIC_PASSWORD} (root:treadmill-web 0640)" in result.stdout
        assert f"sudo systemctl enable --now {REPLICATOR}" in result.stdout
        assert f"systemctl start {CONTROLLER} {DASHBOARD} {VOICE}\n" in result.stdout
        assert "clinic status" not in result.stdout and "clinic" not in result.stderr


def test_install_enables_the_replicator_for_a_clinics_treadmill(tmp_path):
    root = tmp_path / "root"
    clinic_config(root, treadmill_id="room-2", dsn="host=db.clinic.lan dbname=treadmills user=treadmill_room2",
                  password_file=CLINIC_PASSWORD, sslrootcert=CLINIC_CA)
    first = install(root)
    assert f'Clinic record: this is treadmill "room-2"; {REPLICATOR} is enabled' in first.stdout
    lines = first.stdout.splitlines()
    enable = [i for i, ln in enumerate(lines) if "would run: systemctl enable" in ln]
    assert [lines[i].split("systemctl enable ")[1] for i in enable] == [f"{CONTROLLER} {DASHBOARD} {VOICE}", REPLICATOR]
    # The password file: not there yet, so the installer says how to make it (it never writes or reads it).
    assert f"[clinic] password_file {CLINIC_PASSWORD} does not exist" in first.stderr
    assert f"sudo install -m 0640 -o root -g treadmill-web /dev/null {CLINIC_PASSWORD}" in first.stderr
    assert not (root / CLINIC_PASSWORD.lstrip("/")).exists()
    assert f"[clinic] sslrootcert {CLINIC_CA} does not exist" in first.stderr
    assert CLINIC_STATUS in first.stdout
    assert f"systemctl start {CONTROLLER} {DASHBOARD} {VOICE} {REPLICATOR}\n" in first.stdout

    # Run again once the files are there: the same units enabled, nothing to warn about the clinic.
    for rel, text in ((CLINIC_PASSWORD, "secret\n"), (CLINIC_CA, "the clinic's CA\n")):
        (root / rel.lstrip("/")).write_text(text)
    (root / CLINIC_PASSWORD.lstrip("/")).chmod(0o640)
    second = install(root)
    assert [ln for ln in second.stdout.splitlines() if "systemctl enable" in ln] == [lines[i] for i in enable]
    assert f"Password file: {CLINIC_PASSWORD} present" in second.stdout
    assert "clinic" not in second.stderr and "secret" not in second.stdout + second.stderr
    assert (root / CLINIC_PASSWORD.lstrip("/")).read_text() == "secret\n"
    assert CLINIC_STATUS in second.stdout


def test_install_warns_when_verify_full_has_no_ca(tmp_path):
    """sslmode verify-full without sslrootcert: libpq would look in the home treadmill-web has not got."""
    root = tmp_path / "root"
    clinic_config(root, treadmill_id="room-2", dsn="host=db.clinic.lan dbname=treadmills user=treadmill_room2")
    result = install(root)
    assert "[clinic] sslrootcert is empty with sslmode verify-full" in result.stderr
    assert "[clinic] password_file is empty" in result.stdout
    assert f"would run: systemctl enable {REPLICATOR}\n" in result.stdout


def test_install_help_shows_the_whole_header():
    result = subprocess.run(["bash", str(INSTALL), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.startswith("Install (or uninstall) treadmill-safety as four systemd services")
    assert "clinic status" in result.stdout and "--uninstall" in result.stdout
    assert result.stdout.rstrip().endswith("is printed, not done; no root needed.")
    assert "set -euo" not in result.stdout
