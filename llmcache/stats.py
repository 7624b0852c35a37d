"""Thread-safe counters behind ``Cache.stats()``."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from llmcache.entry import Usage


class Stats:
    """Counts hits, misses, errors and tokens saved. ``snapshot()`` is what users see."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.hits = 0
            self.misses = 0
            self.stores = 0
            self.skipped = 0
            self.hits_by_tier: Counter[str] = Counter()
            self.hits_by_match: Counter[str] = Counter()
            self.errors_by_tier: Counter[str] = Counter()
            self.decode_errors = 0
            self.store_rejected: Counter[str] = Counter()
            self.input_tokens_saved = 0
            self.output_tokens_saved = 0
            self.cost_saved_usd = 0.0

    def hit(self, tier: str, match: str, usage: Usage, cost_usd: float = 0.0) -> None:
        with self._lock:
            self.hits += 1
            self.hits_by_tier[tier] += 1
            self.hits_by_match[match] += 1
            self.input_tokens_saved += usage.input_tokens
            self.output_tokens_saved += usage.output_tokens
            self.cost_saved_usd += cost_usd

    def saved(self, cost_usd: float) -> None:
        """Dollars a hit saved, priced by an adapter after the hit (it knows the price table)."""
        with self._lock:
            self.cost_saved_usd += cost_usd

    def miss(self) -> None:
        with self._lock:
            self.misses += 1

    def stored(self) -> None:
        with self._lock:
            self.stores += 1

    def skip(self) -> None:
        with self._lock:
            self.skipped += 1

    def rejected(self, reason: str) -> None:
        with self._lock:
            self.store_rejected[reason] += 1

    def error(self, tier: str) -> None:
        with self._lock:
            self.errors_by_tier[tier] += 1

    def decode_error(self) -> None:
        with self._lock:
            self.decode_errors += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            lookups = self.hits + self.misses
            return {
                "hits": self.hits,
                "misses": self.misses,
                "hit_rate": self.hits / lookups if lookups else 0.0,
                "stores": self.stores,
                "skipped": self.skipped,
                "hits_by_tier": dict(self.hits_by_tier),
                "hits_by_match": dict(self.hits_by_match),
                "errors_by_tier": dict(self.errors_by_tier),
                "decode_errors": self.decode_errors,
                "store_rejected": dict(self.store_rejected),
                "input_tokens_saved": self.input_tokens_saved,
                "output_tokens_saved": self.output_tokens_saved,
                "tokens_saved": self.input_tokens_saved + self.output_tokens_saved,
                "cost_saved_usd": self.cost_saved_usd,
            }
