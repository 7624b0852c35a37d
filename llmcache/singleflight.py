"""Single-flight: concurrent identical misses cause one model call.

The first caller to miss a key becomes its *leader* and goes on to call the model; callers
that miss the same key while the leader's flight is open are *followers*: they wait, bounded,
until the leader stores the answer (``Cache.set`` completes the flight), then look the key up
again and are served from the cache. A leader that never stores (its call failed) leaves its
followers waiting until the bound, unless it is seen to have given up (below); a flight older
than the bound is taken over by the next caller. A leader that asks again for its own key (a
retry in the same thread or task) is not made to wait for itself, and its followers go on
waiting for it.

A leader is watched, so that a call that failed does not hold its followers until the bound.
A leader that is an asyncio task: when its task ends and the flight is still open half a
second later (the model call raised, or the task was cancelled: nothing will be stored), the
flight is *abandoned* then, by a timer on its loop or, when that loop was closed first
(``asyncio.run`` per request in a thread), by its followers and the fleet-lock watch, which
look at the task as they would at a thread leader's call. A sync follower on the thread of
its task leader's own loop (a blocking call made from a coroutine) does not wait: blocking
would keep the leader from ever storing. In a forked child the parent's flights are
forgotten: their leaders do not run there.

A leader that is a thread lives on in its pool, so what is watched is the call it made: the
frame that asked the cache (the first caller outside llmcache and the libraries that only relay
a lookup, ``relay_package``, and not a generator, which leaves the stack at every yield:
LangChain's ``_generate_with_cache``, LiteLLM's ``wrapper``, the loop consuming a stream),
which makes the model call and the store. Its followers look at the leader thread's stack while
they wait; once that frame has been gone for half a second with the flight still open, the
flight is abandoned. A thread leader that also holds the fleet lock (other processes wait on
it) is watched so by a thread of its cache as well, since no caller of its own process may be
following it. Followers of an abandoned (or timed-out) flight elect a new leader among
themselves: the first to rejoin leads, the others wait for it, so a failed call (a rate limit
in a burst of identical requests) costs one more model call, not one per follower.

This module only keeps the book of flights; waiting happens in the cache's sync and async
paths (a thread on a ``threading.Event``, a task on a future woken from any thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import TYPE_CHECKING

from llmcache.clock import Clock, monotonic_clock
from llmcache.fork_safety import call_after_fork, renew_after_fork

if TYPE_CHECKING:
    from llmcache.keys import CacheKey

logger = logging.getLogger("llmcache")


def _current_task() -> asyncio.Task[object] | None:
    """The asyncio task asking, if one is running in this thread (a caller is its thread and
    this task)."""
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop in this thread
        return None


#: Seconds a flight may stay open after its leader's task ended (or its thread left the call it
#: led) before it is abandoned: the answer may still be on its way from a task of its own
#: (LiteLLM stores an async call's answer in a background task, after the call has returned).
ABANDON_AFTER = 0.5
#: How often a follower of a thread leader looks at the leader's stack (seconds).
WATCH_EVERY = 0.25

#: Packages whose frames only pass a lookup on: the leader's call is the first frame above them.
_RELAYS: list[str] = ["llmcache", "langchain_llmcache", "litellm_llmcache"]
#: CPython's view of other threads' stacks; without it thread leaders are not watched.
_current_frames: Callable[[], dict[int, FrameType]] | None = getattr(sys, "_current_frames", None)

#: A watched frame: its id while it runs (the frame itself is not kept: its locals would
#: outlive the call) and its code (an id reused by another frame does not pass for it).
CallFrame = tuple[int, CodeType]


#: Module name -> whether it belongs to a relay package (a miss walks a few frames per call).
_relay_modules: dict[str, bool] = {}


def relay_package(name: str) -> None:
    """Declare that frames of package ``name`` only relay a lookup to llmcache and return: the
    leader's call, watched while its followers wait, is their caller (LiteLLM's caching
    handler returns before its ``wrapper`` calls the model and stores)."""
    if name not in _RELAYS:
        _RELAYS.append(name)
        _relay_modules.clear()


def _is_relay(module: str) -> bool:
    known = _relay_modules.get(module)
    if known is None:
        known = any(module == name or module.startswith(name + ".") for name in _RELAYS)
        _relay_modules[module] = known
    return known


#: Code flags of frames that leave the stack while their call goes on (generators).
_SUSPENDS = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
#: Thread id -> whether the interpreter's view of stacks knows it (checked once per id).
_visible_threads: dict[int, bool] = {}


def _visible(thread: int) -> bool:
    """Whether ``_current_frames`` shows ``thread``'s stack. Not so for a green thread (gevent,
    eventlet: the id is the greenlet's, not an OS thread's): such a leader is not watched, and
    its followers wait for it as before, rather than take it for gone."""
    known = _visible_threads.get(thread)
    if known is None:
        assert _current_frames is not None
        if len(_visible_threads) >= 4096:  # green threads: a new id each
            _visible_threads.clear()
        known = _visible_threads[thread] = thread in _current_frames()
    return known


def _leader_call(thread: int) -> CallFrame | None:
    """The frame of this thread's call that asked the cache (see the module docstring)."""
    if _current_frames is None or not _visible(thread):
        return None
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        # Not a generator's frame either: it leaves the stack at every yield (a stream whose
        # consumer is busy between chunks) while the call goes on.
        if not (
            frame.f_code.co_flags & _SUSPENDS or _is_relay(frame.f_globals.get("__name__", ""))
        ):
            return id(frame), frame.f_code
        frame = frame.f_back
    return None


def _running(thread: int, call: CallFrame) -> bool:
    """Whether ``call`` is still on ``thread``'s stack (a thread that ended has none)."""
    assert _current_frames is not None
    frame: FrameType | None = _current_frames().get(thread)
    frame_id, code = call
    while frame is not None:
        if id(frame) == frame_id and frame.f_code is code:
            return True
        frame = frame.f_back
    return False


class _LeaderWatch:
    """A follower's watch on a thread leader: has the leader left the call it led?"""

    __slots__ = ("_flight", "_left_at")

    def __init__(self, flight: Flight) -> None:
        self._flight = flight
        self._left_at: float | None = None

    def gave_up(self) -> bool:
        """True once the leader's call has been over for ``ABANDON_AFTER`` with the flight
        still open: then the flight is abandoned (its followers elect a new leader)."""
        flight = self._flight
        call, task = flight._call, flight._watch
        if call is not None:
            left = not _running(flight.leader[0], call)
        else:
            # A task leader: its loop's timer abandons the flight once it ended, unless the
            # loop is closed first (``asyncio.run`` in a thread per request): then only its
            # followers can see it ended. None: done meanwhile, or not watched yet.
            left = task is not None and task[0].done()
        if not left:
            self._left_at = None
            return False
        now = time.monotonic()
        if self._left_at is None:
            self._left_at = now
        if now - self._left_at < ABANDON_AFTER:
            return False
        abandon = flight._abandon
        if abandon is not None:
            abandon()
        return True


@dataclass(eq=False, slots=True)
class Flight:
    """One leader's call in progress for one key.

    Most flights end without a follower, so what followers wait on (an Event for threads,
    wakers for asyncio tasks) is only made when one asks to wait.
    """

    leader: tuple[int, int]
    started: float
    #: The fleet lock's token, when this process's leader also leads across processes, and
    #: the key it locks (to release the lock of an abandoned flight).
    token: str | None = None
    lock_key: CacheKey | None = None
    #: Ended without an answer (the leader's task ended, or the flight outlived the bound):
    #: its followers elect a new leader instead of each calling the model.
    abandoned: bool = False
    #: The leader's task and the done-callback watching it (removed when the flight ends).
    _watch: tuple[asyncio.Task[object], Callable[[asyncio.Task[object]], None]] | None = None
    #: A thread leader's call, watched by its followers, and how they abandon the flight.
    _call: CallFrame | None = None
    _abandon: Callable[[], None] | None = None
    _done: bool = False
    _event: threading.Event | None = None
    _wakers: list[Callable[[], None]] | None = None

    def wait(self, timeout: float) -> bool:
        """Block this thread until the flight is done (or abandoned: a thread leader that
        left its call); True if it was done in time."""
        with _WAKERS_LOCK:
            if self._done:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        if self.leader[0] == threading.get_ident():
            # The leader is a task of the event loop this thread runs (a sync call made from
            # a coroutine): blocking here would stop it from ever storing. Go on as after a
            # refused store: this caller calls the model itself.
            return True
        if not self._watched:
            return event.wait(timeout)
        watch, deadline = _LeaderWatch(self), time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if event.wait(min(left, WATCH_EVERY)) or watch.gave_up():
                return True
        return event.is_set()

    @property
    def _watched(self) -> bool:
        """Whether followers watch the leader: a thread leader's call, or a task leader."""
        return self._call is not None or self.leader[1] != 0

    def wake_on_done(self, waker: Callable[[], None]) -> None:
        """Call ``waker`` (from whichever thread completes the flight) once it is done."""
        with _WAKERS_LOCK:
            if not self._done:
                if self._wakers is None:
                    self._wakers = []
                self._wakers.append(waker)
                return
        waker()

    def complete(self, *, abandoned: bool = False) -> None:
        with _WAKERS_LOCK:
            if abandoned and not self._done:
                self.abandoned = True
            self._done = True
            event, wakers, self._wakers = self._event, self._wakers, None
            watch, self._watch = self._watch, None
            self._call = self._abandon = None  # nothing to watch; no cycle left through Flights
        if watch is not None:
            _unwatch(*watch)
        if event is not None:
            event.set()
        for waker in wakers or ():
            waker()


def _unwatch(task: asyncio.Task[object], callback: Callable[[asyncio.Task[object]], None]) -> None:
    """Stop watching a leader's task (a long-lived task leads many flights: its callbacks must
    not pile up). The task's callbacks belong to its loop's thread."""
    loop = task.get_loop()
    try:
        on_loop = asyncio.get_running_loop() is loop
    except RuntimeError:
        on_loop = False
    if on_loop:
        task.remove_done_callback(callback)
    else:
        with contextlib.suppress(RuntimeError):  # the loop is closed: so is the task
            loop.call_soon_threadsafe(task.remove_done_callback, callback)


_WAKERS_LOCK = threading.Lock()
renew_after_fork(sys.modules[__name__], "_WAKERS_LOCK")
#: Open flights above which stale ones (leaders whose call failed) are swept on ``join``.
SWEEP_ABOVE = 1024


class Flights:
    """The open flights of one cache, by entry digest. Thread-safe; no I/O."""

    def __init__(
        self,
        timeout: float,
        clock: Clock = monotonic_clock,
        on_abandon: Callable[[Flight], None] | None = None,
    ) -> None:
        self.timeout = timeout
        self._clock = clock
        #: Called with a flight abandoned while holding a fleet lock (on the leader's event
        #: loop, or in the follower thread that saw a thread leader give up): the cache
        #: releases the lock, so other processes need not wait for its expiry.
        self._on_abandon = on_abandon
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")
        self._open: dict[bytes, Flight] = {}
        #: Watches thread leaders that hold a fleet lock (``_watch_fleet_leaders``).
        self._watcher: threading.Thread | None = None
        call_after_fork(self, "_forget_parent_flights")

    def _forget_parent_flights(self) -> None:
        """In a forked child: the open flights are the parent's, led by threads and tasks
        that do not run here (a task leader's would never be seen to end): none is waited
        for, and none of their fleet locks is this process's."""
        self._open = {}
        self._watcher = None

    def join(self, digest: bytes) -> Flight | None:
        """After a miss: None if the caller now leads (it should call the model), else the
        flight to wait for."""
        task = _current_task()
        me = threading.get_ident(), id(task) if task is not None else 0
        now = self._clock()
        with self._lock:
            if len(self._open) >= SWEEP_ABOVE:
                self._sweep(now)
            flight = self._open.get(digest)
            if flight is not None and flight.leader == me:
                # The leader asks again (a retry of its call): it leads on, with the fleet
                # lock it holds, and its followers go on waiting for it.
                flight.started = now
                if task is None:
                    flight._call = _leader_call(me[0])
                del self._open[digest]
                self._open[digest] = flight  # last again: the dict stays in age order
                return None
            if flight is not None and now - flight.started < self.timeout:
                return flight
            led = Flight(leader=me, started=now)
            if flight is not None:  # stale: its followers elect a new leader
                flight.complete(abandoned=True)
                del self._open[digest]  # the new one goes last: the dict stays in age order
            if task is None:  # a thread: its followers watch the call it leads
                led._call = _leader_call(me[0])
            led._abandon = functools.partial(self.abandon, digest, led)
            self._open[digest] = led
        if task is not None:
            self._watch(digest, led, task)
        return None

    def _watch(self, digest: bytes, flight: Flight, task: asyncio.Task[object]) -> None:
        """Abandon ``flight`` if still open ``ABANDON_AFTER`` after its leader's task ended."""

        def leader_done(ended: asyncio.Task[object]) -> None:
            ended.get_loop().call_later(ABANDON_AFTER, self.abandon, digest, flight)

        with _WAKERS_LOCK:
            if flight._done:  # already stored, from another thread
                return
            flight._watch = (task, leader_done)
        task.add_done_callback(leader_done)

    def abandon(self, digest: bytes, flight: Flight) -> None:
        """``flight``'s leader will not store (its task ended, or its thread left the call it
        led): wake its followers now."""
        with self._lock:
            if self._open.get(digest) is not flight:
                return  # completed (stored) or replaced already
            del self._open[digest]
        flight.complete(abandoned=True)
        if flight.token is not None and self._on_abandon is not None:
            self._on_abandon(flight)

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
            self._open.pop(digest).complete(abandoned=True)

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

    def hold_token(self, key: CacheKey, token: str) -> None:
        """Remember that the open flight of ``key`` holds the fleet lock ``token``."""
        with self._lock:
            flight = self._open.get(key.digest)
            if flight is not None:
                flight.token, flight.lock_key = token, key
                if flight._watched and not (self._watcher is not None and self._watcher.is_alive()):
                    self._watcher = threading.Thread(
                        target=self._watch_fleet_leaders, name="llmcache-flights", daemon=True
                    )
                    self._watcher.start()

    def _watch_fleet_leaders(self) -> None:
        """Watch the calls of thread leaders (and the tasks of task leaders, whose loop may
        close before its timer abandons them) that hold a fleet lock, as their followers do.
        Other processes wait on that lock, and in this process nobody may be following the
        leader to see its call fail: without this watch they would wait for the lock to
        expire at the bound. Runs while such flights are open (one thread per cache)."""
        watches: dict[Flight, _LeaderWatch] = {}
        while True:
            time.sleep(WATCH_EVERY)
            with self._lock:
                held = [f for f in self._open.values() if f.token is not None and f._watched]
                if not held:
                    self._watcher = None
                    return
            watches = {f: watches.get(f) or _LeaderWatch(f) for f in held}
            for watch in watches.values():
                try:
                    watch.gave_up()  # abandons (the cache releases the lock) once it ended
                except Exception as exc:  # the lock then expires at the bound, as before
                    logger.warning("llmcache: releasing a failed leader's lock failed: %r", exc)

    def __len__(self) -> int:
        return len(self._open)


async def wait_async(flight: Flight, timeout: float) -> bool:
    """Wait for ``flight`` without blocking the event loop; True if it completed in time
    (or was abandoned: a thread leader that left its call)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # the waiting loop is already closed
            loop.call_soon_threadsafe(_resolve, future)

    flight.wake_on_done(wake)
    watch = _LeaderWatch(flight) if flight._watched else None
    deadline = loop.time() + timeout
    while (left := deadline - loop.time()) > 0:
        try:
            await asyncio.wait_for(
                asyncio.shield(future), left if watch is None else min(left, WATCH_EVERY)
            )
            return True
        except asyncio.TimeoutError:
            if watch is not None and watch.gave_up():
                return True
    return future.done()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
