"""Thread-safe counters behind ``Cache.stats()``."""

from __future__ import annotations

import math
import threading
from collections import Counter
from typing import Any

from llmcache.clock import Clock, wall_clock
from llmcache.entry import Usage
from llmcache.fork_safety import renew_after_fork
from llmcache.savings import (
    COUNTERS,
    HOUR,
    MAX_MODELS,
    OTHER_MODEL,
    Buckets,
    Row,
    add_hit,
    add_provider_cache,
    add_rows,
    hour_of,
    new_row,
    prune,
)


class Stats:
    """Counts hits, misses, errors and tokens saved. ``snapshot()`` is what users see.

    Per model it also counts what hits saved (``by_model``), and the same per (hour, model)
    in ``buckets`` (``llmcache.savings``): kept here, bounded, when no tier keeps the history,
    else taken by the publisher (``take_buckets``) and sent to that tier.
    """

    def __init__(self, clock: Clock = wall_clock) -> None:
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")
        self._clock = clock
        self.buckets: Buckets = {}
        self._cut_hour: int | None = None  # the hour gains since the last cut belong to
        self._hour_ends = -math.inf  # when that hour ends (the next change cuts)
        self.reset()

    def reset(self) -> None:
        with self._lock:
            if getattr(self, "by_model", None):  # gains before a reset stay in the history
                self._cut(self._clock())
            # Gains not yet published to the fleet counters are still owed to them: the next
            # ``take_deltas`` adds them to what the reset counters gain.
            unsent = self._unsent() if hasattr(self, "_taken") else {}
            self.misses = 0
            self.stores = 0
            self.skipped = 0
            self.early_refreshes = 0
            self.ttl_extensions = 0
            # Hits by (tier, match): one counter per hit, not one per grouping (hot path);
            # ``hits_by_tier`` and ``hits_by_match`` are read from it.
            self._hits_by: dict[tuple[str, str], int] = {}
            self.errors_by_tier: Counter[str] = Counter()
            self.decode_errors = 0
            self.store_rejected: Counter[str] = Counter()
            self.cost_saved_usd = 0.0
            self.by_model: dict[str, Row] = {}
            self._cut_at: dict[str, Row] = {}  # by_model at the last cut
            # Flat counters at the last take_deltas(), less what was gained and not sent.
            self._taken: dict[str, float] = {name: -gain for name, gain in unsent.items()}

    @property
    def hits_by_tier(self) -> Counter[str]:
        return self._hits_summed_by(0)

    @property
    def hits_by_match(self) -> Counter[str]:
        return self._hits_summed_by(1)

    def _hits_summed_by(self, part: int) -> Counter[str]:
        """Hits summed by one part of their (tier, match) key: 0 the tier, 1 the match."""
        counts: Counter[str] = Counter()
        for key, count in self._hits_by.items():
            counts[key[part]] += count
        return counts

    # Hits and tokens saved are the sums of the per-model rows: a hit updates its row only.
    @property
    def hits(self) -> int:
        return sum(row[0] for row in self.by_model.values())

    @property
    def input_tokens_saved(self) -> int:
        return sum(row[1] for row in self.by_model.values())

    @property
    def output_tokens_saved(self) -> int:
        return sum(row[2] for row in self.by_model.values())

    def _row(self, model: str) -> Row:
        """The model's row in ``by_model`` (lock held)."""
        row = self.by_model.get(model)
        if row is None:
            if len(self.by_model) >= MAX_MODELS:
                model = OTHER_MODEL
            row = self.by_model.setdefault(model, new_row())
        return row

    def _cut(self, now: float) -> None:
        """Move what ``by_model`` gained since the last cut into the bucket of the hour it was
        gained in (lock held). A hit changes only its ``by_model`` row; a cut happens on the
        first change of a new hour and when the buckets are read or taken, so every gain
        belongs to the hour of the last cut."""
        hour = self._cut_hour
        if hour is not None:
            for model, row in self.by_model.items():
                before = self._cut_at.get(model)
                gained = (
                    row if before is None else [a - b for a, b in zip(row, before, strict=True)]
                )
                if any(gained):
                    bucket = self.buckets.setdefault((hour, model), new_row())
                    for i, value in enumerate(gained):
                        bucket[i] += value
        self._cut_at = {model: row.copy() for model, row in self.by_model.items()}
        self._cut_hour = hour_of(now)
        self._hour_ends = (self._cut_hour + 1) * HOUR
        prune(self.buckets, self._cut_hour)

    def hit(
        self, tier: str, match: str, model: str, usage: Usage, now: float | None = None
    ) -> None:
        """Count a hit; ``now``: the caller's reading of the same clock, when it has one."""
        if now is None:
            now = self._clock()
        tokens_in, tokens_out, cache_read, cache_creation = usage
        with self._lock:
            if now >= self._hour_ends:
                self._cut(now)
            hits_by = self._hits_by
            hits_by[tier, match] = hits_by.get((tier, match), 0) + 1
            row = self.by_model.get(model) or self._row(model)
            row[0] += 1  # written out, not add_hit: this runs on every hit
            row[1] += tokens_in
            row[2] += tokens_out
            row[3] += cache_read
            row[4] += cache_creation

    def provider_cached(self, model: str, usage: Usage) -> None:
        """A model call (a miss) whose usage reports prompt tokens the provider had cached."""
        now = self._clock()
        with self._lock:
            if now >= self._hour_ends:
                self._cut(now)
            add_provider_cache(self._row(model), usage)

    def refused(self, tier: str, match: str, model: str, usage: Usage) -> None:
        """A counted hit that the caller refused (an adapter's freshness rule, e.g. LiteLLM's
        ``s-maxage``): for the caller it was a miss, so it is counted as one instead."""
        with self._lock:
            left = self._hits_by.get((tier, match), 0) - 1
            if left > 0:
                self._hits_by[tier, match] = left
            else:
                self._hits_by.pop((tier, match), None)
            add_hit(self._row(model), usage, -1)
            self.misses += 1

    def saved(self, cost_usd: float) -> None:
        """Dollars an adapter priced itself (added to the dollars ``by_model`` is worth)."""
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
                "by_model": {model: row.copy() for model, row in self.by_model.items()},
            }

    # ------------------------------------------------------------------ savings over time
    def take_buckets(self) -> Buckets:
        """The (hour, model) counters gained since the last call (for a tier keeping them)."""
        with self._lock:
            self._cut(self._clock())
            taken, self.buckets = self.buckets, {}
        return taken

    def untake_buckets(self, buckets: Buckets) -> None:
        """Buckets that could not be published: hand them to the next ``take_buckets``."""
        with self._lock:
            add_rows(self.buckets, buckets)

    def history(self) -> Buckets:
        """A copy of the buckets kept in process."""
        with self._lock:
            self._cut(self._clock())
            return {key: row.copy() for key, row in self.buckets.items()}

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
        for model, row in self.by_model.items():
            for group, count in zip(_MODEL_GROUPS, row, strict=True):
                flat[f"{group}:{model}"] = count
        return flat

    def _unsent(self, flat: dict[str, float] | None = None) -> dict[str, float]:
        """What the flat counters gained since the last ``take_deltas`` (lock held)."""
        flat = self._flat() if flat is None else flat
        taken = self._taken
        gains = {k: v - taken.get(k, 0) for k, v in flat.items()}
        gains.update((k, -v) for k, v in taken.items() if k not in flat)
        return {k: v for k, v in gains.items() if v}

    def take_deltas(self) -> dict[str, float]:
        """What the counters gained since the last call, flat (``hits_by_tier:redis``...):
        what one process adds to the fleet-wide totals."""
        with self._lock:
            flat = self._flat()
            deltas = self._unsent(flat)
            self._taken = flat
        return deltas

    def leave_unsent_to_parent(self, *, buckets: bool) -> None:
        """In a forked child: what the counters gained before the fork and was not published
        yet is the parent's to publish; the child publishes only its own gains from now on
        (``buckets``: the savings history is published too, so its unsent buckets also go)."""
        with self._lock:  # a new lock already (llmcache.fork_safety)
            self._taken = self._flat()
            if buckets:
                self._cut(self._clock())
                self.buckets = {}

    def untake(self, deltas: dict[str, float]) -> None:
        """Deltas that could not be published: hand them to the next ``take_deltas``."""
        with self._lock:
            for name, amount in deltas.items():
                self._taken[name] = self._taken.get(name, 0) - amount


_GROUPS = ("hits_by_tier", "hits_by_match", "errors_by_tier", "store_rejected")
#: Flat names of the per-model counters: ``model_hits:gpt-4o-mini`` (the model is all that
#: follows the first colon, so a model name may hold colons).
_MODEL_GROUPS = tuple(f"model_{name}" for name in COUNTERS)
_MODEL_INDEX = {group: i for i, group in enumerate(_MODEL_GROUPS)}


def fleet_view(flat: dict[str, float]) -> dict[str, Any]:
    """Fleet-wide totals (as ``take_deltas`` flattens them) in ``Cache.stats()``'s shape,
    ``by_model`` as unpriced rows (``savings.add_priced_totals`` prices them)."""
    view: dict[str, Any] = {group: {} for group in _GROUPS}
    by_model: dict[str, Row] = {}
    for name, value in flat.items():
        group, colon, member = name.partition(":")
        if colon and group in view:
            view[group][member] = int(value)
        elif colon and group in _MODEL_INDEX:  # a model may be "" (a request without one)
            by_model.setdefault(member, new_row())[_MODEL_INDEX[group]] = int(value)
        elif not colon:
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
    view["by_model"] = by_model
    return view
