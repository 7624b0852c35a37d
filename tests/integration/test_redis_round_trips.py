"""The redis tier's wire: how many round trips and connections a call costs, and that the
shortcuts (own connections, queued async calls, a store that also releases its lock) give
every caller its own answer. Each test runs its own redis-server (no other client on it), and
counts writes with the tier's own pool, whose connection class is swapped for a subclass that
counts ``send_packed_command`` calls (a real connection, not a fake).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_redis_faults import Answering, RedisProcess, stall

from langchain_llmcache import LangChainCache
from llmcache import Cache, CacheRequest
from llmcache.errors import TierError
from llmcache.keys import request_key
from llmcache.tiers.redis import RedisTier


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisProcess]:
    proc = RedisProcess(tmp_path)
    proc.start()
    yield proc
    proc.stop()


def req(prompt: str) -> CacheRequest:
    return CacheRequest(model="m", prompt=prompt)


def count_writes(pool: Any) -> list[bytes]:
    """Record the writes (one per round trip) on the connections ``pool`` makes from now on:
    each write's bytes, so a test can tell a GET from a script."""
    sent: list[bytes] = []
    base = pool.connection_class

    def joined(packed: Any) -> bytes:
        return b"".join(packed) if isinstance(packed, list) else bytes(packed)

    if asyncio.iscoroutinefunction(base.send_packed_command):

        class ACounting(base):  # type: ignore[misc,valid-type]
            async def send_packed_command(self, command: Any, *args: Any, **kwargs: Any) -> Any:
                sent.append(joined(command))
                return await super().send_packed_command(command, *args, **kwargs)

        pool.connection_class = ACounting
    else:

        class Counting(base):  # type: ignore[misc,valid-type]
            def send_packed_command(self, command: Any, *args: Any, **kwargs: Any) -> Any:
                sent.append(joined(command))
                return super().send_packed_command(command, *args, **kwargs)

        pool.connection_class = Counting
    pool.reset()  # forget connections of the old class (the tier drops its own, too)
    return sent


def locked(server: RedisProcess, tier: RedisTier, prompt: str) -> bool:
    """Whether the fleet lock of ``prompt`` is held (asked on a client of its own)."""
    with server.client() as admin:
        return bool(admin.exists(tier._flight_key(request_key(req(prompt)))))


def is_plain_get(write: bytes) -> bool:
    return b"\r\nGET\r\n" in write and b"EVAL" not in write


def clients(server: RedisProcess) -> int:
    """Connections open on the server, the one asking excluded."""
    with server.client() as admin:
        return len(admin.client_list()) - 1


def test_a_hit_is_one_round_trip_and_a_miss_that_stores_two(server: RedisProcess) -> None:
    tier = RedisTier.from_url(server.url)
    cache = Cache([tier], fleet_stats=False)  # single-flight across processes: on
    cache.set(req("warm"), "v")
    writes = count_writes(tier._sync().connection_pool)
    assert cache.get(req("warm")) is not None  # connects: the handshake writes too
    writes.clear()
    assert cache.get(req("warm")) is not None
    assert len(writes) == 1
    writes.clear()
    assert cache.get(req("fresh")) is None
    assert locked(server, tier, "fresh")  # the lookup took the lock
    assert cache.set(req("fresh"), "w") is True
    # The read that also takes the fleet lock; the store and the lock's release in one write.
    assert len(writes) == 2
    assert tier.flight_open(request_key(req("fresh"))) is False  # released
    hit = cache.get(req("fresh"))
    assert hit is not None and hit.entry.value == "w"
    cache.close()


def test_after_a_run_of_hits_a_lookup_is_a_plain_get(server: RedisProcess) -> None:
    # Reading and locking in one script costs a hit a little; once lookups mostly hit, a
    # lookup is a GET again, and a miss then takes the lock in a round trip of its own.
    tier = RedisTier.from_url(server.url)
    cache = Cache([tier], fleet_stats=False)
    cache.set(req("hot"), "v")
    writes = count_writes(tier._sync().connection_pool)
    for _ in range(30):
        assert cache.get(req("hot")) is not None
    writes.clear()
    assert cache.get(req("hot")) is not None
    assert len(writes) == 1 and is_plain_get(writes[0])
    writes.clear()
    assert cache.get(req("cold")) is None
    assert locked(server, tier, "cold")  # locked all the same
    assert len(writes) == 2 and is_plain_get(writes[0])  # GET, then SET NX
    assert cache.set(req("cold"), "w") is True
    assert tier.flight_open(request_key(req("cold"))) is False
    for n in range(3):  # misses again: back to reading and locking in one round trip
        assert cache.get(req(f"new{n}")) is None
    writes.clear()
    assert cache.get(req("newest")) is None
    assert len(writes) == 1 and not is_plain_get(writes[0])
    assert locked(server, tier, "newest")
    cache.close()


def test_a_lookup_that_locks_still_reads_from_a_server_that_refuses_writes(
    server: RedisProcess,
) -> None:
    tier = RedisTier.from_url(server.url)
    cache = Cache([tier], fleet_stats=False)
    cache.set(req("kept"), "v")
    with server.client() as admin:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)  # every write is refused (OOM)
        hit = cache.get(req("kept"))  # the script is refused: a plain GET answers
        assert hit is not None and hit.entry.value == "v"
        assert cache.get(req("other")) is None  # a miss, and no exception
        admin.config_set("maxmemory", 0)
    assert cache.stats()["errors_by_tier"].get("redis", 0) >= 1  # the refused lock counted
    cache.close()


async def test_async_hit_and_miss_round_trips(server: RedisProcess) -> None:
    tier = RedisTier.from_url(server.url)
    cache = Cache([tier], fleet_stats=False)
    await cache.aset(req("warm"), "v")
    writes = count_writes(tier._async().connection_pool)
    assert await cache.aget(req("warm")) is not None
    writes.clear()
    assert await cache.aget(req("warm")) is not None
    assert len(writes) == 1
    assert await cache.aget(req("fresh")) is None
    assert await cache.aset(req("fresh"), "w") is True
    assert len(writes) == 3
    assert await tier.aflight_open(request_key(req("fresh"))) is False
    await cache.aclose()


def test_a_failed_store_leaves_the_lock_to_the_cache_to_release(server: RedisProcess) -> None:
    tier = RedisTier.from_url(server.url)
    cache = Cache([tier], fleet_stats=False)
    key = request_key(req("q"))
    assert cache.get(req("q")) is None  # this process holds the fleet lock now
    with server.client() as admin:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)  # every store is refused (OOM)
        assert cache.set(req("q"), "v") is False  # fails open
        admin.config_set("maxmemory", 0)
    assert tier.flight_open(key) is False  # released all the same: waiters do not hang
    cache.close()


def test_a_store_that_does_not_wait_is_sent_at_once_and_read_back_later(
    server: RedisProcess,
) -> None:
    """``set(wait=False)`` (what the adapters do) sends the store and returns: a server that
    stalls does not hold the caller, whose answer is in hand. The store is there once the
    server answers, the fleet lock released with it, and the next call on the connection
    reads the store's replies before its own."""
    tier = RedisTier.from_url(server.url)
    cache = Cache([tier], fleet_stats=False, fleet_invalidation=False)
    assert cache.get(req("q")) is None  # connected; this process holds the fleet lock now
    sleeper = stall(server, 2)  # four times the socket timeout (0.5 s)
    started = time.monotonic()
    try:
        assert cache.set(req("q"), "v", wait=False) is True  # sent
        sent_in = time.monotonic() - started
    finally:
        sleeper.join(10)
    assert sent_in < 0.5  # a store that waited would time out (0.5 s) and fail
    hit = cache.get(req("q"))
    assert hit is not None and hit.entry.value == "v" and hit.tier == "redis"
    assert tier.flight_open(request_key(req("q"))) is False  # released in the same write
    assert cache.stats()["errors_by_tier"].get("redis", 0) == 0  # nothing was out of step
    for i in range(20):  # each lookup reads the replies of the store before it
        cache.set(req(f"n{i}"), f"a{i}", wait=False)
        hit = cache.get(req(f"n{i}"))
        assert hit is not None and hit.entry.value == f"a{i}"
    cache.set(req("last"), "w", wait=False)
    cache.close()  # reads what the connections still owe before giving them back
    assert clients(server) == 0
    other = Cache([RedisTier.from_url(server.url)], fleet_stats=False)
    hit = other.get(req("last"))
    assert hit is not None and hit.entry.value == "w"
    other.close()


class StallsTheServer(Answering):
    """A model whose answer takes the server down for two seconds (DEBUG SLEEP): the store
    that follows meets a stalled Redis."""

    server: Any = None
    sleeper: Any = None

    def _call(self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any) -> str:
        self.sleeper = stall(self.server, 2)
        return super()._call(prompt)


def test_the_langchain_adapter_does_not_wait_for_its_store(server: RedisProcess) -> None:
    """Through ``llm.invoke``: a miss's answer comes back while Redis is stalled, without a
    failure (a store that waited would time out after 0.5 s: an error, and no entry), and the
    next call is a hit from Redis once it answers again."""
    cache = Cache([RedisTier.from_url(server.url)], fleet_stats=False, fleet_invalidation=False)
    llm = StallsTheServer(server=server, cache=LangChainCache(cache))
    started = time.monotonic()
    try:
        assert llm.invoke("q") == "answer to q"
        answered_in = time.monotonic() - started
    finally:
        llm.sleeper.join(10)
    assert answered_in < 1.5, answered_in  # not held until Redis answers again (2 s)
    assert llm.invoke("q") == "answer to q" and llm.calls == 1  # served by Redis
    assert cache.stats()["hits_by_tier"] == {"redis": 1}
    assert cache.stats()["errors_by_tier"].get("redis", 0) == 0
    cache.close()


def test_the_litellm_adapter_does_not_wait_for_its_store(
    server: RedisProcess, ll_install: Callable[..., Any]
) -> None:
    """LiteLLM hands the adapter a finished answer to store (``add_cache``): with Redis
    stalled, the store goes out without an error (one that waited would time out and leave
    no entry), and once Redis answers, the next call is served from it."""
    import litellm

    cache = Cache([RedisTier.from_url(server.url)], fleet_stats=False, fleet_invalidation=False)
    adapter = ll_install(cache)
    asked = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "q"}]}
    answer = litellm.completion(**asked, mock_response="stored", caching=False)
    sleeper = stall(server, 2)
    try:
        adapter.add_cache(answer, **asked)
    finally:
        sleeper.join(10)
    assert cache.stats()["errors_by_tier"].get("redis", 0) == 0
    served = litellm.completion(**asked, mock_response="the model again")
    assert served.choices[0].message.content == "stored"
    assert served._hidden_params["llmcache"]["tier"] == "redis"
    cache.close()


_EXITS_AFTER_STORING = """
import sys
from langchain_llmcache import LangChainCache
from llmcache import Cache, CacheRequest
cache = Cache.from_urls([sys.argv[1]], fleet_stats=False, fleet_invalidation=False)
for i in range(200):  # sent, none waited for; the process then exits without close()
    cache.set(CacheRequest(model="m", prompt=f"q{i}"), f"a{i}", wait=False)
"""


def test_stores_sent_just_before_the_process_exits_are_kept(server: RedisProcess) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _EXITS_AFTER_STORING, server.url], capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    cache = Cache([RedisTier.from_url(server.url)], fleet_stats=False)
    answers = [cache.get(req(f"q{i}")) for i in range(200)]
    assert [None if hit is None else hit.entry.value for hit in answers] == [
        f"a{i}" for i in range(200)
    ]
    cache.close()


def test_a_store_refused_after_it_was_sent_fails_the_next_store(
    server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    tier = RedisTier.from_url(server.url)
    cache = Cache([tier], fleet_stats=False, fleet_invalidation=False)
    assert cache.set(req("kept"), "v") is True
    with server.client() as admin, caplog.at_level(logging.WARNING, logger="llmcache"):
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)  # every store is refused (OOM)
        assert cache.set(req("a"), "x", wait=False) is True  # sent; refused by the server
        hit = cache.get(req("kept"))  # reads the refusal along with its own reply
        assert hit is not None and hit.entry.value == "v"  # in step: its own reply
        assert cache.set(req("b"), "y", wait=False) is False  # the refusal, counted here
        admin.config_set("maxmemory", 0)
    failures = [r.getMessage() for r in caplog.records if "tier redis failed" in r.getMessage()]
    assert len(failures) == 1 and "OutOfMemoryError" in failures[0], failures
    assert cache.stats()["errors_by_tier"]["redis"] == 1
    assert cache.get(req("a")) is None  # never stored
    cache.close()


async def test_an_async_store_that_does_not_wait_is_read_back_and_its_refusal_counted(
    server: RedisProcess,
) -> None:
    tier = RedisTier.from_url(server.url)
    cache = Cache([tier], fleet_stats=False, fleet_invalidation=False)
    assert await cache.aget(req("q")) is None
    assert await cache.aset(req("q"), "v", wait=False) is True
    hit = await cache.aget(req("q"))
    assert hit is not None and hit.entry.value == "v" and hit.tier == "redis"
    assert await tier.aflight_open(request_key(req("q"))) is False
    with server.client() as admin:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)
        assert await cache.aset(req("a"), "x", wait=False) is True
        hit = await cache.aget(req("q"))  # reads the refusal along with its own reply
        assert hit is not None and hit.entry.value == "v"
        assert await cache.aset(req("b"), "y", wait=False) is False
        admin.config_set("maxmemory", 0)
    assert cache.stats()["errors_by_tier"]["redis"] == 1
    assert await cache.aget(req("a")) is None
    await cache.aclose()


def test_sixteen_threads_share_writes_and_each_gets_its_answer(server: RedisProcess) -> None:
    tier = RedisTier.from_url(server.url)
    # No fleet invalidation listener: its subscription would be one more connection.
    cache = Cache([tier], fleet_stats=False, fleet_invalidation=False)
    writes = count_writes(tier._sync().connection_pool)  # before any connection is made
    for i in range(32):
        cache.set(req(f"q{i}"), f"a{i}")
    writes.clear()
    answers: list[list[Any]] = [[] for _ in range(16)]
    barrier = threading.Barrier(16)

    def work(n: int) -> None:
        barrier.wait()
        for i in range(200):
            hit = cache.get(req(f"q{(n + i) % 32}"))
            answers[n].append(None if hit is None else hit.entry.value)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n in range(16):
        assert answers[n] == [f"a{(n + i) % 32}" for i in range(200)]  # each its own answer
    # Calls made while another was on the wire went out together (one write per call before).
    assert len(writes) < 16 * 200
    assert 1 <= clients(server) <= 2  # a caller alone, and the sender of the queue
    cache.close()
    assert clients(server) == 0  # closed with the tier


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """``work(n)`` in ``count`` threads started together; what each returned or raised."""
    results: list[Any] = [None] * count
    barrier = threading.Barrier(count)

    def run(n: int) -> None:
        barrier.wait()
        try:
            results[n] = work(n)
        except Exception as exc:
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive(), "a caller never got its reply"
    return results


def test_an_error_reply_in_a_threads_shared_write_fails_only_its_own_call(
    server: RedisProcess,
) -> None:
    tier = RedisTier.from_url(server.url)
    keys = [request_key(req(f"q{i}")) for i in range(16)]
    for i, key in enumerate(keys):
        tier.set(key, *entry_of(f"a{i}"))
    with server.client() as admin:  # the entry's key now holds a list: GET gets WRONGTYPE
        admin.delete(tier.entry_key(keys[7]))
        admin.rpush(tier.entry_key(keys[7]), "x")
    writes = count_writes(tier._sync().connection_pool)
    for _ in range(20):  # rounds of 16 callers at once: most share writes
        results = in_threads(16, lambda n: tier.get(keys[n], 0.0))
        for n, result in enumerate(results):
            if n == 7:  # its own error reply (WRONGTYPE), read as a value that is not ours
                assert result == b""
            else:
                assert result == b"a%d" % n  # its own entry
    assert len(writes) < 20 * 16
    tier.close()


def test_threads_queued_behind_a_stalled_server_fail_open_and_recover(
    server: RedisProcess,
) -> None:
    """Callers queued behind an exchange that times out are not left waiting for the server:
    each batch fails with its own timeout (0.5 s), the callers get a TierError, and once the
    server answers again every caller gets its own entry."""
    tier = RedisTier.from_url(server.url)
    keys = [request_key(req(f"q{i}")) for i in range(16)]
    for i, key in enumerate(keys):
        tier.set(key, *entry_of(f"a{i}"))
    sleeper = stall(server, 5)  # longer than every batch's timeout, however they fall

    def timed(n: int) -> tuple[float, Any]:
        started = time.monotonic()
        try:
            outcome: Any = tier.get(keys[n], 0.0)
        except TierError as exc:
            outcome = exc
        return time.monotonic() - started, outcome

    try:
        results = in_threads(16, timed)
    finally:
        sleeper.join(10)
    for waited, outcome in results:
        assert isinstance(outcome, TierError) and "Timeout" in str(outcome), outcome
        # Its batch's timeout after at most the one before it (0.5 s each), not the stall.
        assert waited < 4.0
    results = in_threads(16, lambda n: tier.get(keys[n], 0.0))
    assert results == [b"a%d" % n for n in range(16)]
    tier.close()


def entry_of(value: str) -> tuple[Any, bytes, float]:
    """(entry, payload, now) for ``RedisTier.set``: the payload ends with ``value``."""
    from llmcache.entry import CacheEntry

    return CacheEntry(value=value, created_at=0.0), value.encode(), 0.0


async def test_concurrent_tasks_share_writes_and_each_gets_its_answer(
    server: RedisProcess,
) -> None:
    tier = RedisTier.from_url(server.url)
    cache = Cache([tier], fleet_stats=False)
    for i in range(64):
        await cache.aset(req(f"q{i}"), f"a{i}")
    writes = count_writes(tier._async().connection_pool)

    async def lookup(i: int) -> Any:
        hit = await cache.aget(req(f"q{i}"))
        return None if hit is None else hit.entry.value

    answers = await asyncio.gather(*(lookup(i) for i in range(64)))
    assert answers == [f"a{i}" for i in range(64)]
    assert len(writes) < 64  # queued calls went out together
    assert clients(server) <= 3  # not one connection per task
    await cache.aclose()


async def test_an_error_reply_in_a_shared_write_fails_only_its_own_call(
    server: RedisProcess,
) -> None:
    tier = RedisTier.from_url(server.url)
    cache = Cache([tier], fleet_stats=False)
    for i in range(20):
        await cache.aset(req(f"q{i}"), f"a{i}")
    broken = request_key(req("q7"))
    with server.client() as admin:  # the entry's key now holds a list: GET gets WRONGTYPE
        admin.delete(tier.entry_key(broken))
        admin.rpush(tier.entry_key(broken), "x")
    results = await asyncio.gather(
        *(tier.aget(request_key(req(f"q{i}")), 0.0) for i in range(20)), return_exceptions=True
    )
    for i, result in enumerate(results):
        if i == 7:  # its own error reply (WRONGTYPE), read as a value that is not ours
            assert result == b""
        else:
            assert isinstance(result, bytes) and result  # its own entry, read fine
    hit = await cache.aget(req("q3"))
    assert hit is not None and hit.entry.value == "a3"  # the connection stayed in step
    await cache.aclose()


_forked_cache: Cache | None = None  # set before the fork: the child inherits it


def _child_reads(prompts: list[str], out: Any) -> None:
    cache = _forked_cache  # the parent's, with the connection it holds
    assert cache is not None
    out.put(read_all(cache, prompts))


def read_all(cache: Cache, prompts: list[str]) -> list[tuple[str, Any]]:
    answers: list[tuple[str, Any]] = []
    for prompt in prompts:
        hit = cache.get(req(prompt))
        answers.append((prompt, None if hit is None else hit.entry.value))
    return answers


def test_a_forked_child_never_shares_the_parents_connections(server: RedisProcess) -> None:
    global _forked_cache
    tier = RedisTier.from_url(server.url)
    cache = _forked_cache = Cache([tier], fleet_stats=False)
    prompts = [f"q{i}" for i in range(100)]
    for p in prompts:
        cache.set(req(p), f"answer {p}")
    assert cache.get(req("q0")) is not None  # the parent holds a connection now
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_child_reads, args=(prompts, out))
    child.start()
    mine = read_all(cache, prompts)
    theirs = out.get(timeout=30)
    child.join(timeout=30)
    expected = [(p, f"answer {p}") for p in prompts]
    assert mine == expected and theirs == expected  # no reply read by the wrong process
    _forked_cache = None
    cache.close()


def test_commands_packed_in_c_are_the_bytes_redis_py_would_send() -> None:
    import redis

    from llmcache.tiers import redis_direct

    conn = redis.Connection()  # never connected: only its packer is used
    commands = [
        ("GET", "llmcache:{ab}:e:01"),
        ("SET", "k", b"\x00\xffbinary\r\n", "PX", 1500),
        ("EVAL", "return redis.call('GET', KEYS[1])", 1, "k"),
        ("SET", "f", "token", "NX", "PX", 30000),
    ]
    assert redis_direct._hiredis_pack is not None  # the `redis` extra installs hiredis
    ours = b"".join(redis_direct._pack(conn, commands))
    assert ours == b"".join(conn.pack_commands(commands))
    assert b"".join(redis_direct._pack(conn, commands[:1])) == b"".join(
        conn.pack_command(*commands[0])
    )


def test_without_hiredis_redis_py_packs_them(
    server: RedisProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmcache.tiers import redis_direct

    monkeypatch.setattr(redis_direct, "_hiredis_pack", None)
    cache = Cache([RedisTier.from_url(server.url)], fleet_stats=False)
    assert cache.get(req("q")) is None  # the lookup that also takes the lock
    assert cache.set(req("q"), "v") is True  # the store and the release in one write
    hit = cache.get(req("q"))
    assert hit is not None and hit.entry.value == "v"
    cache.close()
