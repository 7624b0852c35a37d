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
            self.early_refreshes = 0
            self.ttl_extensions = 0
            self.hits_by_tier: Counter[str] = Counter()
            self.hits_by_match: Counter[str] = Counter()
            self.errors_by_tier: Counter[str] = Counter()
            self.decode_errors = 0
            self.store_rejected: Counter[str] = Counter()
            self.input_tokens_saved = 0
            self.output_tokens_saved = 0
            self.cost_saved_usd = 0.0
            self._taken: dict[str, float] = {}  # flat counters at the last take_deltas()

    def hit(self, tier: str, match: str, usage: Usage, cost_usd: float = 0.0) -> None:
        with self._lock:
            self.hits += 1
            self.hits_by_tier[tier] += 1
            self.hits_by_match[match] += 1
            self.input_tokens_saved += usage.input_tokens
            self.output_tokens_saved += usage.output_tokens
            self.cost_saved_usd += cost_usd

    def refused(self, tier: str, match: str, usage: Usage) -> None:
        """A counted hit that the caller refused (an adapter's freshness rule, e.g. LiteLLM's
        ``s-maxage``): for the caller it was a miss, so it is counted as one instead."""
        with self._lock:
            self.hits -= 1
            self.hits_by_tier[tier] -= 1
            self.hits_by_match[match] -= 1
            for counter, name in ((self.hits_by_tier, tier), (self.hits_by_match, match)):
                if counter[name] <= 0:
                    del counter[name]
            self.input_tokens_saved -= usage.input_tokens
            self.output_tokens_saved -= usage.output_tokens
            self.misses += 1

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

    def refreshed_early(self) -> None:
        """A hit turned into a miss so that its caller recomputes the entry before it expires."""
        with self._lock:
            self.early_refreshes += 1

    def extended(self) -> None:
        """A popular entry's expiry was extended in the tiers."""
        with self._lock:
            self.ttl_extensions += 1

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
                "early_refreshes": self.early_refreshes,
                "ttl_extensions": self.ttl_extensions,
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

    # ------------------------------------------------------------------ fleet-wide counters
    def _flat(self) -> dict[str, float]:
        flat: dict[str, float] = {
            "hits": self.hits,
            "misses": self.misses,
            "stores": self.stores,
            "skipped": self.skipped,
            "early_refreshes": self.early_refreshes,
            "ttl_extensions": self.ttl_extensions,
            "decode_errors": self.decode_errors,
            "input_tokens_saved": self.input_tokens_saved,
            "output_tokens_saved": self.output_tokens_saved,
            "cost_saved_usd": self.cost_saved_usd,
        }
        for group in _GROUPS:
            for name, count in getattr(self, group).items():
                flat[f"{group}:{name}"] = count
        return flat

    def take_deltas(self) -> dict[str, float]:
        """What the counters gained since the last call, flat (``hits_by_tier:redis``...):
        what one process adds to the fleet-wide totals."""
        with self._lock:
            flat = self._flat()
            taken, self._taken = self._taken, flat
        return {k: v - taken.get(k, 0) for k, v in flat.items() if v != taken.get(k, 0)}

    def untake(self, deltas: dict[str, float]) -> None:
        """Deltas that could not be published: hand them to the next ``take_deltas``."""
        with self._lock:
            for name, amount in deltas.items():
                self._taken[name] = self._taken.get(name, 0) - amount


_GROUPS = ("hits_by_tier", "hits_by_match", "errors_by_tier", "store_rejected")


def fleet_view(flat: dict[str, float]) -> dict[str, Any]:
    """Fleet-wide totals (as ``take_deltas`` flattens them) in ``Cache.stats()``'s shape."""
    view: dict[str, Any] = {group: {} for group in _GROUPS}
    for name, value in flat.items():
        group, _, member = name.partition(":")
        if member and group in view:
            view[group][member] = int(value)
        elif not member:
            view[name] = value if name == "cost_saved_usd" else int(value)
    counters = ("hits", "misses", "stores", "skipped", "decode_errors")
    for name in (*counters, "early_refreshes", "ttl_extensions"):
        view.setdefault(name, 0)
    view.setdefault("cost_saved_usd", 0.0)
    view["input_tokens_saved"] = int(view.get("input_tokens_saved", 0))
    view["output_tokens_saved"] = int(view.get("output_tokens_saved", 0))
    view["tokens_saved"] = view["input_tokens_saved"] + view["output_tokens_saved"]
    lookups = view["hits"] + view["misses"]
    view["hit_rate"] = view["hits"] / lookups if lookups else 0.0
    return view
