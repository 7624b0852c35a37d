"""Write-behind: stores queued for one writer thread instead of waiting for the server's commit.

A store to MySQL or PostgreSQL waits for a durable commit (InnoDB's default flushes the redo
log on every commit): an fsync, milliseconds on many disks, on the path of the caller's call.
With write-behind the store is queued and the call returns; one writer thread upserts the queue
in batches of one transaction each (its untagged entries as one executemany), so stores made
while a commit is under way share the next one instead of each paying their own. Server SQL
tiers use it unless their URL says ``?write_behind=off``; SQLite only with
``?write_behind=on``.

What the process sees: a queued entry is served from the queue until it is written, so a
process always reads its own stores. Other processes see an entry once its batch commits
(normally within milliseconds). Delete, clear, invalidate and listings first wait for the queue
to drain (``flush``), so a queued store never brings back what they removed.

What is given up, on purpose: entries still queued when a process dies are lost (at most
``max_pending`` entries or ``max_pending_bytes``, beyond which callers wait for the writer; a
lost cache entry costs one model call, never a wrong answer), and a store that fails in the
background is reported through ``on_error`` (the cache's error counts, breaker and health
events) rather than when it was made. While the writer is failing, or after the tier saw any
statement fail (``suspend``), stores are refused here (``submit`` returns False) and the tier
writes them itself, synchronously, until one succeeds: the caller then learns that its store
failed, and the cache's breaker sees each failure when it happens and opens as it would
without write-behind. ``close()`` and interpreter exit flush what is queued.

With a semantic index shared by processes, another process can find an entry's vector in the
milliseconds before the entry is written; it then finds no entry, treats the vector as
dangling and deletes it: that entry still serves exact repeats, not paraphrases.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice

from llmcache.entry import CacheEntry
from llmcache.fork_safety import call_after_fork, run_at_exit
from llmcache.keys import CacheKey
from llmcache.redact import describe_error

logger = logging.getLogger("llmcache")

MAX_PENDING = 10_000
MAX_PENDING_BYTES = 64 * 1024 * 1024
MAX_BATCH = 256
#: How long close() and interpreter exit wait for the queue to be written.
FLUSH_ON_CLOSE_SECONDS = 10.0
#: A writer with nothing to write for this long ends (the next store starts another), so an
#: idle or forgotten cache holds no thread (nor, through it, its tier and connections).
IDLE_EXIT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Queued:
    """One store waiting for the writer: what the tier's ``set`` was given."""

    key: CacheKey
    entry: CacheEntry
    payload: bytes
    now: float
    expires_at: float | None  # the tier's effective expiry, to serve it from the queue

    def fresh(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now


class WriteBehind:
    """A bounded queue of stores, keyed by entry digest, written by one daemon thread."""

    def __init__(
        self,
        write_batch: Callable[[Sequence[Queued]], None],
        *,
        name: str,
        max_pending: int = MAX_PENDING,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        max_batch: int = MAX_BATCH,
    ) -> None:
        if max_pending < 1 or max_pending_bytes < 1 or max_batch < 1:
            raise ValueError("max_pending, max_pending_bytes and max_batch must be at least 1")
        self._write_batch = write_batch
        self._name = name
        self._max_pending = max_pending
        self._max_bytes = max_pending_bytes
        self._max_batch = max_batch
        #: Set by the owner (the cache): called with each failed batch's exception.
        self.on_error: Callable[[Exception], None] | None = None
        self._reset()
        _LIVE.add(self)
        # In a forked child: the parent's writer thread does not exist there, and its queue is
        # the parent's to write (both processes writing it would store every entry twice).
        call_after_fork(self, "_reset")

    def _reset(self) -> None:
        self._cond = threading.Condition()
        # A newer store of one key replaces the queued one: only the latest is written.
        self._pending: dict[bytes, Queued] = {}
        self._bytes = 0  # payload bytes queued
        self._in_flight = 0  # entries of the batch being written
        self._failing = False
        self._closed = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ callers
    def queued(self, digest: bytes, now: float) -> Queued | None:
        """The store of this key still waiting to be written, if fresh at ``now``."""
        item = self._pending.get(digest)  # one dict read: atomic, no lock needed
        return item if item is not None and item.fresh(now) else None

    @property
    def idle(self) -> bool:
        return not self._pending and not self._in_flight

    def submit(self, item: Queued) -> bool:
        """Queue a store. False when the writer is failing or closed: store it yourself."""
        digest = item.key.digest
        with self._cond:
            if self._failing or self._closed:
                dropped = self._pending.pop(digest, None)  # the caller's own store supersedes it
                if dropped is not None:
                    self._bytes -= len(dropped.payload)
                return False
            # Back-pressure: a writer that cannot keep up slows the callers down instead of
            # letting the queue (memory, and what a crash would lose) grow without bound.
            while self._pending and self._full(item) and digest not in self._pending:
                self._cond.wait(0.05)
                if self._failing or self._closed:
                    return False
            replaced = self._pending.get(digest)
            self._bytes += len(item.payload) - (0 if replaced is None else len(replaced.payload))
            self._pending[digest] = item
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._write_loop, name=f"llmcache-write-behind-{self._name}", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
        return True

    def suspend(self) -> None:
        """The owner saw the server fail: store synchronously until a store succeeds again."""
        with self._cond:
            self._failing = True

    def _full(self, item: Queued) -> bool:
        return (
            len(self._pending) >= self._max_pending
            or self._bytes + len(item.payload) > self._max_bytes
        )

    def stored_directly(self) -> None:
        """The owner's synchronous store succeeded: the writer may take stores again."""
        if self._failing:
            with self._cond:
                self._failing = False

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued store is written (or failed); False on timeout."""
        if threading.current_thread() is self._thread:
            return False  # called back from the writer itself (on_error): it cannot wait on itself
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending or self._in_flight:
                if self._thread is None:  # forked child, or never started: nothing will write
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        """Write what is queued (bounded wait), then stop the writer."""
        if not self.flush(FLUSH_ON_CLOSE_SECONDS) and self._pending:
            logger.warning(
                "llmcache: %s: %d queued stores were not written before close",
                self._name,
                len(self._pending),
            )
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._bytes = 0
            thread, self._thread = self._thread, None
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(FLUSH_ON_CLOSE_SECONDS)

    # ------------------------------------------------------------------ the writer thread
    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    if not self._cond.wait(IDLE_EXIT_SECONDS) and not self._pending:
                        if self._thread is threading.current_thread():
                            self._thread = None  # submit starts a new one
                        return
                if self._closed:
                    return
                batch = list(islice(self._pending.values(), self._max_batch))
                self._in_flight = len(batch)
            # Sorted by key: two processes' batches lock rows in one order (no deadlock).
            batch.sort(key=lambda q: q.key.digest)
            error: Exception | None = None
            try:
                self._write_batch(batch)
            except Exception as exc:
                error = exc
            with self._cond:
                for item in batch:  # a newer store queued meanwhile stays for the next batch
                    if self._pending.get(item.key.digest) is item:
                        del self._pending[item.key.digest]
                        self._bytes -= len(item.payload)
                self._in_flight = 0
                self._failing = error is not None
                self._cond.notify_all()
            if error is not None:
                logger.debug(
                    "llmcache: %s: a write-behind batch of %d failed: %s",
                    self._name,
                    len(batch),
                    describe_error(error),
                )
                if self.on_error is not None:
                    self.on_error(error)


_LIVE: weakref.WeakSet[WriteBehind] = weakref.WeakSet()


def _flush_at_exit() -> None:
    """What was queued is written when the interpreter exits, or a multiprocessing child
    ends (``run_at_exit``)."""
    for behind in list(_LIVE):
        behind.flush(FLUSH_ON_CLOSE_SECONDS)


run_at_exit(_flush_at_exit)
