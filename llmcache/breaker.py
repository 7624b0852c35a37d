"""A per-tier circuit breaker: skip a failing tier, probe it again after a cool-down.

closed --failure--> open --cool-down elapsed--> half-open (one probe call at a time)
half-open --success--> closed;  half-open --failure--> open, with a doubled cool-down.

The breaker only decides; the cache's tier walk reports outcomes to it. It reads time from an
injected monotonic clock, so tests tick a fake clock instead of sleeping.
"""

from __future__ import annotations

import enum
import threading
from typing import cast

from llmcache.clock import Clock, monotonic_clock


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        *,
        cooldown: float = 0.5,
        max_cooldown: float = 4.0,
        clock: Clock = monotonic_clock,
    ) -> None:
        # max_cooldown < 5 s: a tier that comes back is probed, and serving, within 5 s.
        self._base = cooldown
        self._max = max_cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self.state = BreakerState.CLOSED
        self._cooldown = cooldown
        self._retry_at = 0.0
        self._probing = False

    def allow(self) -> bool:
        """May a call go to the tier now? (Closed: yes. Open: no, until a probe is due.)"""
        if self.state is BreakerState.CLOSED:  # lock-free fast path
            return True
        with self._lock:
            state = cast(BreakerState, self.state)  # re-read: another thread may have changed it
            if state is BreakerState.OPEN and self._clock() >= self._retry_at:
                self.state = state = BreakerState.HALF_OPEN
                self._probing = False
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.HALF_OPEN and not self._probing:
                self._probing = True
                return True
            return False

    def succeeded(self) -> bool:
        """Record a success; True when this closes a breaker that was open (recovery)."""
        if self.state is BreakerState.CLOSED:
            return False
        with self._lock:
            # re-read under the lock: another thread may have closed it meanwhile
            recovered = cast(BreakerState, self.state) is not BreakerState.CLOSED
            self.state = BreakerState.CLOSED
            self._cooldown = self._base
            self._probing = False
            return recovered

    def failed(self) -> bool:
        """Record a failure; True when this opens a closed breaker (a new outage)."""
        with self._lock:
            new_outage = self.state is BreakerState.CLOSED
            if self.state is BreakerState.HALF_OPEN:
                self._cooldown = min(self._cooldown * 2, self._max)
            self.state = BreakerState.OPEN
            self._probing = False
            self._retry_at = self._clock() + self._cooldown
            return new_outage
