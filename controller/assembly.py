"""The composition root: builds the whole controller from a config and its three seams.

Production passes the real I2C bus, the pin factory the config names and the
serial port; the HIL tests and the demo pass the register model, MockFactory
and a pty. Everything above those seams is the same code.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from controller.config import Config
from controller.loop import ControlLoop
from controller.safety.core import SafetyCore
from controller.safety.types import Command, CommandKind, EventKind, Mode
from controller.therapy.runner import SessionRunner
from controller.storage.settings import SettingsStore
from controller.storage.store import HistoryStore
from hardware import HardwareError, LinkError
from hardware.belt import SpeedSensorBelt, TrackMasterBelt
from hardware.io import GpioSpec, PanelIO
from hardware.tof import TofArray, TofSpec

log = logging.getLogger(__name__)


class _BeltAdapter:
    """The loop's belt port: follows the mode for the Woodway direction digit."""

    def __init__(self, driver: Any, core: SafetyCore, reverse_belt: bool):
        self.driver = driver
        self.core = core
        self.reverse_belt = reverse_belt

    def request_speed(self, belt_speed_mps: float) -> Any:
        if hasattr(self.driver, "reverse_belt"):
            self.driver.reverse_belt = self.reverse_belt and self.core.mode is Mode.REVERSE
        return self.driver.request_speed(belt_speed_mps)

    def request_stop(self) -> Any:
        return self.driver.request_stop()

    def reopen(self) -> Any:
        return self.driver.reopen()


def gpio_spec(cfg: Config) -> GpioSpec:
    """The panel's pins from the [gpio] section."""
    g = cfg.gpio
    return GpioSpec(relay_pin=g.relay_pin, relay_active_high=g.relay_active_high,
                    heartbeat_pin=g.heartbeat_pin, estop_pin=g.estop_pin, estop_bounce_ms=g.estop_bounce_ms,
                    reset_pin=g.reset_pin, buzzer_pin=g.buzzer_pin, lamp_green_pin=g.lamp_green_pin,
                    lamp_amber_pin=g.lamp_amber_pin, lamp_red_pin=g.lamp_red_pin)


class Controller:
    """The assembled controller: panel, sensors, belt link, loop and storage.

    Start order puts the relay (born off) first; ``close()`` drops it first.
    """

    def __init__(self, cfg: Config, *, i2c: Any, pin_factory: Any, port: str | None = None,
                 smbus: Any = None, state_dir: str | Path | None = None, on_healthy_tick=None,
                 stagger_sensors: bool = True):
        self.cfg = cfg
        self.state_dir = Path(state_dir or cfg.storage.state_dir)
        self.port = port or cfg.treadmill.port
        self._i2c, self._smbus, self._pin_factory = i2c, smbus, pin_factory
        self._on_healthy_tick = on_healthy_tick
        #: Start the sensors' ranging staggered over one period (benchmarks compare with in phase).
        self._stagger_sensors = stagger_sensors
        self.panel: PanelIO | None = None
        self.tof: TofArray | None = None
        self.belt: TrackMasterBelt | SpeedSensorBelt | None = None
        self.loop: ControlLoop | None = None
        self.history = HistoryStore(self.state_dir, clinic=cfg.clinic.enabled)
        self.settings = SettingsStore(self.state_dir)
        self.sessions: SessionRunner | None = None
        self.ipc = None
        self._closed = False

    def start(self) -> "Controller":
        """Bring everything up; the controller comes up STOPPED whatever fails."""
        self.panel = PanelIO(gpio_spec(self.cfg), pin_factory=self._pin_factory)
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            # No history and no saved settings, but the controller still guards the patient.
            log.error("state directory %s cannot be created: %s", self.state_dir, exc)
        self.history.start()
        limits, mode, errors = self.settings.load(self.cfg)
        for err in errors:
            log.warning("saved settings ignored, using the config's: %s", err)
        core = SafetyCore(self.cfg, time.monotonic(), limits=limits, mode=Mode(mode))
        panel = self.panel
        self.loop = loop = ControlLoop(core, outputs=panel, event_sink=self._on_event,
                                       on_healthy_tick=self._on_healthy_tick,
                                       estop_level=lambda: panel.estop_open)
        self.panel.on_estop_change = loop.submit_estop
        self.panel.on_reset_pressed = lambda t: loop.submit_command(
            Command(CommandKind.RESET, "reset button", authorized=True))
        loop.submit_estop(self.panel.estop_open, time.monotonic())
        self.sessions = SessionRunner(self.cfg, loop, self.history).start()
        loop.add_status_listener(self.sessions.on_status)
        self._start_belt(core)
        self._start_sensors()
        loop.start()
        return self

    def _start_belt(self, core: SafetyCore) -> None:
        t = self.cfg.treadmill
        assert self.loop is not None
        loop = self.loop
        on_reading = lambda r: loop.submit_belt_speed(r.belt_speed_mps, r.t_mono)  # noqa: E731
        on_fault = lambda f: loop.submit_link_fault(f.message, f.t_mono)  # noqa: E731
        if t.protocol == "speed-sensor":
            self.belt = SpeedSensorBelt(self.port, on_reading=on_reading, on_fault=on_fault,
                                        baudrate=t.baudrate, stale_timeout_s=t.link_timeout_s)
        else:
            self.belt = TrackMasterBelt(self.port, dialect=t.protocol, on_reading=on_reading, on_fault=on_fault,
                                        baudrate=t.baudrate, ack_timeout_s=t.ack_timeout_s, poll_hz=t.poll_hz,
                                        reverse_belt=t.reverse_belt)
        loop.belt = _BeltAdapter(self.belt, core, t.reverse_belt)
        try:
            self.belt.open()
            self.belt.start()
            # A controller that (re)starts comes up stopped, and tells the belt so.
            self.belt.request_stop()
        except (LinkError, OSError) as exc:
            log.error("treadmill link: %s", exc)
            loop.submit_link_fault(f"cannot open {self.port}: {exc}", time.monotonic())

    def _start_sensors(self) -> None:
        assert self.loop is not None
        loop = self.loop
        specs = [TofSpec(s.id, s.i2c_address, s.xshut_pin, s.timing_budget_ms, interrupt_pin=s.interrupt_pin)
                 for s in self.cfg.sensors]
        self.tof = TofArray(specs, i2c=self._i2c, smbus=self._smbus, bus_number=self.cfg.i2c.bus,
                            pin_factory=self._pin_factory, stagger=self._stagger_sensors,
                            on_reading=lambda r: loop.submit_distance(r.sensor_id, r.distance_mm,
                                                                      r.range_status, r.t_mono),
                            on_fault=lambda f: loop.submit_sensor_fault(f.sensor_id, f.message, f.t_mono))
        try:
            self.tof.open()
            self.tof.start()
        except (HardwareError, OSError, ValueError) as exc:
            log.error("sensors: %s", exc)
            now = time.monotonic()
            for s in self.cfg.sensors:
                loop.submit_sensor_fault(s.id, f"bring-up failed: {exc}", now)

    def _on_event(self, event) -> None:
        self.history.put(event)
        if self.sessions is not None:
            self.sessions.on_event(event)
        if event.kind == EventKind.LIMITS or (event.kind == EventKind.STATE and event.code == "mode"):
            # Runs on the decision thread: capture the values here, write on the writer thread.
            assert self.loop is not None
            limits, mode = self.loop.core.limits, self.loop.core.mode.value
            self.history.put_task(lambda: self.settings.save(limits, mode))

    def serve_ipc(self, socket_path: str | Path | None = None, *, group: str | None = None,
                  demo_actions=None):
        """Serve the API socket (default: [web] ipc_socket, group [web] ipc_group)."""
        from controller.ipc import IpcServer
        assert self.loop is not None, "start() first"
        self.ipc = IpcServer(self.loop, self.history, self.cfg, socket_path or self.cfg.web.ipc_socket,
                             group=self.cfg.web.ipc_group if group is None else group,
                             demo_actions=demo_actions, sessions=self.sessions,
                             sensor_timing=lambda: self.tof.timing if self.tof is not None else {}).start()
        return self.ipc

    def command(self, command: Command, timeout_s: float = 1.0):
        """Send a command and wait for the reply."""
        assert self.loop is not None
        return self.loop.command(command, timeout_s)

    @property
    def status(self) -> dict:
        """The latest status snapshot."""
        return self.loop.status if self.loop else {}

    def close(self) -> None:
        """Relay off first, then stop the belt, then release everything. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.loop is not None:
            self.loop.stop()
        if self.ipc is not None:
            self.ipc.close()
        if self.sessions is not None:
            try:
                self.sessions.close()
            except Exception:  # noqa: BLE001 - the rest still shuts down
                log.exception("closing sessions failed")
        for name, action in (("belt", lambda: self.belt and self.belt.stop_then_close()),
                             ("sensors", lambda: self.tof and self.tof.close()),
                             ("panel", lambda: self.panel and self.panel.close()),
                             ("history", self.history.close)):
            try:
                action()
            except Exception:  # noqa: BLE001 - every part gets its chance to shut down
                log.exception("closing %s failed", name)

    def __enter__(self) -> "Controller":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
