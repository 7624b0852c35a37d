"""A timeout for a reply from a server that a busy event loop does not trip.

``asyncio.timeout`` measures wall time. When the loop spends the last part of that time on
other work (an app's CPU-bound step, LiteLLM post-processing 64 concurrent calls), the reply
may have been waiting in the socket buffer for most of it: the loop then handles the socket
and the expired timer in the same turn, and the timer cancels the read of a reply that is
there. For a cache that is a false outage: the tier is reported down ("is the server
running?"), the breaker skips it, and the answer being stored is lost.

``ServerTimeout`` tells the two apart by how late its timer runs. A timer on an idle loop
runs within a millisecond or two of its due time; one that runs later than ``LATE`` of the
timeout saw the loop busy at the deadline, so it grants the read one more full timeout
(once: a server that is really gone is still detected, at most one timeout plus the loop's
stall later). A reply already in the buffer is read on the next turn of the loop, long
before that.

Where it applies: the Redis tier's async commands on standalone and Sentinel-managed
connections (``redis_direct``, Python 3.11+), and their connects (``again_if_late``: a
connect timed out while the loop was busy is tried once more, as are the ``redisvl://``
semantic index's adds, searches and reads, which go through redis-py). A Cluster's commands
and any read on Python 3.10 (no ``asyncio.timeout``) keep redis-py's plain wall-time timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

#: How late (a fraction of the timeout) the timer must run to count the loop as busy.
LATE = 0.05

T = TypeVar("T")


class ServerTimeout:
    """Cancels the enclosing ``asyncio.timeout(None)`` block ``seconds`` after it starts,
    not counting a stall of the loop at the deadline (see the module docstring).

    Usage::

        async with asyncio.timeout(None) as timeout:
            watch = ServerTimeout(timeout, seconds)
            try:
                ...  # raises TimeoutError when the watch fires
            finally:
                watch.cancel()

    A plain class, not a context manager of its own: the Redis hit path runs this per
    command, and an ``async with`` layer costs two more coroutines.
    """

    __slots__ = ("_handle", "_loop", "_seconds", "_timeout")

    def __init__(self, timeout: asyncio.Timeout, seconds: float | None) -> None:
        self._timeout = timeout
        self._seconds = seconds
        self._handle: asyncio.TimerHandle | None = None
        if seconds is not None:
            self._loop = asyncio.get_running_loop()
            due = self._loop.time() + seconds
            self._handle = self._loop.call_at(due, self._expire, due, True)

    def cancel(self) -> None:
        """The read finished (or failed): the watch must not fire any more."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _expire(self, due: float, may_extend: bool) -> None:
        now = self._loop.time()
        seconds = self._seconds
        assert seconds is not None  # only scheduled with a timeout
        if may_extend and now - due > LATE * seconds:
            self._handle = self._loop.call_at(now + seconds, self._expire, now + seconds, False)
            return
        self._handle = None
        # Due now: asyncio's own timeout cancels the block on the loop's next turn and turns
        # the cancellation into TimeoutError, as asyncio.timeout(seconds) would have.
        self._timeout.reschedule(now)


async def again_if_late(
    attempt: Callable[[], Awaitable[T]], seconds: float | None, timed_out: type[BaseException]
) -> T:
    """``attempt()``, and once more if it raised ``timed_out`` while the loop was busy at the
    ``seconds`` deadline (a timer due then ran ``LATE`` late).

    For what runs under a timeout this module cannot reach: redis-py's connect, whose
    wall-time timeout (0.25 s by default) a burst of concurrent tasks starting together
    overruns on its own. Without this, the first connect of a busy app reads as an outage.
    """
    if seconds is None:
        return await attempt()
    loop = asyncio.get_running_loop()
    due = loop.time() + seconds
    lateness: list[float] = []
    watch = loop.call_at(due, lambda: lateness.append(loop.time() - due))
    try:
        return await attempt()
    except timed_out:
        if not lateness or lateness[0] <= LATE * seconds:
            raise
    finally:
        watch.cancel()
    return await attempt()
