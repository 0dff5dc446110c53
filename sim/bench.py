"""A bench of simulated hardware around the real controller: what the demo and HIL tests run.

Real parts all the way down to the lowest seam: the Adafruit VL53L0X driver over
the register model, gpiozero over MockFactory, the TrackMaster driver over a
pseudo-terminal served by the treadmill emulator. The relay pin drives the
emulator's safety-key circuit, in series with the external watchdog relay.
"""

from __future__ import annotations

import dataclasses
import math
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

from gpiozero.pins.mock import MockFactory, MockPWMPin

from controller.assembly import Controller
from controller.config import Config, KMH_PER_MPS, load_config
from controller.safety.approach import WINDOW
from controller.safety.types import Command, CommandKind, Reply
from hardware.sim.patient import PatientModel, PatientRunner
from hardware.sim.pins import watch_pin
from hardware.sim.treadmill import TreadmillEmulator
from hardware.sim.vl53l0x import SimI2C, bind_gpio1, bind_xshut
from hardware.sim.watchdog import WatchdogRelayModel

EXAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "systemd" / "config.example.toml"
#: How far beyond the warn zone at standstill a patient asked to step forward before a reset stands
#: (their sway and the sensors' noise stay outside it).
RESET_CLEARANCE_MM = 50.0


def sim_config(state_dir: str | Path, *, protocol: str = "trackmaster", base: Config | None = None) -> Config:
    """The example config adapted to the bench: mock pins, a pty port, a scratch state dir."""
    cfg = base or load_config(EXAMPLE_CONFIG)
    return dataclasses.replace(
        cfg,
        treadmill=dataclasses.replace(cfg.treadmill, protocol=protocol, port="(pty)",
                                      reverse_mode_carries=cfg.treadmill.reverse_mode_carries
                                      if protocol == "woodway" else "toward_edge"),
        gpio=dataclasses.replace(cfg.gpio, pin_factory="mock"),
        storage=dataclasses.replace(cfg.storage, state_dir=str(state_dir)),
    )


#: Trips a stalled host causes by itself: a stall of tens of ms starves a sensor reader or the serial
#: link, and the controller rightly trips on the stale input. Tests and benchmarks run a round again for
#: these (and only these) when the machine, not the controller, spoiled it.
STALE_INPUT_TRIPS = ("sensor_stale:", "belt_stale", "link_fault")


def wait_until(predicate: Callable[[], object], timeout_s: float = 2.0, poll_s: float = 0.002) -> bool:
    """Poll until ``predicate()`` is true or the deadline passes; True if it came true."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)


class SimBench:
    """Treadmill emulator, sensor models, patient, mock GPIO and watchdog relay, plus the controller."""

    def __init__(self, cfg: Config | None = None, *, state_dir: str | Path | None = None,
                 start_gap_mm: float = 1000.0, byte_time: bool = False, accel_mps2: float = 0.5,
                 ipc_socket: str | Path | None = None, sway_mm: float = 0.0, sway_hz: float = 0.25,
                 noise_mm: float = 0.0, seed: int = 0, on_healthy_tick=None, stagger_sensors: bool = True):
        self._tmp = None
        if state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="treadmill-sim-")
            state_dir = self._tmp.name
        self.cfg = cfg or sim_config(state_dir)
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        #: A stable name for the pty, as /dev/serial/by-id is for the clinic's adapter: after
        #: unplug()/replug() the pty is a new /dev/pts/N, and a reconnect must find it again.
        self.port_link = Path(state_dir) / "treadmill-tty"
        self.factory = MockFactory(pin_class=MockPWMPin)
        self.patient = PatientModel(start_gap_mm)
        #: Each sensor's reading is off by up to this much, uniformly, per sample (seeded).
        self._noise_mm = noise_mm
        self._rng = random.Random(seed)
        t = self.cfg.treadmill
        dialect = t.protocol
        self.emulator = TreadmillEmulator(dialect, link_path=self.port_link, baudrate=t.baudrate,
                                          byte_time=byte_time, accel_mps2=accel_mps2, decel_mps2=t.decel_mps2,
                                          reaction_s=t.reaction_time_s)
        self.bus = SimI2C()
        self.chips = {}
        for s in self.cfg.sensors:
            chip = self.bus.add_chip(distance_fn=self._distance_fn(s.mount_offset_mm, sway_mm, sway_hz))
            bind_xshut(self.factory, s.xshut_pin, chip)
            if s.interrupt_pin is not None:
                # The sensor's GPIO1 wire: the model drives it as the chip's interrupt output.
                bind_gpio1(self.factory, s.interrupt_pin, chip)
            self.chips[s.id] = chip
        g = self.cfg.gpio
        self.relay_pin = watch_pin(self.factory, g.relay_pin, self._relay_changed)
        self.estop_pin = self.factory.pin(g.estop_pin)
        self.heartbeat_pin = self.factory.pin(g.heartbeat_pin)
        #: (time.monotonic(), on) for every buzzer change: the warn zone and a session's end chime.
        self.buzzer_history: list[tuple[float, bool]] = []
        if g.buzzer_pin is not None:
            watch_pin(self.factory, g.buzzer_pin, lambda on: self.buzzer_history.append((time.monotonic(), on)))
        self.watchdog = WatchdogRelayModel(self.heartbeat_pin, hold_time_s=g.watchdog_hold_ms / 1000.0, latched=True)
        #: Held while the safety circuit is worked out from the relay and the watchdog relay and applied to the
        #: emulator: the relay's listener, the watchdog poll and a watchdog reset each read and write in one go,
        #: so that one thread's stale reading can never overwrite what another just applied.
        self._circuit_lock = threading.Lock()
        self.runner = PatientRunner(self.patient, self._belt_for_patient, step_s=0.002)
        self.controller = Controller(self.cfg, i2c=self.bus, pin_factory=self.factory,
                                     port=str(self.port_link), smbus=self.bus.smbus(), state_dir=state_dir,
                                     on_healthy_tick=on_healthy_tick, stagger_sensors=stagger_sensors)
        self._circuit_stop = threading.Event()
        self._circuit_thread = threading.Thread(target=self._watch_circuit, name="sim-safety-circuit",
                                                daemon=True)
        #: (time.monotonic(), energized) for every relay change: trip latency is measured from it.
        self.relay_history: list[tuple[float, bool]] = []
        self.ipc_socket = ipc_socket
        self.start_gap_mm = start_gap_mm

    def _distance_fn(self, mount_offset_mm: float, sway_mm: float, sway_hz: float) -> Callable[[], float]:
        """What a sensor sees: the patient's gap plus the mount offset, their sway and the sensor's noise."""
        base = self.patient.sensor_distance_fn(mount_offset_mm)
        if not sway_mm and not self._noise_mm:
            return base

        def seen() -> float:
            # A patient stepping back sways with each step: both sensors see it.
            sway = sway_mm * math.sin(2 * math.pi * sway_hz * time.monotonic())
            return base() + sway + self._rng.uniform(-self._noise_mm, self._noise_mm)
        return seen

    def _belt_for_patient(self) -> float:
        """The belt's speed as the patient feels it; a reversed belt carries them away from the edge."""
        velocity = self.emulator.belt_velocity_mps
        if velocity:
            self.patient.set_carried_toward_edge(velocity > 0)
        return abs(velocity)

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> "SimBench":
        """Start the emulator, the patient and the controller."""
        self.emulator.start()
        self.runner.start()
        self.controller.start()
        # The panel's pull-up is set when it opens the pin; then the NC contact closes it.
        self.estop_pin.drive_low()
        self.reset_watchdog()
        self._circuit_thread.start()
        if self.ipc_socket is not None:
            self.controller.serve_ipc(self.ipc_socket, group="", demo_actions=self.demo_actions())
        return self

    # ---- demo controls: act on the simulated world, never on the controller -----------

    def demo_actions(self) -> dict[str, Callable[[], str]]:
        """What the dashboard's demo buttons do to the simulation."""
        return {"drift_back": self._demo_drift_back, "console_speed_up": self._demo_console_speed_up,
                "unplug_sensor": self._demo_unplug_sensor, "unplug_treadmill": self._demo_unplug_treadmill,
                "recover": self._demo_recover}

    def _demo_drift_back(self) -> str:
        self.patient.set_drift(10.0)
        return "the patient stops stepping back and is carried towards the edge"

    def _demo_console_speed_up(self) -> str:
        speed_mps = self.emulator.belt_speed_mps + 0.5 / KMH_PER_MPS
        self.emulator.console_speed(speed_mps)
        return f"someone at the console sets {speed_mps * KMH_PER_MPS:.1f} km/h"

    def _demo_unplug_sensor(self) -> str:
        self.chips[self.cfg.sensors[0].id].inject_fault("i2c_error")
        return f"sensor {self.cfg.sensors[0].id} unplugged (I2C errors)"

    def _demo_unplug_treadmill(self) -> str:
        self.emulator.unplug()
        return "treadmill serial cable unplugged"

    def _demo_recover(self) -> str:
        for chip in self.chips.values():
            chip.clear_faults()
        if not self.emulator.plugged:
            self.emulator.replug()
        self.patient.set_drift(0.0)
        # Back at the start, beyond the warn zone at standstill: a reset is refused inside it.
        zone_mm = self.controller.loop.core.reset_warn_zone_mm()
        self.patient.set_gap(min(self.patient.deck_length_mm,
                                 max(self.start_gap_mm, zone_mm + 2 * RESET_CLEARANCE_MM)))
        # A stall of this machine longer than the hold time opens the (latching) watchdog relay, as on the Pi;
        # the installer's button on it closes it again.
        reopened = not self.watchdog.is_closed()
        self.reset_watchdog()
        return ("sensors and cable back, patient stepped forward to the start"
                + (", watchdog relay reset" if reopened else "") + ": a therapist may reset")

    def close(self) -> None:
        """Stop everything; safe twice."""
        self._circuit_stop.set()
        self.controller.close()
        self.bus.close()  # the register models' clock, which drives their GPIO1 lines
        self.runner.close()
        self.emulator.close()
        if self._circuit_thread.is_alive():
            self._circuit_thread.join(1.0)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "SimBench":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- the safety circuit ----------------------------------------------------------

    @property
    def relay_energized(self) -> bool:
        """The relay's coil, read from the pin's physical level and the configured polarity."""
        return bool(self.relay_pin.state) == self.cfg.gpio.relay_active_high

    def reset_watchdog(self) -> None:
        """The installer's reset button on the external watchdog relay: the relay closes (the hold time counts
        from now) and the safety circuit follows at once, as the contact does, not at the next poll."""
        with self._circuit_lock:
            self.watchdog.reset()
            self._apply_circuit()

    def _relay_changed(self, level: bool) -> None:
        energized = level == self.cfg.gpio.relay_active_high
        self.relay_history.append((time.monotonic(), energized))
        with self._circuit_lock:
            self._apply_circuit()

    def _watch_circuit(self) -> None:
        # The external watchdog relay opens on its own clock: poll it like the hardware would act.
        while not self._circuit_stop.wait(0.005):
            with self._circuit_lock:
                self._apply_circuit()

    def _apply_circuit(self) -> None:
        """Set the emulator's safety circuit from the relay's level now and the watchdog relay now (lock held).

        The level is read from the pin, never passed along: a reading taken before a change and applied after
        it would reopen the circuit under a belt that A0 has just started (or close it after a trip)."""
        closed = self.relay_energized and self.watchdog.is_closed()
        if closed != self.emulator.safety_circuit_closed:
            self.emulator.safety_circuit(closed)

    # ---- operator actions ------------------------------------------------------------

    def command(self, kind: CommandKind, value=None, actor: str = "therapist", authorized: bool = True) -> Reply:
        """A command as a logged-in therapist would give it."""
        return self.controller.command(Command(kind, actor, authorized, value), timeout_s=2.0)

    def step_patient_forward(self, step_mm: float = 140.0) -> bool:
        """What a therapist asks before a reset: the patient stops drifting and steps forward out of the
        warn zone at standstill (a reset is refused inside it), back to where they started if that is
        farther, in steps both sensors see. True if they had to move."""
        zone_mm = self.controller.loop.core.reset_warn_zone_mm()
        if self.patient.gap_mm > zone_mm + RESET_CLEARANCE_MM:
            return False
        self.patient.set_drift(0.0)
        target = min(self.patient.deck_length_mm, max(self.start_gap_mm, zone_mm + 2 * RESET_CLEARANCE_MM))
        while self.patient.gap_mm < target - 1e-6 and not self.patient.fallen:
            self.patient.set_gap(min(target, self.patient.gap_mm + step_mm))
            self.wait_sensors_sampled()
        return True

    def reset_and_start(self, speed_kmh: float, timeout_s: float = 8.0) -> None:
        """Reset (the patient stepped forward out of the warn zone first, as a therapist asks), start and
        wait until the belt runs at the requested speed (within 0.1 mph)."""
        deadline = time.monotonic() + timeout_s
        reply = None
        self.step_patient_forward()
        self.wait_sensors_sampled()
        while time.monotonic() < deadline:
            reply = self.command(CommandKind.RESET)
            if reply.ok:
                break
            time.sleep(0.05)
        if reply is None or not reply.ok:
            raise RuntimeError(f"reset refused: {reply}")
        reply = self.command(CommandKind.START, speed_kmh)
        if not reply.ok:
            raise RuntimeError(f"start refused: {reply}")
        target_mps = speed_kmh / KMH_PER_MPS
        if not wait_until(lambda: self.emulator.belt_speed_mps >= target_mps - 0.045,
                          max(0.0, deadline - time.monotonic())):
            raise RuntimeError(f"belt did not reach {speed_kmh} km/h: {self.emulator.belt_speed_mps:.3f} m/s")

    def wait_sensors_sampled(self, timeout_s: float = 1.0) -> bool:
        """Wait until every sensor has given the controller the samples its closing-speed estimate fits,
        all taken from now on (the patient as placed: a placement is a jump no person could make)."""
        t0 = time.monotonic()
        tracks = self.controller.loop.core.sensors.values()
        return wait_until(lambda: all(t.t_sample is not None and t.t_sample > t0 + (WINDOW - 0.5) * t.cfg.period_s
                                      for t in tracks), timeout_s)

    def press_estop(self) -> None:
        """Press the E-stop button: the NC contact opens and the pull-up wins."""
        self.estop_pin.drive_high()

    def release_estop(self) -> None:
        """Release the E-stop button."""
        self.estop_pin.drive_low()
