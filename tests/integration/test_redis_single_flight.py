"""Single-flight across processes, through a lock in Redis (SET NX PX + owner-only release).

Two ``Cache`` objects share nothing but Redis, as two processes do; one test also runs real
processes. Identical misses make one model call in the whole fleet.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from llmcache import Cache, CacheRequest, request_key
from llmcache.tiers.memory import MemoryTier
from llmcache.tiers.redis import RedisTier

REQ = CacheRequest(model="m", prompt="What is the capital of France?")


def fleet_cache(url: str, timeout: float = 5.0) -> Cache:
    return Cache([MemoryTier(), RedisTier.from_url(url)], single_flight_timeout=timeout)


def test_two_processes_views_make_one_model_call(redis_prefix_url: str) -> None:
    a, b = fleet_cache(redis_prefix_url), fleet_cache(redis_prefix_url)
    calls: list[str] = []
    leading = threading.Event()

    def leader() -> None:
        assert a.get(REQ) is None  # leads here and across the fleet: takes the lock
        leading.set()
        time.sleep(0.3)  # the model call
        calls.append("a")
        a.set(REQ, "Paris")

    thread = threading.Thread(target=leader)
    thread.start()
    assert leading.wait(5)
    hit = b.get(REQ)  # b finds the fleet lock taken and waits for a's answer
    thread.join()
    assert hit is not None
    assert hit.entry.value == "Paris"
    assert hit.tier == "redis"
    assert calls == ["a"]
    assert b.stats()["misses"] == 0
    a.close()
    b.close()


async def test_async_followers_in_another_process_view_are_served(redis_prefix_url: str) -> None:
    a, b = fleet_cache(redis_prefix_url), fleet_cache(redis_prefix_url)
    assert await a.aget(REQ) is None  # leads the fleet

    async def store_later() -> None:
        await asyncio.sleep(0.3)
        await a.aset(REQ, "Paris")

    writer = asyncio.create_task(store_later())
    hits = await asyncio.gather(*(b.aget(REQ) for _ in range(5)))
    await writer
    assert [h.entry.value for h in hits if h is not None] == ["Paris"] * 5
    await a.aclose()
    await b.aclose()


def test_a_leader_that_never_stores_holds_others_only_until_the_bound(
    redis_prefix_url: str,
) -> None:
    a, b = fleet_cache(redis_prefix_url, timeout=0.5), fleet_cache(redis_prefix_url, timeout=0.5)
    assert a.get(REQ) is None  # leads, then its model call fails: it never stores
    assert b.get(REQ) is None  # waits at most the bound, then calls the model itself
    time.sleep(0.6)  # the lock expires with its PX, the bound
    tier = b.tiers[1]
    assert isinstance(tier, RedisTier)
    assert tier.flight_open(request_key(REQ)) is False


def test_only_the_owner_releases_the_lock(redis_prefix_url: str) -> None:
    a = fleet_cache(redis_prefix_url)
    key = request_key(REQ)
    tier = a.tiers[1]
    assert isinstance(tier, RedisTier)
    assert a.get(REQ) is None  # a holds the fleet lock
    tier.release_flight(key, "not-the-owners-token")
    assert tier.flight_open(key) is True
    a.set(REQ, "Paris")  # storing releases it
    assert tier.flight_open(key) is False
    a.close()


@pytest.mark.timeout(30)  # waiting for itself would take the 60 s bound
def test_a_retrying_leader_keeps_its_lock_and_does_not_wait(redis_prefix_url: str) -> None:
    a = fleet_cache(redis_prefix_url, timeout=60)
    assert a.get(REQ) is None
    assert a.get(REQ) is None  # same thread: no wait on its own lock
    a.close()


def test_a_dead_redis_leaves_single_flight_local_and_never_raises() -> None:
    cache = fleet_cache("redis://127.0.0.1:1/0")
    assert cache.get(REQ) is None
    assert cache.set(REQ, "Paris") is True  # memory took it
    hit = cache.get(REQ)
    assert hit is not None
    assert hit.tier == "memory"


def _worker(url: str, barrier: multiprocessing.synchronize.Barrier, counter: str) -> str:
    cache = fleet_cache(url)
    barrier.wait(10)
    hit = cache.get(REQ)
    if hit is not None:
        return str(hit.entry.value)
    redis.Redis.from_url(url.split("?")[0]).incr(counter)  # a model call
    time.sleep(0.3)
    cache.set(REQ, "Paris")
    return "Paris"


def test_real_processes_make_one_model_call(
    redis_prefix_url: str, redis_url: str, table_prefix: str
) -> None:
    ctx = multiprocessing.get_context("spawn")
    counter = f"{table_prefix}:model-calls"
    with ctx.Manager() as manager:
        barrier = manager.Barrier(4)
        with ctx.Pool(4) as pool:
            answers = pool.starmap(_worker, [(redis_prefix_url, barrier, counter)] * 4, chunksize=1)
    assert answers == ["Paris"] * 4
    assert int(redis.Redis.from_url(redis_url).get(counter) or 0) == 1


@pytest.mark.timeout(25)
async def test_a_failed_async_leader_frees_its_fleet_lock_and_one_other_process_leads(
    redis_prefix_url: str,
) -> None:
    """The fleet leader's task ends without storing (its model call failed): its lock is
    released half a second later instead of expiring at the bound (30 s here), and of the
    processes waiting for it one takes the lock and calls the model; the other is served."""
    a, b, c = (fleet_cache(redis_prefix_url, timeout=30.0) for _ in range(3))
    loop = asyncio.get_running_loop()
    leading, calls = asyncio.Event(), []

    async def failing_leader() -> None:
        assert await a.aget(REQ) is None  # leads here and across the fleet
        leading.set()
        await asyncio.sleep(0.1)
        raise RuntimeError("429: rate limited")

    async def follower(cache: Cache, name: str) -> str:
        hit = await cache.aget(REQ)
        if hit is not None:
            return str(hit.entry.value)
        calls.append(name)  # the model call
        await cache.aset(REQ, "Paris")
        return "Paris"

    lead = asyncio.create_task(failing_leader())
    await leading.wait()
    started = loop.time()
    answers = await asyncio.gather(follower(b, "b"), follower(c, "c"))
    with pytest.raises(RuntimeError):
        await lead
    assert answers == ["Paris", "Paris"]
    assert len(calls) == 1  # one of b and c led the next try; the other was served
    assert loop.time() - started < 10  # the lock was released, not left to expire
    for cache in (a, b, c):
        await cache.aclose()


@pytest.mark.timeout(40)
def test_a_failed_thread_leader_frees_its_fleet_lock_through_a_follower_thread(
    redis_prefix_url: str,
) -> None:
    """The fleet leader is a thread whose call failed: a follower thread of its own process
    sees that call end, abandons the flight and releases the lock (from its thread, no event
    loop), so neither it nor the other process waits for the lock to expire at the bound."""
    a, b = fleet_cache(redis_prefix_url, timeout=30.0), fleet_cache(redis_prefix_url, timeout=30.0)
    leading, calls, lock = threading.Event(), [], threading.Lock()

    def failing_leader() -> None:
        assert a.get(REQ) is None  # leads here and across the fleet
        leading.set()
        time.sleep(0.1)  # the model call, which fails: nothing is stored

    def follower(cache: Cache, name: str) -> str:
        hit = cache.get(REQ)
        if hit is not None:
            return str(hit.entry.value)
        with lock:
            calls.append(name)  # the model call
        cache.set(REQ, "Paris")
        return "Paris"

    thread = threading.Thread(target=failing_leader)
    thread.start()
    assert leading.wait(5)
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(follower, [a, b], ["a", "b"]))
    thread.join()
    assert answers == ["Paris", "Paris"]
    assert len(calls) == 1  # a's follower or b led the next try; the other was served
    assert time.monotonic() - started < 10  # the lock was released, not left to expire
    a.close()
    b.close()


@pytest.mark.timeout(40)
def test_a_failed_thread_leader_frees_its_fleet_lock_with_no_follower_of_its_own(
    redis_prefix_url: str,
) -> None:
    """The fleet leader is a pool thread whose call failed, and nobody in its process follows
    it: its cache watches the call itself and releases the lock, so the other process leads
    the next try about a second later instead of waiting for the lock to expire (30 s)."""
    a, b = fleet_cache(redis_prefix_url, timeout=30.0), fleet_cache(redis_prefix_url, timeout=30.0)
    leading, finish = threading.Event(), threading.Event()

    def failing_call() -> None:
        assert a.get(REQ) is None  # leads here and across the fleet
        leading.set()
        time.sleep(0.1)  # the model call, which fails: nothing is stored

    def pool_thread() -> None:
        try:
            failing_call()
        finally:
            finish.wait(30)  # the thread lives on, as a pool's does

    thread = threading.Thread(target=pool_thread)
    thread.start()
    try:
        assert leading.wait(5)
        started = time.monotonic()
        assert b.get(REQ) is None  # a's lock released: b leads the next try
        assert time.monotonic() - started < 10
        tier = b.tiers[1]
        assert isinstance(tier, RedisTier)
        assert tier.flight_open(request_key(REQ)) is True  # b's own lock now
        b.set(REQ, "Paris")
        hit = a.get(REQ)
        assert hit is not None and hit.entry.value == "Paris"
    finally:
        finish.set()
        thread.join()
        a.close()
        b.close()


@pytest.mark.timeout(25)
def test_a_failed_leader_in_an_asyncio_run_frees_its_fleet_lock(redis_prefix_url: str) -> None:
    """The fleet leader is a task of ``asyncio.run`` in a request thread (a sync app calling
    async code): its call fails and ``asyncio.run`` closes the loop before the loop's timer
    could abandon the flight. Its cache still sees the task ended and releases the lock, so
    the other process leads the next try instead of waiting for the lock to expire (30 s)."""
    a, b = fleet_cache(redis_prefix_url, timeout=30.0), fleet_cache(redis_prefix_url, timeout=30.0)

    async def failing_call() -> None:
        assert await a.aget(REQ) is None  # leads here and across the fleet
        raise RuntimeError("429: rate limited")

    def request_thread() -> None:
        with pytest.raises(RuntimeError):
            asyncio.run(failing_call())

    thread = threading.Thread(target=request_thread)
    thread.start()
    thread.join()
    try:
        assert b.get(REQ) is None  # a's lock released: b leads the next try
        tier = b.tiers[1]
        assert isinstance(tier, RedisTier)
        assert tier.flight_open(request_key(REQ)) is True  # b's own lock now
        b.set(REQ, "Paris")
        hit = a.get(REQ)
        assert hit is not None and hit.entry.value == "Paris"
    finally:
        a.close()
        b.close()
