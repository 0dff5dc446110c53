"""The doctor's sensor checks: the I2C bus, each VL53L0X's identity, XSHUT addressing, samples, interrupt wires."""

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
#: After its first sample, a sensor must give this many more (an interrupt wire shows its falling edges),
#: and its period must be measured (from 4 periods of samples on) ...
MORE_SAMPLES = 4
#: ... within this many of its periods from the first samples.
MORE_SAMPLES_PERIODS = 8


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
        wire_checks = [_wire_check(s) for s in sensors if s.interrupt_pin is not None]
        not_up_hint = "fix the sensor bring-up above first"

        def fail_all(problem: str, hint: str, *, xshut_problem: str | None = None) -> None:
            for check in found_checks:
                report.fail(check, problem, hint)
            if len(sensors) > 1:
                report.fail(xshut_check, xshut_problem or problem, hint)
            for check in sample_checks + wire_checks:
                report.fail(check, "not checked: the sensors were not brought up", not_up_hint)

        if self._i2c is None or self._smbus is None:
            fail_all("not checked: the I2C bus did not open", "fix I2C bus present first")
            return
        # XSHUT and GPIO1 (interrupt) wires both need the pin factory.
        gpio_users = [what for what, used in (("XSHUT", any(s.xshut_pin is not None for s in sensors)),
                                              ("interrupt_pin", bool(wire_checks))) if used]
        pin_factory = self._pins.get() if gpio_users else None
        if gpio_users and pin_factory is None:
            fail_all(f"not checked: {' and '.join(gpio_users)} need{'s' if len(gpio_users) == 1 else ''} GPIO, "
                     f"and pin factory {self._cfg.gpio.pin_factory!r} did not load",
                     f"fix [gpio] pin_factory = {self._cfg.gpio.pin_factory!r} (see GPIO pins claimable)")
            return

        first: dict[str, RangeReading] = {}
        counts: dict[str, int] = {s.id: 0 for s in sensors}
        faults: dict[str, list[str]] = {s.id: [] for s in sensors}
        lock = threading.Lock()

        def on_reading(r: RangeReading) -> None:
            with lock:
                first.setdefault(r.sensor_id, r)
                counts[r.sensor_id] = counts.get(r.sensor_id, 0) + 1

        def on_fault(f: SensorFault) -> None:
            with lock:
                faults.setdefault(f.sensor_id, []).append(f.message)

        try:
            specs = [TofSpec(s.id, s.i2c_address, s.xshut_pin, s.timing_budget_ms, interrupt_pin=s.interrupt_pin)
                     for s in sensors]
            self._tof = TofArray(specs, i2c=self._i2c, smbus=self._smbus, bus_number=bus, pin_factory=pin_factory,
                                 on_reading=on_reading, on_fault=on_fault)
            self._tof.open()
        except Exception as exc:  # noqa: BLE001 - SensorNotFound, HardwareError, PinConfigError, ValueError
            self._report_bring_up_failure(exc, found_checks, xshut_check, sample_checks + wire_checks)
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
        def all_first() -> bool:
            with lock:
                return len(first) == len(sensors)

        _wait(all_first, t0 + 2 * longest + SAMPLE_SLACK_S)
        with lock:
            first_now, counts_at_first = dict(first), dict(counts)
        # A few more samples: each interrupt wire shows its edges, and the periods are measured
        # (a re-phase during the wait starts the measurement afresh, so it is waited for too).
        t1 = time.monotonic()
        wanted = {sid: counts_at_first[sid] + MORE_SAMPLES for sid in first_now}
        tof = self._tof

        def more_came() -> bool:
            with lock:
                if any(counts[sid] < n for sid, n in wanted.items()):
                    return False
            timing_now = tof.timing
            return all(timing_now[sid]["measured_period_s"] is not None for sid in wanted)

        _wait(more_came, t1 + MORE_SAMPLES_PERIODS * longest + SAMPLE_SLACK_S)
        t2 = time.monotonic()
        timing = self._tof.timing
        with lock:
            counts_now, faults_now = dict(counts), {sid: list(msgs) for sid, msgs in faults.items()}
        for s, check in zip(sensors, sample_checks):
            messages = faults_now.get(s.id, [])
            self._report_first_sample(s, check, first_now.get(s.id), messages[0] if messages else None,
                                      periods[s.id], t0, timing.get(s.id, {}))
        for s in sensors:
            if s.interrupt_pin is not None:
                messages = faults_now.get(s.id, [])
                self._report_wire(s, first_now.get(s.id) is not None, counts_now[s.id] - counts_at_first[s.id],
                                  t2 - t1, messages[-1] if messages else None, periods[s.id],
                                  timing.get(s.id, {}))

    def _report_first_sample(self, s: Any, check: str, r: RangeReading | None, fault: str | None,
                             period_s: float, t0: float, timing: dict[str, Any]) -> None:
        report = self._report
        limit_ms = (2 * period_s + SAMPLE_SLACK_S) * 1000
        if r is None:
            problem = f"no sample within two periods ({limit_ms:.0f} ms, period {period_s * 1000:.0f} ms)"
            if fault:
                problem += f": {fault}"
            if timing.get("interrupt_fault"):
                # Its samples are withheld while its GPIO1 wire gives no edges: the wire is the cause.
                hint = _wire_hint(s, timing["interrupt_fault"])
            else:
                hint = f"check the wiring of sensor {s.id!r} (SDA/SCL, power) and its timing budget"
            report.fail(check, problem, hint)
            return
        after_ms = max(0.0, (r.t_mono - t0) * 1000)
        where = (f"{r.distance_mm} mm, status {r.range_status}, after {after_ms:.0f} ms "
                 f"({_periods_text(period_s, timing)})")
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

    def _report_wire(self, s: Any, sampled: bool, more: int, waited_s: float, fault: str | None,
                     period_s: float, timing: dict[str, Any]) -> None:
        """PASS when samples came on the GPIO1 wire's falling edges with no wire fault; else FAIL with the fault."""
        report = self._report
        check = _wire_check(s)
        pin = pin_name(s.interrupt_pin)
        wire_fault = timing.get("interrupt_fault")
        if wire_fault:
            report.fail(check, fault or _WIRE_FAULTS.get(wire_fault, wire_fault), _wire_hint(s, wire_fault))
            return
        limit_ms = (MORE_SAMPLES_PERIODS * period_s + SAMPLE_SLACK_S) * 1000
        if not sampled:
            report.fail(check, f"not checked: sensor {s.id!r} gave no first sample",
                        f"fix first sample {s.id!r} above first")
            return
        if more == 0:
            problem = f"no sample on falling edges of {pin} within {limit_ms:.0f} ms after the first"
            if fault:
                problem += f": {fault}"
            report.fail(check, problem, _wire_hint(s, None))
            return
        report.ok(check, f"{more} samples on falling edges of {pin} in {waited_s * 1000:.0f} ms "
                         f"({_periods_text(period_s, timing)})")

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


#: TofArray.timing's "interrupt_fault" values, in words (the reader's fault message says more).
_WIRE_FAULTS = {"no_edge": "no falling edge while a sample waits", "stuck_low": "interrupt line stuck low"}


def _wire_check(s: Any) -> str:
    return f"interrupt wire {s.id!r} ({pin_name(s.interrupt_pin)})"


def _wire_hint(s: Any, wire_fault: str | None) -> str:
    pin = pin_name(s.interrupt_pin)
    short = " for a short to ground" if wire_fault == "stuck_low" else ""
    return (f"check the wire from GPIO1 of sensor {s.id!r} to {pin}{short}; without it, remove "
            f"interrupt_pin from [[sensors]] id = {s.id!r} to poll the sensor")


def _periods_text(period_s: float, timing: dict[str, Any]) -> str:
    """The period read back from the sensor, and the one measured from its samples when known."""
    text = f"period {period_s * 1000:.0f} ms"
    measured_s = timing.get("measured_period_s")
    if measured_s is not None:
        text += f", measured {measured_s * 1000:.1f} ms"
    return text


def _wait(done: Callable[[], bool], deadline: float) -> None:
    """Poll ``done()`` until it is true or the deadline passes."""
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(POLL_S)
