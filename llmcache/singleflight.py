"""Single-flight: concurrent identical misses cause one model call.

The first caller to miss a key becomes its *leader* and goes on to call the model; callers
that miss the same key while the leader's flight is open are *followers*: they wait, bounded,
until the leader stores the answer (``Cache.set`` completes the flight), then look the key up
again and are served from the cache. A leader that never stores (its call failed) leaves its
followers waiting until the bound, after which they proceed on their own; a flight older than
the bound is taken over by the next caller. A leader that asks again for its own key (a retry
in the same thread or task) is not made to wait for itself.

This module only keeps the book of flights; waiting happens in the cache's sync and async
paths (a thread on a ``threading.Event``, a task on a future woken from any thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from llmcache.clock import Clock, monotonic_clock
from llmcache.fork_safety import renew_after_fork


def caller_identity() -> tuple[int, int]:
    """Who is asking: the thread, and the asyncio task if one is running in it."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop in this thread
        task = None
    return threading.get_ident(), id(task) if task is not None else 0


@dataclass(eq=False, slots=True)
class Flight:
    """One leader's call in progress for one key.

    Most flights end without a follower, so what followers wait on (an Event for threads,
    wakers for asyncio tasks) is only made when one asks to wait.
    """

    leader: tuple[int, int]
    started: float
    #: The fleet lock's token, when this process's leader also leads across processes.
    token: str | None = None
    _done: bool = False
    _event: threading.Event | None = None
    _wakers: list[Callable[[], None]] | None = None

    def wait(self, timeout: float) -> bool:
        """Block this thread until the flight is done; True if it was done in time."""
        with _WAKERS_LOCK:
            if self._done:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)

    def wake_on_done(self, waker: Callable[[], None]) -> None:
        """Call ``waker`` (from whichever thread completes the flight) once it is done."""
        with _WAKERS_LOCK:
            if not self._done:
                if self._wakers is None:
                    self._wakers = []
                self._wakers.append(waker)
                return
        waker()

    def complete(self) -> None:
        with _WAKERS_LOCK:
            self._done = True
            event, wakers, self._wakers = self._event, self._wakers, None
        if event is not None:
            event.set()
        for waker in wakers or ():
            waker()


_WAKERS_LOCK = threading.Lock()
renew_after_fork(sys.modules[__name__], "_WAKERS_LOCK")
#: Open flights above which stale ones (leaders whose call failed) are swept on ``join``.
SWEEP_ABOVE = 1024


class Flights:
    """The open flights of one cache, by entry digest. Thread-safe; no I/O."""

    def __init__(self, timeout: float, clock: Clock = monotonic_clock) -> None:
        self.timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")
        self._open: dict[bytes, Flight] = {}

    def join(self, digest: bytes) -> Flight | None:
        """After a miss: None if the caller now leads (it should call the model), else the
        flight to wait for."""
        me = caller_identity()
        now = self._clock()
        with self._lock:
            if len(self._open) >= SWEEP_ABOVE:
                self._sweep(now)
            flight = self._open.get(digest)
            if flight is None or flight.leader == me or now - flight.started >= self.timeout:
                # A retry by the same leader keeps its fleet lock (still within its lifetime).
                token = flight.token if flight is not None and flight.leader == me else None
                if flight is not None:
                    flight.complete()  # a stale or re-asked flight: release its followers
                    del self._open[digest]  # the new one goes last: the dict stays in age order
                self._open[digest] = Flight(leader=me, started=now, token=token)
                return None
            return flight

    def _sweep(self, now: float) -> None:
        """Drop flights older than the bound (leaders that never stored); under the lock.

        Flights are kept in the order they started, so the stale ones are at the front: the
        sweep stops at the first live one. Many live flights (a burst of distinct misses)
        then cost a join one look, not a scan of them all."""
        stale: list[bytes] = []
        for digest, flight in self._open.items():
            if now - flight.started < self.timeout:
                break
            stale.append(digest)
        for digest in stale:
            self._open.pop(digest).complete()

    def complete(self, digest: bytes) -> Flight | None:
        """The key was stored (or its store was refused): wake every follower. Returns the
        flight that ended (its ``token`` is a fleet lock to release), if one was open."""
        with self._lock:
            flight = self._open.pop(digest, None)
        if flight is not None:
            flight.complete()
        return flight

    def token_of(self, digest: bytes) -> str | None:
        """The fleet lock token the open flight of ``digest`` holds, if any."""
        flight = self._open.get(digest)
        return None if flight is None else flight.token

    def hold_token(self, digest: bytes, token: str) -> None:
        """Remember that the open flight of ``digest`` holds the fleet lock ``token``."""
        with self._lock:
            flight = self._open.get(digest)
            if flight is not None:
                flight.token = token

    def __len__(self) -> int:
        return len(self._open)


async def wait_async(flight: Flight, timeout: float) -> bool:
    """Wait for ``flight`` without blocking the event loop; True if it completed in time."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # the waiting loop is already closed
            loop.call_soon_threadsafe(_resolve, future)

    flight.wake_on_done(wake)
    try:
        await asyncio.wait_for(asyncio.shield(future), timeout)
    except asyncio.TimeoutError:
        return False
    return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
