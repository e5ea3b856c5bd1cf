"""The clock every task, session and URL expiry follows: real time, scaled, or manual."""

from __future__ import annotations

import enum
import threading
import time


class ClockMode(enum.StrEnum):
    REAL = "real"
    MANUAL = "manual"


class Clock:
    """Milliseconds since the epoch on a timeline that runs at `speed` or only when advanced."""

    def __init__(
        self, mode: ClockMode = ClockMode.REAL, speed: float = 1.0, start_ms: int | None = None
    ) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self._lock = threading.Lock()
        self._mode = mode
        self._speed = speed
        self._anchor_wall = time.time()
        self._anchor_ms = int(self._anchor_wall * 1000) if start_ms is None else start_ms

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

    def _rebase(self, at_ms: int) -> None:
        self._anchor_wall = time.time()
        self._anchor_ms = at_ms

    def advance(self, ms: int) -> int:
        """Move the timeline forward by `ms` (in any mode) and return the new time."""
        if ms < 0:
            raise ValueError("the clock never goes backwards")
        with self._lock:
            self._rebase(self.now_ms() + ms)
            return self._anchor_ms

    def set_time(self, at_ms: int) -> int:
        with self._lock:
            if at_ms < self.now_ms():
                raise ValueError("the clock never goes backwards")
            self._rebase(at_ms)
            return at_ms

    def set_mode(self, mode: ClockMode, speed: float | None = None) -> None:
        with self._lock:
            self._rebase(self.now_ms())
            self._mode = mode
            if speed is not None:
                if speed <= 0:
                    raise ValueError("clock speed must be positive")
                self._speed = speed

    def reset(self, mode: ClockMode, speed: float, start_ms: int | None) -> None:
        """Back to the start-up state (the control API's reset)."""
        with self._lock:
            self._mode = mode
            self._speed = speed
            self._anchor_wall = time.time()
            self._anchor_ms = int(self._anchor_wall * 1000) if start_ms is None else start_ms

    def wall_seconds_until(self, at_ms: int) -> float:
        """Real seconds until the timeline reaches `at_ms`; infinite in manual mode."""
        if self._mode is ClockMode.MANUAL:
            return float("inf")
        return max(0.0, (at_ms - self.now_ms()) / 1000 / self._speed)
