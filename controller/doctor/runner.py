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

This module runs the checks in order, prints the lines and closes what was
opened; the checks themselves live in ``doctor_sensors`` (I2C bus, VL53L0X)
and ``doctor_panel`` (serial link, GPIO), mixed into ``_Doctor``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.config import Config, ConfigError, load_config
from controller.doctor.panel import _PanelChecks
from controller.doctor.sensors import SERVICE_USER, _SensorChecks, _exc_text
from hardware.belt import SpeedSensorBelt, TrackMasterBelt
from hardware.io import PanelIO, make_pin_factory
from hardware.tof import TofArray

log = logging.getLogger(__name__)

Out = Callable[[str], Any]


class _Doctor(_SensorChecks, _PanelChecks):
    """One doctor run: the resources it opened, and the report it prints."""

    def __init__(self, cfg: Config, *, i2c_factory: Callable[[int], Any], smbus_factory: Callable[[int], Any],
                 pin_factory_factory: Callable[[str], Any], port: str | None, relay_test: bool, out: Out):
        self.cfg = cfg
        self.i2c_factory = i2c_factory
        self.smbus_factory = smbus_factory
        self.pin_factory_factory = pin_factory_factory
        self.port = port or cfg.treadmill.port
        self.relay_test = relay_test
        self.out = out
        self.failed = False
        self.i2c: Any = None
        self.smbus: Any = None
        self.bus_error: str | None = None
        self.pin_factory: Any = None
        self.pin_factory_error: str | None = None
        self.tof: TofArray | None = None
        self.belt: TrackMasterBelt | SpeedSensorBelt | None = None
        self.panel: PanelIO | None = None
        self.panel_error: str | None = None

    # ---- reporting -------------------------------------------------------------------

    def ok(self, check: str, detail: str) -> None:
        self._emit(f"PASS {check}: {detail}")

    def fail(self, check: str, problem: str, hint: str) -> None:
        self.failed = True
        self._emit(f"FAIL {check}: {problem} — hint: {hint}")

    def skip(self, check: str, detail: str) -> None:
        self._emit(f"SKIP {check}: {detail}")

    def _emit(self, line: str) -> None:
        try:
            self.out(" ".join(line.split("\n")))
        except Exception:  # noqa: BLE001 - a broken output must not leave hardware open
            log.exception("doctor: could not print %r", line)

    def guarded(self, check: str, body: Callable[[], None]) -> None:
        """Run one check; an unexpected exception becomes its FAIL line."""
        try:
            body()
        except Exception as exc:  # noqa: BLE001 - checks never raise
            log.exception("doctor check %r failed unexpectedly", check)
            self.fail(check, f"unexpected {type(exc).__name__}: {_exc_text(exc)}",
                      "this is a bug in the doctor or a driver; report it with the output above")

    # ---- the run ---------------------------------------------------------------------

    def run(self) -> bool:
        try:
            self.guarded("config valid", self.check_config)
            self.guarded("I2C bus present", self.check_bus)
            self.check_sensors()
            self.check_belt()
            self.guarded("GPIO pins claimable", self.check_gpio)
            self.guarded("E-stop circuit closed", self.check_estop)
            self.guarded("relay click test", self.check_relay)
            self.guarded("heartbeat pin toggling", self.check_heartbeat)
            self.guarded("state directory writable", self.check_state_dir)
        finally:
            self.close()
        return not self.failed

    def close(self) -> None:
        """Relay off first, then every other part, each on its own."""
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("relay", lambda: self.panel and self.panel.safe_off()),
            ("belt link", lambda: self.belt and self.belt.close()),
            ("sensors", lambda: self.tof and self.tof.close()),
            ("GPIO panel", lambda: self.panel and self.panel.close()),
            ("smbus", lambda: self.smbus is not None and self.smbus.close()),
            ("I2C bus", lambda: self.i2c is not None and hasattr(self.i2c, "deinit") and self.i2c.deinit()),
            ("pin factory", lambda: self.pin_factory is not None and self.pin_factory.close()),
        ]
        for name, step in steps:
            try:
                step()
            except Exception:  # noqa: BLE001 - every part gets its chance to close
                log.exception("doctor: closing the %s failed", name)

    # ---- 1. config -------------------------------------------------------------------

    def check_config(self) -> None:
        c = self.cfg
        detail = (f"{len(c.sensors)} sensor(s), protocol {c.treadmill.protocol} on {self.port}, "
                  f"I2C bus {c.i2c.bus}, pin factory {c.gpio.pin_factory}")
        if c.warnings:
            detail += f", {len(c.warnings)} warning(s): " + "; ".join(c.warnings)
        self.ok("config valid", detail)

    # ---- the pin factory, shared by XSHUT (3./4.) and GPIO (6.-9.) ------------------

    def _ensure_pin_factory(self) -> Any:
        if self.pin_factory is None and self.pin_factory_error is None:
            name = self.cfg.gpio.pin_factory
            try:
                self.pin_factory = self.pin_factory_factory(name)
            except Exception as exc:  # noqa: BLE001 - PinConfigError and backend errors
                self.pin_factory_error = f"pin factory {name!r} did not load: {_exc_text(exc)}"
        return self.pin_factory

    # ---- 10. state directory ---------------------------------------------------------

    def check_state_dir(self) -> None:
        check = "state directory writable"
        path = Path(self.cfg.storage.state_dir)
        hint = (f"point [storage] state_dir at a directory the service user owns "
                f"(sudo install -d -o {SERVICE_USER} -g {SERVICE_USER} {path})")
        # A directory that does not exist yet is created by the controller (and systemd's
        # StateDirectory=): the doctor leaves no trace, so it probes the nearest existing parent.
        probe_dir = path
        while not probe_dir.exists() and probe_dir.parent != probe_dir:
            probe_dir = probe_dir.parent
        if not probe_dir.is_dir():
            self.fail(check, f"cannot create {path}: {probe_dir} is not a directory", hint)
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
            self.fail(check, f"cannot create, write and remove a file in {probe_dir}: {_exc_text(exc)}", hint)
            return
        if probe_dir == path:
            self.ok(check, f"{path}: a file was created, written, fsynced and removed")
        else:
            self.ok(check, f"{path} does not exist yet; the controller creates it in {probe_dir}, where a file "
                           "was created, written, fsynced and removed")


def run_checks(cfg: Config, *, i2c_factory: Callable[[int], Any], smbus_factory: Callable[[int], Any],
               pin_factory_factory: Callable[[str], Any], port: str | None = None, relay_test: bool = False,
               out: Out = print) -> bool:
    """Check the hardware ``cfg`` names, one line per check through ``out``; True only if nothing FAILed.

    ``i2c_factory(bus)`` returns a busio-like I2C bus, ``smbus_factory(bus)`` an smbus2-like
    handle, ``pin_factory_factory(name)`` a gpiozero pin factory; failures of any of them
    are FAIL lines. ``port`` overrides [treadmill] port. Everything opened is closed again,
    the relay de-energized first.
    """
    return _Doctor(cfg, i2c_factory=i2c_factory, smbus_factory=smbus_factory,
                   pin_factory_factory=pin_factory_factory, port=port, relay_test=relay_test, out=out).run()


def _real_i2c(bus: int) -> Any:
    from adafruit_extended_bus import ExtendedI2C  # only on the Pi, with the "pi" extra
    return ExtendedI2C(bus)


def _real_smbus(bus: int) -> Any:
    import smbus2
    return smbus2.SMBus(bus)


def main_doctor(config_path: str, relay_test: bool) -> int:
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
                    relay_test=relay_test)
    return 0 if ok else 1
