"""Fleet-wide counters: each process publishes what its counters gained to a shared tier.

A daemon thread takes the deltas every ``interval`` seconds and sends them in one batch
(Redis: one pipeline of HINCRBY), so a lookup never pays a round trip for statistics. Deltas
that could not be sent (the tier is down) are kept for the next batch. ``close()`` stops the
thread and sends what is left.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from llmcache.redact import describe_error
from llmcache.stats import Stats

logger = logging.getLogger("llmcache")

DEFAULT_INTERVAL = 1.0


class StatsSink(Protocol):
    """A tier that keeps fleet-wide counters (Redis)."""

    name: str

    def publish_stats(self, deltas: dict[str, float]) -> None: ...
    def read_stats(self) -> dict[str, float]: ...


class StatsPublisher:
    def __init__(self, stats: Stats, sink: StatsSink, interval: float = DEFAULT_INTERVAL) -> None:
        self._stats = stats
        self._sink = sink
        self._interval = interval
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._loop, name=f"llmcache-stats-{sink.name}", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def flush(self) -> bool:
        """Send what the counters gained since the last flush; False if the sink failed."""
        with self._flush_lock:
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

    def stop(self) -> None:
        """Stop the thread without a last flush (for ``weakref.finalize`` of a dropped cache)."""
        self._stop.set()

    def close(self) -> None:
        self.stop()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.flush()
