"""Shared counters: each process publishes what its counters gained to a tier that keeps them.

Two kinds: the fleet-wide totals (a Redis tier: ``llmcache stats``) and the savings history per
(hour, model) (a SQL or Redis tier: ``llmcache report``). A daemon thread takes what was gained
every ``interval`` seconds and sends it in one batch (Redis: one pipeline of HINCRBY; SQL: one
transaction of upserts), so a lookup never pays a round trip for statistics. What could not be
sent (the tier is down) is kept for the next batch. ``close()`` stops the thread and sends what
is left; so does the interpreter's exit for a cache never closed (a script, a notebook, a
``multiprocessing`` worker), as the write-behind queue does. A process forked after the cache
was made (a pre-forking server) starts a thread of its own and publishes only what it gains
itself: what the parent had not sent yet is the parent's.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Protocol, TypeVar

from llmcache.fork_safety import call_after_fork, renew_after_fork, run_at_exit
from llmcache.redact import describe_error
from llmcache.savings import HistorySink
from llmcache.stats import Stats

logger = logging.getLogger("llmcache")

DEFAULT_INTERVAL = 1.0
T = TypeVar("T")


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
        self._closed = False  # close() sent the rest: nothing is left for the exit
        self._flush_lock = threading.Lock()
        renew_after_fork(self, "_flush_lock")
        self._thread = self._started()
        call_after_fork(self, "_after_fork_in_child")
        _LIVE.add(self)

    def _started(self) -> threading.Thread:
        owner = self._sink if self._sink is not None else self._history
        thread = threading.Thread(
            target=self._loop,
            name=f"llmcache-stats-{owner.name if owner is not None else 'none'}",
            daemon=True,
        )
        thread.start()
        return thread

    def _after_fork_in_child(self) -> None:
        stopped = self._stop.is_set()
        self._stop = threading.Event()  # the parent's thread may have been waiting in it
        self._stats.leave_unsent_to_parent(buckets=self._history is not None)
        if stopped:
            self._stop.set()
        else:
            self._thread = self._started()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def flush(self) -> bool:
        """Send what the counters gained since the last flush; False if a sink failed."""
        with self._flush_lock:
            sent = True
            if self._sink is not None:
                sent = _send(
                    "fleet stats",
                    self._stats.take_deltas,
                    self._sink.publish_stats,
                    self._stats.untake,
                )
            if self._history is not None:
                sent &= _send(
                    "savings history",
                    self._stats.take_buckets,
                    self._history.publish_history,
                    self._stats.untake_buckets,
                )
            return sent

    def stop(self) -> None:
        """Stop the thread without a last flush (for ``weakref.finalize`` of a dropped cache)."""
        self._stop.set()

    def close(self) -> None:
        self._closed = True
        self.stop()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.flush()


_LIVE: weakref.WeakSet[StatsPublisher] = weakref.WeakSet()


#: Seconds the exit spends at most sending what caches never closed had not sent.
EXIT_BUDGET = 5.0


def _flush_at_exit() -> None:
    """What caches never closed gained since their last batch is sent at exit (a publisher
    with nothing new sends nothing; unreachable tiers do not hold the exit past EXIT_BUDGET)."""
    deadline = time.monotonic() + EXIT_BUDGET
    for publisher in list(_LIVE):
        if time.monotonic() > deadline:
            break
        if not publisher._closed:  # stopped only (a cache's finalizer runs first): not sent
            publisher.stop()
            publisher.flush()


run_at_exit(_flush_at_exit)  # a multiprocessing child's end too


def _send(
    what: str, take: Callable[[], T], publish: Callable[[T], None], untake: Callable[[T], None]
) -> bool:
    """Publish what ``take`` gives (if anything); on failure hand it back for the next batch."""
    taken = take()
    if not taken:
        return True
    try:
        publish(taken)
    except Exception as exc:  # statistics must never fail or stall a caller
        untake(taken)
        logger.debug("llmcache: publishing %s failed: %s", what, describe_error(exc))
        return False
    return True
