"""Popularity extension and early recomputation: the pure rules, the policy's checks, and
early refreshes by concurrent asyncio tasks (one refresh, nobody waits)."""

from __future__ import annotations

import asyncio
import math

import pytest

from llmcache import (
    Cache,
    CacheEntry,
    CachePolicy,
    CacheRequest,
    ConfigError,
    FakeClock,
    Popularity,
)
from llmcache.freshness import HitCounter, extended_expiry, recompute_early


def entry(created: float, expires: float | None) -> CacheEntry:
    return CacheEntry(value="v", created_at=created, expires_at=expires)


def test_a_young_entry_is_not_extended_and_an_old_one_is_renewed_up_to_the_bound() -> None:
    rule = Popularity(max_ttl=250)
    assert extended_expiry(entry(0, 100), now=49, rule=rule) is None  # first half of its life
    assert extended_expiry(entry(0, 100), now=60, rule=rule) == 160  # another lifetime
    assert extended_expiry(entry(0, 160), now=155, rule=rule) == 250  # bounded
    assert extended_expiry(entry(0, 250), now=240, rule=rule) is None  # at the bound already
    assert extended_expiry(entry(0, None), now=60, rule=rule) is None  # no expiry to extend
    assert extended_expiry(entry(0, 100), now=100, rule=rule) is None  # expired: not revived


@pytest.mark.parametrize("bad", [{"max_ttl": 0}, {"max_ttl": -1}, {"max_ttl": 10, "every": 0}])
def test_bad_popularity_rules_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="Popularity"):
        Popularity(**bad)  # type: ignore[arg-type]


def test_the_hit_counter_is_bounded() -> None:
    counter = HitCounter(capacity=2)
    assert [counter.add(b"a"), counter.add(b"a"), counter.add(b"b")] == [1, 2, 1]
    counter.add(b"c")  # "a" is the least recently hit: forgotten
    assert counter.add(b"a") == 1


def test_early_recomputation_grows_more_likely_near_expiry() -> None:
    old = entry(0, 100)
    for remaining in (50, 20, 10, 5, 1):
        # P(refresh) = exp(-remaining / (0.1 * lifetime)): recomputed iff the draw U is below it
        threshold = math.exp(-remaining / 10)
        assert recompute_early(old, 100 - remaining, 0.1, lambda t=threshold: t * 0.999)
        assert not recompute_early(old, 100 - remaining, 0.1, lambda t=threshold: t * 1.001)
    assert recompute_early(old, 100, 0.1, lambda: 0.999_999)  # certain at expiry
    assert not recompute_early(entry(0, None), 99, 0.1, lambda: 0.0)  # no expiry
    assert not recompute_early(old, 99, 0.0, lambda: 0.0)  # off


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"early_recompute": 1.0}, "early_recompute"),
        ({"early_recompute": -0.1}, "early_recompute"),
        ({"popularity": 10}, "popularity"),
        ({"strict_by_model": {"gpt-4o": "yes"}}, "strict_by_model"),
        ({"ttl_jitter": 1.0}, "ttl_jitter"),
    ],
)
def test_bad_freshness_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CachePolicy(**options)  # type: ignore[arg-type]


def test_jitter_is_on_by_default() -> None:
    assert CachePolicy().ttl_jitter == 0.1
    expiries = [CachePolicy().expires_at(100, now=0.0, rand=lambda d=d: d) for d in (0, 0.5, 1)]
    assert expiries == pytest.approx([90.0, 100.0, 110.0])


async def test_concurrent_tasks_near_expiry_make_one_model_call_and_nobody_waits() -> None:
    clock = FakeClock()
    policy = CachePolicy(ttl_jitter=0, early_recompute=0.1)
    cache = Cache.from_urls(["memory://"], policy=policy, clock=clock, rand=lambda: 0.001)
    request = CacheRequest(model="m", prompt="hot")
    await cache.aset(request, "old", ttl=100)
    clock.advance(99)
    tasks, served = 16, asyncio.Event()
    others: list[object] = []

    async def caller() -> str:
        hit = await cache.aget(request)
        if hit is not None:
            others.append(hit.entry.value)
            if len(others) == tasks - 1:
                served.set()
            return "served"
        await asyncio.wait_for(served.wait(), 10)  # the refresh outlasts every other caller
        await cache.aset(request, "new", ttl=100)
        return "refreshed"

    results = await asyncio.gather(*(caller() for _ in range(tasks)))
    assert sorted(results) == ["refreshed"] + ["served"] * (tasks - 1)
    assert others == ["old"] * (tasks - 1)
    hit = await cache.aget(request)
    assert hit is not None and hit.entry.value == "new"
    assert cache.stats()["early_refreshes"] == 1
    cache.close()


def test_a_call_the_policy_stores_nothing_for_is_never_recomputed_early() -> None:
    # A hit turned into a miss would refresh nothing: the model is paid, nothing is stored,
    # and the next call draws again (every hit near expiry became a model call).
    clock = FakeClock()
    policy = CachePolicy(ttl_jitter=0, early_recompute=0.2, default_ttl=0)
    cache = Cache.from_urls(["memory://"], policy=policy, clock=clock, rand=lambda: 0.001)
    request = CacheRequest(model="m", prompt="warmed")
    assert cache.set(request, "warmed", ttl=100)  # a warm-up's own TTL
    clock.advance(90)
    for _ in range(3):
        hit = cache.get(request)
        assert hit is not None and hit.entry.value == "warmed"
    assert cache.stats()["early_refreshes"] == 0
    cache.close()
