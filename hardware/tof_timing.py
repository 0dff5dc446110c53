"""When ToF results come: each sensor's actual period and phase, and which sensor to re-phase.

Pure (no I/O, no clock of its own): ``hardware.tof`` feeds it sample timestamps and acts on
its answers. Real VL53L0X oscillators differ by some percent, so two sensors started half a
period apart drift together again; restarting one sensor's continuous ranging at the right
instant puts it back in its slot.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

#: An interval counts as a whole number of periods only within this share of one period of it.
MAX_PERIOD_DEVIATION = 0.25
#: Recent samples the measured period is fitted to.
PERIOD_WINDOW = 32
#: A measured period is reported once the samples span this many periods.
MIN_MEASURED_PERIODS = 4
#: Recent samples a sensor's phase is judged from (timestamps come late by a varying amount).
PHASE_WINDOW = 8
#: The period is fitted again after this many samples: an oscillator drifts slowly, and a fit of
#: PERIOD_WINDOW samples on every one of 60 samples a second is the reader's largest cost.
REFIT_EVERY = 8
#: A restarted sensor that runs fast is put this share of the tolerance behind its slot.
LEAD_SHARE = 0.75


class SampleClock:
    """One sensor's period and the time of its latest result, estimated from sample timestamps.

    Missed samples are allowed: an interval counts as the nearest whole number of periods.
    The period is the least-squares slope of time over period count across recent samples
    (one intercept per stretch between restarts), which a single late stamp hardly moves; the
    phase is the earliest of the latest stretch's samples projected to its last one.
    """

    def __init__(self, nominal_period_s: float) -> None:
        if not nominal_period_s > 0:
            raise ValueError(f"nominal_period_s must be > 0, got {nominal_period_s!r}")
        self.nominal_period_s = nominal_period_s
        #: (stretch, period index, time) of recent samples; a restart or a gap starts a stretch.
        self._samples: deque[tuple[int, int, float]] = deque(maxlen=PERIOD_WINDOW)
        self._stretch = 0
        self._index = 0
        self._last_t: float | None = None
        self._measured_s: float | None = None
        self._unfitted = 0

    @property
    def measured_period_s(self) -> float | None:
        """The period measured from samples, or None until enough of them came."""
        return self._measured_s

    @property
    def period_s(self) -> float:
        """The best estimate of the period: measured, else nominal."""
        return self._measured_s if self._measured_s is not None else self.nominal_period_s

    @property
    def samples_since_restart(self) -> int:
        """Samples behind the phase estimate (it starts afresh after a restart or a gap)."""
        return len(self._latest_stretch())

    @property
    def latest_t(self) -> float | None:
        """When the latest result came, from recent samples; None before the first.

        A timestamp can only be late (an edge handled late, a poll after the result), never
        early, so the earliest of the recent samples projected to the latest one is the best.
        """
        stretch = self._latest_stretch()
        if not stretch:
            return None
        period_s = self.period_s
        last_index = stretch[-1][0]
        return min(t + (last_index - k) * period_s for k, t in stretch)

    def add(self, t: float) -> None:
        """Take the timestamp of a new result (edge time, or read time when polling)."""
        if self._last_t is not None:
            periods = self._whole_periods(t - self._last_t)
            if periods:
                self._index += periods
            else:  # not a whole number of periods: the phase is unknown from here
                self._stretch += 1
        self._last_t = t
        self._samples.append((self._stretch, self._index, t))
        self._unfitted += 1
        if self._measured_s is None or self._unfitted >= REFIT_EVERY:
            self._measured_s = self._fit_period_s()
            self._unfitted = 0

    def restarted(self) -> None:
        """The sensor's period was restarted: its phase starts afresh, its oscillator is the same."""
        # The sample that led to the restart is biased: one stamped early looks out of phase
        # more often. Leave it out of the period.
        if self._samples and self._samples[-1][0] == self._stretch:
            self._samples.pop()
            self._measured_s = self._fit_period_s()
        self._stretch += 1
        self._last_t = None

    def _latest_stretch(self) -> list[tuple[int, float]]:
        # (period index, time) of the current stretch's samples, at most PHASE_WINDOW of them.
        out: list[tuple[int, float]] = []
        for stretch, index, t in reversed(self._samples):
            if stretch != self._stretch or len(out) == PHASE_WINDOW:
                break
            out.append((index, t))
        out.reverse()
        return out

    def _fit_period_s(self) -> float | None:
        stretches: dict[int, list[tuple[int, float]]] = {}
        for stretch, index, t in self._samples:
            stretches.setdefault(stretch, []).append((index, t))
        covariance = variance = 0.0
        spanned = 0
        for samples in stretches.values():
            if len(samples) < 2:
                continue
            mean_k = sum(k for k, _ in samples) / len(samples)
            mean_t = sum(t for _, t in samples) / len(samples)
            covariance += sum((k - mean_k) * (t - mean_t) for k, t in samples)
            variance += sum((k - mean_k) ** 2 for k, _ in samples)
            spanned += samples[-1][0] - samples[0][0]
        if spanned < MIN_MEASURED_PERIODS:
            return self._measured_s  # too few to replace the last estimate
        return covariance / variance

    def _whole_periods(self, interval_s: float) -> int:
        # How many periods the interval spans; 0 if it is no whole number of them.
        period_s = self.period_s
        periods = round(interval_s / period_s)
        if periods < 1 or abs(interval_s - periods * period_s) > MAX_PERIOD_DEVIATION * period_s:
            return 0
        return periods


def slot_offsets_s(period_s: float, count: int, *, stagger: bool) -> list[float]:
    """Where each sensor's results belong after the first sensor's: evenly spread, or all in phase."""
    spacing_s = period_s / count if stagger else 0.0
    return [i * spacing_s for i in range(count)]


def phase_errors_s(
    latest_t: Sequence[float], periods_s: Sequence[float], offsets_s: Sequence[float]
) -> list[float]:
    """Each sensor's phase error against its slot, relative to the first sensor (whose error is 0).

    Positive: the sensor's results come late. Each is wrapped into half a period either side.
    """
    errors = []
    for t, period_s, offset_s in zip(latest_t, periods_s, offsets_s):
        behind_s = t - (latest_t[0] + offset_s)
        errors.append(behind_s - round(behind_s / period_s) * period_s)
    return errors


def rephase_delay_s(
    errors_s: Sequence[float], periods_s: Sequence[float], sensor: int, *, tolerance_s: float,
    max_delay_s: float,
) -> float | None:
    """How long to hold back ``sensor``'s next result, or None if it should not be restarted.

    A restart can only delay a sensor, so the latest sensor sets the grid and the others
    are delayed to it: an early sensor is held back by its error, and when one is late
    the others are held back instead. A sensor that runs faster than the latest one is
    held back a little further (LEAD_SHARE of the tolerance), so it drifts across the
    whole tolerance band before the next restart. Never more than ``max_delay_s`` at a time.
    """
    latest = max(range(len(errors_s)), key=lambda i: errors_s[i])
    need_s = errors_s[latest] - errors_s[sensor]
    if need_s <= tolerance_s:
        return None
    if periods_s[sensor] < periods_s[latest]:
        need_s += LEAD_SHARE * tolerance_s
    return min(need_s, max_delay_s)


def missed_result_t(last_t: float, period_s: float, now: float) -> float:
    """When the result found waiting at ``now`` most likely came: the last whole period after ``last_t``."""
    periods = max(1, math.floor((now - last_t) / period_s))
    return min(now, last_t + periods * period_s)
