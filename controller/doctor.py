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
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import serial

from controller.assembly import gpio_spec
from controller.config import Config, ConfigError, load_config
from hardware import HardwareError, PinConfigError, RangeReading, SensorFault
from hardware import belt_protocol as proto
from hardware.belt import SpeedSensorBelt, TrackMasterBelt
from hardware.io import PanelIO, make_pin_factory
from hardware.tof import MODEL_ID, MODEL_ID_REGISTER, TofArray, TofSpec

log = logging.getLogger(__name__)

Out = Callable[[str], Any]

#: Plausible first range: the deck behind the patient is 0.3..2 m from the sensors.
PLAUSIBLE_MM = (30, 2000)
NO_TARGET_MM = (8190, 8191)
RANGE_STATUS_VALID = 11
#: Added to "two periods" for a loaded scheduler; the period itself is read from the sensor.
SAMPLE_SLACK_S = 0.05
#: How long the treadmill may take to answer C0 in the doctor (the controller allows ack_timeout_s).
STATUS_ANSWER_WAIT_S = 0.5
#: The first C1 reading or speed line must arrive within this.
BELT_READING_WAIT_S = 1.0
RELAY_CLICK_S = 0.5
HEARTBEAT_TOGGLES = 10
POLL_S = 0.002
#: Names from systemd/treadmill-controller.service, for the hints.
SERVICE_UNIT = "treadmill-controller"
SERVICE_USER = "treadmill"


def _pin_name(pin: int | str | None) -> str:
    return f"GPIO{pin}" if isinstance(pin, int) else str(pin)


def _exc_text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class _Doctor:
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

    # ---- 2. I2C bus ------------------------------------------------------------------

    def check_bus(self) -> None:
        bus = self.cfg.i2c.bus
        hint = (f"enable I2C (sudo raspi-config nonint do_i2c 0, or dtparam=i2c_arm=on in "
                f"/boot/firmware/config.txt) and reboot; check /dev/i2c-{bus} exists and [i2c] bus = {bus}")
        try:
            self.i2c = self.i2c_factory(bus)
        except Exception as exc:  # noqa: BLE001 - ImportError, OSError, RuntimeError from Blinka
            self.bus_error = f"cannot open I2C bus {bus} (/dev/i2c-{bus}): {type(exc).__name__}: {_exc_text(exc)}"
            if isinstance(exc, ImportError):
                hint = "install the \"pi\" extra (adafruit-extended-bus, Blinka) on the Raspberry Pi"
            self.fail("I2C bus present", self.bus_error, hint)
            return
        try:
            self.smbus = self.smbus_factory(bus)
        except Exception as exc:  # noqa: BLE001
            self.bus_error = f"cannot open I2C bus {bus} through smbus2: {type(exc).__name__}: {_exc_text(exc)}"
            if isinstance(exc, PermissionError):
                hint = f"add the service user to the i2c group (sudo adduser {SERVICE_USER} i2c)"
            self.fail("I2C bus present", self.bus_error, hint)
            return
        self.ok("I2C bus present", f"/dev/i2c-{bus} opened (busio and smbus2)")

    # ---- 3./4. sensors ---------------------------------------------------------------

    def _ensure_pin_factory(self) -> Any:
        if self.pin_factory is None and self.pin_factory_error is None:
            name = self.cfg.gpio.pin_factory
            try:
                self.pin_factory = self.pin_factory_factory(name)
            except Exception as exc:  # noqa: BLE001 - PinConfigError and backend errors
                self.pin_factory_error = f"pin factory {name!r} did not load: {_exc_text(exc)}"
        return self.pin_factory

    def check_sensors(self) -> None:
        sensors = self.cfg.sensors
        bus = self.cfg.i2c.bus
        found_checks = [f"VL53L0X {s.id!r} at 0x{s.i2c_address:02X}" for s in sensors]
        xshut_check = f"XSHUT addressing works for {len(sensors)} sensors"
        sample_checks = [f"first sample {s.id!r}" for s in sensors]
        not_up_hint = "fix the sensor bring-up above first"

        def fail_all(problem: str, hint: str, *, xshut_problem: str | None = None) -> None:
            for check in found_checks:
                self.fail(check, problem, hint)
            if len(sensors) > 1:
                self.fail(xshut_check, xshut_problem or problem, hint)
            for check in sample_checks:
                self.fail(check, "not checked: the sensors were not brought up", not_up_hint)

        if self.i2c is None or self.smbus is None:
            fail_all("not checked: the I2C bus did not open", "fix I2C bus present first")
            return
        needs_xshut = any(s.xshut_pin is not None for s in sensors)
        pin_factory = self._ensure_pin_factory() if needs_xshut else None
        if needs_xshut and pin_factory is None:
            fail_all(f"not checked: XSHUT needs GPIO, and pin factory {self.cfg.gpio.pin_factory!r} did not load",
                     f"fix [gpio] pin_factory = {self.cfg.gpio.pin_factory!r} (see GPIO pins claimable)")
            return

        first: dict[str, RangeReading] = {}
        faults: dict[str, str] = {}
        lock = threading.Lock()

        def on_reading(r: RangeReading) -> None:
            with lock:
                first.setdefault(r.sensor_id, r)

        def on_fault(f: SensorFault) -> None:
            with lock:
                faults.setdefault(f.sensor_id, f.message)

        try:
            specs = [TofSpec(s.id, s.i2c_address, s.xshut_pin, s.timing_budget_ms) for s in sensors]
            self.tof = TofArray(specs, i2c=self.i2c, smbus=self.smbus, bus_number=bus, pin_factory=pin_factory,
                                on_reading=on_reading, on_fault=on_fault)
            self.tof.open()
        except Exception as exc:  # noqa: BLE001 - SensorNotFound, HardwareError, PinConfigError, ValueError
            self._report_bring_up_failure(exc, found_checks, xshut_check, sample_checks)
            return

        # Identity at the final address, read back through smbus2: proves the address change took.
        for s, check in zip(sensors, found_checks):
            try:
                model_id = self.smbus.read_byte_data(s.i2c_address, MODEL_ID_REGISTER)
            except OSError as exc:
                self.fail(check, f"no answer at 0x{s.i2c_address:02X} on I2C bus {bus} after bring-up: {exc}",
                          self._sensor_hint(s))
                continue
            if model_id != MODEL_ID:
                self.fail(check, f"register 0x{MODEL_ID_REGISTER:02X} at 0x{s.i2c_address:02X} reads "
                                 f"0x{model_id:02X}, expected 0x{MODEL_ID:02X}: another device shares the address",
                          "give every I2C device its own address; the sensors need 0x29 free at boot")
                continue
            self.ok(check, f"identity 0x{model_id:02X} read through smbus2 at 0x{s.i2c_address:02X} "
                           f"on I2C bus {bus}")
        if len(sensors) > 1:
            addrs = ", ".join(f"{s.id} 0x{s.i2c_address:02X} (XSHUT {_pin_name(s.xshut_pin)})" for s in sensors)
            self.ok(xshut_check, f"0x29 free with every XSHUT low, then brought up one by one: {addrs}")

        periods = self.tof.sensor_periods_s
        t0 = time.monotonic()
        self.tof.start()
        longest = max(periods.values())
        deadline = t0 + 2 * longest + SAMPLE_SLACK_S
        while time.monotonic() < deadline:
            with lock:
                if len(first) == len(sensors):
                    break
            time.sleep(POLL_S)
        with lock:
            first_now, faults_now = dict(first), dict(faults)
        for s, check in zip(sensors, sample_checks):
            self._report_first_sample(s, check, first_now.get(s.id), faults_now.get(s.id), periods[s.id], t0)

    def _report_first_sample(self, s: Any, check: str, r: RangeReading | None, fault: str | None,
                             period_s: float, t0: float) -> None:
        limit_ms = (2 * period_s + SAMPLE_SLACK_S) * 1000
        if r is None:
            problem = f"no sample within two periods ({limit_ms:.0f} ms, period {period_s * 1000:.0f} ms)"
            if fault:
                problem += f": {fault}"
            self.fail(check, problem, f"check the wiring of sensor {s.id!r} (SDA/SCL, power) and its timing budget")
            return
        after_ms = max(0.0, (r.t_mono - t0) * 1000)
        where = (f"{r.distance_mm} mm, status {r.range_status}, after {after_ms:.0f} ms "
                 f"(period {period_s * 1000:.0f} ms)")
        low, high = PLAUSIBLE_MM
        aim_hint = (f"aim sensor {s.id!r} along the belt at the patient's area with a target "
                    f"{low}..{high} mm away; clean its window and check nothing covers it")
        if r.distance_mm in NO_TARGET_MM:
            self.fail(check, f"no target in view ({where})", aim_hint)
        elif r.range_status != RANGE_STATUS_VALID:
            self.fail(check, f"range status {r.range_status} is not {RANGE_STATUS_VALID} (valid) ({where})", aim_hint)
        elif not low <= r.distance_mm <= high:
            self.fail(check, f"range {r.distance_mm} mm outside the plausible {low}..{high} mm ({where})", aim_hint)
        else:
            self.ok(check, where)

    def _sensor_hint(self, s: Any) -> str:
        xshut = f" and its XSHUT wire to {_pin_name(s.xshut_pin)}" if s.xshut_pin is not None else ""
        return f"check sensor {s.id!r}: VIN/GND/SDA/SCL{xshut}"

    def _report_bring_up_failure(self, exc: Exception, found_checks: list[str], xshut_check: str,
                                 sample_checks: list[str]) -> None:
        sensors = self.cfg.sensors
        message = f"{type(exc).__name__}: {_exc_text(exc)}" if not isinstance(exc, HardwareError) else _exc_text(exc)
        culprit = next((s for s in sensors if f"sensor {s.id!r}" in str(exc)), None)
        xshut_fault = isinstance(exc, PinConfigError) or (isinstance(exc, HardwareError)
                                                          and "XSHUT" in str(exc) and culprit is None)
        # TofArray brings them up in this order and stops at the first failure.
        order = sorted(sensors, key=lambda s: s.i2c_address == 0x29) if len(sensors) > 1 or \
            sensors[0].xshut_pin is not None else list(sensors)
        passed: set[str] = set()
        if culprit is not None and not xshut_fault:
            for s in order:
                if s.id == culprit.id:
                    break
                passed.add(s.id)
        for s, check in zip(sensors, found_checks):
            if culprit is not None and s.id == culprit.id and not xshut_fault:
                if "is not a VL53L0X" in str(exc):
                    hint = (f"the device answering for sensor {s.id!r} is not a VL53L0X: check the breakout's "
                            "part and that no other I2C device sits at 0x29")
                else:
                    hint = self._sensor_hint(s)
                self.fail(check, message, hint)
            elif s.id in passed:
                self.ok(check, f"identity 0x{MODEL_ID:02X} read through smbus2 at 0x29, "
                               f"then moved to 0x{s.i2c_address:02X}")
            elif xshut_fault or culprit is None:
                self.fail(check, f"not checked: {message}",
                          "fix the XSHUT wiring" if xshut_fault else "fix the error shown, then run doctor again")
            else:
                self.fail(check, f"not checked: bring-up stops at the first failing sensor ({culprit.id!r})",
                          f"fix sensor {culprit.id!r} first, then run doctor again")
        if len(sensors) > 1:
            if xshut_fault:
                pins = ", ".join(f"{s.id} {_pin_name(s.xshut_pin)}" for s in sensors)
                self.fail(xshut_check, message, f"check each sensor's XSHUT wire to its GPIO ({pins}) "
                                                "and that no other device uses 0x29")
            else:
                self.fail(xshut_check, "not verified: sensor bring-up failed",
                          "fix the sensor failure above first")
        for check in sample_checks:
            self.fail(check, "not checked: the sensors were not brought up", "fix the sensor bring-up above first")

    # ---- 5. serial link --------------------------------------------------------------

    def check_belt(self) -> None:
        t = self.cfg.treadmill
        port_check = "serial port opens exclusively"
        answer_check = "treadmill answers" if t.protocol != "speed-sensor" else "speed lines arrive"
        raw = None
        try:
            try:
                raw = serial.Serial(self.port, baudrate=t.baudrate, bytesize=serial.EIGHTBITS,
                                    parity=serial.PARITY_NONE, stopbits=serial.STOPBITS_ONE,
                                    timeout=0.01, write_timeout=0.25, exclusive=True)
            except (serial.SerialException, OSError, ValueError) as exc:
                text = _exc_text(exc)
                if "lock" in text.lower():
                    hint = (f"another program holds the port: stop the controller (sudo systemctl stop "
                            f"{SERVICE_UNIT}) or any terminal program (screen, minicom) using it")
                elif "ermission" in text:
                    hint = f"add the service user to the dialout group (sudo adduser {SERVICE_USER} dialout)"
                else:
                    hint = ("check the USB-serial adapter is plugged in and [treadmill] port names it "
                            "(ls -l /dev/serial/by-id/)")
                self.fail(port_check, f"cannot open {self.port} exclusively: {text}", hint)
                self.fail(answer_check, "not checked: the serial port did not open", "fix the serial port first")
                return
            self.ok(port_check, f"{self.port} opened exclusively at {t.baudrate} baud 8N1")
            if t.protocol == "speed-sensor":
                raw.close()
                raw = None
                self.guarded(answer_check, self._check_speed_lines)
                return
            status = self.guarded_status(raw, answer_check)
            raw.close()
            raw = None
            if status is not None:
                self.guarded(answer_check, lambda: self._check_speed_poll(answer_check, status))
        finally:
            if raw is not None:
                try:
                    raw.close()
                except (serial.SerialException, OSError):
                    log.warning("doctor: closing %s failed", self.port)

    def _silent_hint(self) -> str:
        t = self.cfg.treadmill
        return (f"check the treadmill is switched on, the cable (null-modem where needed) is in its "
                f"computer port, and [treadmill] baudrate = {t.baudrate}, protocol = {t.protocol!r} match it")

    def guarded_status(self, raw: serial.Serial, check: str) -> bytes | None:
        """Ask C0 (belt status) on the raw port; None (and a FAIL line) if it is not answered."""
        try:
            return self._ask_status(raw, check)
        except Exception as exc:  # noqa: BLE001 - checks never raise
            self.fail(check, f"C0 (belt status) failed on {self.port}: {type(exc).__name__}: {_exc_text(exc)}",
                      self._silent_hint())
            return None

    def _ask_status(self, raw: serial.Serial, check: str) -> bytes | None:
        t = self.cfg.treadmill
        raw.reset_input_buffer()
        t_sent = time.monotonic()
        raw.write(bytes([proto.BELT_STATUS]))
        expected = proto.answer_code(proto.BELT_STATUS)
        rx = bytearray()
        deadline = t_sent + STATUS_ANSWER_WAIT_S
        while time.monotonic() < deadline:
            rx += raw.read(max(1, raw.in_waiting))
            for code in proto.ERROR_NAMES:
                if code in rx:
                    self.fail(check, f"the treadmill answered C0 (belt status) with {proto.describe_code(code)}",
                              f"check [treadmill] protocol = {t.protocol!r} matches the treadmill")
                    return None
            i = rx.find(bytes([expected]))
            if 0 <= i < len(rx) - 1:
                took_s = time.monotonic() - t_sent
                if took_s > t.ack_timeout_s:
                    self.fail(check, f"C0 (belt status) answered after {took_s * 1000:.0f} ms, slower than "
                                     f"[treadmill] ack_timeout_s = {t.ack_timeout_s * 1000:.0f} ms",
                              "raise ack_timeout_s (up to 0.25 s) or check the link for a slow adapter")
                    return None
                return bytes(rx[i + 1:i + 2])
        got = f" (got {bytes(rx[:16]).hex(' ')})" if rx else ""
        self.fail(check, f"no answer to C0 (belt status) on {self.port} within "
                         f"{STATUS_ANSWER_WAIT_S * 1000:.0f} ms{got}", self._silent_hint())
        return None

    def _wait_first_reading(self, make: Callable[..., Any]) -> tuple[Any, Any]:
        got: list[Any] = []
        fault: list[Any] = []
        event = threading.Event()

        def on_reading(r: Any) -> None:
            if not got:
                got.append(r)
            event.set()

        def on_fault(f: Any) -> None:
            fault.append(f)
            event.set()

        self.belt = make(on_reading, on_fault)
        self.belt.start()
        event.wait(BELT_READING_WAIT_S)
        return (got[0] if got else None), (fault[0] if fault else None)

    def _check_speed_poll(self, check: str, status: bytes) -> None:
        t = self.cfg.treadmill
        t0 = time.monotonic()
        reading, fault = self._wait_first_reading(lambda r, f: TrackMasterBelt(
            self.port, dialect=t.protocol, on_reading=r, on_fault=f, baudrate=t.baudrate,
            ack_timeout_s=t.ack_timeout_s, poll_hz=t.poll_hz, reverse_belt=t.reverse_belt))
        if reading is None:
            why = (fault.message if fault is not None
                   else f"no C1 (actual speed) reading within {BELT_READING_WAIT_S:g} s")
            self.fail(check, f"C0 answered, but {why}", self._silent_hint())
            return
        names = {proto.STATUS_STOPPED: "stopped", proto.STATUS_STARTED_DISCONNECT_STOP: "started, disconnect stop",
                 proto.STATUS_STARTED: "started"}
        state = names.get(status[0], f"0x{status[0]:02X}")
        kmh = reading.belt_speed_mps * 3.6
        self.ok(check, f"C0 belt status {state}, C1 speed {kmh:.1f} km/h "
                       f"(first reading after {(reading.t_mono - t0) * 1000:.0f} ms, {t.protocol})")

    def _check_speed_lines(self) -> None:
        t = self.cfg.treadmill
        check = "speed lines arrive"
        t0 = time.monotonic()
        reading, fault = self._wait_first_reading(lambda r, f: SpeedSensorBelt(
            self.port, on_reading=r, on_fault=f, baudrate=t.baudrate, stale_timeout_s=t.link_timeout_s))
        if reading is None:
            why = fault.message if fault is not None else f"no valid speed line within {BELT_READING_WAIT_S:g} s"
            self.fail(check, why, f"check the speed sensor is powered, sends one mm/s integer per line at "
                                  f"10 Hz or more, and [treadmill] baudrate = {t.baudrate} matches it")
            return
        self.ok(check, f"{reading.belt_speed_mps * 3.6:.1f} km/h, first line after "
                       f"{(reading.t_mono - t0) * 1000:.0f} ms")

    # ---- 6.-9. GPIO ------------------------------------------------------------------

    def check_gpio(self) -> None:
        check = "GPIO pins claimable"
        name = self.cfg.gpio.pin_factory
        factory = self._ensure_pin_factory()
        if factory is None:
            self.panel_error = self.pin_factory_error
            self.fail(check, str(self.pin_factory_error),
                      f"install the backend for [gpio] pin_factory = {name!r} (the \"pi\" extra: lgpio on a Pi 4/5) "
                      "or name one that is installed")
            return
        try:
            spec = gpio_spec(self.cfg)
            self.panel = PanelIO(spec, pin_factory=factory)
        except (PinConfigError, HardwareError) as exc:
            self.panel_error = _exc_text(exc)
            self.fail(check, self.panel_error,
                      "another program may hold the pin (stop the controller: sudo systemctl stop "
                      f"{SERVICE_UNIT}), or fix the pin number in [gpio]")
            return
        pins = ", ".join(f"{field.removesuffix('_pin')} {_pin_name(pin)}"
                         for field, pin in spec.configured_pins().items())
        self.ok(check, f"{pins} (pin factory {name})")

    def _panel_missing(self, check: str) -> bool:
        if self.panel is None:
            self.fail(check, "not checked: the GPIO panel did not open",
                      "fix GPIO pins claimable first")
            return True
        return False

    def check_estop(self) -> None:
        check = "E-stop circuit closed"
        if self._panel_missing(check):
            return
        assert self.panel is not None
        pin = _pin_name(self.cfg.gpio.estop_pin)
        if self.panel.estop_open:
            self.fail(check, f"{pin} reads high (open)",
                      f"the NC E-stop contact reads open: check the button is released and its wire to {pin} and GND")
            return
        self.ok(check, f"{pin} reads low: the NC contact is closed")

    def _pin_level(self, pin: int | str) -> bool | None:
        """The level read back from the pin factory, or None if it cannot be read."""
        try:
            return bool(self.pin_factory.pin(pin).state)
        except Exception:  # noqa: BLE001 - a backend without read-back
            log.warning("doctor: cannot read back pin %r", pin, exc_info=True)
            return None

    def check_relay(self) -> None:
        check = "relay click test"
        if not self.relay_test:
            self.skip(check, "run with --relay-test")
            return
        if self._panel_missing(check):
            return
        assert self.panel is not None
        g = self.cfg.gpio
        pin = _pin_name(g.relay_pin)
        try:
            self.panel.set_relay(True)
            on_level = self._pin_level(g.relay_pin)
            time.sleep(RELAY_CLICK_S)
        finally:
            self.panel.set_relay(False)
        off_level = self._pin_level(g.relay_pin)
        energized = self.panel.relay_energized
        want_on, want_off = g.relay_active_high, not g.relay_active_high
        if energized or (off_level is not None and off_level != want_off):
            self.fail(check, f"the relay on {pin} did not drop (pin reads {'high' if off_level else 'low'})",
                      "check relay_active_high and the relay driver; do not use this system until it drops")
            return
        if on_level is not None and on_level != want_on:
            self.fail(check, f"{pin} did not go {'high' if want_on else 'low'} when energized",
                      f"check [gpio] relay_pin = {g.relay_pin!r} and relay_active_high = {g.relay_active_high}")
            return
        self.ok(check, f"relay on {pin} energized for {RELAY_CLICK_S:g} s then de-energized: you should have heard "
                       f"it click twice (on, off); if not, check the relay's coil supply and its wire to {pin}")

    def check_heartbeat(self) -> None:
        check = "heartbeat pin toggling"
        if self._panel_missing(check):
            return
        assert self.panel is not None
        hb = self.cfg.gpio.heartbeat_pin
        pin = _pin_name(hb)
        start = self._pin_level(hb)
        if start is None:
            self.fail(check, f"cannot read {pin} back", "check [gpio] pin_factory supports reading outputs")
            return
        level = start
        for i in range(HEARTBEAT_TOGGLES):
            self.panel.toggle_heartbeat()
            level = not level
            got = self._pin_level(hb)
            if got != level:
                self.fail(check, f"{pin} read {'high' if got else 'low'} after toggle {i + 1}, expected "
                                 f"{'high' if level else 'low'}",
                          f"check nothing else drives {pin} (a short to 3V3 or GND, or another program)")
                return
        self.ok(check, f"{pin} toggled {HEARTBEAT_TOGGLES} times and read back each time")

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
