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
from llmcache.fork_safety import renew_after_fork


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
        renew_after_fork(self, "_lock")
        self.state = BreakerState.CLOSED
        self._cooldown = cooldown
        self._retry_at = 0.0
        self._probing = False
        #: When the probe let through is taken as lost (its caller was cancelled, or raised a
        #: BaseException, so it never reported): then the next call probes instead.
        self._probe_lost_at = 0.0

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
            if state is BreakerState.HALF_OPEN and (
                not self._probing or self._clock() >= self._probe_lost_at
            ):
                # One probe at a time; one that never reported (an asyncio caller cancelled
                # while it waited for the tier, a KeyboardInterrupt) must not leave the tier
                # skipped for good: after the longest cool-down, the next call probes.
                self._probing = True
                self._probe_lost_at = self._clock() + self._max
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


#: Tier primitives that only read: they get a breaker of their own (see TierBreakers).
READ_METHODS = frozenset({"get", "get_or_lock", "search", "flight_open"})
#: The semantic tier's embedder: a failure domain apart from its index (see TierBreakers).
EMBED_METHODS = frozenset({"embed"})

_SEVERITY = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class TierBreakers:
    """A tier's breakers: one for reads, one for writes.

    A tier can refuse writes and still serve reads (a full disk, a read-only replica, a
    Redis at its memory limit): with one breaker, failed stores would switch off the reads
    that work. A failed *read* means the tier is down: it opens both, so writes are skipped
    too without a stall of their own, and the read probe alone decides when the tier is back
    (then writes resume, and a write that still fails opens the write breaker alone).

    A semantic tier's embedder (often in process) and its index (a file, Redis Stack) fail
    apart, so ``embed`` has a third breaker: with one, an embedding that worked closed the
    breaker the index's failure had opened, at every probe ("recovered", the back-off reset),
    while the index was still down.
    """

    __slots__ = ("_writes_follow_reads", "embed", "read", "write")

    def __init__(self, clock: Clock = monotonic_clock) -> None:
        self.read = CircuitBreaker(clock=clock)
        self.write = CircuitBreaker(clock=clock)
        self.embed = CircuitBreaker(clock=clock)
        self._writes_follow_reads = False  # the write breaker is open because reads failed

    @property
    def closed(self) -> bool:
        return (
            self.read.state is BreakerState.CLOSED
            and self.write.state is BreakerState.CLOSED
            and self.embed.state is BreakerState.CLOSED
        )

    def allow(self, method: str) -> bool:
        if method in EMBED_METHODS:
            return self.embed.allow()
        if method in READ_METHODS:
            return self.read.allow()
        if self._writes_follow_reads:
            return False  # the tier is down: the read probe finds out when it is back
        return self.write.allow()

    def failed(self, method: str) -> bool:
        """Record a failure; True when the tier was healthy until now (a new outage)."""
        was_closed = self.closed
        if method in EMBED_METHODS:
            self.embed.failed()
        elif method in READ_METHODS:
            self.read.failed()
            if self.write.state is BreakerState.CLOSED:
                self.write.failed()
                self._writes_follow_reads = True
        else:
            self.write.failed()
        return was_closed

    def succeeded(self, method: str) -> bool:
        """Record a success; True when this makes an unhealthy tier healthy (recovered)."""
        if self.closed:
            return False
        if method in EMBED_METHODS:
            self.embed.succeeded()
        elif method in READ_METHODS:
            self.read.succeeded()
            if self._writes_follow_reads:
                self._writes_follow_reads = False
                self.write.succeeded()
        else:
            self.write.succeeded()
        return self.closed

    @property
    def state(self) -> BreakerState:
        """The worst of them (what ``stats()["breakers"]`` shows)."""
        states = (self.read.state, self.write.state, self.embed.state)
        return max(states, key=_SEVERITY.__getitem__)
