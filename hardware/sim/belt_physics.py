"""Belt speed that follows its set point at limited acceleration, integrated in monotonic time."""

from __future__ import annotations

import math


class BeltPhysics:
    """Velocity (m/s, negative = reversed belt) ramping toward the set speed; not thread-safe."""

    def __init__(self, *, accel_mps2: float, decel_mps2: float) -> None:
        for name, value in (("accel_mps2", accel_mps2), ("decel_mps2", decel_mps2)):
            if not (math.isfinite(value) and 0.0 < value <= 100.0):
                raise ValueError(f"{name} must be within (0, 100] m/s^2, got {value!r}")
        self.accel_mps2 = float(accel_mps2)
        self.decel_mps2 = float(decel_mps2)
        self.set_speed_mps = 0.0
        self.reversed_belt = False
        self.running = False
        self.velocity_mps = 0.0
        #: When the motor drive is lost (the safety circuit opened, plus the drive's reaction): from
        #: then on the belt brakes. Until then it keeps going as it was.
        self.cut_at: float | None = None
        self._t_mono: float | None = None

    def cut_drive(self, at_mono: float) -> None:
        """Lose the motor drive at ``at_mono`` (the earliest cut wins)."""
        if self.cut_at is None or at_mono < self.cut_at:
            self.cut_at = at_mono

    @property
    def target_velocity_mps(self) -> float:
        """Where the belt is heading: 0 while stopped, the signed set speed while running."""
        if not self.running:
            return 0.0
        return -self.set_speed_mps if self.reversed_belt else self.set_speed_mps

    def advance(self, now_mono: float) -> float:
        """Integrate up to ``now_mono`` and return the velocity (m/s)."""
        if self.cut_at is not None and now_mono >= self.cut_at:
            cut_at, self.cut_at = self.cut_at, None
            self.advance(cut_at)  # driven up to the cut
            self.running = False
            self.set_speed_mps = 0.0
        if self._t_mono is None or now_mono <= self._t_mono:
            self._t_mono = now_mono if self._t_mono is None else self._t_mono
            return self.velocity_mps
        remaining_s = now_mono - self._t_mono
        self._t_mono = now_mono
        target = self.target_velocity_mps
        velocity = self.velocity_mps
        while remaining_s > 0.0 and velocity != target:
            reversing = velocity * target < 0.0
            if velocity != 0.0 and (reversing or abs(target) < abs(velocity)):
                # Slowing down, and through zero first when the direction flips.
                goal, rate = (0.0 if reversing else target), self.decel_mps2
            else:
                goal, rate = target, self.accel_mps2
            gap = goal - velocity
            if abs(gap) <= rate * remaining_s:
                remaining_s -= abs(gap) / rate
                velocity = goal
            else:
                velocity += math.copysign(rate * remaining_s, gap)
                remaining_s = 0.0
        self.velocity_mps = velocity
        return velocity
