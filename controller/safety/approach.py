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
  estimate is then implausible, and the core falls back to the configured approach speed.

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
    """The closing speed of one sensor's gap (m/s, positive toward the edge), or None when unknown."""

    __slots__ = ("period_s", "_samples")

    def __init__(self, period_s: float):
        self.period_s = period_s
        self._samples: deque[tuple[float, float]] = deque(maxlen=WINDOW)

    def add(self, t_mono: float, gap_mm: float) -> None:
        """A valid sample of the gap."""
        self._samples.append((t_mono, gap_mm))

    def clear(self) -> None:
        """Forget the samples: an invalid reading or a fault breaks the line."""
        self._samples.clear()

    def estimate(self, now: float) -> float | None:
        """The fitted closing speed, or None if too few, too old, too spread or off any line."""
        samples = self._samples
        if len(samples) < WINDOW:
            return None
        t0 = samples[0][0]
        newest = samples[-1][0]
        if now - newest > 2.0 * self.period_s or newest - t0 > (WINDOW - 1 + SPAN_SLACK_PERIODS) * self.period_s:
            return None
        n = len(samples)
        mean_t = sum(t for t, _ in samples) / n
        mean_g = sum(g for _, g in samples) / n
        sxx = sum((t - mean_t) ** 2 for t, _ in samples)
        if sxx <= 0.0:
            return None
        slope_mm_per_s = sum((t - mean_t) * (g - mean_g) for t, g in samples) / sxx
        for t, g in samples:
            if abs(g - (mean_g + slope_mm_per_s * (t - mean_t))) > OUTLIER_MM:
                return None
        # The gap shrinks as the patient closes: a falling gap is a positive closing speed.
        return -slope_mm_per_s / 1000.0
