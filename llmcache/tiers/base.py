"""The tier protocol: the few primitives a storage backend implements.

The cache does everything else once (keys, policy, TTL resolution, codec, backfill, fail-open,
stats). A tier stores and returns; it may raise any exception on I/O failure, and the cache
turns that into a skipped tier, never into an error for the caller.

``get`` returns a ``CacheEntry`` (tiers that keep Python objects, like memory) or the stored
``bytes`` (tiers that keep the encoded form; the cache decodes them and deletes undecodable
ones), or None. ``now`` is wall-clock seconds from the cache's injected clock; tiers never read
the clock themselves.

``clear`` and ``invalidate`` return how many entries they removed: expired entries the tier
still held count, index records (tag rows, Redis index sets) never do. ``invalidate`` removes
the entries a ``Selector`` matches (``selector.py``). ``list_page`` reads one bounded page of
the entries a Selector matches (``listing.py``: export, import and ``llmcache inspect``).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol, runtime_checkable

from llmcache.entry import CacheEntry
from llmcache.keys import CacheKey
from llmcache.tiers.listing import ListPage
from llmcache.tiers.selector import Selector

Found = CacheEntry | bytes | None

#: What a tier returns for a stored value another writer left under an entry's key (a SQLite
#: row holding text or a number, a Redis hash): bytes no codec takes, so the cache counts it
#: as undecodable, deletes it and answers a miss.
NOT_OURS = b""


@runtime_checkable
class Tier(Protocol):
    """A storage backend. It may also set ``in_process = True`` when its primitives do no I/O
    and cannot fail (memory): as the top tier it is then probed directly, off the walk. A
    tier on a server may also have ``post`` and ``apost`` (``set``'s arguments): a store
    sent without waiting for the server's answer, a refusal raised by a later ``post``
    (``Cache.set(wait=False)``)."""

    name: str

    def get(self, key: CacheKey, now: float) -> Found: ...
    def set(self, key: CacheKey, entry: CacheEntry, payload: bytes, now: float) -> None: ...
    def delete(self, key: CacheKey) -> None: ...
    def clear(self, scope: bytes | None) -> int: ...
    def invalidate(self, selector: Selector, now: float) -> int: ...
    def list_page(self, selector: Selector, now: float, cursor: Any, limit: int) -> ListPage: ...
    def close(self) -> None: ...

    async def aget(self, key: CacheKey, now: float) -> Found: ...
    async def aset(self, key: CacheKey, entry: CacheEntry, payload: bytes, now: float) -> None: ...
    async def adelete(self, key: CacheKey) -> None: ...
    async def aclear(self, scope: bytes | None) -> int: ...
    async def ainvalidate(self, selector: Selector, now: float) -> int: ...
    async def alist_page(
        self, selector: Selector, now: float, cursor: Any, limit: int
    ) -> ListPage: ...
    async def aclose(self) -> None: ...


def effective_expiry(
    entry_expires: float | None, now: float, default_ttl: float | None
) -> float | None:
    """The earlier of the entry's own expiry and the tier's default TTL from ``now``."""
    tier_expires = None if default_ttl is None else now + default_ttl
    if entry_expires is None:
        return tier_expires
    if tier_expires is None:
        return entry_expires
    return min(entry_expires, tier_expires)


class InProcessAsync:
    """Async primitives for tiers whose sync primitives never block (pure in-memory work)."""

    def get(self, key: CacheKey, now: float) -> Found:
        raise NotImplementedError

    def set(self, key: CacheKey, entry: CacheEntry, payload: bytes, now: float) -> None:
        raise NotImplementedError

    def delete(self, key: CacheKey) -> None:
        raise NotImplementedError

    def clear(self, scope: bytes | None) -> int:
        raise NotImplementedError

    def invalidate(self, selector: Selector, now: float) -> int:
        raise NotImplementedError

    def list_page(self, selector: Selector, now: float, cursor: Any, limit: int) -> ListPage:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    async def aget(self, key: CacheKey, now: float) -> Found:
        return self.get(key, now)

    async def aset(self, key: CacheKey, entry: CacheEntry, payload: bytes, now: float) -> None:
        self.set(key, entry, payload, now)

    async def adelete(self, key: CacheKey) -> None:
        self.delete(key)

    async def aclear(self, scope: bytes | None) -> int:
        return self.clear(scope)

    async def ainvalidate(self, selector: Selector, now: float) -> int:
        return self.invalidate(selector, now)

    async def alist_page(self, selector: Selector, now: float, cursor: Any, limit: int) -> ListPage:
        return self.list_page(selector, now, cursor, limit)

    async def aclose(self) -> None:
        self.close()


class ThreadedAsync(InProcessAsync):
    """Async primitives for tiers doing blocking in-process I/O (an SQLite file): a thread.

    ``asyncio.to_thread`` copies the caller's context, so the ambient scope follows.
    """

    async def aget(self, key: CacheKey, now: float) -> Found:
        return await asyncio.to_thread(self.get, key, now)

    async def aset(self, key: CacheKey, entry: CacheEntry, payload: bytes, now: float) -> None:
        await asyncio.to_thread(self.set, key, entry, payload, now)

    async def adelete(self, key: CacheKey) -> None:
        await asyncio.to_thread(self.delete, key)

    async def aclear(self, scope: bytes | None) -> int:
        return await asyncio.to_thread(self.clear, scope)

    async def ainvalidate(self, selector: Selector, now: float) -> int:
        return await asyncio.to_thread(self.invalidate, selector, now)

    async def alist_page(self, selector: Selector, now: float, cursor: Any, limit: int) -> ListPage:
        return await asyncio.to_thread(self.list_page, selector, now, cursor, limit)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)
