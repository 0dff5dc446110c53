"""HIL: ``treadmill-safety doctor`` against simulated hardware.

The same parts SimBench wires up, without its controller: the VL53L0X register
model on a SimI2C with each chip's power bound to its XSHUT pin and its GPIO1
output to its interrupt pin, a MockFactory, and the treadmill emulator on a pty.
The E-stop is a normally-closed contact to ground, modelled as a mock pin that
the panel's pull-up cannot lift while the contact is closed (the doctor opens
the panel itself, so a drive_low() before would be undone by the pull-up, and
one after would come too late).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from controller.config import Config
from controller.doctor.context import Report
from controller.doctor.dashboard import check_certificate
from controller.doctor.runner import main_doctor, run_checks
from sim.bench import sim_config
from hardware.sim.pins import watch_pin
from hardware.sim.treadmill import TreadmillEmulator
from hardware.sim.vl53l0x import SimI2C, SimVL53L0X, bind_gpio1, bind_xshut
from web.tls import build_self_signed, fingerprint_sha256, generate_self_signed


class NCContactPin(MockPWMPin):
    """An input wired through a normally-closed contact to GND: the pull-up only wins while it is open."""

    contact_closed = True

    def drive_high(self) -> None:
        if not self.contact_closed:
            super().drive_high()

    def open_contact(self) -> None:
        self.contact_closed = False
        if self.function == "input":
            self.drive_high()


class Rig:
    """Simulated sensors, pins and treadmill for one doctor run."""

    def __init__(self, tmp_path: Path, protocol: str = "trackmaster"):
        (tmp_path / "state").mkdir(parents=True)
        cfg = sim_config(tmp_path / "state", protocol=protocol)
        # The dashboard's certificate, as `make install` generates it (mode and owner aside).
        self.cert, self.key = tmp_path / "tls" / "dashboard.crt", tmp_path / "tls" / "dashboard.key"
        generate_self_signed(self.cert, self.key, ["localhost"], ["127.0.0.1"])
        self.cfg: Config = dataclasses.replace(cfg, web=dataclasses.replace(cfg.web, tls_cert=str(self.cert),
                                                                            tls_key=str(self.key)))
        self.factory = MockFactory(pin_class=MockPWMPin)
        self.bus = SimI2C()
        self.chips: dict[str, SimVL53L0X] = {}
        for i, s in enumerate(self.cfg.sensors):
            chip = self.bus.add_chip(distance_mm=800.0 + 20 * i)
            bind_xshut(self.factory, s.xshut_pin, chip)
            if s.interrupt_pin is not None:
                bind_gpio1(self.factory, s.interrupt_pin, chip)
            self.chips[s.id] = chip
        g = self.cfg.gpio
        self.estop = self.factory.pin(g.estop_pin, pin_class=NCContactPin)
        #: The relay pin's levels, one entry per change (True = high).
        self.relay_levels: list[bool] = []
        watch_pin(self.factory, g.relay_pin, self._relay_level)
        self.emulator = TreadmillEmulator(protocol, link_path=tmp_path / "treadmill-tty",
                                          baudrate=self.cfg.treadmill.baudrate).start()
        self.lines: list[str] = []
        self.i2c_factory = lambda bus: self.bus
        self.smbus_factory = lambda bus: self.bus.smbus()
        self.pin_factory_factory = lambda name: self.factory

    def _relay_level(self, level: bool) -> None:
        if not self.relay_levels or self.relay_levels[-1] != level:
            self.relay_levels.append(level)

    def run(self, *, relay_test: bool = False) -> bool:
        assert self.cfg.gpio.pin_factory == "mock"
        return run_checks(self.cfg, i2c_factory=self.i2c_factory, smbus_factory=self.smbus_factory,
                          pin_factory_factory=self.pin_factory_factory, port=str(self.emulator.link_path),
                          relay_test=relay_test, out=self.lines.append)

    def line(self, check: str) -> str:
        found = [ln for ln in self.lines if ln.split(" ", 1)[1].startswith(f"{check}:")]
        assert len(found) == 1, f"{check!r}: {found} in\n" + "\n".join(self.lines)
        return found[0]

    def failed(self) -> list[str]:
        return [ln for ln in self.lines if ln.startswith("FAIL ")]

    def close(self) -> None:
        self.emulator.close()
        self.bus.close()  # the register models' clock, which drives their GPIO1 lines
        self.factory.reset()
        self.factory.close()


@pytest.fixture
def make_rig(tmp_path):
    rigs: list[Rig] = []
    saved = Device.pin_factory

    def make(protocol: str = "trackmaster") -> Rig:
        rig = Rig(tmp_path / f"rig{len(rigs)}", protocol)
        rigs.append(rig)
        return rig

    try:
        yield make
    finally:
        for rig in rigs:
            rig.close()
        Device.pin_factory = saved


@pytest.fixture
def rig(make_rig) -> Rig:
    return make_rig()


EXPECTED_CHECKS = [
    "config valid", "I2C bus present", "VL53L0X 'left' at 0x30", "VL53L0X 'right' at 0x31",
    "XSHUT addressing works for 2 sensors", "first sample 'left'", "first sample 'right'",
    "interrupt wire 'left' (GPIO22)", "interrupt wire 'right' (GPIO26)",
    "serial port opens exclusively", "treadmill answers", "GPIO pins claimable", "E-stop circuit closed",
    "relay click test", "heartbeat pin toggling", "state directory writable", "dashboard certificate",
]


def checks_of(lines: list[str]) -> list[str]:
    return [ln.split(" ", 1)[1].split(":", 1)[0] for ln in lines]


def assert_released(rig: Rig) -> None:
    """Relay never left energized, sensors powered down, serial port free again."""
    assert not rig.relay_levels or rig.relay_levels[-1] is False
    assert all(not chip.powered for chip in rig.chips.values())
    import serial
    with serial.Serial(str(rig.emulator.link_path), exclusive=True, timeout=0):
        pass


def test_healthy_bench_passes_every_check(rig):
    assert rig.run() is True
    assert checks_of(rig.lines) == EXPECTED_CHECKS
    for ln in rig.lines:
        if ln.startswith("SKIP "):
            assert ln == "SKIP relay click test: run with --relay-test"
        else:
            assert ln.startswith("PASS "), ln
    assert "SKIP relay click test: run with --relay-test" in rig.lines
    assert "identity 0xEE" in rig.line("VL53L0X 'left' at 0x30")
    assert "800 mm, status 11" in rig.line("first sample 'left'")
    for sensor_id, pin in (("left", "GPIO22"), ("right", "GPIO26")):
        line = rig.line(f"interrupt wire {sensor_id!r} ({pin})")
        assert re.match(rf"PASS interrupt wire '{sensor_id}' \({pin}\): [4-9] samples on falling edges of {pin} "
                        r"in \d+ ms \(period 34 ms, measured 3[34]\.\d ms\)$", line), line
    assert "C0 belt status stopped" in rig.line("treadmill answers")
    # The relay was never energized without --relay-test; the belt got no command at all.
    assert True not in rig.relay_levels
    assert rig.emulator.commands(include_status_requests=False) == []
    assert_released(rig)
    assert list(Path(rig.cfg.storage.state_dir).iterdir()) == []  # the probe file is gone


def test_relay_click_test_energizes_then_drops(rig):
    assert rig.run(relay_test=True) is True
    assert all(ln.startswith("PASS ") for ln in rig.lines), rig.lines
    assert rig.line("relay click test").startswith("PASS relay click test: relay on GPIO23 energized for 0.5 s")
    assert rig.relay_levels == [False, True, False]
    assert_released(rig)


def test_speed_sensor_lines(make_rig):
    rig = make_rig("speed-sensor")
    assert rig.run() is True, rig.lines
    assert rig.line("speed lines arrive").startswith("PASS speed lines arrive: 0.0 km/h")


def test_missing_sensor(rig):
    rig.chips["left"].inject_fault("absent")
    assert rig.run() is False
    line = rig.line("VL53L0X 'left' at 0x30")
    assert line.startswith("FAIL VL53L0X 'left' at 0x30: ToF sensor 'left' at 0x29 on I2C bus 1 did not answer")
    assert line.endswith("— hint: check sensor 'left': VIN/GND/SDA/SCL and its XSHUT wire to GPIO17")
    # Bring-up stops at the first failure: the rest is reported as not checked, never as passed.
    assert rig.line("VL53L0X 'right' at 0x31").startswith("FAIL VL53L0X 'right' at 0x31: not checked")
    assert rig.line("first sample 'left'").startswith("FAIL first sample 'left': not checked")
    assert rig.line("treadmill answers").startswith("PASS ")
    assert rig.line("state directory writable").startswith("PASS ")
    assert_released(rig)


def test_wrong_chip(rig):
    rig.chips["right"].inject_fault("wrong_chip")
    assert rig.run() is False
    assert rig.line("VL53L0X 'left' at 0x30").startswith("PASS ")
    line = rig.line("VL53L0X 'right' at 0x31")
    assert "is not a VL53L0X: model id register 0xC0 reads 0x00, expected 0xEE" in line
    assert "— hint: the device answering for sensor 'right' is not a VL53L0X" in line
    assert rig.line("XSHUT addressing works for 2 sensors").startswith("FAIL ")
    assert_released(rig)


def test_no_target_in_view(rig):
    rig.chips["right"].set_distance(None)
    assert rig.run() is False
    assert [checks_of([ln])[0] for ln in rig.failed()] == ["first sample 'right'"]
    line = rig.line("first sample 'right'")
    assert line.startswith("FAIL first sample 'right': no target in view (8190 mm")
    assert "— hint: aim sensor 'right'" in line


WIRE_FAULTS = [
    # (fault, what the wire check says). A broken wire withholds every sample, so the first
    # sample fails too; a line stuck low lets one sample through (read without an edge).
    ("gpio1_broken", "while a sample waits (I2C answers): check the GPIO1 wire"),
    ("gpio1_stuck_low", "interrupt line stuck low; check the GPIO1 wire for a short to ground"),
]


@pytest.mark.parametrize("kind,says", WIRE_FAULTS, ids=[f[0] for f in WIRE_FAULTS])
def test_broken_interrupt_wire(rig, kind, says):
    rig.chips["left"].inject_fault(kind)
    assert rig.run() is False
    line = rig.line("interrupt wire 'left' (GPIO22)")
    assert line.startswith("FAIL interrupt wire 'left' (GPIO22): ToF sensor 'left' at 0x30: interrupt_pin GPIO22 "
                           "gave no falling edge for "), line
    assert f"{says} — hint: check the wire from GPIO1 of sensor 'left' to GPIO22" in line
    assert "remove interrupt_pin from [[sensors]] id = 'left' to poll the sensor" in line
    assert rig.line("interrupt wire 'right' (GPIO26)").startswith("PASS ")
    failed = [checks_of([ln])[0] for ln in rig.failed()]
    if kind == "gpio1_broken":
        assert failed == ["first sample 'left'", "interrupt wire 'left' (GPIO22)"]
        first = rig.line("first sample 'left'")
        assert "GPIO22" in first and "— hint: check the wire from GPIO1 of sensor 'left' to GPIO22" in first
    else:
        assert failed == ["interrupt wire 'left' (GPIO22)"]
        assert "for a short to ground" in line
    assert_released(rig)


def test_silent_treadmill(rig):
    rig.emulator.silence()
    assert rig.run() is False
    assert rig.line("serial port opens exclusively").startswith("PASS ")
    line = rig.line("treadmill answers")
    assert line.startswith("FAIL treadmill answers: no answer to C0 (belt status)")
    assert "— hint: check the treadmill is switched on" in line
    assert [checks_of([ln])[0] for ln in rig.failed()] == ["treadmill answers"]
    assert_released(rig)


def test_serial_port_held_by_another_program(rig):
    import serial
    with serial.Serial(str(rig.emulator.link_path), exclusive=True, timeout=0):
        assert rig.run() is False
    line = rig.line("serial port opens exclusively")
    assert line.startswith("FAIL serial port opens exclusively: cannot open")
    assert "— hint: another program holds the port" in line
    assert rig.line("treadmill answers").startswith("FAIL treadmill answers: not checked")


def test_open_estop(rig):
    rig.estop.open_contact()
    assert rig.run() is False
    assert rig.line("E-stop circuit closed") == (
        "FAIL E-stop circuit closed: GPIO25 reads high (open) — hint: the NC E-stop contact reads open: "
        "check the button is released and its wire to GPIO25 and GND")
    assert [checks_of([ln])[0] for ln in rig.failed()] == ["E-stop circuit closed"]
    assert_released(rig)


def test_read_only_state_dir(rig, tmp_path):
    blocker = tmp_path / "a-regular-file"
    blocker.write_text("not a directory")
    rig.cfg = dataclasses.replace(rig.cfg, storage=dataclasses.replace(rig.cfg.storage,
                                                                       state_dir=str(blocker / "state")))
    assert rig.run() is False
    line = rig.line("state directory writable")
    assert line.startswith(f"FAIL state directory writable: cannot create {blocker}/state: "
                           f"{blocker} is not a directory")
    assert "— hint: point [storage] state_dir at a directory the service user owns" in line
    assert [checks_of([ln])[0] for ln in rig.failed()] == ["state directory writable"]


def test_missing_state_dir_is_probed_in_its_parent_and_not_created(rig, tmp_path):
    state_dir = tmp_path / "not-yet" / "state"
    rig.cfg = dataclasses.replace(rig.cfg, storage=dataclasses.replace(rig.cfg.storage, state_dir=str(state_dir)))
    assert rig.run() is True
    assert rig.line("state directory writable") == (
        f"PASS state directory writable: {state_dir} does not exist yet; the controller creates it in "
        f"{tmp_path}, where a file was created, written, fsynced and removed")
    assert not state_dir.parent.exists()


def test_factories_that_fail_are_fail_lines(rig):
    def no_bus(bus):
        raise FileNotFoundError(2, "No such file or directory", f"/dev/i2c-{bus}")

    def no_gpio(name):
        raise RuntimeError("lgpio: cannot open gpiochip")

    rig.i2c_factory = no_bus
    rig.pin_factory_factory = no_gpio
    assert rig.run(relay_test=True) is False
    assert checks_of(rig.lines) == EXPECTED_CHECKS
    assert rig.line("I2C bus present").startswith("FAIL I2C bus present: cannot open I2C bus 1 (/dev/i2c-1)")
    assert "— hint: enable I2C" in rig.line("I2C bus present")
    assert rig.line("GPIO pins claimable").startswith(
        "FAIL GPIO pins claimable: pin factory 'mock' did not load: lgpio: cannot open gpiochip")
    for check in ("E-stop circuit closed", "relay click test", "heartbeat pin toggling"):
        assert rig.line(check).startswith(f"FAIL {check}: not checked")
    assert rig.line("treadmill answers").startswith("PASS ")
    assert rig.relay_levels == []


def test_main_doctor_invalid_config_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('[treadmill]\nprotocol = "nonsense"\n')
    assert main_doctor(str(path), False) == 2
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"FAIL config valid: {path}: ")
    assert "— hint: fix them" in out[0]
    assert any("protocol" in ln for ln in out[1:])


# ---- the dashboard's certificate -------------------------------------------------------------


def test_the_certificate_line_gives_names_expiry_and_the_fingerprint(rig):
    assert rig.run() is True
    line = rig.line("dashboard certificate")
    assert re.fullmatch(rf"PASS dashboard certificate: {re.escape(str(rig.cert))} for localhost, 127\.0\.0\.1; "
                        r"valid until \d{4}-\d\d-\d\d \(18\d\d days\); self-signed: check this fingerprint once "
                        rf"on each tablet; SHA-256 {fingerprint_sha256(rig.cert)}; key {re.escape(str(rig.key))} "
                        r"\(\S+ 0600\) matches", line), line


def test_plain_http_is_a_fail_with_the_command_that_makes_a_certificate(rig):
    rig.cfg = dataclasses.replace(rig.cfg, web=dataclasses.replace(rig.cfg.web, tls_cert="", tls_key=""))
    assert rig.run() is False
    assert [checks_of([ln])[0] for ln in rig.failed()] == ["dashboard certificate"]
    line = rig.line("dashboard certificate")
    assert line.startswith("FAIL dashboard certificate: [web] tls_cert and tls_key are empty: the dashboard "
                           "serves plain HTTP")
    assert "— hint: generate a self-signed certificate with `sudo treadmill-safety tls-cert --config " in line


def certificate_line(rig: Rig) -> str:
    """The doctor's certificate check alone, on the rig's config."""
    lines: list[str] = []
    report = Report(lines.append)
    check_certificate(rig.cfg, report)
    assert len(lines) == 1 and report.failed == lines[0].startswith("FAIL "), lines
    return lines[0]


def write_pair(cert, key, **when) -> None:
    from cryptography.hazmat.primitives import serialization
    private, certificate = build_self_signed(["localhost"], [], **when)
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    key.chmod(0o600)
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def test_a_missing_certificate_is_a_fail_naming_the_file(rig):
    rig.cert.unlink()
    line = certificate_line(rig)
    assert line.startswith(f"FAIL dashboard certificate: certificate {rig.cert} cannot be read: "
                           "No such file or directory — hint: check [web] tls_cert, or generate")


def test_an_expired_certificate_is_a_fail_with_how_to_renew(rig):
    import datetime as dt
    write_pair(rig.cert, rig.key, now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40), valid_days=30)
    line = certificate_line(rig)
    assert re.match(rf"FAIL dashboard certificate: {re.escape(str(rig.cert))} expired on \d{{4}}-\d\d-\d\d: "
                    r"browsers refuse it — hint: make a new one with `sudo treadmill-safety tls-cert --config "
                    r"<this config> --force`", line), line


def test_a_certificate_from_the_future_is_a_fail_about_the_clock(rig):
    import datetime as dt
    write_pair(rig.cert, rig.key, now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30))
    line = certificate_line(rig)
    assert "is valid only from" in line and "— hint: set the clock" in line, line


def test_a_key_of_another_pair_is_a_fail_naming_both_files(rig, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    write_pair(other / "c.pem", other / "k.pem")
    rig.cfg = dataclasses.replace(rig.cfg, web=dataclasses.replace(rig.cfg.web, tls_key=str(other / "k.pem")))
    line = certificate_line(rig)
    assert line.startswith(f"FAIL dashboard certificate: private key {other / 'k.pem'} does not belong to "
                           f"certificate {rig.cert}"), line


def test_a_key_other_users_may_read_is_a_fail_with_the_chmod(rig):
    rig.key.chmod(0o644)
    line = certificate_line(rig)
    assert "other users of this Pi may read or change it" in line
    assert line.endswith(f"— hint: sudo chown root:treadmill-web {rig.key} && sudo chmod 0640 {rig.key}")


def test_a_missing_key_is_a_fail_naming_it(rig):
    rig.key.unlink()
    line = certificate_line(rig)
    assert line.startswith(f"FAIL dashboard certificate: private key {rig.key} cannot be read: "
                           "No such file or directory"), line
