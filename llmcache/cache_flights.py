"""Single-flight: one model call per key while it is being computed, in this process and,
through a lock in a shared tier (Redis), across processes.

A mixin of ``Cache``, written as plans like the rest of the walk and run by the cache's own
drivers (``Flights`` in ``llmcache.singleflight`` keeps the in-process flights; the fleet lock
is the tier's ``acquire_flight``/``get_or_lock``/``release_flight``). Kept apart from
``cache.py``, whose job is the per-call walk of the tiers.

What it guarantees: concurrent identical misses make one model call; the others wait,
bounded by ``single_flight_timeout``, and are served the leader's answer. A leader whose
call fails never stores: its followers stop waiting when its task ends (an asyncio leader)
or when its thread has left the call it led (a thread leader), in both cases half a second
later, and elect a new leader among them (``_rejoin_plan``); its fleet lock is released then
(or expires by itself at the bound, if this process ends first), and the first process to
take it over leads the next try. A lock tier that fails means leading (fail open).
"""

from __future__ import annotations

import asyncio
import math
import secrets
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from llmcache._sentinel import UNSET
from llmcache.errors import CodecError
from llmcache.hit import CacheHit
from llmcache.keys import CacheKey, request_key
from llmcache.plan import UNAVAILABLE, Op, Plan, Sleep
from llmcache.request import CacheRequest
from llmcache.singleflight import Flight, Flights

if TYPE_CHECKING:
    from llmcache.clock import Clock
    from llmcache.entry import CacheEntry
    from llmcache.policy import CachePolicy
    from llmcache.tiers import Tier
    from llmcache.tiers.base import Found

T = TypeVar("T")

#: How often a process waiting for another process's answer looks for it (seconds).
FLEET_POLL_SECONDS = 0.05
#: Releases of abandoned flights' fleet locks still running.
_RELEASES: set[asyncio.Task[None]] = set()


class Joined(NamedTuple):
    """A miss whose lookup already joined the key's flight (``_locked_get_plan``): the
    flight to wait for, or None when this caller leads it (its fleet lock settled)."""

    key: CacheKey
    flight: Flight | None


class Release(NamedTuple):
    """A fleet lock this process holds for a key, to release once the key is stored."""

    key: CacheKey
    token: str


class FlightPlans:
    """Joining, leading and waiting for flights (``Cache`` inherits them)."""

    if TYPE_CHECKING:  # provided by Cache
        _tiers: tuple[Tier, ...]
        _flights: Flights | None
        _fleet_lock: Tier | None
        _flight_timeout: float
        clock: Clock
        _monotonic: Clock
        policy: CachePolicy

        def _get_plan(self, key: CacheKey, now: float) -> Plan[object]: ...
        def _entry_plan(
            self, index: int, key: CacheKey, found: Found, now: float
        ) -> Plan[CacheEntry | None]: ...

        _local: int

        def _hit(self, entry: CacheEntry, tier: str, key: CacheKey) -> CacheHit: ...
        def _probe_local(self, request: CacheRequest) -> object: ...
        def _run(self, plan: Plan[T]) -> T: ...
        async def _arun(self, plan: Plan[T]) -> T: ...

    def _stores_nothing(self, request: CacheRequest) -> bool:
        """The call's answer will not be stored: by its control (``no_store``, ``ttl=0``) or
        by the policy's rules (``default_ttl=0``, a model's TTL of 0). Such a call leads no
        flight: followers would wait for its whole model call, then call the model anyway.
        (A ttl an adapter passes only at store time is not known here: such calls go
        without single-flight, never waiting for nothing.)"""
        return request.control.stores_nothing or self.policy.resolve_ttl(UNSET, request) == 0

    def _join_flight(self, key: CacheKey, request: CacheRequest) -> Flight | bool | CacheHit:
        """After a miss: the flight to wait for, True when this caller leads it, False when
        there is none (single-flight is off, or this call stores nothing: nobody may wait
        for it, and it need not wait for others).

        Or a hit: a leader may have stored the key, and ended its flight, after this caller's
        lookup and before its join; so a caller about to lead probes the in-process tiers
        again (no I/O), and is served what the leader stored instead of calling the model a
        second time."""
        if self._flights is None or self._stores_nothing(request):
            return False
        flight = self._flights.join(key.digest)
        if flight is not None:
            return flight
        if self._local and type(stored := self._probe_local(request)) is CacheHit:
            self._flights.complete(key.digest)  # nothing to lead after all
            return stored
        return True

    def _complete_flight(self, request: CacheRequest, key: CacheKey | None) -> Release | None:
        """A store ended (stored or refused): followers of its key may look again. Returns the
        fleet lock to release when this process led the key across processes. ``key`` is the
        store's own, or None when it stopped before building one."""
        if self._flights is None or not len(self._flights):
            return None
        if key is None:
            try:
                key = request_key(request)
            except CodecError:  # an unkeyable request has no flight
                return None
        flight = self._flights.complete(key.digest)
        if flight is None or flight.token is None:
            return None
        return Release(key, flight.token)

    def _lead_refresh_plan(self, key: CacheKey) -> Plan[bool]:
        """Whether this caller may recompute ``key`` early: only the leader of its flight (in
        this process, and across processes with a fleet lock). Any other caller is served the
        still-valid entry at once: nobody waits for a refresh."""
        if self._flights is None or self._flights.join(key.digest) is not None:
            return False
        lock = self._fleet_lock
        if lock is None or self._flights.token_of(key.digest) is not None:
            return True
        token = secrets.token_hex(16)
        acquired = yield Op(lock, "acquire_flight", (key, token, self._lock_ms()))
        if acquired is False:  # another process is refreshing it
            self._flights.complete(key.digest)
            return False
        if acquired is True:
            self._flights.hold_token(key, token)
        return True  # ours, or the lock tier is down: refresh in this process (fail open)

    def _fleet_plan(self, key: CacheKey) -> Plan[CacheHit | None]:
        """After leading a key in this process: lead it across processes too (take its lock
        in the shared tier), or wait, bounded, for the process that holds the lock and serve
        its answer. A lock tier that fails means leading (fail open)."""
        assert self._fleet_lock is not None
        assert self._flights is not None
        if self._flights.token_of(key.digest) is not None:
            return None  # a retry of ours: we hold the fleet lock already
        lock, token = self._fleet_lock, secrets.token_hex(16)
        acquired = yield Op(lock, "acquire_flight", (key, token, self._lock_ms()))
        if acquired is not False:  # ours, or the lock tier is unavailable
            if acquired is True:
                self._flights.hold_token(key, token)
            return None
        return (yield from self._await_leader_plan(key))

    def _await_leader_plan(self, key: CacheKey) -> Plan[CacheHit | None]:
        """Another process holds the key's fleet lock: wait, bounded, for its answer. None
        when it gave up or the wait ran out: this caller then leads without the lock."""
        assert self._fleet_lock is not None
        assert self._flights is not None
        lock = self._fleet_lock
        deadline = self._monotonic() + self._flight_timeout
        while self._monotonic() < deadline:
            yield Sleep(FLEET_POLL_SECONDS)
            # The lock first, then the entry: a leader stores before it releases (Redis: in
            # one round trip), so a lock seen gone means the read below sees its answer.
            still_open = yield Op(lock, "flight_open", (key,))
            found = yield from self._get_plan(key, self.clock())
            if type(found) is CacheHit:
                self._flights.complete(key.digest)  # our own followers may look again
                return found
            if still_open is False:
                # The leader gave up (released its lock, or it expired) and stored nothing:
                # the first process to take the lock leads the next try, the others go on
                # waiting for its answer.
                token = secrets.token_hex(16)
                acquired = yield Op(lock, "acquire_flight", (key, token, self._lock_ms()))
                if acquired is False:
                    continue
                if acquired is True:
                    self._flights.hold_token(key, token)
                return None
            if still_open is not True:
                return None  # the lock tier failed: lead without the lock (fail open)
        return None

    def _locked_get_plan(self, key: CacheKey, now: float) -> Plan[CacheHit | Joined]:
        """The read of the lock tier (the only one below the in-process tiers) that takes the
        key's fleet lock on a miss: one round trip where a miss otherwise takes two (a GET,
        then SET NX). The caller joins the key's flight in this process first, so only its
        leader here may take the lock."""
        assert self._fleet_lock is not None
        assert self._flights is not None
        lock, flights = self._fleet_lock, self._flights
        flight = flights.join(key.digest)
        # Nothing to lock: a caller of this process leads (read, else wait for it; a leader
        # recomputing an entry early leaves it served meanwhile), or this is a retry of ours
        # and the lock is ours already (read, else lead).
        if flight is not None or flights.token_of(key.digest) is not None:
            found = yield from self._get_plan(key, now)
            return found if type(found) is CacheHit else Joined(key, flight)
        token = secrets.token_hex(16)
        looked = yield Op(lock, "get_or_lock", (key, now, token, self._lock_ms()))
        if looked is UNAVAILABLE:
            return Joined(key, None)  # lead, without a fleet lock (fail open)
        if looked.acquired is True:
            flights.hold_token(key, token)
            return Joined(key, None)
        if looked.acquired is False:  # another process leads: serve its answer
            hit = yield from self._await_leader_plan(key)
            return hit if hit is not None else Joined(key, None)
        index = len(self._tiers) - 1
        entry = yield from self._entry_plan(index, key, looked.found, now)
        if entry is None:  # expired by our clock, or undecodable: take the lock on its own
            hit = yield from self._fleet_plan(key)
            return hit if hit is not None else Joined(key, None)
        flights.complete(key.digest)  # nothing to lead: our own followers may look again
        return self._hit(entry, lock.name, key)

    def _rejoin_plan(self, again: object, request: CacheRequest) -> Plan[Flight | bool | CacheHit]:
        """After the leader gave up (its call failed, or it outlived the bound) and the key is
        still missing: the new leader's flight to follow, or True when this caller leads now
        (the first to rejoin here; across processes it takes the fleet lock, or is served by
        the process that took it first). One more model call, not one per follower."""
        if type(again) is Joined:  # the lookup joined the flight itself (and took the lock)
            return again.flight or True
        key = getattr(again, "key", None)  # a miss's key; None: nothing to key, no flight
        if not isinstance(key, CacheKey):
            return False
        flight = self._join_flight(key, request)
        if flight is True and self._fleet_lock is not None:
            hit = yield from self._fleet_plan(key)
            if hit is not None:
                return hit
        return flight

    def _release_abandoned(self, flight: Flight) -> None:
        """A leader gave up without storing (``Flights.abandon``: an asyncio leader's task
        ended, on its event loop; or a follower saw a thread leader leave its call): release
        its fleet lock now, so other processes waiting for it elect a new leader instead of
        waiting for the lock to expire at the bound."""
        if flight.token is None or flight.lock_key is None:
            return
        plan = self._release_plan(Release(flight.lock_key, flight.token))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a waiting thread found its leader gone: release from here
            self._run(plan)
            return
        task = loop.create_task(self._arun(plan))
        _RELEASES.add(task)  # a strong reference until it is done
        task.add_done_callback(_RELEASES.discard)

    def _lock_ms(self) -> int:
        """A fleet lock's lifetime: a leader that never stores frees the key by then."""
        return max(1, math.ceil(self._flight_timeout * 1000))

    def _release_plan(self, release: Release) -> Plan[None]:
        assert self._fleet_lock is not None
        yield Op(self._fleet_lock, "release_flight", (release.key, release.token))
