"""Invalidation reaches the other processes' memory tiers (``llmcache.fleet_invalidation``).

Two caches with memory in front of the same Redis stand for two processes of a fleet: ``b``
has an answer in its memory tier; ``a`` invalidates or clears it. Without the broadcast, ``b``
keeps serving the removed answer from memory until its TTL; with it, ``b`` misses (or is
served by Redis what Redis still holds). Against the real standalone Redis, Cluster and
Sentinel; the reconnect test kills the listener's connection on the server.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from conftest import delete_redis_keys, with_query

from llmcache import Cache, CacheRequest, FakeClock, Scope
from llmcache.fleet_invalidation import FleetInvalidation, decode, encode_clear

WAIT = 5.0


def req(prompt: str, *, tags: tuple[str, ...] = (), scope: Scope | None = None) -> CacheRequest:
    return CacheRequest(
        model="gpt-x", prompt=prompt, model_name="gpt-x", tags=tags, scope=scope or Scope()
    )


def served_by(cache: Cache, request: CacheRequest) -> str | None:
    hit = cache.get(request)
    return None if hit is None else hit.tier


def eventually(check: Callable[[], bool]) -> bool:
    """``check()`` became true within WAIT seconds (a message takes a round trip)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


def listening(cache: Cache) -> FleetInvalidation:
    fleet = cache._fleet_invalidation
    assert fleet is not None, "a cache with a Redis tier takes part by default"
    assert fleet.subscribed.wait(WAIT), "the listener did not subscribe"
    return fleet


@pytest.fixture(params=["redis", "redis_cluster", "redis_sentinel"])
def shared(request: pytest.FixtureRequest, table_prefix: str) -> Iterator[str]:
    """One Redis (standalone, Cluster or Sentinel) under this test's private prefix."""
    base = request.getfixturevalue(f"{request.param}_url")
    yield with_query(base, prefix=table_prefix)
    delete_redis_keys(base, table_prefix)


@pytest.fixture
def fleet(shared: str) -> Iterator[tuple[Cache, Cache]]:
    """Two "processes": caches with memory in front of the shared Redis."""
    a = Cache.from_urls(["memory://", shared], fleet_stats=False)
    b = Cache.from_urls(["memory://", shared], fleet_stats=False)
    listening(a)
    listening(b)
    yield a, b
    a.close()
    b.close()


def warm(cache: Cache, request: CacheRequest) -> None:
    """Read until the answer is in ``cache``'s memory tier (the first read backfills it)."""
    cache.get(request)
    assert served_by(cache, request) == "memory"


def test_an_invalidation_empties_the_other_memory_tiers(fleet: tuple[Cache, Cache]) -> None:
    a, b = fleet
    kb, other = req("refund policy?", tags=("kb",)), req("opening hours?")
    a.set(kb, "30 days")
    a.set(other, "9 to 5")
    warm(b, kb)
    warm(b, other)
    assert a.invalidate(tags=["kb"]) >= 1
    assert eventually(lambda: served_by(b, kb) is None)  # gone everywhere
    assert served_by(b, other) == "memory"  # what was not invalidated stays in memory


def test_a_scoped_clear_reaches_the_other_memory_tiers(fleet: tuple[Cache, Cache]) -> None:
    a, b = fleet
    alice, bob = Scope.of(user="alice"), Scope.of(user="bob")
    for scope in (alice, bob):
        a.set(req("my plan?", scope=scope), f"plan of {scope.user}")
        warm(b, req("my plan?", scope=scope))
    a.clear(scope=alice)
    assert eventually(lambda: served_by(b, req("my plan?", scope=alice)) is None)
    assert served_by(b, req("my plan?", scope=bob)) == "memory"


def test_an_age_criterion_travels_as_a_point_in_time(shared: str) -> None:
    clock = FakeClock(1_000_000.0)
    with (
        Cache.from_urls(["memory://", shared], fleet_stats=False, clock=clock) as a,
        Cache.from_urls(["memory://", shared], fleet_stats=False, clock=clock) as b,
    ):
        listening(b)
        a.set(req("old"), "old answer")
        clock.advance(3600)
        a.set(req("new"), "new answer")
        warm(b, req("old"))
        warm(b, req("new"))
        clock.advance(60)
        a.invalidate(older_than=1800)  # the entry stored an hour and a minute ago
        assert eventually(lambda: served_by(b, req("old")) is None)
        assert served_by(b, req("new")) == "memory"


async def test_the_async_calls_broadcast_too(fleet: tuple[Cache, Cache]) -> None:
    a, b = fleet
    a.set(req("q1", tags=("kb",)), "one")
    a.set(req("q2"), "two")
    warm(b, req("q1", tags=("kb",)))
    warm(b, req("q2"))
    await a.ainvalidate(tags=["kb"])
    await a.aclear()
    gone = await asyncio.to_thread(
        eventually,
        lambda: served_by(b, req("q1")) is None and served_by(b, req("q2")) is None,
    )
    assert gone


def test_llmcache_invalidate_from_a_shell_reaches_the_memory_tiers(
    fleet: tuple[Cache, Cache], shared: str
) -> None:
    # The CLI's cache is Redis alone: it has no memory tier to listen for, but it publishes.
    from click.testing import CliRunner

    from llmcache.cli.app import cli

    a, b = fleet
    a.set(req("q", tags=("kb",)), "answer")
    warm(b, req("q", tags=("kb",)))
    result = CliRunner().invoke(cli, ["invalidate", "--url", shared, "--tag", "kb"])
    assert result.exit_code == 0, result.output
    assert eventually(lambda: served_by(b, req("q")) is None)


def test_without_it_the_other_memory_tier_keeps_serving(shared: str) -> None:
    with (
        Cache.from_urls(["memory://", shared], fleet_stats=False) as a,
        Cache.from_urls(["memory://", shared], fleet_stats=False, fleet_invalidation=False) as b,
    ):
        assert b._fleet_invalidation is None
        a.set(req("q", tags=("kb",)), "answer")
        warm(b, req("q", tags=("kb",)))
        a.invalidate(tags=["kb"])
        time.sleep(0.2)  # nothing is on its way: the memory tier keeps the removed answer
        assert served_by(b, req("q")) == "memory"


def test_a_reconnected_listener_clears_its_memory_tier(redis_url: str, table_prefix: str) -> None:
    # A listener that lost its connection may have missed invalidations: back on the
    # channel, it empties its memory tier, which then refills from Redis.
    url = with_query(redis_url, prefix=table_prefix)
    try:
        with Cache.from_urls(["memory://", url], fleet_stats=False) as b:
            fleet = listening(b)
            b.set(req("q"), "answer")
            assert served_by(b, req("q")) == "memory"
            admin = redis.Redis.from_url(redis_url)
            try:
                killed = admin.client_kill_filter(_type="pubsub")
            finally:
                admin.close()
            assert killed >= 1
            assert eventually(lambda: served_by(b, req("q")) == "redis")
            assert fleet.subscribed.wait(WAIT)
            assert served_by(b, req("q")) == "memory"  # refilled by that read
    finally:
        delete_redis_keys(redis_url, table_prefix)


def test_a_malformed_or_foreign_message_changes_nothing(fleet: tuple[Cache, Cache]) -> None:
    a, b = fleet
    a.set(req("q"), "answer")
    warm(b, req("q"))
    fleet_b = listening(b)
    tier: Any = a.tiers[1]
    for junk in (b"not json", b'{"v": 99, "op": "clear"}', b'{"v": 1, "from": "x", "op": "drop"}'):
        tier.publish(fleet_b.channel, junk)
    # b's own message is not applied twice, and another prefix's channel is not b's.
    tier.publish(fleet_b.channel, encode_clear(fleet_b.sender, None))
    tier.publish("someone-else:invalidations", encode_clear("other", None))
    time.sleep(0.2)
    assert served_by(b, req("q")) == "memory"


def test_a_deeply_nested_message_is_ignored_not_taken_for_a_lost_connection(
    redis_url: str, table_prefix: str
) -> None:
    # A message nested deeper than the JSON parser goes is malformed like any other: before,
    # its RecursionError ended the listener's connection, which reconnected and emptied the
    # memory tier (logging "channel back"), as if Redis had gone away.
    url = with_query(redis_url, prefix=table_prefix)
    try:
        with Cache.from_urls(["memory://", url], fleet_stats=False) as b:
            fleet = listening(b)
            b.set(req("q"), "answer")
            tier: Any = b.tiers[1]
            tier.publish(fleet.channel, b"[" * 50_000 + b"]" * 50_000)
            time.sleep(0.5)
            assert served_by(b, req("q")) == "memory"
    finally:
        delete_redis_keys(redis_url, table_prefix)


@pytest.mark.parametrize(
    "raw",
    [
        b"[]",
        b'{"v": 1, "op": "clear"}',  # no sender
        b'{"v": 1, "from": "x", "op": "invalidate"}',  # no criteria
        b'{"v": 1, "from": "x", "op": "invalidate", "tags": "kb"}',
        b'{"v": 1, "from": "x", "op": "invalidate", "scope": "zz"}',
        b'{"v": 1, "from": "x", "op": "invalidate", "cutoff": "yesterday"}',
        b'{"v": 1, "from": "x", "op": "clear", "scope": "' + b"00" * 65 + b'"}',
        pytest.param(b"[" * 50_000 + b"]" * 50_000, id="nested-deeper-than-json-goes"),
    ],
)
def test_decode_refuses_what_is_not_a_removal(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode(raw)


def test_a_forked_worker_hears_the_others_and_is_heard(redis_url: str, table_prefix: str) -> None:
    """A pre-forking server (gunicorn --preload, Celery prefork) builds the cache, then forks
    workers. Threads do not survive a fork: the worker must start a listener of its own, and
    take a sender id of its own, or parent and worker ignore each other's messages."""
    url = with_query(redis_url, prefix=table_prefix)
    cache = Cache.from_urls(["memory://", url], fleet_stats=False)
    listening(cache)
    policy, hours = req("refund policy?", tags=("kb",)), req("opening hours?", tags=("hours",))
    cache.set(policy, "30 days")
    cache.set(hours, "9 to 5")
    warm(cache, hours)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: its exit code says what it saw
        code = 1
        try:
            listening(cache)  # a listener of its own (its inherited memory tier was cleared)
            warm(cache, policy)
            os.write(ready_w, b"!")
            os.read(go_r, 1)  # the parent has invalidated "kb"
            code = 0 if eventually(lambda: served_by(cache, policy) is None) else 2
            cache.invalidate(tags=["hours"])  # heard by the parent, unless it shares our id
        finally:
            os._exit(code)
    try:
        assert os.read(ready_r, 1) == b"!"
        cache.invalidate(tags=["kb"])
        os.write(go_w, b"!")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the worker kept serving from memory"
        assert eventually(lambda: served_by(cache, hours) is None), "the worker was not heard"
    finally:
        for fd in (ready_r, ready_w, go_r, go_w):
            os.close(fd)
        cache.close()
