"""The doctor's panel checks: the serial link, GPIO, E-stop, relay and heartbeat."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import serial

from controller.assembly import gpio_spec
from controller.doctor.context import SERVICE_UNIT, SERVICE_USER, DoctorContext, exc_text, log, pin_name
from hardware import HardwareError, PinConfigError
from hardware import belt_protocol as proto
from hardware.belt import SpeedSensorBelt, TrackMasterBelt
from hardware.io import PanelIO

#: How long the treadmill may take to answer C0 in the doctor (the controller allows ack_timeout_s).
STATUS_ANSWER_WAIT_S = 0.5
#: The first C1 reading or speed line must arrive within this.
BELT_READING_WAIT_S = 1.0
RELAY_CLICK_S = 0.5
HEARTBEAT_TOGGLES = 10


class PanelChecks:
    """The serial link and GPIO checks of one doctor run; it owns the belt driver and GPIO panel it opens."""

    def __init__(self, ctx: DoctorContext, *, port: str, relay_test: bool) -> None:
        self._cfg = ctx.cfg
        self._report = ctx.report
        self._pins = ctx.pins
        self._port = port
        self._relay_test = relay_test
        self._belt: TrackMasterBelt | SpeedSensorBelt | None = None
        self._panel: PanelIO | None = None

    def drop_relay(self) -> None:
        """De-energize the relay, if the GPIO panel was opened."""
        if self._panel is not None:
            self._panel.safe_off()

    def close_belt(self) -> None:
        """Close the belt driver, if it was started."""
        if self._belt is not None:
            self._belt.close()

    def close_panel(self) -> None:
        """Release the GPIO panel's pins, if it was opened."""
        if self._panel is not None:
            self._panel.close()

    # ---- 5. serial link --------------------------------------------------------------

    def check_belt(self) -> None:
        """Open the serial port exclusively, then see the treadmill answer (or speed lines arrive)."""
        report = self._report
        t = self._cfg.treadmill
        port_check = "serial port opens exclusively"
        answer_check = "treadmill answers" if t.protocol != "speed-sensor" else "speed lines arrive"
        raw = None
        try:
            try:
                raw = serial.Serial(self._port, baudrate=t.baudrate, bytesize=serial.EIGHTBITS,
                                    parity=serial.PARITY_NONE, stopbits=serial.STOPBITS_ONE,
                                    timeout=0.01, write_timeout=0.25, exclusive=True)
            except (serial.SerialException, OSError, ValueError) as exc:
                text = exc_text(exc)
                if "lock" in text.lower():
                    hint = (f"another program holds the port: stop the controller (sudo systemctl stop "
                            f"{SERVICE_UNIT}) or any terminal program (screen, minicom) using it")
                elif "ermission" in text:
                    hint = f"add the service user to the dialout group (sudo adduser {SERVICE_USER} dialout)"
                else:
                    hint = ("check the USB-serial adapter is plugged in and [treadmill] port names it "
                            "(ls -l /dev/serial/by-id/)")
                report.fail(port_check, f"cannot open {self._port} exclusively: {text}", hint)
                report.fail(answer_check, "not checked: the serial port did not open", "fix the serial port first")
                return
            report.ok(port_check, f"{self._port} opened exclusively at {t.baudrate} baud 8N1")
            if t.protocol == "speed-sensor":
                raw.close()
                raw = None
                report.guarded(answer_check, self._check_speed_lines)
                return
            status = self.guarded_status(raw, answer_check)
            raw.close()
            raw = None
            if status is not None:
                report.guarded(answer_check, lambda: self._check_speed_poll(answer_check, status))
        finally:
            if raw is not None:
                try:
                    raw.close()
                except (serial.SerialException, OSError):
                    log.warning("doctor: closing %s failed", self._port)

    def _silent_hint(self) -> str:
        t = self._cfg.treadmill
        return (f"check the treadmill is switched on, the cable (null-modem where needed) is in its "
                f"computer port, and [treadmill] baudrate = {t.baudrate}, protocol = {t.protocol!r} match it")

    def guarded_status(self, raw: serial.Serial, check: str) -> bytes | None:
        """Ask C0 (belt status) on the raw port; None (and a FAIL line) if it is not answered."""
        report = self._report
        try:
            return self._ask_status(raw, check)
        except Exception as exc:  # noqa: BLE001 - checks never raise
            report.fail(check, f"C0 (belt status) failed on {self._port}: {type(exc).__name__}: {exc_text(exc)}",
                        self._silent_hint())
            return None

    def _ask_status(self, raw: serial.Serial, check: str) -> bytes | None:
        report = self._report
        t = self._cfg.treadmill
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
                    report.fail(check, f"the treadmill answered C0 (belt status) with {proto.describe_code(code)}",
                                f"check [treadmill] protocol = {t.protocol!r} matches the treadmill")
                    return None
            i = rx.find(bytes([expected]))
            if 0 <= i < len(rx) - 1:
                took_s = time.monotonic() - t_sent
                if took_s > t.ack_timeout_s:
                    report.fail(check, f"C0 (belt status) answered after {took_s * 1000:.0f} ms, slower than "
                                       f"[treadmill] ack_timeout_s = {t.ack_timeout_s * 1000:.0f} ms",
                                "raise ack_timeout_s (up to 0.25 s) or check the link for a slow adapter")
                    return None
                return bytes(rx[i + 1:i + 2])
        got = f" (got {bytes(rx[:16]).hex(' ')})" if rx else ""
        report.fail(check, f"no answer to C0 (belt status) on {self._port} within "
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

        self._belt = make(on_reading, on_fault)
        self._belt.start()
        event.wait(BELT_READING_WAIT_S)
        return (got[0] if got else None), (fault[0] if fault else None)

    def _check_speed_poll(self, check: str, status: bytes) -> None:
        report = self._report
        t = self._cfg.treadmill
        t0 = time.monotonic()
        reading, fault = self._wait_first_reading(lambda r, f: TrackMasterBelt(
            self._port, dialect=t.protocol, on_reading=r, on_fault=f, baudrate=t.baudrate,
            ack_timeout_s=t.ack_timeout_s, poll_hz=t.poll_hz, reverse_belt=t.reverse_belt))
        if reading is None:
            why = (fault.message if fault is not None
                   else f"no C1 (actual speed) reading within {BELT_READING_WAIT_S:g} s")
            report.fail(check, f"C0 answered, but {why}", self._silent_hint())
            return
        names = {proto.STATUS_STOPPED: "stopped", proto.STATUS_STARTED_DISCONNECT_STOP: "started, disconnect stop",
                 proto.STATUS_STARTED: "started"}
        state = names.get(status[0], f"0x{status[0]:02X}")
        kmh = reading.belt_speed_mps * 3.6
        report.ok(check, f"C0 belt status {state}, C1 speed {kmh:.1f} km/h "
                         f"(first reading after {(reading.t_mono - t0) * 1000:.0f} ms, {t.protocol})")

    def _check_speed_lines(self) -> None:
        report = self._report
        t = self._cfg.treadmill
        check = "speed lines arrive"
        t0 = time.monotonic()
        reading, fault = self._wait_first_reading(lambda r, f: SpeedSensorBelt(
            self._port, on_reading=r, on_fault=f, baudrate=t.baudrate, stale_timeout_s=t.link_timeout_s))
        if reading is None:
            why = fault.message if fault is not None else f"no valid speed line within {BELT_READING_WAIT_S:g} s"
            report.fail(check, why, f"check the speed sensor is powered, sends one mm/s integer per line at "
                                    f"10 Hz or more, and [treadmill] baudrate = {t.baudrate} matches it")
            return
        report.ok(check, f"{reading.belt_speed_mps * 3.6:.1f} km/h, first line after "
                         f"{(reading.t_mono - t0) * 1000:.0f} ms")

    # ---- 6.-9. GPIO ------------------------------------------------------------------

    def check_gpio(self) -> None:
        """Claim every [gpio] pin through the panel driver; the relay is born off."""
        report = self._report
        check = "GPIO pins claimable"
        name = self._cfg.gpio.pin_factory
        factory = self._pins.get()
        if factory is None:
            report.fail(check, str(self._pins.error),
                        f"install the backend for [gpio] pin_factory = {name!r} (the \"pi\" extra: lgpio on a Pi 4/5) "
                        "or name one that is installed")
            return
        try:
            spec = gpio_spec(self._cfg)
            self._panel = PanelIO(spec, pin_factory=factory)
        except (PinConfigError, HardwareError) as exc:
            report.fail(check, exc_text(exc),
                        "another program may hold the pin (stop the controller: sudo systemctl stop "
                        f"{SERVICE_UNIT}), or fix the pin number in [gpio]")
            return
        pins = ", ".join(f"{field.removesuffix('_pin')} {pin_name(pin)}"
                         for field, pin in spec.configured_pins().items())
        report.ok(check, f"{pins} (pin factory {name})")

    def _panel_missing(self, check: str) -> bool:
        report = self._report
        if self._panel is None:
            report.fail(check, "not checked: the GPIO panel did not open",
                        "fix GPIO pins claimable first")
            return True
        return False

    def check_estop(self) -> None:
        """The normally-closed E-stop contact reads closed."""
        report = self._report
        check = "E-stop circuit closed"
        if self._panel_missing(check):
            return
        assert self._panel is not None
        pin = pin_name(self._cfg.gpio.estop_pin)
        if self._panel.estop_open:
            report.fail(check, f"{pin} reads high (open)",
                        f"the NC E-stop contact reads open: check the button is released and its wire to {pin} and GND")
            return
        report.ok(check, f"{pin} reads low: the NC contact is closed")

    def _pin_level(self, pin: int | str) -> bool | None:
        """The level read back from the pin factory, or None if it cannot be read."""
        try:
            return bool(self._pins.get().pin(pin).state)
        except Exception:  # noqa: BLE001 - a backend without read-back
            log.warning("doctor: cannot read back pin %r", pin, exc_info=True)
            return None

    def check_relay(self) -> None:
        """With --relay-test only: energize the relay for a moment and read it drop again."""
        report = self._report
        check = "relay click test"
        if not self._relay_test:
            report.skip(check, "run with --relay-test")
            return
        if self._panel_missing(check):
            return
        assert self._panel is not None
        g = self._cfg.gpio
        pin = pin_name(g.relay_pin)
        try:
            self._panel.set_relay(True)
            on_level = self._pin_level(g.relay_pin)
            time.sleep(RELAY_CLICK_S)
        finally:
            self._panel.set_relay(False)
        off_level = self._pin_level(g.relay_pin)
        energized = self._panel.relay_energized
        want_on, want_off = g.relay_active_high, not g.relay_active_high
        if energized or (off_level is not None and off_level != want_off):
            report.fail(check, f"the relay on {pin} did not drop (pin reads {'high' if off_level else 'low'})",
                        "check relay_active_high and the relay driver; do not use this system until it drops")
            return
        if on_level is not None and on_level != want_on:
            report.fail(check, f"{pin} did not go {'high' if want_on else 'low'} when energized",
                        f"check [gpio] relay_pin = {g.relay_pin!r} and relay_active_high = {g.relay_active_high}")
            return
        report.ok(check, f"relay on {pin} energized for {RELAY_CLICK_S:g} s then de-energized: you should have heard "
                         f"it click twice (on, off); if not, check the relay's coil supply and its wire to {pin}")

    def check_heartbeat(self) -> None:
        """Toggle the heartbeat pin and read each level back."""
        report = self._report
        check = "heartbeat pin toggling"
        if self._panel_missing(check):
            return
        assert self._panel is not None
        hb = self._cfg.gpio.heartbeat_pin
        pin = pin_name(hb)
        start = self._pin_level(hb)
        if start is None:
            report.fail(check, f"cannot read {pin} back", "check [gpio] pin_factory supports reading outputs")
            return
        level = start
        for i in range(HEARTBEAT_TOGGLES):
            self._panel.toggle_heartbeat()
            level = not level
            got = self._pin_level(hb)
            if got != level:
                report.fail(check, f"{pin} read {'high' if got else 'low'} after toggle {i + 1}, expected "
                                   f"{'high' if level else 'low'}",
                            f"check nothing else drives {pin} (a short to 3V3 or GND, or another program)")
                return
        report.ok(check, f"{pin} toggled {HEARTBEAT_TOGGLES} times and read back each time")
