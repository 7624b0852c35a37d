"""What a listing of the cache yields (``Cache.entries``) and what an import stores
(``Cache.put_entries``): an entry together with its key, as the tiers hold it."""

from __future__ import annotations

from typing import NamedTuple

from llmcache.entry import CacheEntry
from llmcache.keys import CacheKey


class StoredEntry(NamedTuple):
    """One listed entry. ``entry`` is None when this process cannot read it: ``unreadable``
    says why (sealed under encryption keys it lacks, or a value that does not decode).
    ``size`` is the bytes the tier stores; ``expires_at`` when that tier drops it.
    ``semantic`` is the (partition, embedded text) the semantic index holds for it, when
    asked for (an export) and there is one."""

    key: CacheKey
    entry: CacheEntry | None
    size: int
    expires_at: float | None
    tier: str
    unreadable: str | None = None
    semantic: tuple[bytes, str] | None = None


class PutOutcome(NamedTuple):
    """How ``Cache.put_entries`` ended: entries at least one tier took, and the tiers (or
    the semantic tier) that failed."""

    stored: int
    failed: tuple[str, ...]
