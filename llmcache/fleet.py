"""Shared counters: each process publishes what its counters gained to a tier that keeps them.

Two kinds: the fleet-wide totals (a Redis tier: ``llmcache stats``) and the savings history per
(hour, model) (a SQL or Redis tier: ``llmcache report``). A daemon thread takes what was gained
every ``interval`` seconds and sends it in one batch (Redis: one pipeline of HINCRBY; SQL: one
transaction of upserts), so a lookup never pays a round trip for statistics. What could not be
sent (the tier is down) is kept for the next batch. ``close()`` stops the thread and sends what
is left.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from llmcache.redact import describe_error
from llmcache.savings import HistorySink
from llmcache.stats import Stats

logger = logging.getLogger("llmcache")

DEFAULT_INTERVAL = 1.0


class StatsSink(Protocol):
    """A tier that keeps fleet-wide counters (Redis)."""

    name: str

    def publish_stats(self, deltas: dict[str, float]) -> None: ...
    def read_stats(self) -> dict[str, float]: ...


class StatsPublisher:
    def __init__(
        self,
        stats: Stats,
        sink: StatsSink | None,
        interval: float = DEFAULT_INTERVAL,
        *,
        history: HistorySink | None = None,
    ) -> None:
        self._stats = stats
        self._sink = sink
        self._history = history
        self._interval = interval
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        owner = sink if sink is not None else history
        self._thread = threading.Thread(
            target=self._loop,
            name=f"llmcache-stats-{owner.name if owner is not None else 'none'}",
            daemon=True,
        )
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def flush(self) -> bool:
        """Send what the counters gained since the last flush; False if a sink failed."""
        with self._flush_lock:
            return self._flush_totals() & self._flush_history()

    def _flush_totals(self) -> bool:
        if self._sink is None:
            return True
        deltas = self._stats.take_deltas()
        if not deltas:
            return True
        try:
            self._sink.publish_stats(deltas)
        except Exception as exc:  # statistics must never fail or stall a caller
            self._stats.untake(deltas)
            logger.debug("llmcache: publishing fleet stats failed: %s", describe_error(exc))
            return False
        return True

    def _flush_history(self) -> bool:
        if self._history is None:
            return True
        buckets = self._stats.take_buckets()
        if not buckets:
            return True
        try:
            self._history.publish_history(buckets)
        except Exception as exc:
            self._stats.untake_buckets(buckets)
            logger.debug("llmcache: publishing savings history failed: %s", describe_error(exc))
            return False
        return True

    def stop(self) -> None:
        """Stop the thread without a last flush (for ``weakref.finalize`` of a dropped cache)."""
        self._stop.set()

    def close(self) -> None:
        self.stop()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.flush()
