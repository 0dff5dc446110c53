"""The doctor's sensor checks: the I2C bus, each VL53L0X's identity, XSHUT addressing, first samples."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from controller.doctor.context import SERVICE_USER, DoctorContext, exc_text, pin_name
from hardware import HardwareError, PinConfigError, RangeReading, SensorFault
from hardware.tof import TofArray, TofSpec
from hardware.vl53l0x_regs import (
    DEFAULT_ADDRESS,
    MODEL_ID,
    MODEL_ID_REGISTER,
    NO_TARGET_VALUES_MM,
    RANGE_STATUS_VALID,
)

#: The boot address as the details and hints print it.
_BOOT_ADDRESS = f"0x{DEFAULT_ADDRESS:02X}"

#: Plausible first range: the deck behind the patient is 0.3..2 m from the sensors.
PLAUSIBLE_MM = (30, 2000)
#: Added to "two periods" for a loaded scheduler; the period itself is read from the sensor.
SAMPLE_SLACK_S = 0.05
POLL_S = 0.002


class SensorChecks:
    """The I2C bus and VL53L0X checks of one doctor run; it owns the bus handles and sensors it opens."""

    def __init__(self, ctx: DoctorContext, *, i2c_factory: Callable[[int], Any],
                 smbus_factory: Callable[[int], Any]) -> None:
        self._cfg = ctx.cfg
        self._report = ctx.report
        self._pins = ctx.pins
        self._i2c_factory = i2c_factory
        self._smbus_factory = smbus_factory
        self._i2c: Any = None
        self._smbus: Any = None
        self._tof: TofArray | None = None

    def close_sensors(self) -> None:
        """Stop the sensors and power them down through XSHUT, if they were opened."""
        if self._tof is not None:
            self._tof.close()

    def close_smbus(self) -> None:
        """Close the smbus2 handle, if it was opened."""
        if self._smbus is not None:
            self._smbus.close()

    def close_i2c(self) -> None:
        """Release the busio I2C bus, if it was opened and can be released."""
        if self._i2c is not None and hasattr(self._i2c, "deinit"):
            self._i2c.deinit()

    # ---- 2. I2C bus ------------------------------------------------------------------

    def check_bus(self) -> None:
        """Open the I2C bus twice, through busio (the driver) and smbus2 (the identity probe)."""
        report = self._report
        bus = self._cfg.i2c.bus
        hint = (f"enable I2C (sudo raspi-config nonint do_i2c 0, or dtparam=i2c_arm=on in "
                f"/boot/firmware/config.txt) and reboot; check /dev/i2c-{bus} exists and [i2c] bus = {bus}")
        try:
            self._i2c = self._i2c_factory(bus)
        except Exception as exc:  # noqa: BLE001 - ImportError, OSError, RuntimeError from Blinka
            bus_error = f"cannot open I2C bus {bus} (/dev/i2c-{bus}): {type(exc).__name__}: {exc_text(exc)}"
            if isinstance(exc, ImportError):
                hint = "install the \"pi\" extra (adafruit-extended-bus, Blinka) on the Raspberry Pi"
            report.fail("I2C bus present", bus_error, hint)
            return
        try:
            self._smbus = self._smbus_factory(bus)
        except Exception as exc:  # noqa: BLE001
            bus_error = f"cannot open I2C bus {bus} through smbus2: {type(exc).__name__}: {exc_text(exc)}"
            if isinstance(exc, PermissionError):
                hint = f"add the service user to the i2c group (sudo adduser {SERVICE_USER} i2c)"
            report.fail("I2C bus present", bus_error, hint)
            return
        report.ok("I2C bus present", f"/dev/i2c-{bus} opened (busio and smbus2)")

    # ---- 3./4. sensors ---------------------------------------------------------------

    def check_sensors(self) -> None:
        """Bring every sensor up through XSHUT, read its identity back, then wait for its first sample."""
        report = self._report
        sensors = self._cfg.sensors
        bus = self._cfg.i2c.bus
        found_checks = [f"VL53L0X {s.id!r} at 0x{s.i2c_address:02X}" for s in sensors]
        xshut_check = f"XSHUT addressing works for {len(sensors)} sensors"
        sample_checks = [f"first sample {s.id!r}" for s in sensors]
        not_up_hint = "fix the sensor bring-up above first"

        def fail_all(problem: str, hint: str, *, xshut_problem: str | None = None) -> None:
            for check in found_checks:
                report.fail(check, problem, hint)
            if len(sensors) > 1:
                report.fail(xshut_check, xshut_problem or problem, hint)
            for check in sample_checks:
                report.fail(check, "not checked: the sensors were not brought up", not_up_hint)

        if self._i2c is None or self._smbus is None:
            fail_all("not checked: the I2C bus did not open", "fix I2C bus present first")
            return
        needs_xshut = any(s.xshut_pin is not None for s in sensors)
        pin_factory = self._pins.get() if needs_xshut else None
        if needs_xshut and pin_factory is None:
            fail_all(f"not checked: XSHUT needs GPIO, and pin factory {self._cfg.gpio.pin_factory!r} did not load",
                     f"fix [gpio] pin_factory = {self._cfg.gpio.pin_factory!r} (see GPIO pins claimable)")
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
            self._tof = TofArray(specs, i2c=self._i2c, smbus=self._smbus, bus_number=bus, pin_factory=pin_factory,
                                 on_reading=on_reading, on_fault=on_fault)
            self._tof.open()
        except Exception as exc:  # noqa: BLE001 - SensorNotFound, HardwareError, PinConfigError, ValueError
            self._report_bring_up_failure(exc, found_checks, xshut_check, sample_checks)
            return

        # Identity at the final address, read back through smbus2: proves the address change took.
        for s, check in zip(sensors, found_checks):
            try:
                model_id = self._smbus.read_byte_data(s.i2c_address, MODEL_ID_REGISTER)
            except OSError as exc:
                report.fail(check, f"no answer at 0x{s.i2c_address:02X} on I2C bus {bus} after bring-up: {exc}",
                            self._sensor_hint(s))
                continue
            if model_id != MODEL_ID:
                report.fail(check, f"register 0x{MODEL_ID_REGISTER:02X} at 0x{s.i2c_address:02X} reads "
                                   f"0x{model_id:02X}, expected 0x{MODEL_ID:02X}: another device shares the address",
                            f"give every I2C device its own address; the sensors need {_BOOT_ADDRESS} free at boot")
                continue
            report.ok(check, f"identity 0x{model_id:02X} read through smbus2 at 0x{s.i2c_address:02X} "
                             f"on I2C bus {bus}")
        if len(sensors) > 1:
            addrs = ", ".join(f"{s.id} 0x{s.i2c_address:02X} (XSHUT {pin_name(s.xshut_pin)})" for s in sensors)
            report.ok(xshut_check,
                      f"{_BOOT_ADDRESS} free with every XSHUT low, then brought up one by one: {addrs}")

        periods = self._tof.sensor_periods_s
        t0 = time.monotonic()
        self._tof.start()
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
        report = self._report
        limit_ms = (2 * period_s + SAMPLE_SLACK_S) * 1000
        if r is None:
            problem = f"no sample within two periods ({limit_ms:.0f} ms, period {period_s * 1000:.0f} ms)"
            if fault:
                problem += f": {fault}"
            report.fail(check, problem, f"check the wiring of sensor {s.id!r} (SDA/SCL, power) and its timing budget")
            return
        after_ms = max(0.0, (r.t_mono - t0) * 1000)
        where = (f"{r.distance_mm} mm, status {r.range_status}, after {after_ms:.0f} ms "
                 f"(period {period_s * 1000:.0f} ms)")
        low, high = PLAUSIBLE_MM
        aim_hint = (f"aim sensor {s.id!r} along the belt at the patient's area with a target "
                    f"{low}..{high} mm away; clean its window and check nothing covers it")
        if r.distance_mm in NO_TARGET_VALUES_MM:
            report.fail(check, f"no target in view ({where})", aim_hint)
        elif r.range_status != RANGE_STATUS_VALID:
            report.fail(check, f"range status {r.range_status} is not {RANGE_STATUS_VALID} (valid) ({where})", aim_hint)
        elif not low <= r.distance_mm <= high:
            report.fail(check, f"range {r.distance_mm} mm outside the plausible {low}..{high} mm ({where})", aim_hint)
        else:
            report.ok(check, where)

    def _sensor_hint(self, s: Any) -> str:
        xshut = f" and its XSHUT wire to {pin_name(s.xshut_pin)}" if s.xshut_pin is not None else ""
        return f"check sensor {s.id!r}: VIN/GND/SDA/SCL{xshut}"

    def _report_bring_up_failure(self, exc: Exception, found_checks: list[str], xshut_check: str,
                                 sample_checks: list[str]) -> None:
        report = self._report
        sensors = self._cfg.sensors
        message = f"{type(exc).__name__}: {exc_text(exc)}" if not isinstance(exc, HardwareError) else exc_text(exc)
        culprit = next((s for s in sensors if f"sensor {s.id!r}" in str(exc)), None)
        xshut_fault = isinstance(exc, PinConfigError) or (isinstance(exc, HardwareError)
                                                          and "XSHUT" in str(exc) and culprit is None)
        # TofArray brings them up in this order and stops at the first failure.
        order = sorted(sensors, key=lambda s: s.i2c_address == DEFAULT_ADDRESS) if len(sensors) > 1 or \
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
                            f"part and that no other I2C device sits at {_BOOT_ADDRESS}")
                else:
                    hint = self._sensor_hint(s)
                report.fail(check, message, hint)
            elif s.id in passed:
                report.ok(check, f"identity 0x{MODEL_ID:02X} read through smbus2 at {_BOOT_ADDRESS}, "
                                 f"then moved to 0x{s.i2c_address:02X}")
            elif xshut_fault or culprit is None:
                report.fail(check, f"not checked: {message}",
                            "fix the XSHUT wiring" if xshut_fault else "fix the error shown, then run doctor again")
            else:
                report.fail(check, f"not checked: bring-up stops at the first failing sensor ({culprit.id!r})",
                            f"fix sensor {culprit.id!r} first, then run doctor again")
        if len(sensors) > 1:
            if xshut_fault:
                pins = ", ".join(f"{s.id} {pin_name(s.xshut_pin)}" for s in sensors)
                report.fail(xshut_check, message, f"check each sensor's XSHUT wire to its GPIO ({pins}) "
                                                  f"and that no other device uses {_BOOT_ADDRESS}")
            else:
                report.fail(xshut_check, "not verified: sensor bring-up failed",
                            "fix the sensor failure above first")
        for check in sample_checks:
            report.fail(check, "not checked: the sensors were not brought up", "fix the sensor bring-up above first")
