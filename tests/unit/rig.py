"""A test rig that drives the pure safety core with synthetic, timestamped inputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from controller.config import KMH_PER_MPS, Config, load_config
from controller.safety.approach import WINDOW
from controller.safety.core import SafetyCore
from controller.safety.types import BeltAction, Command, CommandKind, Outputs, State

EXAMPLE = Path(__file__).resolve().parents[2] / "systemd" / "config.example.toml"


def example_config(**overrides) -> Config:
    """The shipped example config, with whole sections replaced by keyword."""
    cfg = load_config(EXAMPLE)
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


class Rig:
    """Feeds a SafetyCore on a simulated clock and keeps every output."""

    def __init__(self, cfg: Config | None = None):
        self.cfg = cfg or example_config()
        self.t = 0.0
        self.core = SafetyCore(self.cfg, self.t)
        self.outs: list[Outputs] = []
        self.speed_mps = 0.0
        self.gap_mm = 900.0

    @property
    def last(self) -> Outputs:
        return self.outs[-1]

    def _keep(self, out: Outputs) -> Outputs:
        self.outs.append(out)
        return out

    def events(self, kind: str | None = None):
        return [e for o in self.outs for e in o.events if kind is None or e.kind == kind]

    def belt_commands(self):
        return [o.belt for o in self.outs if o.belt.action is not BeltAction.NONE]

    def distance(self, sensor_id: str, gap_mm: float, status: int = 11) -> Outputs:
        offset = next(s.mount_offset_mm for s in self.cfg.sensors if s.id == sensor_id)
        return self._keep(self.core.on_distance(sensor_id, gap_mm + offset, status, self.t))

    def raw_distance(self, sensor_id: str, distance_mm: float, status: int = 11) -> Outputs:
        return self._keep(self.core.on_distance(sensor_id, distance_mm, status, self.t))

    def all_sensors(self, gap_mm: float | None = None) -> Outputs:
        out = None
        for s in self.cfg.sensors:
            out = self.distance(s.id, self.gap_mm if gap_mm is None else gap_mm)
        return out

    def approach(self, gap_mm: float, step_mm: float = 5.0) -> Outputs:
        """Move the patient to a gap a few mm per 10 ms, both sensors seeing it (as in life)."""
        out = self.last
        while abs(self.gap_mm - gap_mm) > 1e-9 and out.state is not State.STOPPED:
            delta = max(-step_mm, min(step_mm, gap_mm - self.gap_mm))
            self.gap_mm += delta
            self.t += 0.01
            self.speed_mps = self.core.commanded_mps
            self.belt()
            out = self.all_sensors()
            self.tick()
        return out

    def belt(self, speed_mps: float | None = None) -> Outputs:
        return self._keep(self.core.on_belt_speed(self.speed_mps if speed_mps is None else speed_mps, self.t))

    def estop(self, estop_open: bool) -> Outputs:
        return self._keep(self.core.on_estop(estop_open, self.t))

    def tick(self) -> Outputs:
        return self._keep(self.core.on_tick(self.t))

    def command(self, kind: CommandKind, value=None, authorized: bool = True, actor: str = "ann") -> Outputs:
        return self._keep(self.core.on_command(Command(kind, actor, authorized, value), self.t))

    def advance(self, dt_s: float, *, feed: bool = True) -> Outputs:
        """Move the clock in 10 ms steps, feeding fresh healthy inputs (unless feed=False)."""
        end = self.t + dt_s
        out = self.last if self.outs else self.tick()
        while self.t < end - 1e-9:
            self.t = min(end, self.t + 0.01)
            if feed:
                self.belt()
                self.all_sensors()
            out = self.tick()
        return out

    def healthy(self) -> Outputs:
        """Fresh inputs everywhere and the E-stop closed: a sensor period's worth of samples for each
        sample the closing-speed estimate fits, as the sensors deliver them."""
        self.estop(False)
        self.belt()
        out = self.all_sensors()
        for _ in range(WINDOW - 1):
            self.t += self.cfg.sensor_period_s
            self.belt()
            out = self.all_sensors()
        return out

    def ready(self) -> Outputs:
        """Bring the controller to READY."""
        self.healthy()
        out = self.command(CommandKind.RESET)
        assert out.reply.ok, out.reply
        return out

    def running(self, speed_kmh: float = 2.0) -> Outputs:
        """READY, then started at a speed, with the belt following the commands."""
        self.ready()
        out = self.command(CommandKind.START, speed_kmh)
        assert out.reply.ok, out.reply
        self.follow(5.0)
        return out

    def follow(self, dt_s: float) -> None:
        """Let the simulated belt follow the commanded speed for a while."""
        end = self.t + dt_s
        while self.t < end - 1e-9:
            self.t += 0.01
            self.speed_mps = self.core.commanded_mps
            self.belt()
            self.all_sensors()
            self.tick()


def kmh(v_kmh: float) -> float:
    """km/h to m/s."""
    return v_kmh / KMH_PER_MPS
