"""How fast the patient closes on the rear edge, measured from one sensor's gap samples.

The estimate is the least-squares slope of the gap over the last ``WINDOW`` valid samples
(three sensor periods: 100 ms at the 33 ms budget). Why this filter, against the figures:

- A VL53L0X at 0.5-1 m reads within about ±15 mm per sample at a 33 ms budget. The slope of
  a straight line through 4 samples 33 ms apart moves by at most 0.36 m/s under that noise
  (standard deviation 0.12 m/s); through 2 samples it would move by 0.9 m/s.
- A walking patient sways ±40 mm at about 1 Hz: a true closing speed of up to 0.25 m/s each
  step, which the estimate follows (the stop distance grows a little at each sway, and the
  warn zone with it; the belt's own speed is usually larger).
- A lurch is a step change of speed. The slope of 4 samples reaches it once 3 samples lie on
  the new line: 100 ms after the lurch began. A longer window would be steadier and later;
  a lurch at 1.6 m/s covers 53 mm per sample.
- Outliers: a sample more than ``OUTLIER_MM`` off the fitted line (three times the noise) means
  the samples do not lie on any line a person could walk: a foreign object, a mis-read. The
  estimate is then implausible, and the core falls back to the configured approach speed. A
  lurch's onset is a kink too, but under 45 mm until it covers about 110 mm per sample
  (3.4 m/s), faster than a person moves; a reading that jumps that far is a position, which
  the stop zone judges as it is.

Pure: no I/O, time passed in.
"""

from __future__ import annotations

from collections import deque

#: Samples in the fit: three sensor periods of motion.
WINDOW = 4
#: A sample this far off the fitted line makes the fit implausible (mm).
OUTLIER_MM = 45.0
#: The samples must be consecutive: no more than this many periods from the oldest to the newest
#: beyond the window's own span (a missed sample leaves a hole the line would bridge).
SPAN_SLACK_PERIODS = 1.5


class ClosingSpeed:
    """The closing speed of one sensor's gap (m/s, positive toward the edge), or None when unknown.

    The line is fitted once per sample, when it arrives; asking for the estimate only checks
    that the newest sample is still fresh (the decision asks on every tick).
    """

    __slots__ = ("period_s", "_samples", "_fit")

    def __init__(self, period_s: float):
        self.period_s = period_s
        self._samples: deque[tuple[float, float]] = deque(maxlen=WINDOW)
        self._fit: float | None = None

    def add(self, t_mono: float, gap_mm: float) -> None:
        """A valid sample of the gap."""
        self._samples.append((t_mono, gap_mm))
        self._fit = self._fitted()

    def clear(self) -> None:
        """Forget the samples: an invalid reading or a fault breaks the line."""
        self._samples.clear()
        self._fit = None

    def estimate(self, now: float) -> float | None:
        """The fitted closing speed, or None if too few, too old, too spread or off any line."""
        if self._fit is None or now - self._samples[-1][0] > 2.0 * self.period_s:
            return None
        return self._fit

    def _fitted(self) -> float | None:
        samples = self._samples
        n = len(samples)
        if n < WINDOW:
            return None
        t0 = samples[0][0]
        if samples[-1][0] - t0 > (WINDOW - 1 + SPAN_SLACK_PERIODS) * self.period_s:
            return None
        sum_t = sum_g = sum_tt = sum_tg = 0.0
        for t, g in samples:
            dt = t - t0
            sum_t += dt
            sum_g += g
            sum_tt += dt * dt
            sum_tg += dt * g
        mean_t, mean_g = sum_t / n, sum_g / n
        sxx = sum_tt - sum_t * mean_t
        if sxx <= 1e-12:
            return None
        slope_mm_per_s = (sum_tg - sum_t * mean_g) / sxx
        for t, g in samples:
            if abs(g - mean_g - slope_mm_per_s * (t - t0 - mean_t)) > OUTLIER_MM:
                return None
        # The gap shrinks as the patient closes: a falling gap is a positive closing speed.
        return -slope_mm_per_s / 1000.0
