"""RedisVLIndex on a real Redis Stack (127.0.0.1:6380, started by scripts/services.sh): search
inside a partition, native and clock expiry, delete, scoped clear that touches only our keys,
sync == async, persistence across instances, and clear errors where it cannot work."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
import redis
from conftest import REDIS_URL, drop_redis_stack_prefix, exact_ttl, require_server

from llmcache.clock import FakeClock
from llmcache.errors import ConfigError, TierError
from llmcache.keys import CacheKey
from llmcache.semantic import redisvl_index as module
from llmcache.semantic.index import Candidate, IndexedEntry, VectorIndex
from llmcache.semantic.redisvl_index import RedisVLIndex, parse_redisvl_url

DIM = 8
SCOPE_A = b"A" * 16
SCOPE_B = b"B" * 16
MODEL = b"m" * 16
NAMESPACE = b"n" * 16
PART_1 = b"1" * 16
PART_2 = b"2" * 16


def unit(*values: float) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(values)] = values
    return (v / np.linalg.norm(v)).astype(np.float32)


def entry(
    n: int,
    vector: np.ndarray,
    *,
    partition: bytes = PART_1,
    scope: bytes = SCOPE_A,
    text: str | None = None,
    expires_at: float | None = None,
) -> IndexedEntry:
    key = CacheKey(n.to_bytes(32, "big"), scope, MODEL, NAMESPACE)
    return IndexedEntry(key, partition, vector, text or f"question {n}", expires_at)


def stack_url_of(redis_stack_url: str, prefix: str, **options: str) -> str:
    base = redis_stack_url.replace("redis://", "redisvl://", 1)
    query = "&".join([f"prefix={prefix}", *(f"{k}={v}" for k, v in options.items())])
    return f"{base}?{query}"


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def raw(redis_stack_url: str, prefix: str) -> Iterator[redis.Redis]:
    """A plain client on Redis Stack; afterwards every index and key under ``prefix`` goes."""
    client = redis.Redis.from_url(redis_stack_url)
    yield client
    client.close()
    drop_redis_stack_prefix(redis_stack_url, f"{prefix}:")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def index(redis_stack_url: str, prefix: str, raw: redis.Redis, clock: FakeClock) -> Iterator[Any]:
    idx = RedisVLIndex.from_url(stack_url_of(redis_stack_url, prefix), dim=DIM, clock=clock)
    yield idx
    idx.close()


@pytest.fixture
async def aindex(
    redis_stack_url: str, prefix: str, raw: redis.Redis, clock: FakeClock
) -> AsyncIterator[Any]:
    idx = RedisVLIndex.from_url(stack_url_of(redis_stack_url, prefix), dim=DIM, clock=clock)
    yield idx
    await idx.aclose()


def texts(found: list[Candidate]) -> list[str]:
    return [c.text for c in found]


# ---------------------------------------------------------------------------- search
def test_search_returns_the_closest_entries_best_first_with_their_keys(
    index: Any, clock: FakeClock
) -> None:
    assert isinstance(index, VectorIndex)
    close, far = entry(1, unit(1, 0.2), text="close"), entry(2, unit(1, 1), text="far")
    index.add(far)
    index.add(close)
    found = index.search(PART_1, unit(1, 0.1), 5, clock())
    assert texts(found) == ["close", "far"]
    assert found[0].key == close.key  # digest, scope, model, namespace all round-trip
    expected = float(unit(1, 0.1) @ unit(1, 0.2))
    assert found[0].similarity == pytest.approx(expected, abs=1e-5)
    assert found[0].similarity > found[1].similarity
    assert len(index.search(PART_1, unit(1, 0.1), 1, clock())) == 1


def test_a_closer_vector_in_another_partition_is_neither_returned_nor_hides_ours(
    index: Any, clock: FakeClock
) -> None:
    query = unit(1, 0, 0, 0.05)
    for n in range(10):  # exact copies of the query, in the other partition
        index.add(entry(100 + n, query, partition=PART_2, text=f"other {n}"))
    ours = entry(1, unit(1, 0.6), text="ours")
    index.add(ours)
    found = index.search(PART_1, query, 1, clock())
    assert texts(found) == ["ours"]
    assert found[0].similarity < 0.9
    assert len(index.search(PART_2, query, 3, clock())) == 3
    assert index.search(b"3" * 16, query, 3, clock()) == []


def test_a_large_partition_is_searched_in_hnsw_batches_with_the_same_answer(
    index: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((40, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for n, v in enumerate(vectors):
        index.add(entry(n, v, text=f"q{n}"))
    index.add(entry(999, unit(1), partition=PART_2, text="foreign"))
    query = vectors[3] + 0.01 * rng.standard_normal(DIM).astype(np.float32)
    query /= np.linalg.norm(query)
    first = index.search(PART_1, query, 3, clock())  # counts the partition (40) and all (41)
    assert index._batches(PART_1) == (False, [])  # 40 <= ADHOC_MAX: RediSearch decides
    monkeypatch.setattr(module, "ADHOC_MAX", 10)
    assert index._batches(PART_1) == (True, [])  # > 10 and at least a tenth of the index
    assert "HYBRID_POLICY BATCHES" in index._search_command(PART_1, query, 3, clock(), True)[2]
    second = index.search(PART_1, query, 3, clock())
    assert texts(first)[0] == texts(second)[0] == "q3"
    index.search(PART_2, query, 3, clock())
    assert index._batches(PART_2) == (False, [])  # 1 vector: brute force is cheaper
    assert "foreign" not in texts(second)


def test_an_entry_added_again_replaces_the_first(index: Any, clock: FakeClock) -> None:
    index.add(entry(1, unit(1), text="old"))
    index.add(entry(1, unit(0, 1), text="new"))
    found = index.search(PART_1, unit(0, 1), 5, clock())
    assert texts(found) == ["new"]
    assert found[0].similarity == pytest.approx(1.0, abs=1e-5)


def test_bad_vectors_and_k_are_clear_errors(index: Any, clock: FakeClock) -> None:
    with pytest.raises(ConfigError, match=r"shape \(3,\), expected \(8,\)"):
        index.add(entry(1, np.ones(3, dtype=np.float32)))
    with pytest.raises(ConfigError, match="NaN"):
        index.add(entry(1, np.full(DIM, np.nan, dtype=np.float32)))
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        index.search(PART_1, unit(1), 0, clock())


# ---------------------------------------------------------------------------- expiry
def test_expiry_is_native_and_checked_against_the_callers_clock(
    index: Any, raw: redis.Redis, clock: FakeClock
) -> None:
    added = entry(1, unit(1), expires_at=clock() + 10)
    index.add(added)
    index.add(entry(2, unit(1, 0.1), text="forever"))
    key = index.key_of(added.key.digest)
    assert 0 < raw.pttl(key) <= 10_000  # Redis drops it by itself
    assert raw.pttl(index.key_of(entry(2, unit(1)).key.digest)) == -1
    assert texts(index.search(PART_1, unit(1), 5, clock() + 9)) == ["question 1", "forever"]
    # Expired by the caller's clock while Redis still holds it: not served, and the
    # expired entry does not take one of the k places either.
    assert texts(index.search(PART_1, unit(1), 1, clock() + 10)) == ["forever"]


def test_without_a_clock_the_ttl_follows_the_now_of_the_searches(
    redis_stack_url: str, prefix: str, raw: redis.Redis
) -> None:
    fake = FakeClock()  # years behind Redis's clock
    idx = RedisVLIndex.from_url(stack_url_of(redis_stack_url, prefix), dim=DIM)
    try:
        assert idx.search(PART_1, unit(1), 1, fake()) == []  # the cache looks up first
        idx.add(entry(1, unit(1), expires_at=fake() + 10))
        assert 0 < raw.pttl(idx.key_of(entry(1, unit(1)).key.digest)) <= 10_000
        assert texts(idx.search(PART_1, unit(1), 1, fake() + 9)) == ["question 1"]
    finally:
        idx.close()


def test_an_entry_already_expired_is_not_stored_and_removes_an_older_one(
    index: Any, raw: redis.Redis, clock: FakeClock
) -> None:
    index.add(entry(1, unit(1), text="old"))
    index.add(entry(1, unit(1), text="new", expires_at=clock() - 1))
    assert not raw.exists(index.key_of(entry(1, unit(1)).key.digest))
    assert index.search(PART_1, unit(1), 5, clock()) == []


def test_adding_again_without_expiry_drops_the_old_ttl(
    index: Any, raw: redis.Redis, clock: FakeClock
) -> None:
    index.add(entry(1, unit(1), expires_at=clock() + 10))
    index.add(entry(1, unit(1)))
    assert raw.pttl(index.key_of(entry(1, unit(1)).key.digest)) == -1
    assert texts(index.search(PART_1, unit(1), 5, clock() + 100)) == ["question 1"]


# ---------------------------------------------------------------------------- delete / clear
def test_delete_removes_those_vectors_only(index: Any, clock: FakeClock) -> None:
    for n in range(3):
        index.add(entry(n, unit(1, n / 10)))
    gone = [entry(0, unit(1)).key.digest, entry(2, unit(1)).key.digest, b"\x07" * 32]
    assert index.delete(gone) == 2
    assert texts(index.search(PART_1, unit(1), 5, clock())) == ["question 1"]
    assert index.delete([]) == 0


def test_clear_scope_leaves_other_scopes_other_indexes_and_foreign_keys(
    redis_stack_url: str, prefix: str, index: Any, raw: redis.Redis, clock: FakeClock
) -> None:
    raw.set("other:thing", "keep")
    try:
        neighbour = RedisVLIndex.from_url(
            stack_url_of(redis_stack_url, prefix, index="neighbour"), dim=DIM, clock=clock
        )
        neighbour.add(entry(1, unit(1), scope=SCOPE_A, text="neighbour's"))
        for n in range(3):
            index.add(entry(n, unit(1, n / 10), scope=SCOPE_A, text=f"a{n}"))
        index.add(entry(10, unit(1), scope=SCOPE_B, partition=PART_2, text="b"))
        assert index.clear(SCOPE_A) == 3
        assert index.search(PART_1, unit(1), 5, clock()) == []
        assert texts(index.search(PART_2, unit(1), 5, clock())) == ["b"]
        assert texts(neighbour.search(PART_1, unit(1), 5, clock())) == ["neighbour's"]
        assert index.clear(None) == 1
        assert index.search(PART_2, unit(1), 5, clock()) == []
        assert texts(neighbour.search(PART_1, unit(1), 5, clock())) == ["neighbour's"]
        assert raw.get("other:thing") == b"keep"
        neighbour.close()
    finally:
        raw.delete("other:thing")


def test_clear_scope_removes_more_than_one_batch(
    index: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "CLEAR_BATCH", 4)
    monkeypatch.setattr(module, "UNLINK_BATCH", 3)
    for n in range(11):
        index.add(entry(n, unit(1, n / 10)))
    assert index.clear(SCOPE_A) == 11
    assert index.search(PART_1, unit(1), 20, clock()) == []
    for n in range(7):
        index.add(entry(n, unit(1, n / 10)))
    assert index.delete([entry(n, unit(1)).key.digest for n in range(7)]) == 7
    assert index.search(PART_1, unit(1), 20, clock()) == []


# ---------------------------------------------------------------------------- async
async def test_async_path_gives_the_sync_answers(index: Any, aindex: Any, clock: FakeClock) -> None:
    for n in range(4):
        await aindex.aadd(entry(n, unit(1, n / 5), text=f"x{n}"))
    await aindex.aadd(entry(50, unit(1), partition=PART_2, scope=SCOPE_B, text="other"))
    query = unit(1, 0.3)
    for k in (1, 3, 10):
        sync_found = index.search(PART_1, query, k, clock())
        async_found = await aindex.asearch(PART_1, query, k, clock())
        assert [(c.key, c.text) for c in async_found] == [(c.key, c.text) for c in sync_found]
        assert [c.similarity for c in async_found] == pytest.approx(
            [c.similarity for c in sync_found]
        )
    assert await aindex.adelete([entry(0, query).key.digest]) == 1
    assert texts(await aindex.asearch(PART_1, unit(1), 10, clock())) == ["x1", "x2", "x3"]
    assert await aindex.aclear(SCOPE_A) == 3
    assert texts(index.search(PART_2, unit(1), 10, clock())) == ["other"]
    assert await aindex.aclear(None) == 1
    assert index.search(PART_2, unit(1), 10, clock()) == []


# ---------------------------------------------------------------------------- lifecycle
def test_vectors_persist_across_new_instances(
    redis_stack_url: str, prefix: str, index: Any, clock: FakeClock
) -> None:
    index.add(entry(1, unit(1), text="kept"))
    index.close()
    again = RedisVLIndex.from_url(stack_url_of(redis_stack_url, prefix), dim=DIM, clock=clock)
    try:
        assert texts(again.search(PART_1, unit(1), 5, clock())) == ["kept"]
    finally:
        again.close()


def test_an_existing_index_of_another_dim_is_a_clear_error(
    redis_stack_url: str, prefix: str, index: Any, clock: FakeClock
) -> None:
    index.add(entry(1, unit(1)))
    other = RedisVLIndex.from_url(stack_url_of(redis_stack_url, prefix), dim=DIM * 2)
    try:
        with pytest.raises(ConfigError, match=r"holds 8-d vectors, but this embedder makes 16-d"):
            other.search(PART_1, np.ones(DIM * 2, dtype=np.float32), 1, clock())
    finally:
        other.close()


def test_a_passed_client_is_used_and_left_open(
    redis_stack_url: str, prefix: str, raw: redis.Redis, clock: FakeClock
) -> None:
    client = redis.Redis.from_url(redis_stack_url, protocol=2)  # RESP2 replies read too
    idx = RedisVLIndex(dim=DIM, client=client, prefix=prefix, clock=clock)
    idx.add(entry(1, unit(1), text="via client"))
    assert texts(idx.search(PART_1, unit(1), 5, clock())) == ["via client"]
    assert idx.clear(SCOPE_A) == 1
    idx.close()
    assert client.ping()  # still the caller's, still open
    client.close()


async def test_an_async_client_derived_from_a_passed_one_is_ours_to_close(
    redis_stack_url: str, prefix: str, raw: redis.Redis, clock: FakeClock
) -> None:
    client = redis.Redis.from_url(redis_stack_url)
    idx = RedisVLIndex(dim=DIM, client=client, prefix=prefix, clock=clock)
    await idx.aadd(entry(1, unit(1), text="async via client"))
    assert texts(await idx.asearch(PART_1, unit(1), 5, clock())) == ["async via client"]
    derived = idx._conn._async()
    assert derived is not client
    await idx.aclose()
    assert client.ping()
    assert idx._conn._aclients == {}  # the derived one was closed and forgotten
    client.close()


# ---------------------------------------------------------------------------- failures
def test_plain_redis_without_the_search_module_is_a_clear_error(clock: FakeClock) -> None:
    url = require_server("Redis", REDIS_URL).replace("redis://", "redisvl://", 1)
    idx = RedisVLIndex.from_url(url + "?prefix=tnosearch", dim=DIM)
    try:
        with pytest.raises(ConfigError, match="has no search module") as info:
            idx.search(PART_1, unit(1), 1, clock())
        assert "Redis Stack" in str(info.value)
        with pytest.raises(ConfigError, match="has no search module"):
            idx.add(entry(1, unit(1)))
    finally:
        idx.close()


async def test_an_unreachable_server_raises_tier_errors_naming_it(clock: FakeClock) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    idx = RedisVLIndex.from_url(f"redisvl://127.0.0.1:{port}", dim=DIM)
    try:
        with pytest.raises(TierError, match=f"127.0.0.1:{port}"):
            idx.search(PART_1, unit(1), 1, clock())
        with pytest.raises(TierError, match=f"127.0.0.1:{port}"):
            await idx.asearch(PART_1, unit(1), 1, clock())
        with pytest.raises(TierError, match=f"127.0.0.1:{port}"):
            idx.delete([b"\x01" * 32])
    finally:
        await idx.aclose()


# ---------------------------------------------------------------------------- URLs
def test_url_options_and_the_tiers_own_options() -> None:
    url, options = parse_redisvl_url(
        "redisvl://127.0.0.1:6380/2?threshold=0.9&k=4&embedder=minilm&verify=off"
        "&prefix=p&index=i&algorithm=flat&socket_timeout=2"
    )
    assert url == "redis://127.0.0.1:6380/2?socket_timeout=2"
    assert options == {"prefix": "p", "index": "i", "algorithm": "flat"}
    assert parse_redisvl_url("redisvls://h:1")[0] == "rediss://h:1/0"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redisvl://127.0.0.1:6380?thresholds=0.9", "unknown option 'thresholds'"),
        ("redisvl://127.0.0.1:6380?verify_mode=x", "unknown option 'verify_mode'"),
        ("redisvl://127.0.0.1:6380?prefix=a&prefix=b", "given twice"),
        ("redis://127.0.0.1:6380", "unsupported scheme 'redis'"),
        ("redisvl:///nohost", "names no host"),
        ("redisvl://127.0.0.1:6380/x", "database number"),
        ("redisvl://127.0.0.1:6380?prefix=a*b", "prefix 'a\\*b' is not allowed"),
        ("redisvl://127.0.0.1:6380?index=a:b", "index name 'a:b' is not allowed"),
        ("redisvl://127.0.0.1:6380?algorithm=ivf", "algorithm must be one of"),
    ],
)
def test_bad_urls_are_clear_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RedisVLIndex.from_url(url, dim=DIM)


def test_a_cluster_client_is_refused(redis_cluster_url: str) -> None:
    from redis.cluster import RedisCluster

    client = RedisCluster.from_url(redis_cluster_url.replace("redis+cluster://", "redis://"))
    try:
        with pytest.raises(ConfigError, match="Cluster client is not supported"):
            RedisVLIndex(dim=DIM, client=client)
    finally:
        client.close()


def test_an_index_dropped_under_us_fails_one_call_then_is_created_again(
    index: Any, raw: redis.Redis, clock: FakeClock
) -> None:
    index.add(entry(1, unit(1), text="before"))
    raw.execute_command("FT.DROPINDEX", index.index_name)  # keys stay; the index goes
    with pytest.raises(TierError):
        index.search(PART_1, unit(1), 5, clock())
    found = index.search(PART_1, unit(1), 5, clock())  # recreated (it rescans our keys)
    assert texts(found) in ([], ["before"])
    index.add(entry(2, unit(0, 1), text="after"))
    assert "after" in texts(index.search(PART_1, unit(0, 1), 5, clock()))


# ---------------------------------------------------------------------------- through the Cache
# The semantic tier on redisvl, as a user builds it: Cache.from_urls(..., semantic="redisvl://").
ASKED = "How do I reset my password?"
PARAPHRASE = "How can I reset my password?"


def ask(text: str, **fields: Any) -> Any:
    from llmcache.request import CacheRequest

    return CacheRequest(
        **{"model": "gpt-x", "prompt": [None, text], "semantic_text": text, **fields}
    )


@pytest.fixture
def redisvl_cache(
    redis_stack_url: str, prefix: str, raw: redis.Redis, minilm: object, fake_clock: FakeClock
) -> Iterator[Any]:
    """A Cache (memory) with the redisvl semantic tier under ``prefix``, plain cosine at 0.8,
    MiniLM, on the fake clock."""
    from llmcache import Cache
    from llmcache.semantic.verifier import AcceptAll

    cache = Cache.from_urls(
        ["memory://"],
        semantic=stack_url_of(redis_stack_url, prefix, threshold="0.8"),
        embedder=minilm,
        verifier=AcceptAll(),
        clock=fake_clock,
        policy=exact_ttl(),
    )
    yield cache
    cache.close()


def test_through_the_cache_a_paraphrase_is_a_semantic_hit_in_its_scope_only(
    redisvl_cache: Any,
) -> None:
    from llmcache.request import Scope

    alice, bob = Scope.of(user="alice"), Scope.of(user="bob")
    assert redisvl_cache.get(ask(ASKED, scope=alice)) is None
    assert redisvl_cache.set(ask(ASKED, scope=alice), "use the reset link")
    hit = redisvl_cache.get(ask(PARAPHRASE, scope=alice))
    assert hit is not None
    assert (hit.match, hit.entry.value) == ("semantic", "use the reset link")
    assert hit.similarity is not None and 0.8 <= hit.similarity < 1.0
    assert redisvl_cache.get(ask(PARAPHRASE, scope=bob)) is None


def test_through_the_cache_an_entry_with_a_ttl_is_stored_and_expires_on_the_fake_clock(
    redisvl_cache: Any, raw: redis.Redis, prefix: str, fake_clock: FakeClock
) -> None:
    # The fake clock is years behind Redis's: the native TTL must follow the cache's clock
    # (learned from the lookups' ``now``), or the vector would expire the moment it is stored.
    assert redisvl_cache.get(ask(ASKED)) is None
    assert redisvl_cache.set(ask(ASKED), "answer", ttl=60)
    keys = list(raw.scan_iter(match=f"{prefix}:vec:*"))
    assert len(keys) == 1
    assert 0 < raw.pttl(keys[0]) <= 60_000
    assert redisvl_cache.get(ask(PARAPHRASE)) is not None
    fake_clock.advance(61)
    assert redisvl_cache.get(ask(PARAPHRASE)) is None


async def test_through_the_cache_async_gives_the_sync_answers_and_clear_removes_vectors(
    redisvl_cache: Any, raw: redis.Redis, prefix: str
) -> None:
    assert await redisvl_cache.aget(ask(ASKED)) is None
    await redisvl_cache.aset(ask(ASKED), "answer")
    hit = await redisvl_cache.aget(ask(PARAPHRASE))
    assert hit is not None and hit.match == "semantic"
    assert await redisvl_cache.aget(ask("What is the capital of France?")) is None
    sync = redisvl_cache.get(ask(PARAPHRASE))
    assert sync is not None and sync.similarity == pytest.approx(hit.similarity)
    await redisvl_cache.aclear()
    assert list(raw.scan_iter(match=f"{prefix}:vec:*")) == []
    await redisvl_cache.aclose()


async def test_a_busy_event_loop_is_not_a_redis_stack_outage(
    aindex: Any, raw: redis.Redis, clock: FakeClock
) -> None:
    """redisvl's commands go through redis-py, whose read timeout (0.5 s) also counts time the
    event loop spends on other work. With the server paused 150 ms (CLIENT PAUSE, so each
    command waits) and the loop busy from 50 to 850 ms, an add, a search and a read of texts
    still answer (each is tried once more), instead of failing as if Redis were down."""
    await aindex.aadd(entry(1, unit(1, 0.2), text="close"))  # connects, creates the index
    loop = asyncio.get_running_loop()

    def pause_and_keep_the_loop_busy() -> None:
        raw.execute_command("CLIENT", "PAUSE", 150, "ALL")
        loop.call_later(0.05, time.sleep, 0.8)

    pause_and_keep_the_loop_busy()
    await aindex.aadd(entry(2, unit(1, 1), text="far"))
    pause_and_keep_the_loop_busy()
    assert texts(await aindex.asearch(PART_1, unit(1, 0.1), 5, clock())) == ["close", "far"]
    pause_and_keep_the_loop_busy()
    digest = (1).to_bytes(32, "big")
    assert await aindex.atexts([digest]) == {digest: (PART_1, "close")}


async def test_texts_give_each_held_entrys_partition_and_text(index: Any, aindex: Any) -> None:
    index.add(entry(1, unit(1.0), text="How do I reset my password?"))
    index.add(entry(2, unit(0.0, 1.0), partition=PART_2, scope=SCOPE_B))
    wanted = [n.to_bytes(32, "big") for n in (1, 2, 3)]  # 3 was never added
    expected = {
        wanted[0]: (PART_1, "How do I reset my password?"),
        wanted[1]: (PART_2, "question 2"),
    }
    assert index.texts(wanted) == expected
    assert await aindex.atexts(wanted) == expected
    index.delete([wanted[0]])
    assert index.texts(wanted) == {wanted[1]: (PART_2, "question 2")}


# ---------------------------------------------------------------------------- embedder names
def test_an_index_holds_one_embedders_vectors(
    redis_stack_url: str, prefix: str, index: Any, raw: redis.Redis, clock: FakeClock
) -> None:
    index.bind_embedder("model-a")
    index.add(entry(1, unit(1), text="kept"))
    assert raw.get(f"{prefix}:vecstamp:semantic") == b"model-a"
    other = RedisVLIndex.from_url(stack_url_of(redis_stack_url, prefix), dim=DIM, clock=clock)
    try:
        other.bind_embedder("model-b")  # checked on first use: no round trip at start-up
        with pytest.raises(ConfigError, match="holds the vectors of embedder 'model-a'") as info:
            other.search(PART_1, unit(1), 1, clock())
        assert "'model-b'" in str(info.value) and "llmcache reindex" in str(info.value)
        with pytest.raises(ConfigError, match="embedder 'model-a'"):  # every call, not once
            other.add(entry(2, unit(2)))
        assert raw.get(f"{prefix}:vecstamp:semantic") == b"model-a"
        assert texts(index.search(PART_1, unit(1), 5, clock())) == ["kept"]  # nothing lost
        index.clear(None)  # empty now: any embedder may start it
        other.bind_embedder("model-b")
        other.add(entry(2, unit(2), text="new"))
        assert raw.get(f"{prefix}:vecstamp:semantic") == b"model-b"
    finally:
        other.close()


async def test_the_async_path_refuses_another_embedders_index(
    redis_stack_url: str, prefix: str, index: Any, aindex: Any, clock: FakeClock
) -> None:
    index.bind_embedder("model-a")
    index.add(entry(1, unit(1)))
    aindex.bind_embedder("model-b")
    with pytest.raises(ConfigError, match="embedder 'model-a'"):
        await aindex.asearch(PART_1, unit(1), 1, clock())


def test_vectors_stored_before_indexes_named_their_embedder_are_refused(
    index: Any, clock: FakeClock
) -> None:
    index.add(entry(1, unit(1)))  # unbound, as earlier versions stored them
    index.bind_embedder("model-a")
    with pytest.raises(ConfigError, match="unnamed embedder"):
        index.search(PART_1, unit(1), 1, clock())


def test_reembed_replaces_every_vector_and_names_the_embedder(
    redis_stack_url: str, prefix: str, index: Any, raw: redis.Redis, clock: FakeClock
) -> None:
    index.bind_embedder("model-a")
    for n in (1, 2, 3):
        index.add(entry(n, unit(n, 1), text=f"q {n}"))
    raw.set(f"{prefix}:vec:semantic:foreign", "not ours")  # no text field: left alone

    def embed(found: list[str]) -> np.ndarray:
        return np.stack([unit(1, 0, int(t.split()[1])) for t in found])

    batches: list[int] = []
    assert index.reembed(embed, "model-b", batch=2, progress=batches.append) == 3
    assert sorted(batches) == [1, 2]
    assert raw.get(f"{prefix}:vecstamp:semantic") == b"model-b"
    assert raw.get(f"{prefix}:vec:semantic:foreign") == b"not ours"
    best = index.search(PART_1, unit(1, 0, 2), 1, clock())[0]
    assert best.text == "q 2" and best.similarity == pytest.approx(1.0, abs=1e-5)
    again = RedisVLIndex.from_url(stack_url_of(redis_stack_url, prefix), dim=DIM, clock=clock)
    try:
        again.bind_embedder("model-b")
        assert texts(again.search(PART_1, unit(1, 0, 3), 1, clock())) == ["q 3"]
    finally:
        again.close()


#: The recheck period in these tests: long enough that a refused call right after a reindex
#: is still within it on a loaded machine.
RECHECK = 1.0


def upgrade(app: RedisVLIndex, index: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``app`` upgraded to embedder model-b before the index (model-a's, one entry "q 1",
    stored through ``index``) was re-embedded."""
    monkeypatch.setattr(module, "STAMP_RECHECK", RECHECK)
    index.bind_embedder("model-a")
    index.add(entry(1, unit(1, 0), text="q 1"))
    app.bind_embedder("model-b")


def test_a_running_process_follows_a_reindex_without_a_restart(
    redis_stack_url: str,
    prefix: str,
    index: Any,
    raw: redis.Redis,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = RedisVLIndex.from_url(stack_url_of(redis_stack_url, prefix), dim=DIM, clock=clock)
    try:
        upgrade(app, index, monkeypatch)
        with pytest.raises(ConfigError, match="embedder 'model-a'"):
            app.search(PART_1, unit(1, 0), 1, clock())
        # The operator re-embeds the index for model-b (llmcache reindex, another process).
        assert index.reembed(lambda found: np.stack([unit(0, 1)] * len(found)), "model-b") == 1
        with pytest.raises(ConfigError):  # remembered: no round trip per refused call
            app.search(PART_1, unit(0, 1), 1, clock())
        time.sleep(RECHECK + 0.1)
        assert texts(app.search(PART_1, unit(0, 1), 1, clock())) == ["q 1"]  # no restart

        # And the other way: the index is re-embedded for model-c under the running app,
        # which then stops searching and adding (never mixes two embedders' vectors).
        index.reembed(lambda found: np.stack([unit(1, 1)] * len(found)), "model-c")
        time.sleep(RECHECK + 0.1)
        with pytest.raises(ConfigError, match="holds the vectors of embedder 'model-c'"):
            app.search(PART_1, unit(0, 1), 1, clock())
        with pytest.raises(ConfigError, match="embedder 'model-c'"):
            app.add(entry(2, unit(0, 1)))
        assert raw.get(f"{prefix}:vecstamp:semantic") == b"model-c"
        assert len(list(raw.scan_iter(match=f"{prefix}:vec:semantic:*"))) == 1  # q 1 alone
    finally:
        app.close()


async def test_the_async_path_follows_a_reindex_too(
    index: Any, aindex: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade(aindex, index, monkeypatch)
    with pytest.raises(ConfigError, match="embedder 'model-a'"):
        await aindex.asearch(PART_1, unit(1, 0), 1, clock())
    index.reembed(lambda found: np.stack([unit(0, 1)] * len(found)), "model-b")
    await asyncio.sleep(RECHECK + 0.1)
    assert texts(await aindex.asearch(PART_1, unit(0, 1), 1, clock())) == ["q 1"]


def test_through_the_cache_another_embedders_index_fails_open(
    redis_stack_url: str, prefix: str, raw: redis.Redis, minilm: Any, fake_clock: FakeClock
) -> None:
    from llmcache import Cache
    from llmcache.semantic.verifier import AcceptAll

    url = stack_url_of(redis_stack_url, prefix, threshold="0.8")
    other = RedisVLIndex.from_url(url, dim=384)
    other.bind_embedder("someone-else")
    key = CacheKey(b"d" * 32, b"s" * 16, MODEL, NAMESPACE)
    other.add(IndexedEntry(key, PART_1, minilm.embed([ASKED])[0], ASKED, None))
    other.close()
    cache = Cache.from_urls(
        ["memory://"], semantic=url, embedder=minilm, verifier=AcceptAll(), clock=fake_clock
    )
    try:
        assert cache.get(ask(ASKED)) is None  # no exception: a miss
        assert cache.set(ask(ASKED), "answer")  # the exact tier takes it
        hit = cache.get(ask(ASKED))
        assert hit is not None and hit.match == "exact"
        assert cache.get(ask(PARAPHRASE)) is None  # never a semantic hit from its vectors
        assert cache.stats()["errors_by_tier"]["semantic:redisvl"] >= 1
        assert raw.get(f"{prefix}:vecstamp:semantic") == b"someone-else"
    finally:
        cache.close()


def test_reembed_embeds_what_read_gives_and_drops_what_it_cannot_open(
    redis_stack_url: str, prefix: str, index: Any, raw: redis.Redis, clock: FakeClock
) -> None:
    """``llmcache reindex`` of an encrypted cache: each stored (sealed) text is opened by
    ``read`` before it is embedded; a text it cannot open loses its vector."""
    index.bind_embedder("model-a")
    for n in (1, 2, 3):
        index.add(entry(n, unit(n, 1), text=f"sealed {n}"))
    seen: list[tuple[int, str]] = []

    def read(digest: bytes, text: str) -> str | None:
        n = int.from_bytes(digest, "big")
        seen.append((n, text))
        return None if n == 3 else f"q {n}"  # 3 does not open

    def embed(found: list[str]) -> np.ndarray:
        assert all(t.startswith("q ") for t in found)  # never the stored (sealed) text
        return np.stack([unit(1, 0, int(t.split()[1])) for t in found])

    assert index.reembed(embed, "model-b", read=read) == 2
    assert sorted(seen) == [(1, "sealed 1"), (2, "sealed 2"), (3, "sealed 3")]
    assert texts(index.search(PART_1, unit(1, 0, 2), 3, clock())) == ["sealed 2", "sealed 1"]
    assert raw.exists(index.key_of((3).to_bytes(32, "big"))) == 0
