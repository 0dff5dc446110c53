"""A patient walking backwards on the belt, reduced to one number: the gap to the rear edge.

Two set-ups, by which way the belt carries the patient:

- Toward the edge (the usual retro-walking set-up): the patient walks against the belt.
  ``drift_mps`` scripts how much slower than the belt they walk: drift = belt speed means
  standing still and being carried at full belt speed; a negative drift walks them toward
  the console.
- Away from the edge (a reversed belt, the patient facing the console, stepping back):
  ``drift_mps`` is how much faster than the belt they step back, at the cadence they had
  when it was set; while the belt slows they keep that cadence and close on the edge faster.

On top of either, ``lurch`` adds a stumble toward the edge of a given speed and duration.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from types import TracebackType

log = logging.getLogger(__name__)

MM_PER_M = 1000.0
#: Bounds for the runner's step: fine enough for mm resolution at therapy speeds.
RUNNER_STEP_MIN_S = 0.0001
RUNNER_STEP_MAX_S = 0.1


def _check_finite(name: str, value: float) -> float:
    """Reject non-numbers, bools and non-finite values, naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} = {value!r}: must be a finite number")
    return float(value)


class PatientModel:
    """Gap (mm) between the patient's heels and the rear edge, integrated step by step; thread-safe.

    The model has its own clock (``time_s``): it advances by each step's dt, or
    jumps to ``now_s`` when the caller passes one (PatientRunner passes
    time.monotonic(), so ``fallen_at`` can be compared with trip times).
    """

    def __init__(self, start_gap_mm: float, *, deck_length_mm: float = 1500.0,
                 carried_toward_edge: bool = True) -> None:
        deck_length_mm = _check_finite("deck_length_mm", deck_length_mm)
        if deck_length_mm <= 0:
            raise ValueError(f"deck_length_mm = {deck_length_mm!r}: must be > 0 mm")
        self._deck_length_mm = deck_length_mm
        self._check_gap("start_gap_mm", start_gap_mm)
        self._lock = threading.Lock()
        self._gap_mm = float(start_gap_mm)
        self._min_gap_mm = self._gap_mm
        self._drift_mps = 0.0
        self._carried_toward_edge = bool(carried_toward_edge)
        #: Away set-up: the patient's own stepping speed toward the edge, over the deck (m/s).
        self._cadence_mps: float | None = None
        self._last_belt_mps = 0.0
        #: (start, end, speed) of the lurch under way, in model time.
        self._lurch: tuple[float, float, float] | None = None
        self._time_s = 0.0
        self._fallen_at: float | None = None

    def _check_gap(self, name: str, gap_mm: float) -> None:
        gap_mm = _check_finite(name, gap_mm)
        if not 0 < gap_mm <= self._deck_length_mm:
            raise ValueError(
                f"{name} = {gap_mm!r}: must be > 0 and <= deck_length_mm "
                f"({self._deck_length_mm:g} mm)")

    # -- scripting -------------------------------------------------------------

    def set_drift(self, drift_mps: float) -> None:
        """Script the drift (m/s): slower than the belt toward the edge, or faster than it away from it."""
        drift_mps = _check_finite("drift_mps", drift_mps)
        with self._lock:
            self._drift_mps = drift_mps
            self._cadence_mps = self._last_belt_mps + drift_mps

    def set_carried_toward_edge(self, toward: bool) -> None:
        """Which way the belt carries the patient (the installation, in the present mode)."""
        with self._lock:
            if self._carried_toward_edge != bool(toward):
                self._carried_toward_edge = bool(toward)
                self._cadence_mps = self._last_belt_mps + self._drift_mps

    def lurch(self, speed_mps: float, duration_s: float) -> None:
        """A stumble: the patient moves toward the edge ``speed_mps`` faster for ``duration_s``, from now."""
        speed_mps = _check_finite("speed_mps", speed_mps)
        duration_s = _check_finite("duration_s", duration_s)
        if speed_mps <= 0 or duration_s <= 0:
            raise ValueError(f"lurch({speed_mps!r}, {duration_s!r}): speed and duration must be > 0")
        with self._lock:
            self._lurch = (self._time_s, self._time_s + duration_s, speed_mps)

    def _lurch_mm(self, start_t_s: float, end_t_s: float) -> float:
        if self._lurch is None:
            return 0.0
        begin, end, speed = self._lurch
        overlap_s = max(0.0, min(end, end_t_s) - max(begin, start_t_s))
        return speed * MM_PER_M * overlap_s

    def set_gap(self, gap_mm: float) -> None:
        """Place the patient at *gap_mm* from the rear edge; a fall is not undone."""
        self._check_gap("gap_mm", gap_mm)
        with self._lock:
            if self._fallen_at is not None:
                return  # the scenario already failed; moving the patient must not hide it
            self._gap_mm = float(gap_mm)
            self._min_gap_mm = min(self._min_gap_mm, self._gap_mm)

    # -- state -----------------------------------------------------------------

    @property
    def deck_length_mm(self) -> float:
        """Usable deck length; the gap never exceeds it."""
        return self._deck_length_mm

    @property
    def gap_mm(self) -> float:
        """Current gap to the rear edge (mm); 0 once fallen."""
        with self._lock:
            return self._gap_mm

    @property
    def drift_mps(self) -> float:
        """The scripted drift (m/s)."""
        with self._lock:
            return self._drift_mps

    @property
    def min_gap_mm(self) -> float:
        """Closest approach to the rear edge so far (mm)."""
        with self._lock:
            return self._min_gap_mm

    @property
    def time_s(self) -> float:
        """The model's clock (s): sum of step dts, or the last now_s passed to step()."""
        with self._lock:
            return self._time_s

    @property
    def fallen(self) -> bool:
        """True once the patient went over the rear edge: the scenario failed."""
        with self._lock:
            return self._fallen_at is not None

    @property
    def fallen_at(self) -> float | None:
        """Model time (s) at which the gap reached 0, interpolated within the step; None if not."""
        with self._lock:
            return self._fallen_at

    # -- integration -----------------------------------------------------------

    def step(self, dt_s: float, belt_speed_mps: float, *, now_s: float | None = None) -> float:
        """Advance by *dt_s* at *belt_speed_mps*; returns the new gap (mm).

        The patient drifts back at min(drift, belt speed): they cannot be carried
        faster than the belt. *now_s*, if given, is the clock value at the step's end.
        """
        dt_s = _check_finite("dt_s", dt_s)
        belt_speed_mps = _check_finite("belt_speed_mps", belt_speed_mps)
        if dt_s < 0:
            raise ValueError(f"dt_s = {dt_s!r}: must be >= 0 s")
        if belt_speed_mps < 0:
            raise ValueError(f"belt_speed_mps = {belt_speed_mps!r}: must be >= 0 m/s")
        with self._lock:
            end_t_s = self._time_s + dt_s if now_s is None else _check_finite("now_s", now_s)
            start_t_s = end_t_s - dt_s
            self._time_s = end_t_s
            if self._fallen_at is not None:
                return self._gap_mm
            self._last_belt_mps = belt_speed_mps
            if self._carried_toward_edge:
                closing_mps = min(self._drift_mps, belt_speed_mps)
            else:
                # The cadence follows the belt up and holds when it slows: a patient stepping back
                # does not notice the belt braking at once.
                self._cadence_mps = max(self._cadence_mps or 0.0, belt_speed_mps + self._drift_mps)
                closing_mps = self._cadence_mps - belt_speed_mps
            travel_mm = closing_mps * MM_PER_M * dt_s + self._lurch_mm(start_t_s, end_t_s)
            new_gap_mm = min(self._gap_mm - travel_mm, self._deck_length_mm)
            if new_gap_mm <= 0:
                # Interpolate the instant the heels crossed the edge within this step.
                fraction = self._gap_mm / travel_mm if travel_mm > 0 else 1.0
                self._fallen_at = start_t_s + fraction * dt_s
                new_gap_mm = 0.0
            self._gap_mm = new_gap_mm
            self._min_gap_mm = min(self._min_gap_mm, new_gap_mm)
            return new_gap_mm

    def sensor_distance_fn(self, mount_offset_mm: float) -> Callable[[], float]:
        """A distance source for a rear sensor model: the gap plus the sensor's offset (mm)."""
        offset_mm = _check_finite("mount_offset_mm", mount_offset_mm)

        def distance_mm() -> float:
            return self.gap_mm + offset_mm

        return distance_mm


class PatientRunner:
    """Steps a PatientModel in real monotonic time from a belt-speed callable, on a daemon thread."""

    def __init__(self, model: PatientModel, belt_speed_fn: Callable[[], float], *,
                 step_s: float = 0.002) -> None:
        step_s = _check_finite("step_s", step_s)
        if not RUNNER_STEP_MIN_S <= step_s <= RUNNER_STEP_MAX_S:
            raise ValueError(
                f"step_s = {step_s!r}: must be between {RUNNER_STEP_MIN_S:g} "
                f"and {RUNNER_STEP_MAX_S:g} s")
        self._model = model
        self._belt_speed_fn = belt_speed_fn
        self._step_s = step_s
        self._stop = threading.Event()
        self._state_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._error: BaseException | None = None

    @property
    def model(self) -> PatientModel:
        """The model this runner steps."""
        return self._model

    @property
    def error(self) -> BaseException | None:
        """The exception that stopped the runner (from belt_speed_fn or step), if any."""
        return self._error

    @property
    def running(self) -> bool:
        """True while the stepping thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        """Start stepping; a second call does nothing. A closed runner cannot restart."""
        with self._state_lock:
            if self._closed:
                raise RuntimeError("PatientRunner is closed")
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="patient-runner", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop stepping and join the thread; safe to call more than once."""
        with self._state_lock:
            self._closed = True
            thread = self._thread
        self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(1.0, 10 * self._step_s))
            if thread.is_alive():
                log.error("patient runner did not stop within its join timeout")

    def _run(self) -> None:
        try:
            prev_t = time.monotonic()
            # Zero-order hold: the belt speed read at the start of a step drives that step.
            belt_speed_mps = self._belt_speed_fn()
            while not self._stop.wait(self._step_s):
                now_t = time.monotonic()
                self._model.step(now_t - prev_t, belt_speed_mps, now_s=now_t)
                prev_t = now_t
                belt_speed_mps = self._belt_speed_fn()
        # Keep the cause for the test to report instead of dying silently on a daemon thread.
        except Exception as exc:
            self._error = exc
            log.exception("patient runner stopped")

    def __enter__(self) -> PatientRunner:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
