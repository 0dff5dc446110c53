"""An external missing-pulse watchdog relay, modelled from a gpiozero MockPin's state history.

Clock: gpiozero's MockPin (2.0) stamps each change with ``time.monotonic()``,
but stores in ``PinState.timestamp`` the seconds since the *previous* change
(the first entry, 0.0, marks the last ``clear_states()``); the absolute time of
the latest change is kept in ``MockPin._last_change``. This model anchors on
that attribute once and then adds up the deltas, so every time it reports is
on the ``time.monotonic()`` clock, the same clock the controller uses.
Nothing hooks the control loop: the model only reads what the pin recorded.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from gpiozero.pins.mock import MockPin

from hardware import HardwareError

#: Attempts at a consistent (history, last change) snapshot while another thread toggles.
_ANCHOR_ATTEMPTS = 100


class WatchdogRelayModel:
    """Closed while the heartbeat pin keeps changing; open once no edge came for > hold_time_s.

    Armed (closed) at construction: the hold time counts from then until the first
    edge. With ``latched=True`` an opening lasts until ``reset()``; otherwise the
    relay closes again on the next edge, as a plain missing-pulse detector does.
    """

    def __init__(self, heartbeat_pin: MockPin, *, hold_time_s: float = 0.1,
                 latched: bool = False) -> None:
        if isinstance(hold_time_s, bool) or not isinstance(hold_time_s, int | float) \
                or not math.isfinite(hold_time_s) or hold_time_s <= 0:
            raise ValueError(f"hold_time_s = {hold_time_s!r}: must be a finite number > 0 s")
        if not hasattr(heartbeat_pin, "states") or not hasattr(heartbeat_pin, "_last_change"):
            raise HardwareError(
                "WatchdogRelayModel needs a gpiozero MockPin (states, _last_change)")
        self._pin = heartbeat_pin
        self._hold_time_s = float(hold_time_s)
        self._latched = latched
        self._lock = threading.Lock()
        # Edges already on the pin before the model existed are history, not pulses.
        self._history, self._cursor_index, self._cursor_t = self._anchor()
        self._pending_edges_t: deque[float] = deque()
        self._latest_recorded_edge_t: float | None = None
        now = time.monotonic()
        self._ref_t = now          # hold time counts from here: last edge, arming or reset
        self._last_eval_t = now
        self._last_edge_t: float | None = None
        self._open = False
        self._opened_at: float | None = None

    @property
    def hold_time_s(self) -> float:
        """How long the relay holds without an edge before it opens."""
        return self._hold_time_s

    @property
    def latched(self) -> bool:
        """True if an opening lasts until reset()."""
        return self._latched

    @property
    def last_edge_t(self) -> float | None:
        """time.monotonic() of the latest heartbeat edge recorded on the pin; None if none yet."""
        with self._lock:
            self._collect_edges()
            return self._latest_recorded_edge_t

    @property
    def opened_at(self) -> float | None:
        """When the hold expired (last edge + hold_time_s), as of the latest is_closed(); None if never."""
        with self._lock:
            return self._opened_at

    def is_closed(self, now: float | None = None) -> bool:
        """Whether the relay is closed at *now* (time.monotonic(); default: the current time).

        A *now* ahead of real time judges only the edges recorded so far.
        """
        with self._lock:
            self._advance(self._check_now(now))
            return not self._open

    def reset(self, now: float | None = None) -> None:
        """Close the relay and re-arm it at *now*: the hold time counts from there."""
        with self._lock:
            now = self._check_now(now)
            self._advance(now)
            self._open = False
            self._opened_at = None
            self._ref_t = max(self._ref_t, now)

    # -- internals (call with the lock held) ------------------------------------

    def _check_now(self, now: float | None) -> float:
        """Default to the current time; refuse to evaluate the past (state only moves forward)."""
        if now is None:
            return max(time.monotonic(), self._last_eval_t)
        if now < self._last_eval_t:
            raise ValueError(
                f"now = {now!r} is before the previous evaluation at {self._last_eval_t!r}")
        return now

    def _anchor(self) -> tuple[list, int, float]:
        """A consistent (history list, its length, monotonic time of its last entry)."""
        pin = self._pin
        for _attempt in range(_ANCHOR_ATTEMPTS):
            last_before = pin._last_change
            history = pin.states
            length = len(history)
            last_after = pin._last_change
            # Unchanged around the read: no edge was recorded in between.
            if last_before == last_after and pin.states is history and len(history) == length:
                return history, length, last_after
        raise HardwareError("heartbeat pin changes too fast to read its history")

    def _collect_edges(self) -> None:
        """Move newly recorded edges into the pending queue, converted to monotonic time."""
        history = self._pin.states
        if history is not self._history:
            # Someone called clear_states(): the new list starts with a non-edge entry.
            history, length, last_t = self._anchor()
            new_entries = history[1:length]
            # Walk back from the anchor to date the entries recorded since the clear.
            times: list[float] = []
            t = last_t
            for entry in reversed(new_entries):
                times.append(t)
                t -= entry.timestamp
            self._queue_edges(sorted(times))
            self._history, self._cursor_index, self._cursor_t = history, length, last_t
            return
        length = len(history)
        if length <= self._cursor_index:
            return
        times = []
        t = self._cursor_t
        for entry in history[self._cursor_index:length]:
            t += entry.timestamp  # each timestamp is the delay since the previous change
            times.append(t)
        self._cursor_index, self._cursor_t = length, t
        self._queue_edges(times)

    def _queue_edges(self, times: list[float]) -> None:
        for edge_t in times:
            self._pending_edges_t.append(edge_t)
            self._latest_recorded_edge_t = edge_t

    def _advance(self, now: float) -> None:
        """Replay edges up to *now* in order, noting any silence longer than the hold time."""
        self._collect_edges()
        while self._pending_edges_t and self._pending_edges_t[0] <= now:
            edge_t = self._pending_edges_t.popleft()
            self._note_silence_until(edge_t)
            self._last_edge_t = edge_t
            self._ref_t = max(self._ref_t, edge_t)
            if not self._latched:
                self._open = False
        self._note_silence_until(now)
        self._last_eval_t = now

    def _note_silence_until(self, t: float) -> None:
        if not self._open and t - self._ref_t > self._hold_time_s:
            self._open = True
            self._opened_at = self._ref_t + self._hold_time_s
