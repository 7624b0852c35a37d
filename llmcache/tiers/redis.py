"""``redis://``, ``rediss://``, ``unix://``, ``redis+cluster://``, ``redis+sentinel://``: Redis.

Plain Redis 7 with no modules. redis-py's sync client for the sync primitives and
``redis.asyncio`` for the async ones (native async I/O, no thread hops).

Keys (``{...}`` is a Cluster hash tag: an entry and its scope's tag sets share a slot)::

    <prefix>:{<scope hex>}:e:<digest hex>      the entry: a header + the encoded CacheEntry
    <prefix>:{<scope hex>}:t:<tag digest hex>  a set of the entry keys carrying that tag
    <prefix>:{<scope hex>}:p:<model hex>:<namespace hex>  a set of the entry keys of that
                                               model and namespace (its "partition")

TTL is native: ``SET ... PX`` from the tier's effective expiry, so Redis drops expired entries
itself. The value starts with a 9-byte header holding that expiry as wall-clock seconds, so a
``get`` also honours the cache's injected clock (a test's fake clock, or a host whose clock is
ahead of Redis's). A store is one small Lua script (atomic, one round trip) that SETs the
entry and adds it to its partition and tag sets (index sets), whose
TTL it extends, never shortens, so a set never expires before an entry it lists. Every store
is indexed (its partition), so ``invalidate`` (``redis_invalidate.py``) finds entries by
model, namespace, tag and age without reading every value. ``clear`` SCANs (never
KEYS/FLUSHDB) every primary for this prefix's keys, or one scope's, and UNLINKs them in
pipelined batches; it returns the number of entries removed. Digests are hex and the prefix
is validated, so no key pattern can match another prefix's keys.

Errors are raised as TierError naming the server; the cache turns them into a skipped tier.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from llmcache.entry import CacheEntry
from llmcache.errors import CodecError, ConfigError, LLMCacheError, TierError
from llmcache.fork_safety import renew_after_fork
from llmcache.keys import CacheKey, label_digest
from llmcache.redact import describe_error
from llmcache.savings import COUNTERS, HISTORY_HOURS, HOUR, Buckets, history_from_fields
from llmcache.tiers.base import NOT_OURS, Found, effective_expiry
from llmcache.tiers.listing import ListPage
from llmcache.tiers.redis_direct import (
    AClientCommands,
    ACommands,
    ClientCommands,
    Command,
    Commands,
    acommands_for,
    commands_for,
)
from llmcache.tiers.redis_invalidate import (
    ANY_SCOPE_HEX,
    KEY_KINDS,
    invalidate_plan,
    run_async,
    run_sync,
)
from llmcache.tiers.redis_listing import list_page_plan
from llmcache.tiers.redis_url import (
    Kind,
    RedisTarget,
    check_prefix,
    check_tier_ttl,
    parse_redis_url,
)
from llmcache.tiers.selector import Selector

logger = logging.getLogger("llmcache")

CLEAR_BATCH = 500
# Fleet locks held at once before expired ones are forgotten (a lock whose leader never
# stored: its model call failed).
_MAX_HELD = 1024
_HEADER = struct.Struct(">cd")  # version byte, expiry (wall-clock seconds; +inf: never)
_VERSION = b"\x01"
_NEVER = math.inf

# A store, atomic and in one round trip: SET the entry (KEYS[1]) to ARGV[1] with PX
# ARGV[2] ("" for no TTL), and add its key to each index set (KEYS[2..]), making every set live
# at least as long as the entry: a set that existed without a TTL keeps none, a shorter TTL is
# extended, a longer one kept. All keys share the scope's hash tag: one Cluster slot.
_TAGGED_SET_SCRIPT = """
local ms = ARGV[2]
if ms == '' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ms)
end
for i = 2, #KEYS do
  local k = KEYS[i]
  local existed = redis.call('EXISTS', k)
  redis.call('SADD', k, KEYS[1])
  if ms == '' then
    redis.call('PERSIST', k)
  else
    local ttl = redis.call('PTTL', k)
    if existed == 0 or (ttl >= 0 and ttl < tonumber(ms)) then
      redis.call('PEXPIRE', k, ms)
    end
  end
end
return 1
"""


# A lookup that takes the key's fleet lock when it misses, in the same round trip: the entry
# (KEYS[1]) if present, else 1 if the lock (KEYS[2]) was free and is now ours (SET NX PX with
# the token ARGV[1] for ARGV[2] ms), 0 if another caller holds it. Both keys carry the scope's
# hash tag: one Cluster slot.
_GET_OR_LOCK = """
local v = redis.call('GET', KEYS[1])
if v then return v end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""


# Delete the flight lock only if it still holds our token (never another leader's).
_RELEASE_FLIGHT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Looked(NamedTuple):
    """What ``get_or_lock`` found: the entry's payload (or None), and whether the key's fleet
    lock is now ours (True), held by another caller (False), or was not asked for (None:
    the key held a value, or the server refused the script and a plain GET answered)."""

    found: Found
    acquired: bool | None


class _Store(NamedTuple):
    """What storing one entry takes: decided once, run by the sync or the async edge."""

    name: str  # the entry key
    value: bytes | None  # header + payload; None: already expired, remove the key instead
    ms: int | None  # PX milliseconds; None: no TTL
    tag_keys: tuple[str, ...]  # its index sets: the partition's, then its tags'

    def script_args(self) -> tuple[Any, ...]:
        ms = "" if self.ms is None else str(self.ms)
        return (_TAGGED_SET_SCRIPT, 1 + len(self.tag_keys), self.name, *self.tag_keys,
                self.value, ms)  # fmt: skip

    def commands(self) -> list[Command]:
        if self.value is None:
            return [("UNLINK", self.name)]
        if self.tag_keys:
            return [("EVAL", *self.script_args())]
        if self.ms is None:
            return [("SET", self.name, self.value)]
        return [("SET", self.name, self.value, "PX", self.ms)]


class RedisTier:
    """A tier on Redis (standalone, Cluster or Sentinel). Build it with ``from_url`` or pass
    a redis-py client: ``RedisTier(client=redis.Redis(...))``. Only clients this tier created
    (or derived from the one passed in) are closed by ``close``/``aclose``."""

    def __init__(
        self,
        target: RedisTarget | None = None,
        *,
        client: Any = None,
        async_client: Any = None,
        prefix: str = "llmcache",
        ttl: float | None = None,
    ) -> None:
        if target is None:
            if client is None:
                raise ConfigError(
                    "RedisTier needs a URL or a client: RedisTier.from_url('redis://...') or "
                    "RedisTier(client=redis.Redis(...))"
                )
            target = _target_for_client(client, prefix, ttl)
        self.target = target
        self.name: str = target.kind
        self.prefix = target.prefix
        self.default_ttl = target.ttl
        self._owns_client = client is None
        self._client = client
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")
        self._borrowed_async = async_client
        # redis.asyncio connections belong to the loop that opened them: one client per loop,
        # so threads each running their own loop never close each other's connections.
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._guard = _ErrorContext(target.where)
        # The commands of the sync client (see redis_direct), and of each loop's async one.
        self._pair: tuple[Any, Commands | ClientCommands] | None = None
        self._acmds: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, ACommands | AClientCommands
        ] = weakref.WeakKeyDictionary()
        self._alast: tuple[asyncio.AbstractEventLoop, ACommands | AClientCommands] | None = None
        # How the cache opens a sealed payload (encryption at rest): invalidate(older_than=)
        # reads each entry's age from inside it (open_sealed_with).
        self._opener: Callable[[bytes, bytes], bytes] | None = None
        # Fleet locks this process took and has not released: flight key -> (token, the
        # lock's expiry on the monotonic clock). A store of that key releases its lock in
        # the same round trip (see _with_release).
        self._held: dict[str, tuple[str, float]] = {}
        if client is not None and async_client is None and _is_sentinel_managed(client):
            raise ConfigError(
                "RedisTier(client=<a Sentinel master client>) cannot derive an async client "
                "from it; pass async_client=<redis.asyncio Sentinel(...).master_for(...)> too"
            )
        if client is None and target.kind != "redis-cluster":
            # Cheap and lazy (no connection yet), and it reports bad options now. A cluster
            # client connects when built: that waits for first use, so a cluster that is down
            # at start-up fails open through the cache instead of failing the constructor.
            self._client = self._build(target.sync_client)

    @classmethod
    def from_url(cls, url: str) -> RedisTier:
        return cls(parse_redis_url(url))

    def __repr__(self) -> str:
        return f"RedisTier({self.target.where}, prefix={self.prefix!r})"

    # ------------------------------------------------------------------ keys
    def _scope_tag(self, scope: bytes) -> str:
        return f"{self.prefix}:{{{scope.hex()}}}"

    def entry_key(self, key: CacheKey) -> str:
        return f"{self._scope_tag(key.scope)}:e:{key.digest.hex()}"

    def _tag_keys(self, key: CacheKey, tags: Iterable[str]) -> tuple[str, ...]:
        base = self._scope_tag(key.scope)
        return tuple(dict.fromkeys(f"{base}:t:{label_digest('tag', t).hex()}" for t in tags))

    def _pattern(self, scope: bytes | None) -> str:
        # Braces and hex are not glob characters, and the prefix is validated: the pattern
        # matches the keys this tier writes under the prefix (of one scope) and nothing else,
        # not an app's "<prefix>:{session-42}:cart" beside them.
        tag = f"{self.prefix}:{{{ANY_SCOPE_HEX}}}" if scope is None else self._scope_tag(scope)
        return f"{tag}:[{KEY_KINDS}]:*"

    def _store(self, key: CacheKey, entry: CacheEntry, payload: bytes, now: float) -> _Store:
        name = self.entry_key(key)
        expires = effective_expiry(entry.expires_at, now, self.default_ttl)
        if expires is None:
            value, ms = _HEADER.pack(_VERSION, _NEVER) + payload, None
        else:
            ms = math.ceil((expires - now) * 1000)
            if ms <= 0:  # already expired: nothing may be served, not even an older value
                return _Store(name, None, None, ())
            value = _HEADER.pack(_VERSION, expires) + payload
        partition = f"{self._scope_tag(key.scope)}:p:{key.model.hex()}:{key.namespace.hex()}"
        tag_keys = self._tag_keys(key, entry.tags) if entry.tags else ()
        return _Store(name, value, ms, (partition, *tag_keys))

    # ------------------------------------------------------------------ fleet-wide counters
    # One hash outside the entry key space (``clear`` never matches it): every process adds
    # its deltas, ``llmcache stats --url`` reads the totals.
    def _stats_key(self) -> str:
        return f"{self.prefix}:stats"

    def publish_stats(self, deltas: dict[str, float]) -> None:
        with self._errors():
            pipe = self._sync().pipeline(transaction=False)
            for field_name, amount in deltas.items():
                # By type, not by value: a dollar amount of 1.0 after 0.5 went out as
                # HINCRBY onto a field holding "0.5", which Redis refuses.
                if isinstance(amount, float):
                    pipe.hincrbyfloat(self._stats_key(), field_name, amount)
                else:
                    pipe.hincrby(self._stats_key(), field_name, amount)
            _execute_counters(pipe, "fleet counters")

    # Fleet invalidation (``llmcache.fleet_invalidation``): a pub/sub channel, not a key.
    def publish(self, channel: str, message: bytes) -> None:
        with self._errors():
            self._cmd().run((("PUBLISH", channel, message),))

    async def apublish(self, channel: str, message: bytes) -> None:
        with self._errors():
            await self._acmd().run((("PUBLISH", channel, message),))

    def pubsub(self) -> Any:
        """A pub/sub object on a connection of its own (the listener thread's)."""
        return self._sync().pubsub()

    def read_stats(self) -> dict[str, float]:
        with self._errors():
            raw = self._sync().hgetall(self._stats_key())
        totals: dict[str, float] = {}
        for name, value in raw.items():
            try:
                totals[name.decode()] = float(value)
            except (UnicodeDecodeError, ValueError):  # not ours to interpret: skip it
                continue
        return totals

    # ------------------------------------------------------------------ savings history
    # Outside the entry key space too: one hash per hour (``<prefix>:savings:<hour>``, fields
    # ``<counter>:<model>``) and a sorted set of the hours (``<prefix>:savings``), all
    # expiring HISTORY_HOURS after their last batch.
    def _history_index(self) -> str:
        return f"{self.prefix}:savings"

    def publish_history(self, buckets: Buckets) -> None:
        index, ttl = self._history_index(), HISTORY_HOURS * HOUR
        newest = max(hour for hour, _ in buckets)
        with self._errors():
            pipe = self._sync().pipeline(transaction=False)
            for (hour, model), row in buckets.items():
                key = f"{index}:{hour}"
                for name, count in zip(COUNTERS, row, strict=True):
                    if count:
                        pipe.hincrby(key, f"{name}:{model}", count)
                pipe.expire(key, ttl)
                pipe.zadd(index, {str(hour): hour})
            pipe.zremrangebyscore(index, "-inf", f"({newest - HISTORY_HOURS}")
            pipe.expire(index, ttl)
            _execute_counters(pipe, "savings history")

    def read_history(self, since_hour: int) -> Buckets:
        index = self._history_index()
        with self._errors():
            client = self._sync()
            hours = [int(h) for h in client.zrangebyscore(index, since_hour, "+inf")]
            pipe = client.pipeline(transaction=False)
            for hour in hours:
                pipe.hgetall(f"{index}:{hour}")
            found = pipe.execute()
        return history_from_fields(zip(hours, found, strict=True))

    # ------------------------------------------------------------------ fleet single-flight
    # A lock per key, shared by every process on this Redis: SET NX PX with a random token,
    # released only by its owner (Lua compare-and-delete), expiring by itself if the owner dies.
    def _flight_key(self, key: CacheKey) -> str:
        return f"{self._scope_tag(key.scope)}:f:{key.digest.hex()}"

    def acquire_flight(self, key: CacheKey, token: str, ttl_ms: int) -> bool:
        name = self._flight_key(key)
        with self._errors():
            (reply,) = self._cmd().run((("SET", name, token, "NX", "PX", ttl_ms),))
        return self._took(name, token, ttl_ms, reply)

    def flight_open(self, key: CacheKey) -> bool:
        with self._errors():
            (reply,) = self._cmd().run((("EXISTS", self._flight_key(key)),))
        return bool(reply)

    def release_flight(self, key: CacheKey, token: str) -> None:
        name = self._flight_key(key)
        if not self._still_held(name, token):
            return  # released with its store, or expired by itself
        with self._errors():
            self._cmd().run((("EVAL", _RELEASE_FLIGHT, 1, name, token),))

    def get_or_lock(self, key: CacheKey, now: float, token: str, ttl_ms: int) -> Looked:
        """``get``, taking the key's fleet lock on a miss in the same round trip."""
        name, entry = self._flight_key(key), self.entry_key(key)
        try:
            with self._errors():
                (reply,) = self._cmd().run((("EVAL", _GET_OR_LOCK, 2, entry, name, token, ttl_ms),))
        except TierError as exc:
            if not _refused_write(exc):
                raise
            return Looked(self.get(key, now), None)  # a read-only or full server still reads
        return self._looked(reply, name, token, ttl_ms, now)

    def _looked(self, reply: Any, name: str, token: str, ttl_ms: int, now: float) -> Looked:
        if type(reply) is int:
            return Looked(None, self._took(name, token, ttl_ms, reply))
        return Looked(_unwrap(reply, now), None)

    async def aacquire_flight(self, key: CacheKey, token: str, ttl_ms: int) -> bool:
        name = self._flight_key(key)
        with self._errors():
            (reply,) = await self._acmd().run((("SET", name, token, "NX", "PX", ttl_ms),))
        return self._took(name, token, ttl_ms, reply)

    async def aget_or_lock(self, key: CacheKey, now: float, token: str, ttl_ms: int) -> Looked:
        name, entry = self._flight_key(key), self.entry_key(key)
        try:
            with self._errors():
                (reply,) = await self._acmd().run(
                    (("EVAL", _GET_OR_LOCK, 2, entry, name, token, ttl_ms),)
                )
        except TierError as exc:
            if not _refused_write(exc):
                raise
            return Looked(await self.aget(key, now), None)
        return self._looked(reply, name, token, ttl_ms, now)

    async def aflight_open(self, key: CacheKey) -> bool:
        with self._errors():
            (reply,) = await self._acmd().run((("EXISTS", self._flight_key(key)),))
        return bool(reply)

    async def arelease_flight(self, key: CacheKey, token: str) -> None:
        name = self._flight_key(key)
        if not self._still_held(name, token):
            return
        with self._errors():
            await self._acmd().run((("EVAL", _RELEASE_FLIGHT, 1, name, token),))

    def _took(self, name: str, token: str, ttl_ms: int, reply: Any) -> bool:
        """Record a lock SET NX just took (its reply: OK/True, or None when another holds it)."""
        if not reply:
            return False
        now = time.monotonic()
        held = self._held
        if len(held) >= _MAX_HELD:  # leaders whose model call failed never store: forget
            for other, (_, expires) in list(held.items()):  # locks Redis has expired itself
                if expires <= now:
                    held.pop(other, None)
        held[name] = (token, now + ttl_ms / 1000)
        return True

    def _still_held(self, name: str, token: str) -> bool:
        """Whether the lock ``name`` is still ours to release (and forget it: it is released
        next). False once a store released it, or if another flight of ours took it since."""
        held = self._held.get(name)
        if held is None or held[0] != token:
            return False
        self._held.pop(name, None)
        return True

    def _with_release(self, key: CacheKey, commands: list[Command]) -> tuple[list[Command], Any]:
        """``commands`` of a store, plus the release of the key's fleet lock if this process
        holds it: stored and released in one round trip. Returns what to give back to
        ``_held`` if the store fails (the cache then releases the lock on its own)."""
        name = self._flight_key(key)
        held = self._held.pop(name, None)
        if held is None:
            return commands, None
        return [*commands, ("EVAL", _RELEASE_FLIGHT, 1, name, held[0])], (name, held)

    def _unrelease(self, undo: Any) -> None:
        if undo is not None:
            name, held = undo
            self._held.setdefault(name, held)

    # ------------------------------------------------------------------ sync primitives
    def get(self, key: CacheKey, now: float) -> Found:
        try:
            with self._errors():
                (raw,) = self._cmd().run((("GET", self.entry_key(key)),))
        except TierError as exc:
            return _not_ours_if_wrong_type(exc)
        return _unwrap(raw, now)

    def set(
        self, key: CacheKey, entry: CacheEntry, payload: bytes, now: float, wait: bool = True
    ) -> None:
        commands, undo = self._with_release(key, self._store(key, entry, payload, now).commands())
        try:
            with self._errors():
                if wait:
                    self._cmd().run(commands)
                else:
                    self._cmd().post(commands)
        except BaseException:
            self._unrelease(undo)
            raise

    def post(self, key: CacheKey, entry: CacheEntry, payload: bytes, now: float) -> None:
        """``set`` without waiting for Redis's answer (``Commands.post``): a store the server
        refuses is raised by a later ``post``."""
        self.set(key, entry, payload, now, wait=False)

    def delete(self, key: CacheKey) -> None:
        with self._errors():
            self._cmd().run((("UNLINK", self.entry_key(key)),))

    def clear(self, scope: bytes | None) -> int:
        with self._errors():
            client = self._sync()
            removed = 0
            batch: list[bytes] = []
            for name in client.scan_iter(match=self._pattern(scope), count=CLEAR_BATCH):
                batch.append(name)
                if len(batch) >= CLEAR_BATCH:
                    removed += _unlink_batch(client, batch)
                    batch = []
            if batch:
                removed += _unlink_batch(client, batch)
            return removed

    def invalidate(self, selector: Selector, now: float) -> int:
        if selector.scope_only:
            return self.clear(selector.scope)
        with self._errors():
            plan = invalidate_plan(self.prefix, selector, now, self._aged)
            return run_sync(self._sync(), plan)

    def open_sealed_with(self, opener: Callable[[bytes, bytes], bytes]) -> None:
        """Called by a cache with encryption at rest: ``opener(payload, key digest)`` is its
        sealer's ``open``. Without it, ``invalidate(older_than=...)`` could not read a sealed
        entry's age, and removed none of them."""
        self._opener = opener

    def _aged(self, name: bytes, raw: bytes) -> bytes | None:
        """The encoded entry of a stored value, for its age (``redis_invalidate.PayloadOf``)."""
        payload = _payload(raw)
        if payload is None or self._opener is None:
            return payload
        try:
            return self._opener(payload, bytes.fromhex(name.rsplit(b":", 1)[-1].decode()))
        except (CodecError, ValueError):  # another key's, or not ours: left for ``get``
            return None

    def list_page(self, selector: Selector, now: float, cursor: Any, limit: int) -> ListPage:
        with self._errors():
            plan = list_page_plan(self.prefix, selector, now, cursor, limit, _stored)
            return run_sync(self._sync(), plan)

    def close(self) -> None:
        with self._lock:
            client = self._client
            if self._owns_client:  # a borrowed client stays the user's, and stays usable
                self._client = None
            aclients = list(self._aclients.values())
            self._aclients.clear()
            self._forget_commands()
        if self._owns_client and client is not None:
            for owned in (client, *_sentinels_of(client)):
                owned.close()
        for aclient in aclients:
            # Its connections belong to an event loop: aclose() closes them there. From sync
            # code, drop the pool's sockets without awaiting (no loop may be running).
            _drop_async_pool(aclient)

    # ------------------------------------------------------------------ async primitives
    async def aget(self, key: CacheKey, now: float) -> Found:
        try:
            with self._errors():
                (raw,) = await self._acmd().run((("GET", self.entry_key(key)),))
        except TierError as exc:
            return _not_ours_if_wrong_type(exc)
        return _unwrap(raw, now)

    async def aset(
        self, key: CacheKey, entry: CacheEntry, payload: bytes, now: float, wait: bool = True
    ) -> None:
        commands, undo = self._with_release(key, self._store(key, entry, payload, now).commands())
        try:
            with self._errors():
                if wait:
                    await self._acmd().run(commands)
                else:
                    await self._acmd().post(commands)
        except BaseException:
            self._unrelease(undo)
            raise

    async def apost(self, key: CacheKey, entry: CacheEntry, payload: bytes, now: float) -> None:
        await self.aset(key, entry, payload, now, wait=False)

    async def adelete(self, key: CacheKey) -> None:
        with self._errors():
            await self._acmd().run((("UNLINK", self.entry_key(key)),))

    async def aclear(self, scope: bytes | None) -> int:
        with self._errors():
            client = self._async()
            removed = 0
            batch: list[bytes] = []
            async for name in client.scan_iter(match=self._pattern(scope), count=CLEAR_BATCH):
                batch.append(name)
                if len(batch) >= CLEAR_BATCH:
                    removed += await _aunlink_batch(client, batch)
                    batch = []
            if batch:
                removed += await _aunlink_batch(client, batch)
            return removed

    async def ainvalidate(self, selector: Selector, now: float) -> int:
        if selector.scope_only:
            return await self.aclear(selector.scope)
        with self._errors():
            plan = invalidate_plan(self.prefix, selector, now, self._aged)
            return await run_async(self._async(), plan)

    async def alist_page(self, selector: Selector, now: float, cursor: Any, limit: int) -> ListPage:
        with self._errors():
            plan = list_page_plan(self.prefix, selector, now, cursor, limit, _stored)
            return await run_async(self._async(), plan)

    async def aclose(self) -> None:
        running = asyncio.get_running_loop()
        with self._lock:
            aclients = list(self._aclients.items())
            self._aclients.clear()
            self._forget_commands()
        for loop, aclient in aclients:
            if loop is running:
                for owned in (aclient, *_sentinels_of(aclient)):
                    await owned.aclose()
            else:  # another loop's: see close()
                _drop_async_pool(aclient)
        with self._lock:
            client = self._client
            if self._owns_client:
                self._client = None
        if self._owns_client and client is not None:
            for owned in (client, *_sentinels_of(client)):
                owned.close()

    # ------------------------------------------------------------------ clients
    def _sync(self) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._build(self.target.sync_client)
                client = self._client
        return client

    def _async(self) -> Any:
        """The async client of the running loop: the borrowed one, or ours for this loop."""
        if self._borrowed_async is not None:
            return self._borrowed_async
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            with self._lock:
                client = self._aclients.get(loop)
                if client is None:
                    for old_loop, old in list(self._aclients.items()):
                        if old_loop.is_closed():  # its connections can never be used again
                            del self._aclients[old_loop]
                            _drop_async_pool(old)
                    client = self._aclients[loop] = self._build(self._make_async)
        return client

    def _cmd(self) -> Commands | ClientCommands:
        """The commands of the sync client (rebuilt with it, e.g. after ``close``)."""
        pair = self._pair
        client = self._client
        if pair is None or client is None or pair[0] is not client:
            client = self._sync()
            pair = self._pair = (client, commands_for(client))
        return pair[1]

    def _acmd(self) -> ACommands | AClientCommands:
        """The commands of the running loop's async client."""
        loop = asyncio.get_running_loop()
        last = self._alast
        if last is not None and last[0] is loop:
            return last[1]
        client = self._async()
        cmds = self._acmds.get(loop)
        if cmds is None or cmds.client is not client:
            cmds = self._acmds[loop] = acommands_for(client)
        self._alast = (loop, cmds)
        return cmds

    def _forget_commands(self) -> None:
        """Called with ``_lock`` held by close/aclose: the clients behind them are closed."""
        for cmds in self._acmds.values():
            cmds.close()
        self._acmds.clear()
        self._alast = None
        if self._pair is not None:
            self._pair[1].close()
            self._pair = None

    def _make_async(self) -> Any:
        if self._owns_client:
            return self.target.async_client()
        return _derive_async(self._client)

    def _build(self, make: Any) -> Any:
        try:
            return make()
        except (TypeError, ValueError) as exc:  # an option redis-py does not take
            raise ConfigError(f"redis tier: bad option for {self.target.where}: {exc}") from None

    def _errors(self) -> _ErrorContext:
        return self._guard


class _ErrorContext:
    """Re-raise a Redis or socket failure as a TierError naming the server and the fix.

    Stateless: one per tier, entered around every command."""

    __slots__ = ("where",)

    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, LLMCacheError):
            return
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        hint = ""
        if isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError)):
            hint = "; is the server running and reachable?"
        raise TierError(f"{self.where}: {describe_error(exc)}{hint}") from exc


def _execute_counters(pipe: Any, what: str) -> None:
    """Run a pipeline of counter increments. Redis applies every command it does not refuse
    (a pipeline is not a transaction), so a batch is raised for a resend only when nothing
    answered (the connection failed); commands refused one by one (a field that is not a
    number, an overflow) are logged and dropped: resending the batch counted all the others
    again, every second, for ever."""
    replies = pipe.execute(raise_on_error=False)
    refused = [reply for reply in replies if isinstance(reply, Exception)]
    if refused:
        logger.warning(
            "llmcache: Redis refused %d of %d %s updates (%s); the rest were applied",
            len(refused),
            len(replies),
            what,
            describe_error(refused[0]),
        )


def _refused_write(exc: TierError) -> bool:
    """Whether the server answered but refused to write: a replica (READONLY), out of memory
    (OOM), or scripts disabled. A lookup then still reads; connection faults are raised."""
    from redis.exceptions import ResponseError

    return isinstance(exc.__cause__, ResponseError)  # LOADING is a connection error: raised


def _not_ours_if_wrong_type(exc: TierError) -> bytes:
    """A lookup that found a hash, list or set where an entry lives (another writer, a hand
    edit: WRONGTYPE) reads ``NOT_OURS`` (then deleted: UNLINK takes any type); anything else
    is the tier's fault, raised. Before, it failed the tier, whose breaker then skipped it
    for every caller, and the key stayed."""
    from redis.exceptions import ResponseError

    cause = exc.__cause__
    if isinstance(cause, ResponseError) and str(cause).startswith("WRONGTYPE"):
        return NOT_OURS
    raise exc


def _unwrap(raw: bytes | None, now: float) -> Found:
    """The payload of a stored value, or None once it expired by the cache's clock.

    A value without our header is returned whole: the cache fails to decode it, counts a miss
    and deletes it.
    """
    if raw is None:
        return None
    if len(raw) < _HEADER.size or raw[:1] != _VERSION:
        return raw
    _, expires = _HEADER.unpack_from(raw)
    if now >= expires:
        return None
    return raw[_HEADER.size :]


def _stored(raw: bytes | None, now: float) -> tuple[bytes, float | None] | None:
    """A listed value's payload and expiry (None: never), or None once expired or gone. A
    value without our header is listed whole: the cache fails to decode it."""
    if raw is None:
        return None
    if len(raw) < _HEADER.size or raw[:1] != _VERSION:
        return raw, None
    _, expires = _HEADER.unpack_from(raw)
    if now >= expires:
        return None
    return raw[_HEADER.size :], None if expires == _NEVER else expires


def _payload(raw: bytes) -> bytes | None:
    """The encoded entry in a stored value whatever its expiry; None if it lacks our header."""
    if len(raw) < _HEADER.size or raw[:1] != _VERSION:
        return None
    return raw[_HEADER.size :]


def _is_entry(name: bytes) -> bool:
    return b"}:e:" in name


def _unlink_batch(client: Any, names: list[bytes]) -> int:
    """UNLINK ``names`` one per command in one pipeline (a Cluster pipeline routes each to its
    slot); returns how many entry keys were removed. ``execute_command``: a Cluster client's
    ``unlink`` is its multi-key form (a coroutine even inside an async pipeline)."""
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.execute_command("UNLINK", name)
    results = pipe.execute()
    return sum(int(r) for name, r in zip(names, results, strict=True) if _is_entry(name))


async def _aunlink_batch(client: Any, names: list[bytes]) -> int:
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.execute_command("UNLINK", name)
    results = await pipe.execute()
    return sum(int(r) for name, r in zip(names, results, strict=True) if _is_entry(name))


def _target_for_client(client: Any, prefix: str, ttl: float | None) -> RedisTarget:
    """Describe a passed-in client as a target (its kind and address for messages)."""
    from redis.asyncio import Redis as AsyncRedis
    from redis.asyncio.cluster import RedisCluster as AsyncCluster
    from redis.cluster import RedisCluster

    if isinstance(client, (AsyncRedis, AsyncCluster)):
        raise ConfigError(
            "RedisTier(client=...) takes a sync redis-py client; pass a redis.asyncio client "
            "as async_client= next to it"
        )
    kind: Kind
    if isinstance(client, RedisCluster):
        kind = "redis-cluster"
        node: Any = client.get_default_node()  # type: ignore[no-untyped-call]
        where = f"{kind} {node.host}:{node.port}" if node is not None else kind
        kwargs = client.nodes_manager.connection_kwargs
    else:
        kwargs = client.connection_pool.connection_kwargs
        service = getattr(client.connection_pool, "service_name", None)
        if service:
            kind, where = "redis-sentinel", f"redis-sentinel {service}"
        elif "path" in kwargs:
            kind, where = "redis", f"redis unix:{kwargs['path']}"
        else:
            kind = "redis"
            where = f"redis {kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
    if kwargs.get("decode_responses"):
        raise ConfigError(
            "RedisTier(client=...) needs a client with decode_responses=False: it stores bytes"
        )
    return RedisTarget(
        kind=kind, url="", prefix=check_prefix(prefix), ttl=check_tier_ttl(ttl), where=where
    )


def _derive_async(client: Any) -> Any:
    """A redis.asyncio client with the connection settings of a sync ``client``.

    Plain clients (TCP, TLS, unix socket) are rebuilt from their pool's connection kwargs;
    a Cluster from its startup nodes; a Sentinel-managed client has no portable settings, so
    the caller must pass ``async_client=`` as well.
    """
    import redis.asyncio as aioredis
    from redis.asyncio import connection as aconn
    from redis.cluster import RedisCluster

    if isinstance(client, RedisCluster):
        from redis.asyncio.cluster import ClusterNode
        from redis.asyncio.cluster import RedisCluster as AsyncCluster

        kwargs = dict(client.nodes_manager.connection_kwargs)
        nodes = [ClusterNode(n.host, n.port) for n in client.nodes_manager.startup_nodes.values()]
        allowed = {"username", "password", "socket_timeout", "socket_connect_timeout", "db"}
        return AsyncCluster(
            startup_nodes=nodes, **{k: v for k, v in kwargs.items() if k in allowed}
        )
    pool = client.connection_pool
    classes = {
        "Connection": aconn.Connection,
        "SSLConnection": aconn.SSLConnection,
        "UnixDomainSocketConnection": aconn.UnixDomainSocketConnection,
    }
    # The async twin of the pool's connection class (or of the class it derives from).
    connection_class = next(
        (classes[c.__name__] for c in pool.connection_class.__mro__ if c.__name__ in classes),
        aconn.Connection,
    )
    kwargs = {
        k: v
        for k, v in pool.connection_kwargs.items()
        if k not in ("retry", "cache", "maint_notifications_config", "event_dispatcher")
    }
    async_pool = aioredis.ConnectionPool(connection_class=connection_class, **kwargs)
    return aioredis.Redis(connection_pool=async_pool)


def _is_sentinel_managed(client: Any) -> bool:
    return bool(getattr(getattr(client, "connection_pool", None), "service_name", None))


def _sentinels_of(client: Any) -> list[Any]:
    """The sentinel clients behind a Sentinel-managed client (created with it, closed with it)."""
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    return list(getattr(manager, "sentinels", ()))


def _drop_async_pool(aclient: Any) -> None:
    """Forget an async client whose event loop is not running here: close its sockets without
    awaiting (the transports belong to that loop; closing them there is its job)."""
    for sentinel in _sentinels_of(aclient):
        _drop_async_pool(sentinel)
    pool = getattr(aclient, "connection_pool", None)
    for conn in list(getattr(pool, "_available_connections", ())) + list(
        getattr(pool, "_in_use_connections", ())
    ):
        writer = getattr(conn, "_writer", None)
        if writer is not None:
            try:
                writer.close()
            except Exception as exc:  # a loop already closed: nothing left to release
                logger.debug("llmcache: dropping a redis connection: %s", exc)
