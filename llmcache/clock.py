"""Time sources. Everything that reads time takes one of these, so tests tick a fake clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: A clock returns seconds as a float. Wall time (shared between processes) for expiry,
#: monotonic time for in-process intervals such as circuit-breaker cool-downs.
Clock = Callable[[], float]

wall_clock: Clock = time.time
monotonic_clock: Clock = time.monotonic


class FakeClock:
    """A manually advanced clock for tests: ``clock.advance(5)`` instead of ``sleep(5)``."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._now += seconds
