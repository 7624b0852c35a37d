"""Keeping hot entries fresh: popularity extension and early recomputation. Pure logic.

**Popularity extension** (``CachePolicy(popularity=Popularity(max_ttl=...))``): this process
counts the hits of each entry; at every ``every``-th hit, an entry that has used up more than
half of its lifetime (``expires_at - created_at``) gets a new expiry of ``now + lifetime``, so
its lifetime grows, never past ``created_at + max_ttl``. The new expiry is written back to
the tier that served the hit and the tiers above it through their ordinary ``set`` (an
upsert): at most one write per ``every`` hits, and none while an entry is young. Not below:
a lower tier may hold a newer answer by now, or none after an invalidation, and this
process's copy would replace it for every process. Counts are per process and bounded
(``HitCounter``).

**Early recomputation** (``CachePolicy(early_recompute=0.1)``, XFetch): a hit on an entry
with an expiry is turned into a miss with probability ``exp(-remaining / (f * lifetime))``
(``f`` = ``early_recompute``): negligible while the entry is young, about 37% when
``remaining`` equals ``f * lifetime``, 1 at expiry. The cache lets only the single-flight
leader of the key take that miss (across processes with a Redis tier); every other caller
keeps being served the still-valid entry, so a hot entry is refreshed once, before it expires,
and nobody waits.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from llmcache.entry import CacheEntry
from llmcache.errors import ConfigError
from llmcache.fork_safety import renew_after_fork

#: Entries whose hits one process counts at once (least recently hit forgotten first).
MAX_COUNTED_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class Popularity:
    """Extend a popular entry's TTL: every ``every`` hits (see the module docstring), an
    entry past half its lifetime lives on for another lifetime, up to ``max_ttl`` seconds
    after it was created."""

    max_ttl: float
    every: int = 10

    def __post_init__(self) -> None:
        if isinstance(self.max_ttl, bool) or not isinstance(self.max_ttl, (int, float)):
            raise ConfigError(f"Popularity(max_ttl=...) must be seconds, got {self.max_ttl!r}")
        if not self.max_ttl > 0:
            raise ConfigError(f"Popularity(max_ttl=...) must be > 0 seconds, got {self.max_ttl}")
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ConfigError(f"Popularity(every=...) must be an integer >= 1, got {self.every!r}")


def extended_expiry(entry: CacheEntry, now: float, rule: Popularity) -> float | None:
    """The new expiry of a popular entry, or None when it should be left alone (no expiry,
    still in the first half of its lifetime, or already at the bound)."""
    expires = entry.expires_at
    if expires is None or now >= expires:
        return None
    lifetime = expires - entry.created_at
    if lifetime <= 0 or expires - now > lifetime / 2:
        return None
    renewed = min(now + lifetime, entry.created_at + rule.max_ttl)
    return renewed if renewed > expires else None


class HitCounter:
    """Hits per entry digest in this process, for the most recently hit entries. Thread-safe."""

    def __init__(self, capacity: int = MAX_COUNTED_ENTRIES) -> None:
        self._capacity = capacity
        self._counts: OrderedDict[bytes, int] = OrderedDict()
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")

    def add(self, digest: bytes) -> int:
        """Count one hit; returns the entry's count so far."""
        with self._lock:
            count = self._counts.pop(digest, 0) + 1
            self._counts[digest] = count
            if len(self._counts) > self._capacity:
                self._counts.popitem(last=False)
            return count

    def forget(self, digest: bytes) -> None:
        with self._lock:
            self._counts.pop(digest, None)


def recompute_early(
    entry: CacheEntry, now: float, fraction: float, rand: Callable[[], float]
) -> bool:
    """XFetch's draw: True if this hit should be recomputed before the entry expires."""
    expires = entry.expires_at
    if expires is None or fraction <= 0:
        return False
    lifetime = expires - entry.created_at
    if lifetime <= 0:
        return False
    # -ln(U) for U uniform in (0, 1] is an exponential draw; random() may return 0.0.
    draw = -math.log(max(rand(), 1e-300))
    return now + fraction * lifetime * draw >= expires
