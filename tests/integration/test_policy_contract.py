"""Cacheability and TTL policy through the public Cache API, on every tier (``tier_url``:
memory, SQLite, MariaDB, PostgreSQL, Redis standalone, Cluster and Sentinel).

Categories (tag TTL rules), TTL jitter, popularity extension, early recomputation, per-model
strict mode and per-call overrides. Time is the fake clock and randomness an injected draw,
so every expiry and every early refresh below happens at a second the test chooses.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from llmcache import (
    Cache,
    CacheControl,
    CachePolicy,
    CacheRequest,
    FakeClock,
    Popularity,
    Scope,
)
from llmcache.policy import rollout_bucket


def ask(prompt: str, **fields: object) -> CacheRequest:
    return CacheRequest(model="gpt-x", prompt=prompt, model_name="gpt-x", **fields)  # type: ignore[arg-type]


Build = Callable[..., Cache]


@pytest.fixture
def build(tier_url: str, fake_clock: FakeClock) -> Iterator[Build]:
    """``build(policy, rand=...)``: a Cache over this test's tier on the fake clock; every
    cache built is closed after the test (several may share the tier, like processes)."""
    built: list[Cache] = []

    def _build(policy: CachePolicy, rand: Callable[[], float] = random.random) -> Cache:
        cache = Cache.from_urls([tier_url], policy=policy, clock=fake_clock, rand=rand)
        built.append(cache)
        return cache

    yield _build
    for cache in built:
        cache.close()


def served(cache: Cache, request: CacheRequest) -> object:
    hit = cache.get(request)
    return None if hit is None else hit.entry.value


# ---------------------------------------------------------------------------- categories
def test_categories_give_their_ttl_and_realtime_is_never_cached(
    build: Build, fake_clock: FakeClock
) -> None:
    policy = CachePolicy(
        ttl_jitter=0,
        default_ttl=600,
        ttl_by_tag={"faq": 7 * 86_400, "news": 3_600, "realtime": 0},
    )
    cache = build(policy)
    faq, news, plain = (
        ask("reset password", tags=("faq",)),
        ask("headline", tags=("news",)),
        ask("x"),
    )
    realtime = ask("price of BTC now", tags=("realtime",))
    for request, answer in ((faq, "link"), (news, "rates up"), (plain, "y"), (realtime, "42k")):
        cache.set(request, answer)
    assert cache.stats()["stores"] == 3  # realtime: not stored
    assert cache.get(realtime) is None and cache.stats()["skipped"] == 1  # nor read
    fake_clock.advance(601)
    assert (served(cache, faq), served(cache, news), served(cache, plain)) == (
        "link",
        "rates up",
        None,
    )
    fake_clock.advance(3_600)
    assert (served(cache, faq), served(cache, news)) == ("link", None)
    fake_clock.advance(7 * 86_400)
    assert served(cache, faq) is None


# ---------------------------------------------------------------------------- jitter
def test_entries_written_together_expire_spread_over_plus_minus_ten_percent(
    build: Build, fake_clock: FakeClock
) -> None:
    cache = build(CachePolicy(), rand=random.Random(7).random)  # the default jitter, ±10%
    requests = [ask(f"batch {i}") for i in range(20)]
    for request in requests:
        cache.set(request, "v", ttl=100)

    def alive() -> int:
        return sum(cache.get(r) is not None for r in requests)

    fake_clock.advance(89.9)
    assert alive() == 20  # nothing before 90% of the TTL
    fake_clock.advance(10.1)
    assert 0 < alive() < 20  # at the nominal TTL some are gone and some are not
    fake_clock.advance(10)
    assert alive() == 0  # everything by 110%


def test_jitter_zero_expires_exactly(build: Build, fake_clock: FakeClock) -> None:
    cache = build(CachePolicy(ttl_jitter=0))
    cache.set(ask("q"), "v", ttl=100)
    fake_clock.advance(99.99)
    assert served(cache, ask("q")) == "v"
    fake_clock.advance(0.01)
    assert cache.get(ask("q")) is None


# ---------------------------------------------------------------------------- popularity
def test_a_popular_entry_outlives_its_ttl_up_to_the_bound(
    build: Build, fake_clock: FakeClock, tier_url: str
) -> None:
    policy = CachePolicy(ttl_jitter=0, popularity=Popularity(max_ttl=250, every=3))
    cache = build(policy)
    hot, cold = ask("hot"), ask("cold")
    cache.set(hot, "h", ttl=100)
    cache.set(cold, "c", ttl=100)
    for _ in range(6):  # young: six hits, no write
        assert served(cache, hot) == "h"
    assert cache.stats()["ttl_extensions"] == 0
    fake_clock.advance(60)  # past half its lifetime
    for _ in range(3):
        assert served(cache, hot) == "h"
    assert cache.stats()["ttl_extensions"] == 1  # one write for three hits
    fake_clock.advance(50)  # t=110: the cold entry is gone, the hot one lives (until 160)
    assert cache.get(cold) is None
    assert served(cache, hot) == "h"
    if not tier_url.startswith("memory://"):  # the new expiry is in the shared tier:
        assert cache.flush(timeout=10)  # (server SQL tiers write it behind, within ms)
        assert served(build(CachePolicy(ttl_jitter=0)), hot) == "h"  # another process sees it
    fake_clock.advance(45)  # t=155
    for _ in range(3):
        assert served(cache, hot) == "h"  # extended again, but only to created + 250
    fake_clock.advance(94.9)  # t=249.9
    assert served(cache, hot) == "h"
    fake_clock.advance(0.1)  # t=250: the bound
    assert cache.get(hot) is None


@pytest.mark.parametrize("change", ["invalidate", "store"])
def test_a_renewal_never_brings_back_what_the_shared_tier_no_longer_holds(
    tmp_path: Path, fake_clock: FakeClock, change: str
) -> None:
    # Two processes, a memory tier in front of one SQLite file. The renewal of A's copy was
    # written to every tier: an invalidated (or replaced) answer came back for everyone.
    policy = CachePolicy(ttl_jitter=0, popularity=Popularity(max_ttl=1000, every=1))
    urls = ["memory://?ttl=60", f"sqlite:///{tmp_path}/shared.db"]
    a = Cache.from_urls(urls, policy=policy, clock=fake_clock, fleet_stats=False)
    b = Cache.from_urls(urls, policy=policy, clock=fake_clock, fleet_stats=False)
    question = ask("leave policy", tags=("kb-7",))
    try:
        assert a.set(question, "30 days (old policy)", ttl=100)
        assert served(a, question) == "30 days (old policy)"
        fake_clock.advance(55)  # past half its lifetime: A's next hit renews it
        if change == "invalidate":
            assert b.invalidate(tags=["kb-7"]) == 1
        else:
            assert b.set(question, "25 days (new policy)", ttl=100)
        # A's memory still serves its copy (the documented window), and renews it there...
        assert served(a, question) == "30 days (old policy)"
        assert a.stats()["ttl_extensions"] == 1
        # ...but the shared tier keeps what B left in it, for every other process.
        fresh = Cache.from_urls(urls[1:], clock=fake_clock, fleet_stats=False)
        expected = None if change == "invalidate" else "25 days (new policy)"
        assert served(fresh, question) == expected
        fresh.close()
    finally:
        a.close()
        b.close()


# ---------------------------------------------------------------------------- early recomputation
def early_policy() -> CachePolicy:
    return CachePolicy(ttl_jitter=0, early_recompute=0.1)


def in_thread(call: Callable[[], object]) -> object:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result(timeout=10)


def test_near_expiry_one_caller_refreshes_and_the_others_are_served(
    build: Build, fake_clock: FakeClock
) -> None:
    # rand 0.5: the draw is ln 2, so an entry of lifetime 100 refreshes early once fewer than
    # 100 * 0.1 * ln 2 = 6.9 seconds remain.
    cache = build(early_policy(), rand=lambda: 0.5)
    request = ask("hot")
    cache.set(request, "old", ttl=100)
    fake_clock.advance(93)  # 7 s left: not yet
    assert served(cache, request) == "old"
    assert cache.stats()["early_refreshes"] == 0
    fake_clock.advance(2)  # 5 s left
    assert cache.get(request) is None  # this caller is told "miss": it refreshes
    assert in_thread(lambda: served(cache, request)) == "old"  # another is served at once
    assert cache.set(request, "new", ttl=100)
    assert in_thread(lambda: served(cache, request)) == "new"
    stats = cache.stats()
    assert stats["early_refreshes"] == 1
    assert (stats["hits"], stats["misses"]) == (3, 1)  # the refresher counts as a miss
    fake_clock.advance(5)  # the old entry's expiry: the new one is young
    assert served(cache, request) == "new"


def test_far_from_expiry_nothing_refreshes_early(build: Build, fake_clock: FakeClock) -> None:
    cache = build(early_policy(), rand=lambda: 0.01)  # an unlucky draw: 4.6 lifetimes * 0.1
    request = ask("q")
    cache.set(request, "v", ttl=100)
    fake_clock.advance(50)  # 50 s left > 46 s: still served
    assert served(cache, request) == "v"
    cache.set(ask("forever"), "f", ttl=None)  # no expiry: never refreshed early
    assert served(cache, ask("forever")) == "f"
    assert cache.stats()["early_refreshes"] == 0


def test_concurrent_callers_near_expiry_make_one_model_call_and_nobody_waits(
    build: Build, fake_clock: FakeClock
) -> None:
    callers = 8
    cache = build(early_policy(), rand=lambda: 0.001)  # a draw of 6.9: "refresh" at 1 s left
    request = ask("hot")
    cache.set(request, "old", ttl=100)
    fake_clock.advance(99)
    model_calls: list[int] = []
    others_done = threading.Semaphore(0)
    start = threading.Barrier(callers)

    def caller() -> object:
        start.wait(timeout=10)
        hit = cache.get(request)
        if hit is not None:
            others_done.release()
            return hit.entry.value
        model_calls.append(1)
        # The model call lasts until every other caller has been served: had any of them
        # waited for this refresh, this would time out.
        assert all(others_done.acquire(timeout=10) for _ in range(callers - 1))
        cache.set(request, "new", ttl=100)
        return "new (model)"

    with ThreadPoolExecutor(callers) as pool:
        answers = list(pool.map(lambda _: caller(), range(callers)))
    assert len(model_calls) == 1
    assert sorted(answers) == ["new (model)"] + ["old"] * (callers - 1)
    assert served(cache, request) == "new"


async def test_early_refresh_async_gives_the_sync_answers(
    build: Build, fake_clock: FakeClock
) -> None:
    cache = build(early_policy(), rand=lambda: 0.5)
    request = ask("hot")
    assert await cache.aset(request, "old", ttl=100)
    fake_clock.advance(95)
    assert await cache.aget(request) is None
    assert in_thread(lambda: served(cache, request)) == "old"
    assert await cache.aset(request, "new", ttl=100)
    hit = await cache.aget(request)
    assert hit is not None and hit.entry.value == "new"


# ---------------------------------------------------------------- per-model and per-call
def test_strict_for_one_model_cache_all_for_another(build: Build) -> None:
    cache = build(CachePolicy(strict_by_model={"gpt-x": True, "local": False}))
    hot = {"temperature": 0.9}
    strict = ask("story", params=hot)
    loose = CacheRequest(model="local", prompt="story", model_name="local", params=hot)
    assert cache.set(strict, "s") is False
    assert cache.set(loose, "l") is True
    assert cache.get(strict) is None
    assert served(cache, loose) == "l"
    cold = ask("2+2", params={"temperature": 0})
    assert cache.set(cold, "4") and served(cache, cold) == "4"


@pytest.mark.parametrize(
    ("params", "cached"),
    [
        ({"temperature": 0.2}, True),
        ({"temperature": 0.2, "top_p": 0.9}, False),
        ({"temperature": 0.2, "top_p": 0.9, "seed": 7}, True),
        ({"top_k": 40}, False),
        ({"n": 2}, False),
        ({"best_of": 3}, False),
    ],
)
def test_strict_mode_caches_only_deterministic_requests(
    build: Build, params: dict[str, object], cached: bool
) -> None:
    cache = build(CachePolicy.strict())
    request = ask("q", params=params)
    assert cache.set(request, "v") is cached
    assert (served(cache, request) == "v") is cached


def test_per_call_controls(build: Build, fake_clock: FakeClock) -> None:
    cache = build(CachePolicy(ttl_jitter=0, default_ttl=1_000))
    short = ask("short", control=CacheControl(ttl=10))
    assert cache.set(short, "s", ttl=500)  # the call's ttl wins over the adapter's default
    not_stored = ask("secret", control=CacheControl(no_store=True))
    assert cache.set(not_stored, "x") is False
    cache.set(ask("cached"), "old")
    fresh = ask("cached", control=CacheControl(no_cache=True))
    assert cache.get(fresh) is None  # not read...
    assert cache.set(fresh, "new")  # ...but stored
    assert served(cache, ask("cached")) == "new"
    strict = ask("story", params={"temperature": 0.9}, control=CacheControl(strict=True))
    assert cache.set(strict, "s") is False
    fake_clock.advance(11)
    assert cache.get(ask("short")) is None
    assert served(cache, ask("cached")) == "new"
    assert cache.get(ask("secret")) is None


def test_a_call_that_stores_nothing_does_not_make_others_wait(build: Build) -> None:
    cache = build(CachePolicy())
    request = ask("q", control=CacheControl(no_store=True))
    assert cache.get(request) is None  # a miss that will never be stored: it leads nothing
    plain = ask("q")
    assert in_thread(lambda: cache.get(plain)) is None  # no wait of single_flight_timeout


def test_across_processes_only_one_refreshes_early(
    redis_prefix_url: str, fake_clock: FakeClock
) -> None:
    """Two caches on one Redis (two processes): the first to draw "refresh" takes the key's
    fleet lock; the other is served the still-valid entry, then the refreshed one."""
    first, second = (
        Cache.from_urls(
            [redis_prefix_url], policy=early_policy(), clock=fake_clock, rand=lambda: 0.5
        )
        for _ in range(2)
    )
    with first, second:
        request = ask("hot")
        first.set(request, "old", ttl=100)
        fake_clock.advance(95)
        assert first.get(request) is None  # leads the refresh, fleet-wide
        assert served(second, request) == "old"  # the lock is taken: served, no wait
        assert first.set(request, "new", ttl=100)  # stores and releases the lock
        assert served(second, request) == "new"
        assert (first.stats()["early_refreshes"], second.stats()["early_refreshes"]) == (1, 0)


def test_a_call_with_ttl_zero_does_not_make_others_wait(build: Build) -> None:
    cache = build(CachePolicy())
    assert cache.get(ask("q", control=CacheControl(ttl=0))) is None
    assert in_thread(lambda: cache.get(ask("q"))) is None


# ---------------------------------------------------------------- switches
def test_the_disabled_switch_and_a_stable_rollout_share(
    build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMCACHE_DISABLED", "1")
    off = build(CachePolicy())
    assert off.set(ask("q"), "v") is False
    assert off.get(ask("q")) is None
    monkeypatch.delenv("LLMCACHE_DISABLED")
    assert build(CachePolicy()).get(ask("q")) is None  # nothing was written while off
    monkeypatch.setenv("LLMCACHE_ROLLOUT", "0.5")
    half = build(CachePolicy())
    users = [Scope.of(user=f"user-{i}") for i in range(40)]
    inside = {u for u in users if rollout_bucket(u) < 0.5}
    assert 0 < len(inside) < len(users)
    for user in users:
        half.set(ask("q", scope=user), f"for {user.user}")
    assert {u for u in users if half.get(ask("q", scope=u)) is not None} == inside
    assert {u for u in users if half.get(ask("q", scope=u)) is not None} == inside  # stable
