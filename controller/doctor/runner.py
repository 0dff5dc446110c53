"""``treadmill-safety doctor``: a hardware self-test for the installer.

Runs every check the controller depends on, against the hardware the config
names, and prints one line per check::

    PASS <check>: <detail>
    FAIL <check>: <what is wrong> — hint: <what to fix>
    SKIP relay click test: run with --relay-test

The seams are factories, so that failing to open the I2C bus or the pin
factory is a FAIL line rather than an exception: production passes the real
ones (``main_doctor``), the tests the simulation's. Checks never raise; the
relay is energized only by the click test (``--relay-test``) and everything
opened is closed again, relay first, whatever happens.

Checks of the processes beside the controller (the voice) come in as
``extra_checks``, wired by the command line: the controller package knows
nothing of them.

This module runs the checks in order and closes what was opened; the checks
live in ``sensors`` (I2C bus, VL53L0X), ``panel`` (serial link, GPIO), each
reading the run's config, report and pin factory from one ``DoctorContext``,
and ``dashboard`` (the dashboard's TLS certificate, with its fingerprint).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from controller.config import Config, ConfigError, load_config
from controller.doctor.context import (
    SERVICE_USER,
    DoctorContext,
    LazyPinFactory,
    Out,
    Report,
    exc_text,
    log,
)
from controller.doctor.dashboard import CHECK as CERTIFICATE_CHECK, check_certificate
from controller.doctor.panel import PanelChecks
from controller.doctor.sensors import SensorChecks
from hardware.io import make_pin_factory

#: A check of another process's part: its name and a function that prints its line(s) through the report.
ExtraCheck = tuple[str, Callable[[Config, Report], None]]


class Doctor:
    """One doctor run: the checks in order, the report they print, and closing what they opened."""

    def __init__(self, cfg: Config, *, i2c_factory: Callable[[int], Any], smbus_factory: Callable[[int], Any],
                 pin_factory_factory: Callable[[str], Any], port: str | None, relay_test: bool, out: Out,
                 extra_checks: Sequence[ExtraCheck] = ()):
        self._cfg = cfg
        self._extra = tuple(extra_checks)
        self._port = port or cfg.treadmill.port
        self._report = Report(out)
        self._pins = LazyPinFactory(cfg.gpio.pin_factory, pin_factory_factory)
        ctx = DoctorContext(cfg, self._report, self._pins)
        self._sensors = SensorChecks(ctx, i2c_factory=i2c_factory, smbus_factory=smbus_factory)
        self._panel = PanelChecks(ctx, port=self._port, relay_test=relay_test)

    def run(self) -> bool:
        """Run every check, then close everything; True only if nothing FAILed."""
        guarded = self._report.guarded
        try:
            guarded("config valid", self.check_config)
            guarded("I2C bus present", self._sensors.check_bus)
            self._sensors.check_sensors()
            self._panel.check_belt()
            guarded("GPIO pins claimable", self._panel.check_gpio)
            guarded("E-stop circuit closed", self._panel.check_estop)
            guarded("relay click test", self._panel.check_relay)
            guarded("heartbeat pin toggling", self._panel.check_heartbeat)
            guarded("state directory writable", self.check_state_dir)
            guarded(CERTIFICATE_CHECK, lambda: check_certificate(self._cfg, self._report))
            for name, check in self._extra:
                guarded(name, lambda check=check: check(self._cfg, self._report))
        finally:
            self.close()
        return not self._report.failed

    def close(self) -> None:
        """Relay off first, then every other part, each on its own."""
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("relay", self._panel.drop_relay),
            ("belt link", self._panel.close_belt),
            ("sensors", self._sensors.close_sensors),
            ("GPIO panel", self._panel.close_panel),
            ("smbus", self._sensors.close_smbus),
            ("I2C bus", self._sensors.close_i2c),
            ("pin factory", self._pins.close),
        ]
        for name, step in steps:
            try:
                step()
            except Exception:  # noqa: BLE001 - every part gets its chance to close
                log.exception("doctor: closing the %s failed", name)

    # ---- 1. config -------------------------------------------------------------------

    def check_config(self) -> None:
        """PASS with a summary of the config (it was loaded and checked before the run)."""
        c = self._cfg
        detail = (f"{len(c.sensors)} sensor(s), protocol {c.treadmill.protocol} on {self._port}, "
                  f"I2C bus {c.i2c.bus}, pin factory {c.gpio.pin_factory}")
        if c.warnings:
            detail += f", {len(c.warnings)} warning(s): " + "; ".join(c.warnings)
        self._report.ok("config valid", detail)

    # ---- 10. state directory ---------------------------------------------------------

    def check_state_dir(self) -> None:
        """Create, write, fsync and remove a file where the controller keeps its state."""
        report = self._report
        check = "state directory writable"
        path = Path(self._cfg.storage.state_dir)
        hint = (f"point [storage] state_dir at a directory the service user owns "
                f"(sudo install -d -o {SERVICE_USER} -g {SERVICE_USER} {path})")
        # A directory that does not exist yet is created by the controller (and systemd's
        # StateDirectory=): the doctor leaves no trace, so it probes the nearest existing parent.
        probe_dir = path
        while not probe_dir.exists() and probe_dir.parent != probe_dir:
            probe_dir = probe_dir.parent
        if not probe_dir.is_dir():
            report.fail(check, f"cannot create {path}: {probe_dir} is not a directory", hint)
            return
        try:
            fd, name = tempfile.mkstemp(prefix=".doctor-", dir=probe_dir)
            try:
                os.write(fd, b"treadmill-safety doctor\n")
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(name)
        except OSError as exc:
            report.fail(check, f"cannot create, write and remove a file in {probe_dir}: {exc_text(exc)}", hint)
            return
        if probe_dir == path:
            report.ok(check, f"{path}: a file was created, written, fsynced and removed")
        else:
            report.ok(check, f"{path} does not exist yet; the controller creates it in {probe_dir}, where a file "
                             "was created, written, fsynced and removed")


def run_checks(cfg: Config, *, i2c_factory: Callable[[int], Any], smbus_factory: Callable[[int], Any],
               pin_factory_factory: Callable[[str], Any], port: str | None = None, relay_test: bool = False,
               out: Out = print, extra_checks: Sequence[ExtraCheck] = ()) -> bool:
    """Check the hardware ``cfg`` names, one line per check through ``out``; True only if nothing FAILed.

    ``i2c_factory(bus)`` returns a busio-like I2C bus, ``smbus_factory(bus)`` an smbus2-like
    handle, ``pin_factory_factory(name)`` a gpiozero pin factory; failures of any of them
    are FAIL lines. ``port`` overrides [treadmill] port. ``extra_checks`` run last, each guarded.
    Everything opened is closed again, the relay de-energized first.
    """
    return Doctor(cfg, i2c_factory=i2c_factory, smbus_factory=smbus_factory,
                  pin_factory_factory=pin_factory_factory, port=port, relay_test=relay_test, out=out,
                  extra_checks=extra_checks).run()


def _real_i2c(bus: int) -> Any:
    from adafruit_extended_bus import ExtendedI2C  # only on the Pi, with the "pi" extra
    return ExtendedI2C(bus)


def _real_smbus(bus: int) -> Any:
    import smbus2
    return smbus2.SMBus(bus)


def main_doctor(config_path: str, relay_test: bool, extra_checks: Sequence[ExtraCheck] = ()) -> int:
    """The production entry: real hardware; 0 if every check passed, 1 if any failed, 2 for a bad config."""
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        print(f"FAIL config valid: {config_path}: {len(exc.errors)} error(s) — hint: fix them, then check with "
              f"treadmill-safety check-config {config_path}")
        for err in exc.errors:
            print(f"  {err}")
        return 2
    # Every problem is a FAIL line; the drivers' own log lines would only repeat them.
    logging.basicConfig(level=logging.CRITICAL)
    ok = run_checks(cfg, i2c_factory=_real_i2c, smbus_factory=_real_smbus, pin_factory_factory=make_pin_factory,
                    relay_test=relay_test, extra_checks=extra_checks)
    return 0 if ok else 1
