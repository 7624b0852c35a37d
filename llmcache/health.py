"""Health: what ``Cache.health()`` reports, and the events a cache raises on its own.

Events go to a callback passed as ``Cache(..., on_health=callback)`` and to the ``llmcache``
logger (warnings):

- ``tier_down``: a tier's breaker opened (the tier failed and is being skipped);
- ``tier_recovered``: it serves again;
- ``hit_rate_low``: over the last ``hit_rate_window`` lookups, the hit rate fell below
  ``hit_rate_floor`` (a deploy that changed every prompt, a wiped store, a key change...);
- ``hit_rate_recovered``: a later window is back at or above the floor.

A callback that raises is logged and otherwise ignored: health reporting never breaks a call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import NamedTuple

from llmcache.errors import ConfigError
from llmcache.fork_safety import renew_after_fork

logger = logging.getLogger("llmcache")


class HealthEvent(NamedTuple):
    kind: str  # tier_down, tier_recovered, hit_rate_low, hit_rate_recovered
    tier: str | None
    detail: str


HealthCallback = Callable[[HealthEvent], None]


def emit(callback: HealthCallback | None, event: HealthEvent) -> None:
    if callback is None:
        return
    try:
        callback(event)
    except Exception as exc:  # a broken callback must not break the user's LLM call
        logger.warning("llmcache: on_health callback failed on %s: %r", event.kind, exc)


class HitRateFloor:
    """Watches the hit rate over consecutive windows of lookups; says when it crosses a floor.

    Checked on misses only (a hit needs no alarm, and a miss already costs a model call), from
    the cache's own counters: no work at all on the hit path.
    """

    def __init__(self, floor: float, window: int, callback: HealthCallback | None) -> None:
        if not 0.0 < floor <= 1.0:
            raise ConfigError(f"hit_rate_floor must be in (0, 1], got {floor!r}")
        if window < 10:
            raise ConfigError(f"hit_rate_window must be at least 10 lookups, got {window!r}")
        self.floor = floor
        self.window = window
        self._callback = callback
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")
        self._start_hits = 0
        self._start_lookups = 0
        self.low = False
        self.last_rate: float | None = None

    def check(self, hits: int, misses: int) -> None:
        lookups = hits + misses
        with self._lock:
            # The counters were reset: fewer lookups, or (a reset followed by hits alone, which
            # are not checked) fewer misses than at the window's start.
            if lookups < self._start_lookups or misses < self._start_lookups - self._start_hits:
                self._start_hits = self._start_lookups = 0
            if lookups - self._start_lookups < self.window:
                return
            rate = (hits - self._start_hits) / (lookups - self._start_lookups)
            self._start_hits, self._start_lookups = hits, lookups
            self.last_rate = rate
            crossed = (rate < self.floor) != self.low
            if crossed:
                self.low = not self.low
        if not crossed:
            return
        kind = "hit_rate_low" if self.low else "hit_rate_recovered"
        detail = f"hit rate {rate:.1%} over the last {self.window} lookups (floor {self.floor:.1%})"
        logger.warning("llmcache: %s: %s", kind.replace("_", " "), detail)
        emit(self._callback, HealthEvent(kind, None, detail))
