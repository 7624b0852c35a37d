"""``memory://?maxsize=N&ttl=S&max_bytes=B``: a thread-safe LRU in this process.

Holds decoded CacheEntry objects (no codec on the hot path). ``maxsize`` bounds the number of
entries, ``max_bytes`` (optional) the sum of their encoded sizes; the least recently used go
first. ``ttl`` is the tier's default for entries stored with ``ttl=None``.
"""

from __future__ import annotations

import heapq
import threading
from collections import OrderedDict
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from llmcache.entry import CacheEntry
from llmcache.errors import ConfigError
from llmcache.fork_safety import renew_after_fork
from llmcache.keys import CacheKey
from llmcache.policy import check_ttl
from llmcache.redact import redact_url
from llmcache.tiers.base import Found, InProcessAsync, effective_expiry
from llmcache.tiers.listing import Listed, ListPage
from llmcache.tiers.options import query_options, ttl_option, whole_number_option
from llmcache.tiers.selector import Selector, selects

DEFAULT_MAXSIZE = 10_000


class _Slot(NamedTuple):
    entry: CacheEntry
    expires_at: float | None
    size: int
    key: CacheKey  # its scope, model and namespace digests: what clear/invalidate select by


class MemoryTier(InProcessAsync):
    #: No I/O and no failure modes: the cache probes it directly, outside the tier walk.
    in_process = True

    def __init__(
        self,
        maxsize: int = DEFAULT_MAXSIZE,
        ttl: float | None = None,
        max_bytes: int | None = None,
        name: str = "memory",
    ) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize <= 0:
            raise ConfigError(f"memory tier: maxsize must be a positive integer, got {maxsize!r}")
        if max_bytes is not None and (
            isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0
        ):
            raise ConfigError(
                f"memory tier: max_bytes must be a positive integer or None, got {max_bytes!r}"
            )
        if ttl == 0:
            raise ConfigError("memory tier: ttl=0 would store nothing; omit ttl for no expiry")
        self.name = name
        self.maxsize = maxsize
        self.default_ttl = check_ttl(ttl)
        self.max_bytes = max_bytes
        self._data: OrderedDict[bytes, _Slot] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")

    @classmethod
    def from_url(cls, url: str) -> MemoryTier:
        shown = redact_url(url)
        parts = urlsplit(url)
        if parts.netloc or parts.path not in ("", "/"):  # memory://host names nothing here
            raise ConfigError(
                f"memory tier: {shown!r} has a host or path; the memory tier takes only "
                "options, e.g. memory://?maxsize=10000"
            )
        query = query_options("memory tier", parts.query, shown)
        unknown = set(query) - {"maxsize", "ttl", "max_bytes"}
        if unknown:
            raise ConfigError(f"memory tier: unknown option(s) {sorted(unknown)} in {shown!r}")
        maxsize = whole_number_option("memory", "maxsize", query.get("maxsize"), shown)
        return cls(
            maxsize=DEFAULT_MAXSIZE if maxsize is None else maxsize,
            ttl=ttl_option("memory", query.get("ttl"), shown),
            max_bytes=whole_number_option("memory", "max_bytes", query.get("max_bytes"), shown),
        )

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: CacheKey, now: float) -> Found:
        with self._lock:
            slot = self._data.get(key.digest)
            if slot is None:
                return None
            if slot.expires_at is not None and now >= slot.expires_at:
                self._remove(key.digest)
                return None
            self._data.move_to_end(key.digest)
            return slot.entry

    def set(self, key: CacheKey, entry: CacheEntry, payload: bytes, now: float) -> None:
        expires = effective_expiry(entry.expires_at, now, self.default_ttl)
        size = len(payload)
        with self._lock:
            # The key's older entry goes even when this one is not kept: else it would be
            # served in place of the answer stored after it.
            self._remove(key.digest)
            if self.max_bytes is not None and size > self.max_bytes:
                return  # could never fit; storing it would only flush everything else
            self._data[key.digest] = _Slot(entry, expires, size, key)
            self._bytes += size
            while len(self._data) > self.maxsize or (
                self.max_bytes is not None and self._bytes > self.max_bytes
            ):
                _, evicted = self._data.popitem(last=False)
                self._bytes -= evicted.size

    def _remove(self, digest: bytes) -> None:
        slot = self._data.pop(digest, None)
        if slot is not None:
            self._bytes -= slot.size

    def delete(self, key: CacheKey) -> None:
        with self._lock:
            self._remove(key.digest)

    def clear(self, scope: bytes | None) -> int:
        with self._lock:
            if scope is None:
                count = len(self._data)
                self._data.clear()
                self._bytes = 0
                return count
            doomed = [d for d, slot in self._data.items() if slot.key.scope == scope]
            for digest in doomed:
                self._remove(digest)
            return len(doomed)

    def invalidate(self, selector: Selector, now: float) -> int:
        """Remove the entries ``selector`` matches (expired ones too, like ``clear``)."""
        cutoff = selector.cutoff(now)
        with self._lock:
            doomed = [
                digest
                for digest, slot in self._data.items()
                if selects(selector, slot.key, slot.entry, cutoff)
            ]
            for digest in doomed:
                self._remove(digest)
            return len(doomed)

    def list_page(self, selector: Selector, now: float, cursor: Any, limit: int) -> ListPage:
        """The ``limit`` smallest digests after ``cursor`` (the last digest of the page
        before) that ``selector`` matches: a stable order while entries come and go."""
        after: bytes = cursor or b""
        with self._lock:
            page = heapq.nsmallest(
                limit,
                (
                    (digest, slot)
                    for digest, slot in self._data.items()
                    if digest > after
                    and (slot.expires_at is None or now < slot.expires_at)
                    and selects(selector, slot.key, slot.entry, None)
                ),
                key=lambda pair: pair[0],
            )
        items = [Listed(slot.key, slot.entry, slot.expires_at) for _, slot in page]
        return ListPage(items, page[-1][0] if len(page) == limit else None)

    def close(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0
