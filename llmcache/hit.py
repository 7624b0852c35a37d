"""What a lookup serves: the entry, and where and how it was found."""

from __future__ import annotations

from dataclasses import dataclass

from llmcache.entry import CacheEntry
from llmcache.keys import CacheKey


@dataclass(slots=True)
class CacheHit:
    """A served entry and where it came from."""

    entry: CacheEntry
    tier: str
    match: str  # "exact" or "semantic"
    key: CacheKey
    similarity: float | None = None
