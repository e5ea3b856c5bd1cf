"""The clock every task, session and URL expiry follows: real time, scaled, or manual."""

from __future__ import annotations

import enum
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_SPEED = 1_000_000.0  # a million mock seconds per real second; beyond that ms overflow soon
MAX_MS = 2**53  # timeline values stay exact in JSON doubles (year ~285000)


class ClockMode(enum.StrEnum):
    REAL = "real"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class ClockState:
    """Everything that fixes a clock's timeline: the mode, the speed and one anchor point.

    The timeline reads `anchor_ms` at wall time `anchor_wall_s`; in real mode it then runs at
    `speed`, in manual mode it stays at `anchor_ms`.
    """

    mode: ClockMode
    speed: float
    anchor_ms: int
    anchor_wall_s: float


def check_speed(speed: float) -> float:
    if not isinstance(speed, int | float) or isinstance(speed, bool):
        raise ValueError(f"clock speed must be a number, got {type(speed).__name__}")
    if not math.isfinite(speed) or not 0 < speed <= MAX_SPEED:
        raise ValueError(f"clock speed must be > 0 and <= {MAX_SPEED:g}, got {speed!r}")
    return float(speed)


def _check_ms(at_ms: int) -> int:
    if not 0 <= at_ms <= MAX_MS:
        raise ValueError(f"clock time must be between 0 and {MAX_MS} ms, got {at_ms}")
    return at_ms


class Clock:
    """Milliseconds since the epoch on a timeline that runs at `speed` or only when advanced.

    `listeners` are called with the new state after every change (mode, speed, a jump, an
    advance, a reset, a restore), under the clock's lock: a durable store keeps it there.
    """

    def __init__(
        self, mode: ClockMode = ClockMode.REAL, speed: float = 1.0, start_ms: int | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._mode = mode
        self._speed = check_speed(speed)
        self._anchor_wall = time.time()
        self._anchor_ms = int(self._anchor_wall * 1000) if start_ms is None else start_ms
        self.listeners: list[Callable[[ClockState], None]] = []

    @property
    def mode(self) -> ClockMode:
        return self._mode

    @property
    def speed(self) -> float:
        return self._speed

    def now_ms(self) -> int:
        if self._mode is ClockMode.MANUAL:
            return self._anchor_ms
        elapsed = time.time() - self._anchor_wall
        return self._anchor_ms + int(elapsed * 1000 * self._speed)

    def state(self) -> ClockState:
        with self._lock:
            return ClockState(self._mode, self._speed, self._anchor_ms, self._anchor_wall)

    def restore(self, state: ClockState) -> None:
        """Take up a saved timeline. A real-mode timeline ran on while the mock was down (it is
        wall time, scaled); if the wall clock is now before the saved anchor, the timeline
        resumes at the anchor instead of going back."""
        speed = check_speed(state.speed)
        with self._lock:
            self._mode = ClockMode(state.mode)
            self._speed = speed
            self._anchor_ms = _check_ms(int(state.anchor_ms))
            self._anchor_wall = min(float(state.anchor_wall_s), time.time())
            self._changed()

    def _changed(self) -> None:
        state = ClockState(self._mode, self._speed, self._anchor_ms, self._anchor_wall)
        for listener in self.listeners:
            listener(state)

    def _rebase(self, at_ms: int) -> None:
        self._anchor_wall = time.time()
        self._anchor_ms = _check_ms(at_ms)

    def advance(self, ms: int) -> int:
        """Move the timeline forward by `ms` (in any mode) and return the new time."""
        if ms < 0:
            raise ValueError("the clock never goes backwards")
        with self._lock:
            self._rebase(self.now_ms() + ms)
            self._changed()
            return self._anchor_ms

    def set_time(self, at_ms: int) -> int:
        with self._lock:
            if at_ms < self.now_ms():
                raise ValueError("the clock never goes backwards")
            self._rebase(at_ms)
            self._changed()
            return at_ms

    def set_mode(self, mode: ClockMode, speed: float | None = None) -> None:
        checked = None if speed is None else check_speed(speed)
        with self._lock:
            self._rebase(self.now_ms())
            self._mode = mode
            if checked is not None:
                self._speed = checked
            self._changed()

    def reset(self, mode: ClockMode, speed: float, start_ms: int | None) -> None:
        """Back to the start-up state (the control API's reset)."""
        checked = check_speed(speed)
        with self._lock:
            self._mode = mode
            self._speed = checked
            self._anchor_wall = time.time()
            self._anchor_ms = int(self._anchor_wall * 1000) if start_ms is None else start_ms
            self._changed()

    def wall_seconds_until(self, at_ms: int) -> float:
        """Real seconds until the timeline reaches `at_ms`; infinite in manual mode."""
        if self._mode is ClockMode.MANUAL:
            return float("inf")
        return max(0.0, (at_ms - self.now_ms()) / 1000 / self._speed)
