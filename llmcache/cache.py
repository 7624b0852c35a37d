"""Cache: the tier walk (top-down lookup, backfill, write-through), fail-open, stats.

The walk is written once, as generators ("plans") that yield the tier operations they need
and receive the results. Two small drivers run a plan: ``_run`` calls the tiers' sync
primitives, ``_arun`` awaits their async ones. Neither adds logic of its own beyond the
fail-open bookkeeping, so sync and async can not drift apart. A sync call never starts an
event loop (it works inside Jupyter's running loop).

The plan primitives are in ``plan.py``; the operations on sets of entries (invalidation,
listing, export, import) in ``cache_entries.py``, a mixin this class inherits.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import random
import re
import secrets
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

from llmcache._sentinel import UNSET, Unset
from llmcache.breaker import TierBreakers
from llmcache.cache_entries import EntryOperations
from llmcache.cache_flights import FlightPlans, Joined
from llmcache.clock import Clock, monotonic_clock, wall_clock
from llmcache.crypto import MAGIC as SEALED_MAGIC
from llmcache.crypto import Sealer, UnknownKeyError
from llmcache.decoded import DecodedEntries
from llmcache.entry import (
    NO_USAGE,
    CacheEntry,
    Usage,
    check_finite,
    check_usage,
    decode,
    encode,
)
from llmcache.errors import CodecError, ConfigError, TierError
from llmcache.fleet import StatsPublisher, StatsSink
from llmcache.fleet_invalidation import Broadcaster, FleetInvalidation, LocalTier
from llmcache.freshness import HitCounter, extended_expiry, recompute_early
from llmcache.health import HealthCallback, HealthEvent, HitRateFloor, emit
from llmcache.hit import CacheHit as CacheHit  # re-exported: the public name
from llmcache.keys import CacheKey, request_key, scope_digest
from llmcache.plan import UNAVAILABLE, Op, Plan, Sleep, Unavailable
from llmcache.policy import CachePolicy
from llmcache.redact import describe_error
from llmcache.request import CacheRequest, Scope
from llmcache.savings import (
    HISTORY_HOURS,
    HistorySink,
    SavingsReport,
    add_priced_totals,
    add_rows,
    build_report,
    hour_of,
)
from llmcache.semantic.index import Candidate, IndexedEntry
from llmcache.semantic.partition import partition_digest
from llmcache.singleflight import Flight, Flights, wait_async
from llmcache.stats import Stats, fleet_view
from llmcache.tiers import Tier, tier_from_url
from llmcache.tiers.base import Found
from llmcache.tiers.selector import check_scope
from llmcache.tiers.write_behind import WriteBehind

if TYPE_CHECKING:
    from llmcache.semantic.tier import SemanticTier
    from llmcache.semantic.verifier import Verifier

logger = logging.getLogger("llmcache")

T = TypeVar("T")

#: How long a caller that misses waits for an identical call already in flight (seconds).
DEFAULT_SINGLE_FLIGHT_TIMEOUT = 30.0
#: Above this share of recent lookups missing, a lookup takes the key's fleet lock in the same
#: round trip as its read (``get_or_lock``). Measured on loopback Redis: the combined script
#: costs a hit about 8 µs more than a GET and saves a miss a round trip (30 to 70 µs), so it
#: pays from about one miss in ten; a run of hits brings the share under it within ~20 calls.
LOCK_ON_LOOKUP_ABOVE = 0.1

#: Prefix of a sealed text in a semantic index (encryption at rest).
SEALED_TEXT = "llmcache-sealed:"

#: The embedded default: an in-process LRU in front of an SQLite file.
DEFAULT_URLS = ("memory://?maxsize=10000", "sqlite:///./llmcache.db")
#: Where LLMCACHE_URLS moves on to its next URL: a comma before a scheme.
_NEXT_URL = re.compile(r",\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")


class _Pending(NamedTuple):
    """A lookup that the in-process tiers could not answer: the I/O tiers are next."""

    key: CacheKey
    now: float


class _Stored(NamedTuple):
    """How a store ended: whether a tier took it, and its key if one was built."""

    stored: bool
    key: CacheKey | None


_NOT_STORED = _Stored(False, None)


class _Miss(NamedTuple):
    """No tier had the key (counted by ``get``, after any single-flight wait)."""

    key: CacheKey


class Cache(FlightPlans, EntryOperations):
    """A chain of tiers, top (fastest) first. Thread-safe and usable from asyncio."""

    def __init__(
        self,
        tiers: Sequence[Tier],
        *,
        policy: CachePolicy | None = None,
        clock: Clock = wall_clock,
        monotonic: Clock = monotonic_clock,
        single_flight_timeout: float | None = DEFAULT_SINGLE_FLIGHT_TIMEOUT,
        fleet_stats: bool = True,
        fleet_invalidation: bool = True,
        semantic: SemanticTier | None = None,
        encryption: Sealer | None = None,
        on_health: HealthCallback | None = None,
        hit_rate_floor: float | None = None,
        hit_rate_window: int = 500,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not tiers:
            raise ConfigError(
                "a Cache needs at least one tier, e.g. Cache.from_urls(['memory://'])"
            )
        _check_options(policy, single_flight_timeout, fleet_stats, fleet_invalidation, encryption)
        self._tiers = tuple(tiers)
        self._name_tiers()
        # The top tier, when in-process (memory: no I/O, cannot fail), is probed directly;
        # the tiers below it go through the walk, which also backfills it.
        self._local = 1 if getattr(self._tiers[0], "in_process", False) else 0
        self.policy = policy or CachePolicy()
        self.clock = clock
        # Uniform draws in [0, 1) for TTL jitter and early recomputation (injectable in tests).
        self._rand = rand
        self._hit_counts = HitCounter()  # for the policy's popularity extension
        self._breakers = {t.name: TierBreakers(monotonic) for t in self._tiers}
        # The semantic tier (embedder + vector index) fails open like a tier: own breaker.
        self._semantic = semantic
        # Encryption at rest: every payload a tier stores is sealed (llmcache.crypto).
        self._sealer = encryption
        if encryption is not None:  # a tier that reads payloads itself (Redis: their age)
            for tier in self._tiers:
                open_sealed_with = getattr(tier, "open_sealed_with", None)
                if callable(open_sealed_with):
                    open_sealed_with(encryption.open)
        # Store tiers' hits decoded once per (key, stored bytes): see llmcache.decoded.
        self._decoded = DecodedEntries() if encryption is None else None
        # Health events (tier down/recovered, hit rate below a floor): llmcache.health.
        self._on_health = on_health
        self._hit_floor = (
            None
            if hit_rate_floor is None
            else HitRateFloor(hit_rate_floor, hit_rate_window, on_health)
        )
        if semantic is not None:
            self._breakers[semantic.name] = TierBreakers(monotonic)
        self._stats = Stats(clock)
        # None or 0: no single-flight; concurrent misses each call the model.
        self._flight_timeout = single_flight_timeout or 0.0
        self._flights = (
            Flights(self._flight_timeout, monotonic, on_abandon=self._release_abandoned)
            if single_flight_timeout
            else None
        )
        self._monotonic = monotonic
        # A tier that can hold a lock shared by processes (Redis) extends single-flight to
        # the whole fleet.
        self._fleet_lock: Tier | None = None
        if self._flights is not None:
            self._fleet_lock = next((t for t in self._tiers if hasattr(t, "acquire_flight")), None)
        # When the lock tier is the only one below the in-process tiers, a lookup that is likely
        # to miss reads and takes the lock in one round trip (see LOCK_ON_LOOKUP_ABOVE).
        self._locks_below = (
            self._fleet_lock is not None
            and self._local == len(self._tiers) - 1
            and self._tiers[-1] is self._fleet_lock
            and hasattr(self._fleet_lock, "get_or_lock")
        )
        self._miss_share = 1.0  # recent lookups below the in-process tiers that missed
        # A tier that keeps counters for the fleet (Redis) gets this process's, in batches.
        self._stats_sink: StatsSink | None = next(
            (cast(StatsSink, t) for t in self._tiers if hasattr(t, "publish_stats")), None
        )
        # The first tier that keeps the savings history (SQL, Redis) gets it, in batches too.
        self._history_sink: HistorySink | None = next(
            (cast(HistorySink, t) for t in self._tiers if hasattr(t, "publish_history")), None
        )
        self._publisher: StatsPublisher | None = None
        if fleet_stats and (self._stats_sink is not None or self._history_sink is not None):
            self._publisher = StatsPublisher(
                self._stats, self._stats_sink, history=self._history_sink
            )
            weakref.finalize(self, self._publisher.stop)
        # Write-behind tiers (server SQL tiers unless ?write_behind=off) store from their own
        # thread: a failed batch is counted and drives the tier's breaker like a failed store.
        self._write_behind: list[WriteBehind] = []
        for tier in self._tiers:
            behind = getattr(tier, "write_behind", None)
            if isinstance(behind, WriteBehind):
                behind.on_error = partial(self._store_failed_behind, tier)
                self._write_behind.append(behind)
        # With Redis below: this cache's invalidate/clear reach the other processes' memory
        # tiers, and theirs reach this one's memory tier (llmcache.fleet_invalidation).
        self._fleet_invalidation: FleetInvalidation | None = None
        carrier = next((t for t in self._tiers[self._local :] if hasattr(t, "pubsub")), None)
        if fleet_invalidation and carrier is not None:
            local = cast(LocalTier, self._tiers[0]) if self._local else None
            self._fleet_invalidation = FleetInvalidation(cast(Broadcaster, carrier), local, clock)
            weakref.finalize(self, self._fleet_invalidation.close)

    def _name_tiers(self) -> None:
        seen: dict[str, int] = {}
        for tier in self._tiers:
            count = seen.get(tier.name, 0)
            seen[tier.name] = count + 1
            if count:
                tier.name = f"{tier.name}#{count + 1}"

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_urls(
        cls,
        urls: Iterable[str],
        *,
        semantic: str | SemanticTier | None = None,
        embedder: object = None,
        verifier: Verifier | None = None,
        policy: CachePolicy | None = None,
        clock: Clock = wall_clock,
        monotonic: Clock = monotonic_clock,
        single_flight_timeout: float | None = DEFAULT_SINGLE_FLIGHT_TIMEOUT,
        fleet_stats: bool = True,
        fleet_invalidation: bool = True,
        encryption: Sealer | bool | None = None,
        on_health: HealthCallback | None = None,
        hit_rate_floor: float | None = None,
        hit_rate_window: int = 500,
        rand: Callable[[], float] = random.random,
    ) -> Cache:
        """Build the chain from tier URLs, top tier first (see the README for the schemes).

        ``encryption``: None (default) seals stored entries when ``LLMCACHE_ENCRYPTION_KEYS``
        is set; True requires it; False never seals; or a ``llmcache.crypto.Sealer``.

        ``semantic``: a semantic tier URL (``faiss://./llmcache.faiss?threshold=0.9``,
        ``redisvl://host:port``; options in ``llmcache.semantic.url``) or a ``SemanticTier``.
        ``embedder`` (a LangChain ``Embeddings`` object, an llmcache ``Embedder`` or
        ``"litellm:<model>"``) and ``verifier`` override the URL's.
        """
        if isinstance(urls, str):
            raise ConfigError("from_urls takes a list of URLs; wrap a single URL in a list")
        tiers: list[Tier] = []
        semantic_tier: SemanticTier | None = None
        try:
            for url in urls:  # tier_from_url names a URL that is not a string
                tiers.append(tier_from_url(url.strip() if isinstance(url, str) else url))
            if isinstance(semantic, str):
                from llmcache.semantic.url import semantic_from_url

                semantic_tier = semantic_from_url(
                    semantic.strip(), embedder=embedder, verifier=verifier
                )
            elif semantic is not None:
                from llmcache.semantic.tier import SemanticTier

                if not isinstance(semantic, SemanticTier):
                    raise ConfigError(
                        "semantic= takes a semantic tier URL (e.g. 'faiss://./llmcache.faiss') "
                        f"or a SemanticTier, got {type(semantic).__name__}"
                    )
                semantic_tier = semantic
        except BaseException:
            for tier in tiers:
                tier.close()
            raise
        return cls(
            tiers,
            policy=policy,
            clock=clock,
            monotonic=monotonic,
            single_flight_timeout=single_flight_timeout,
            fleet_stats=fleet_stats,
            fleet_invalidation=fleet_invalidation,
            semantic=semantic_tier,
            encryption=_sealer(encryption),
            on_health=on_health,
            hit_rate_floor=hit_rate_floor,
            hit_rate_window=hit_rate_window,
            rand=rand,
        )

    @classmethod
    def from_env(cls, *, policy: CachePolicy | None = None) -> Cache:
        """Build from ``LLMCACHE_URLS`` (comma separated; a comma inside a URL, as in a
        Sentinel URL's list of hosts, stays in it) and ``LLMCACHE_SEMANTIC``.

        Without ``LLMCACHE_URLS`` this is the embedded default: memory + ``./llmcache.db``.
        """
        raw = os.environ.get("LLMCACHE_URLS", "")
        # A comma starts the next URL only before a scheme: redis+sentinel://h1:26379,h2:26379/
        # names two sentinels in one URL.
        urls = [u.strip() for u in _NEXT_URL.split(raw) if u.strip()] or list(DEFAULT_URLS)
        semantic = os.environ.get("LLMCACHE_SEMANTIC", "").strip() or None
        return cls.from_urls(urls, semantic=semantic, policy=policy)

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return self._tiers

    @property
    def semantic(self) -> SemanticTier | None:
        """The semantic tier, or None (adapters fill semantic fields only when there is one)."""
        return self._semantic

    # ------------------------------------------------------------------ public API
    def get(self, request: CacheRequest) -> CacheHit | None:
        """The cached answer to ``request`` from the first tier that has it, or None.

        On a miss while another caller is already computing the same answer (single-flight),
        waits for it, bounded by ``single_flight_timeout``, and returns it as a hit.
        """
        found = self._lookup(request)
        if type(found) is Joined:  # joined its flight, and took the fleet lock, in the lookup
            flight: Flight | bool = found.flight or False
        elif type(found) is not _Miss:
            if type(found) is CacheHit and self._keeps_fresh():
                return self._run(self._fresh_plan(found, request))
            return found  # type: ignore[return-value]
        elif (
            self._semantic is not None
            and request.semantic_text is not None
            and (close := self._run(self._semantic_plan(request, found.key)))
        ):
            return close
        else:
            joined = self._join_flight(found.key, request)
            if isinstance(joined, CacheHit):  # stored by a leader between lookup and join
                return joined
            flight = joined
            # This caller leads here; across processes it may have to wait.
            if (
                flight is True
                and self._fleet_lock is not None
                and (hit := self._run(self._fleet_plan(found.key)))
            ):
                return hit
        while isinstance(flight, Flight):
            done = flight.wait(self._flight_timeout)
            again = self._lookup(request)
            if type(again) is CacheHit:
                return again
            if done and not flight.abandoned:
                break  # its store was refused (too large, not cacheable): so would ours be
            led = self._run(self._rejoin_plan(again, request))  # the leader gave up
            if isinstance(led, CacheHit):  # another process led the next try
                return led
            flight = led
        self._stats.miss()
        if self._hit_floor is not None:
            self._check_hit_rate()
        return None

    async def aget(self, request: CacheRequest) -> CacheHit | None:
        found = await self._alookup(request)
        if type(found) is Joined:
            flight: Flight | bool = found.flight or False
        elif type(found) is not _Miss:
            if type(found) is CacheHit and self._keeps_fresh():
                return await self._arun(self._fresh_plan(found, request))
            return found  # type: ignore[return-value]
        elif (
            self._semantic is not None
            and request.semantic_text is not None
            and (close := await self._arun(self._semantic_plan(request, found.key)))
        ):
            return close
        else:
            joined = self._join_flight(found.key, request)
            if isinstance(joined, CacheHit):  # stored by a leader between lookup and join
                return joined
            flight = joined
            if (
                flight is True
                and self._fleet_lock is not None
                and (hit := await self._arun(self._fleet_plan(found.key)))
            ):
                return hit
        while isinstance(flight, Flight):
            done = await wait_async(flight, self._flight_timeout)
            again = await self._alookup(request)
            if type(again) is CacheHit:
                return again
            if done and not flight.abandoned:
                break
            led = await self._arun(self._rejoin_plan(again, request))
            if isinstance(led, CacheHit):
                return led
            flight = led
        self._stats.miss()
        if self._hit_floor is not None:
            self._check_hit_rate()
        return None

    def _lookup(self, request: CacheRequest) -> CacheHit | _Miss | Joined | None:
        probed = self._probe_local(request)
        if type(probed) is _Pending:
            return self._noted(self._run(self._pending_plan(probed, request)))
        return probed  # type: ignore[return-value]

    async def _alookup(self, request: CacheRequest) -> CacheHit | _Miss | Joined | None:
        probed = self._probe_local(request)
        if type(probed) is _Pending:
            return self._noted(await self._arun(self._pending_plan(probed, request)))
        return probed  # type: ignore[return-value]

    def _noted(self, found: CacheHit | _Miss | Joined) -> CacheHit | _Miss | Joined:
        """``found``, after counting it in the share of recent lookups below the in-process
        tiers that missed (an average over about the last 8, read by ``_pending_plan``)."""
        if self._locks_below:
            self._miss_share += ((type(found) is not CacheHit) - self._miss_share) / 8
        return found

    def _pending_plan(
        self, pending: _Pending, request: CacheRequest
    ) -> Plan[CacheHit | _Miss] | Plan[CacheHit | Joined]:
        """The walk below the in-process tiers; the lookup that also takes the fleet lock when
        misses are frequent enough for it to pay, and the request may lead a flight (it
        stores, no semantic search comes between, the lock tier is healthy)."""
        if (
            self._locks_below
            and self._miss_share > LOCK_ON_LOOKUP_ABOVE
            and not self._stores_nothing(request)
            and (self._semantic is None or request.semantic_text is None)
            and self._breakers[self._tiers[-1].name].closed
        ):
            return self._locked_get_plan(pending.key, pending.now)
        return self._get_plan(pending.key, pending.now)

    def _keeps_fresh(self) -> bool:
        """Whether a hit may be recomputed early or extended (off: the hot path is untouched)."""
        return self.policy.early_recompute > 0 or self.policy.popularity is not None

    def set(
        self,
        request: CacheRequest,
        value: Any,
        *,
        usage: Usage = NO_USAGE,
        ttl: float | Unset | None = UNSET,
        finish_reasons: Iterable[str | None] = (),
        wait: bool = True,
    ) -> bool:
        """Store ``value`` (JSON-like) in every tier; True if at least one tier took it.

        ``finish_reasons``: why each choice of the answer ended; an answer cut by the token
        limit or withheld by a content filter is not stored (``CachePolicy.may_store_answer``).
        ``wait=False``: a tier on a server that can take a store without the caller waiting
        for the server's answer (Redis) only sends it; True then means sent, and a store the
        server refused (out of memory, a read-only replica) is counted and logged as a
        failure of a later store to that tier. The adapters store so: the caller already has its
        answer, and a miss costs one round trip fewer.
        """
        outcome = _NOT_STORED
        try:
            plan = self._set_plan(request, value, usage, ttl, finish_reasons, wait)
            outcome = self._run(plan)
            return outcome.stored
        finally:
            if release := self._complete_flight(request, outcome.key):
                self._run(self._release_plan(release))

    async def aset(
        self,
        request: CacheRequest,
        value: Any,
        *,
        usage: Usage = NO_USAGE,
        ttl: float | Unset | None = UNSET,
        finish_reasons: Iterable[str | None] = (),
        wait: bool = True,
    ) -> bool:
        outcome = _NOT_STORED
        try:
            plan = self._set_plan(request, value, usage, ttl, finish_reasons, wait)
            outcome = await self._arun(plan)
            return outcome.stored
        finally:
            if release := self._complete_flight(request, outcome.key):
                await self._arun(self._release_plan(release))

    def forgo(self, request: CacheRequest) -> None:
        """The caller that missed ``request`` will not store an answer to it (an adapter
        found the answer cannot be stored): callers waiting for its answer (single-flight)
        stop waiting now and call the model on their own, as after a refused store, instead
        of waiting for the leader to be seen gone and electing the next one."""
        if release := self._complete_flight(request, None):
            self._run(self._release_plan(release))

    async def aforgo(self, request: CacheRequest) -> None:
        if release := self._complete_flight(request, None):
            await self._arun(self._release_plan(release))

    def delete(self, request: CacheRequest) -> None:
        self._run(self._delete_plan(request_key(request)))

    async def adelete(self, request: CacheRequest) -> None:
        await self._arun(self._delete_plan(request_key(request)))

    def delete_hit(self, hit: CacheHit) -> None:
        """Delete the entry a hit served (for a semantic hit: the entry found, not the asked
        key), e.g. when the adapter could not rebuild it."""
        self._run(self._delete_plan(hit.key))

    async def adelete_hit(self, hit: CacheHit) -> None:
        await self._arun(self._delete_plan(hit.key))

    def clear(self, *, scope: Scope | None = None) -> int:
        """Remove llmcache's entries (only ``scope``'s when given); returns how many.

        With a Redis tier, the other processes' memory tiers drop the same entries
        (``fleet_invalidation``)."""
        check_scope(scope, "clear")
        try:
            return self._run(self._clear_plan(scope))
        finally:
            if self._fleet_invalidation is not None:
                self._fleet_invalidation.cleared(None if scope is None else scope_digest(scope))

    async def aclear(self, *, scope: Scope | None = None) -> int:
        check_scope(scope, "aclear")
        try:
            return await self._arun(self._clear_plan(scope))
        finally:
            if self._fleet_invalidation is not None:
                digest = None if scope is None else scope_digest(scope)
                await self._fleet_invalidation.acleared(digest)

    def _check_hit_rate(self) -> None:
        assert self._hit_floor is not None
        snap = self._stats.snapshot()
        self._hit_floor.check(snap["hits"], snap["misses"])

    def health(self, *, probe: bool = False) -> dict[str, Any]:
        """Each tier's state (its read and write breakers), errors, and the hit rate.

        ``probe=True`` also reads a random key from every tier now (no breaker skips it) and
        reports whether it answered and how long it took, in milliseconds.
        """
        probed = self._run(self._probe_plan()) if probe else {}
        snap = self._stats.snapshot()
        tiers: dict[str, dict[str, Any]] = {}
        for name, breakers in self._breakers.items():
            tiers[name] = {
                "state": breakers.state.value,
                "reads": breakers.read.state.value,
                "writes": breakers.write.state.value,
                "errors": snap["errors_by_tier"].get(name, 0),
            }
        for name, (answered, millis) in probed.items():
            tiers[name].update(reachable=answered, latency_ms=round(millis, 3))
        report: dict[str, Any] = {
            "healthy": all(t["state"] == "closed" for t in tiers.values())
            and all(t.get("reachable", True) for t in tiers.values()),
            "tiers": tiers,
            "hit_rate": snap["hit_rate"],
        }
        if self._hit_floor is not None:
            report["hit_rate_floor"] = self._hit_floor.floor
            report["hit_rate_last_window"] = self._hit_floor.last_rate
            report["hit_rate_low"] = self._hit_floor.low
            report["healthy"] = report["healthy"] and not self._hit_floor.low
        return report

    def _probe_plan(self) -> Plan[dict[str, tuple[bool, float]]]:
        key = CacheKey(secrets.token_bytes(32), bytes(16), bytes(16), bytes(16))
        results: dict[str, tuple[bool, float]] = {}
        for tier in self._tiers:
            started = self._monotonic()
            found = yield Op(tier, "get", (key, self.clock()), probe=True)
            results[tier.name] = (found is not UNAVAILABLE, (self._monotonic() - started) * 1e3)
        return results

    def stats(self) -> dict[str, Any]:
        """Counters since start (or ``reset_stats``); keys are documented in the README.

        Dollars (``cost_saved_usd``, ``by_model``, ``provider_cache_saved_usd``) are priced
        now, from LiteLLM's price table (``llmcache.pricing``: the first call imports LiteLLM).
        """
        snap = self._stats.snapshot()
        add_priced_totals(snap, snap.pop("by_model"))
        snap["breakers"] = {name: b.state.value for name, b in self._breakers.items()}
        if self._semantic is not None:  # why close candidates were not served
            snap["semantic_rejected"] = self._semantic.rejected()
            snap["semantic_skipped"] = self._semantic.skipped()
        return snap

    def record_cost_saved(self, cost_usd: float) -> None:
        """Add dollars a hit saved to ``stats()["cost_saved_usd"]``, for an adapter that prices
        its hits itself. The core already prices every hit's usage by its entry's model
        (``llmcache.pricing``): the built-in adapters do not call this."""
        if cost_usd > 0:
            self._stats.saved(cost_usd)

    def record_refused(self, hit: CacheHit) -> None:
        """Count a served hit as a miss: the adapter refused it (e.g. LiteLLM's ``s-maxage``
        found the entry older than the caller accepts), so the caller called the model."""
        self._stats.refused(hit.tier, hit.match, hit.entry.model, hit.entry.usage)

    def fleet_stats(self) -> dict[str, Any] | None:
        """Totals of every process sharing this cache's Redis tier (this one's published
        first), in ``stats()``'s shape; None without a tier that keeps fleet counters."""
        if self._stats_sink is None:
            return None
        if self._publisher is not None:
            self._publisher.flush()
        view = fleet_view(self._stats_sink.read_stats())
        return add_priced_totals(view, view.pop("by_model"))

    @property
    def keeps_history(self) -> bool:
        """Whether a tier (SQL, Redis) keeps the savings history beyond this process."""
        return self._history_sink is not None

    def savings(self, *, since: float | None = None) -> SavingsReport:
        """Savings per model and per hour from ``since`` (epoch seconds; default: the
        ``HISTORY_HOURS`` kept), priced now: what ``llmcache report`` shows.

        Read from the first tier that keeps the history (SQL: every run on that database; Redis:
        the whole fleet), this process's latest counts sent first; without one, this process's
        own. Raises TierError when that tier cannot be read.
        """
        now_hour = hour_of(self.clock())
        since_hour = now_hour - HISTORY_HOURS if since is None else hour_of(since)
        if self._history_sink is None:
            return build_report(self._stats.history(), since_hour)
        if self._publisher is not None:
            self._publisher.flush()
        try:
            buckets = self._history_sink.read_history(since_hour)
        except TierError:
            raise
        except Exception as exc:
            cause = describe_error(exc)
            raise TierError(
                f"{self._history_sink.name}: cannot read the savings history ({cause})"
            ) from exc
        if self._publisher is None:  # nothing is sent: this process's counts are still here
            add_rows(buckets, self._stats.history())
        return build_report(buckets, since_hour)

    def reset_stats(self) -> None:
        self._stats.reset()
        if self._semantic is not None:
            self._semantic.reset_stats()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the stores queued by write-behind tiers (server SQL tiers by default) are
        written, so other processes see them; False if ``timeout`` seconds passed first."""
        deadline = None if timeout is None else self._monotonic() + timeout
        for behind in self._write_behind:
            left = None if deadline is None else max(0.0, deadline - self._monotonic())
            if not behind.flush(left):
                return False
        return True

    def close(self) -> None:
        if self._fleet_invalidation is not None:
            self._fleet_invalidation.close()
        if self._publisher is not None:
            self._publisher.close()
        parts: tuple[Tier | SemanticTier, ...] = self._tiers
        if self._semantic is not None:
            parts += (self._semantic,)
        for tier in parts:
            try:
                tier.close()
            except Exception as exc:  # closing must not mask the caller's own error
                logger.debug("llmcache: closing tier %s failed: %s", tier.name, describe_error(exc))

    async def aclose(self) -> None:
        if self._fleet_invalidation is not None:
            await asyncio.to_thread(self._fleet_invalidation.close)
        if self._publisher is not None:
            await asyncio.to_thread(self._publisher.close)
        parts: tuple[Tier | SemanticTier, ...] = self._tiers
        if self._semantic is not None:
            parts += (self._semantic,)
        for tier in parts:
            try:
                await tier.aclose()
            except Exception as exc:
                logger.debug("llmcache: closing tier %s failed: %s", tier.name, describe_error(exc))

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Cache:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"Cache(tiers=[{', '.join(t.name for t in self._tiers)}])"

    # ------------------------------------------------------------------ plans (pure logic)
    def _probe_local(self, request: CacheRequest) -> CacheHit | _Pending | _Miss | None:
        """Policy, key, and an in-process top tier (no I/O, no driver): the hot path.

        An in-process tier (memory) neither blocks nor fails, so it is probed directly, for
        both the sync and the async path; the tiers below go through a plan and its driver.
        Returns the hit, a ``_Pending`` walk of the tiers below, a ``_Miss``, or None when the
        policy says not to read.
        """
        if not self.policy.decide(request).read:
            self._stats.skip()
            return None
        key = request.key_memo or request_key(request)  # the memo read here: the hot path
        now = self.clock()
        if self._local:
            top = self._tiers[0]
            entry = top.get(key, now)
            if isinstance(entry, CacheEntry) and not entry.is_expired(now):
                return self._hit(entry, top.name, key, now)
        if self._local == len(self._tiers):
            return _Miss(key)
        return _Pending(key, now)

    def _hit(
        self, entry: CacheEntry, tier: str, key: CacheKey, now: float | None = None
    ) -> CacheHit:
        """An exact hit, counted; ``now``: the lookup's reading of the clock, when it has one."""
        self._stats.hit(tier, "exact", entry.model, entry.usage, now)
        return CacheHit(entry=entry, tier=tier, match="exact", key=key)

    def _get_plan(self, key: CacheKey, now: float) -> Plan[CacheHit | _Miss]:
        """Walk the tiers below the probed one; backfill every tier above a hit."""
        found = yield from self._find_plan(key, now, self._local)
        if type(found) is tuple:
            return self._hit(found[0], found[1], key, now)
        return _Miss(key)

    def _find_plan(
        self, key: CacheKey, now: float, start: int
    ) -> Plan[tuple[CacheEntry, str] | Unavailable | None]:
        """The entry and the name of the first tier from ``start`` down that has it, with
        every tier above it backfilled; None if none has it, UNAVAILABLE if none answered."""
        answered = False
        for index in range(start, len(self._tiers)):
            tier = self._tiers[index]
            found = yield Op(tier, "get", (key, now))
            if found is UNAVAILABLE:
                continue
            answered = True
            entry = yield from self._entry_plan(index, key, found, now)
            if entry is not None:
                return entry, tier.name
        return None if answered else UNAVAILABLE

    def _entry_plan(
        self, index: int, key: CacheKey, found: Found, now: float
    ) -> Plan[CacheEntry | None]:
        """The live entry in what tier ``index`` returned for ``key`` (decoded once per stored
        bytes; undecodable bytes are deleted), with every tier above it backfilled."""
        if found is None:
            return None
        tier = self._tiers[index]
        payload: bytes | None = None
        if isinstance(found, (bytes, bytearray, memoryview)):
            payload = bytes(found)
            decoded = self._decoded
            known = None if decoded is None else decoded.get(key.digest, payload)
            if known is not None:
                entry = known
            else:
                try:
                    entry = decode(self._unseal(payload, key))
                except UnknownKeyError:
                    return None  # sealed under a key this process lacks: a miss, kept for others
                except CodecError as exc:
                    self._stats.decode_error()
                    logger.warning(
                        "llmcache: %s held an undecodable entry (%s); deleted it", tier.name, exc
                    )
                    yield Op(tier, "delete", (key,))
                    return None
                if decoded is not None:
                    decoded.put(key.digest, payload, entry)
        else:
            entry = found
        if entry.is_expired(now):
            return None
        if index:
            payload = payload if payload is not None else self._seal(encode(entry), key)
            for upper in self._tiers[:index]:  # backfill the faster tiers
                yield Op(upper, "set", (key, entry, payload, now))
        return entry

    def _seal(self, payload: bytes, key: CacheKey) -> bytes:
        # Bound to the entry's digest: a sealed value copied onto another key does not open.
        return payload if self._sealer is None else self._sealer.seal(payload, key.digest)

    def _unseal(self, payload: bytes, key: CacheKey) -> bytes:
        if self._sealer is not None:
            return self._sealer.open(payload, key.digest)
        if payload.startswith(SEALED_MAGIC):
            # Another process's sealed entry (this one has no keys): a miss, never deleted.
            raise UnknownKeyError("stored entry is sealed, and encryption is off here")
        return payload

    # The semantic index keeps the embedded text (the last user turn) for the verifier: with
    # encryption on it is sealed too, bound to its entry's key (base64 in a text field).
    def _seal_text(self, text: str, key: CacheKey) -> str:
        assert self._sealer is not None
        sealed = self._sealer.seal(text.encode("utf-8"), key.digest + b"/text")
        return SEALED_TEXT + base64.b64encode(sealed).decode("ascii")

    def _open_texts(self, candidates: list[Candidate]) -> list[Candidate]:
        """Candidates with their texts opened; one that does not open is not a candidate."""
        assert self._sealer is not None
        opened = []
        for candidate in candidates:
            text = self._open_text(candidate.text, candidate.key)
            if text is not None:
                opened.append(candidate._replace(text=text))
        return opened

    def _open_text(self, text: str, key: CacheKey) -> str | None:
        """A semantic index's text as this cache reads it: opened when sealed; None when it
        cannot be (sealed without keys here, or plain text where sealed ones are expected,
        which an encrypted cache does not trust)."""
        if self._sealer is None:
            return None if text.startswith(SEALED_TEXT) else text
        if not text.startswith(SEALED_TEXT):
            return None
        try:
            raw = base64.b64decode(text[len(SEALED_TEXT) :], validate=True)
            plain = self._sealer.open(raw, key.digest + b"/text")
        except (CodecError, ValueError):
            return None
        return plain.decode("utf-8", "replace")

    def _semantic_plan(self, request: CacheRequest, key: CacheKey) -> Plan[CacheHit | None]:
        """After an exact miss: embed the last user turn, search its partition, and serve the
        first candidate that passes the threshold and the verifier and that the exact tiers
        still hold. A vector whose entry is gone (expired, evicted) is deleted."""
        semantic, text = self._semantic, request.semantic_text
        assert semantic is not None
        assert text is not None
        try:
            partition = partition_digest(request, key)
        except CodecError:  # a context that cannot be keyed has no partition
            return None
        threshold = request.semantic_threshold
        if threshold is None:
            threshold = semantic.threshold
        vector = yield Op(semantic, "embed", (text,))
        if vector is UNAVAILABLE:
            return None
        if isinstance(vector, str):  # the embedder cannot read it: its vector means nothing
            semantic.skip(vector, text)
            return None
        semantic.remember(key.digest, vector)  # the store after this miss reuses it
        now = self.clock()
        candidates = yield Op(semantic, "search", (partition, vector, semantic.k, now))
        if candidates is UNAVAILABLE:
            return None
        if self._sealer is not None:
            candidates = self._open_texts(candidates)
        else:  # sealed by a process with keys: not ours to judge, nor to delete as dangling
            candidates = [c for c in candidates if not c.text.startswith(SEALED_TEXT)]
        for candidate in semantic.judge(text, candidates, threshold):
            found = yield from self._find_plan(candidate.key, now, 0)
            if found is UNAVAILABLE:
                return None  # the exact tiers are down: nothing to serve, nothing to delete
            if found is None:
                semantic.reject("dangling", text, candidate)
                yield Op(semantic, "delete", ([candidate.key.digest],))
                continue
            entry, tier = cast(tuple[CacheEntry, str], found)
            semantic.recall(key.digest)  # served: no store will follow
            self._stats.hit(tier, "semantic", entry.model, entry.usage)
            return CacheHit(entry, tier, "semantic", candidate.key, candidate.similarity)
        return None

    def _index_plan(self, request: CacheRequest, key: CacheKey, entry: CacheEntry) -> Plan[None]:
        """After a store: add the request's vector (the one its lookup computed, if kept)."""
        semantic, text = self._semantic, request.semantic_text
        assert semantic is not None
        assert text is not None
        try:
            partition = partition_digest(request, key)
        except CodecError:
            return
        vector = semantic.recall(key.digest)
        if vector is None:
            vector = yield Op(semantic, "embed", (text,))
            if vector is UNAVAILABLE or isinstance(vector, str):  # str: cannot read it
                return
        stored_text = text if self._sealer is None else self._seal_text(text, key)
        indexed = IndexedEntry(key, partition, vector, stored_text, entry.expires_at, request.tags)
        yield Op(semantic, "add", (indexed,))

    def _fresh_plan(self, hit: CacheHit, request: CacheRequest) -> Plan[CacheHit | None]:
        """After an exact hit: None when this caller is to recompute the entry early (it leads
        the key's flight), else the hit, with a popular entry's expiry extended in the tier
        that served it and those above (``llmcache.freshness`` has the rules). A call that
        stores nothing never refreshes."""
        policy, entry, key, now = self.policy, hit.entry, hit.key, self.clock()
        if (
            policy.early_recompute
            and not self._stores_nothing(request)
            and recompute_early(entry, now, policy.early_recompute, self._rand)
        ):
            leads = yield from self._lead_refresh_plan(key)
            if leads:
                self.record_refused(hit)
                self._stats.refreshed_early()
                return None
        popularity = policy.popularity
        if popularity is not None and self._hit_counts.add(key.digest) % popularity.every == 0:
            expires = extended_expiry(entry, now, popularity)
            if expires is not None:
                renewed = replace(entry, expires_at=expires)
                payload = self._seal(encode(renewed), key)
                # An upsert: the same entry, a later expiry. Only where it is this entry: the
                # tier that served it and those above (which hold it, backfilled). A tier
                # below may since hold a newer answer, or none after an invalidation, which
                # this copy would overwrite or bring back for every process.
                names = [tier.name for tier in self._tiers]
                served = names.index(hit.tier) + 1 if hit.tier in names else 0
                for tier in self._tiers[:served]:
                    yield Op(tier, "set", (key, renewed, payload, now))
                self._stats.extended()
                return CacheHit(renewed, hit.tier, hit.match, key, hit.similarity)
        return hit

    def _set_plan(
        self,
        request: CacheRequest,
        value: Any,
        usage: Usage,
        ttl: float | Unset | None,
        finish_reasons: Iterable[str | None] = (),
        wait: bool = True,
    ) -> Plan[_Stored]:
        key = request_key(request)  # checks the request (kept from its lookup, usually)
        if type(usage) is not Usage and not isinstance(usage, Usage):
            raise ConfigError(f"usage must be a llmcache.Usage, got {type(usage).__name__}")
        check_usage(usage)
        if isinstance(finish_reasons, str):  # its letters would be read as reasons
            raise ConfigError(
                f"finish_reasons is one reason per choice, e.g. ['stop'], got {finish_reasons!r}"
            )
        if usage.cache_read_tokens or usage.cache_creation_tokens:
            # The answer of a model call: the provider's prompt cache saved on it, stored or not.
            self._stats.provider_cached(request.model_name, usage)
        if not self.policy.decide(request).write:
            return _NOT_STORED
        refused = self.policy.refuses_answer(finish_reasons)
        if refused is not None:
            self._stats.rejected(refused.reason)
            return _NOT_STORED
        resolved = self.policy.resolve_ttl(ttl, request)
        if resolved == 0:  # "do not store", in every tier
            return _NOT_STORED
        now = self.clock()
        entry = CacheEntry(
            value=value,
            created_at=now,
            expires_at=self.policy.expires_at(resolved, now, self._rand),
            model=request.model_name,
            usage=usage,
            tags=request.tags,
        )
        try:
            check_finite(value)
            payload = encode(entry)
        except CodecError as exc:
            self._stats.rejected("unencodable")
            logger.warning("llmcache: not storing an answer: %s", exc)
            return _NOT_STORED
        if len(payload) > self.policy.max_entry_bytes:
            self._stats.rejected("too_large")
            logger.warning(
                "llmcache: not storing an answer of %d bytes (max_entry_bytes=%d)",
                len(payload),
                self.policy.max_entry_bytes,
            )
            return _NOT_STORED
        payload = self._seal(payload, key)
        stored = False
        for tier in self._tiers:
            method = "set" if wait or not hasattr(tier, "post") else "post"
            result = yield Op(tier, method, (key, entry, payload, now))
            stored = stored or result is not UNAVAILABLE
        if stored:
            self._stats.stored()
            if self._semantic is not None and request.semantic_text is not None:
                yield from self._index_plan(request, key, entry)
        return _Stored(stored, key)

    def _delete_plan(self, key: CacheKey) -> Plan[None]:
        for tier in self._tiers:
            yield Op(tier, "delete", (key,))

    def _clear_plan(self, scope: Scope | None) -> Plan[int]:
        digest = None if scope is None else scope_digest(scope)
        removed = 0
        for tier in self._tiers:
            count = yield Op(tier, "clear", (digest,))
            if isinstance(count, int):
                removed += count
        if self._semantic is not None:  # vectors point at entries: they go too (not counted)
            yield Op(self._semantic, "clear", (digest,))
        return removed

    # ------------------------------------------------------------------ drivers (I/O)
    def _run(self, plan: Plan[T]) -> T:
        try:
            op = next(plan)
            while True:
                if isinstance(op, Sleep):
                    time.sleep(op.seconds)
                    op = plan.send(None)
                    continue
                health = self._breakers[op.tier.name]
                if not (op.probe or op.strict or health.allow(op.method)):
                    op = plan.send(UNAVAILABLE)
                    continue
                try:
                    result = getattr(op.tier, op.method)(*op.args)
                except Exception as exc:
                    if op.strict:
                        raise
                    self._tier_failed(op.tier, health, op.method, exc)
                    result = UNAVAILABLE
                else:
                    if not health.closed:
                        self._tier_succeeded(op.tier, health, op.method)
                op = plan.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _arun(self, plan: Plan[T]) -> T:
        try:
            op = next(plan)
            while True:
                if isinstance(op, Sleep):
                    await asyncio.sleep(op.seconds)
                    op = plan.send(None)
                    continue
                health = self._breakers[op.tier.name]
                if not (op.probe or op.strict or health.allow(op.method)):
                    op = plan.send(UNAVAILABLE)
                    continue
                try:
                    result = await getattr(op.tier, "a" + op.method)(*op.args)
                except Exception as exc:
                    if op.strict:
                        raise
                    self._tier_failed(op.tier, health, op.method, exc)
                    result = UNAVAILABLE
                else:
                    if not health.closed:
                        self._tier_succeeded(op.tier, health, op.method)
                op = plan.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _tier_failed(
        self, tier: Tier | SemanticTier, health: TierBreakers, method: str, exc: Exception
    ) -> None:
        self._stats.error(tier.name)
        if health.failed(method):  # log once per outage, not once per call
            cause = describe_error(exc)
            logger.warning(
                "llmcache: tier %s failed (%s); skipping it until it recovers", tier.name, cause
            )
            emit(self._on_health, HealthEvent("tier_down", tier.name, cause))

    def _store_failed_behind(self, tier: Tier, exc: Exception) -> None:
        self._tier_failed(tier, self._breakers[tier.name], "set", exc)

    def _tier_succeeded(self, tier: Tier | SemanticTier, health: TierBreakers, method: str) -> None:
        if health.succeeded(method):
            logger.warning("llmcache: tier %s recovered", tier.name)
            emit(self._on_health, HealthEvent("tier_recovered", tier.name, "serving again"))


def _check_options(
    policy: object,
    single_flight_timeout: object,
    fleet_stats: object,
    fleet_invalidation: object,
    encryption: object,
) -> None:
    """Options of the wrong type fail here, when the cache is built, not on the first call
    (a policy) nor in silence (a true string for a switch)."""
    if policy is not None and not isinstance(policy, CachePolicy):
        raise ConfigError(
            f"policy must be a llmcache.CachePolicy, got {policy!r}; e.g. CachePolicy.strict()"
        )
    timeout = single_flight_timeout
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0
    ):
        raise ConfigError(f"single_flight_timeout must be >= 0 seconds or None, got {timeout!r}")
    for name, switch in (("fleet_stats", fleet_stats), ("fleet_invalidation", fleet_invalidation)):
        if not isinstance(switch, bool):
            raise ConfigError(f"{name} must be True or False, got {switch!r}")
    if encryption is not None and not isinstance(encryption, Sealer):
        raise ConfigError(f"encryption must be a llmcache.crypto.Sealer or None, got {encryption}")


def _sealer(encryption: Sealer | bool | None) -> Sealer | None:
    """The sealer ``from_urls(encryption=...)`` asks for (see there)."""
    if isinstance(encryption, Sealer):
        return encryption
    if encryption is not None and not isinstance(encryption, bool):
        # "yes" would mean: sealed only if LLMCACHE_ENCRYPTION_KEYS happens to be set.
        raise ConfigError(
            f"encryption must be True, False, None or a llmcache.crypto.Sealer, got {encryption!r}"
        )
    if encryption is False:
        return None
    sealer = Sealer.from_env()
    if sealer is None and encryption is True:
        raise ConfigError(
            "encryption=True needs keys in LLMCACHE_ENCRYPTION_KEYS (id:base64key[,...])"
        )
    return sealer
