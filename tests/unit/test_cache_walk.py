"""The tier walk: top-down lookup, backfill, write-through, fail-open, stats, TTL meanings.

Tiers here are in-process (memory, and a small bytes-holding tier) so the core's own logic is
tested without servers; the real storage tiers run the same checks in tests/integration.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from llmcache import (
    Cache,
    CachePolicy,
    CacheRequest,
    ConfigError,
    FakeClock,
    Scope,
    Usage,
)
from llmcache.entry import CacheEntry
from llmcache.keys import CacheKey
from llmcache.tiers.base import Found, InProcessAsync
from llmcache.tiers.memory import MemoryTier


class BytesTier(InProcessAsync):
    """Keeps encoded payloads like a storage tier does; can be switched 'down'."""

    def __init__(self, name: str = "store") -> None:
        self.name = name
        self.data: dict[bytes, bytes] = {}
        self.down = False
        self.calls = 0

    def _io(self) -> None:
        self.calls += 1
        if self.down:
            raise ConnectionRefusedError("connection refused: password=hunter2")

    def get(self, key: CacheKey, now: float) -> Found:
        self._io()
        return self.data.get(key.digest)

    def set(self, key: CacheKey, entry: CacheEntry, payload: bytes, now: float) -> None:
        self._io()
        self.data[key.digest] = payload

    def delete(self, key: CacheKey) -> None:
        self._io()
        self.data.pop(key.digest, None)

    def clear(self, scope: bytes | None) -> int:
        self._io()
        n = len(self.data)
        self.data.clear()
        return n

    def close(self) -> None:
        pass


REQ = CacheRequest(model="m", prompt="What is 2+2?", model_name="m")


def test_miss_store_hit() -> None:
    cache = Cache([MemoryTier()])
    assert cache.get(REQ) is None
    assert cache.set(REQ, {"text": "4"}, usage=Usage(10, 2)) is True
    hit = cache.get(REQ)
    assert hit is not None and hit.entry.value == {"text": "4"}
    assert (hit.tier, hit.match) == ("memory", "exact")
    stats = cache.stats()
    assert stats["hits"] == 1 and stats["misses"] == 1 and stats["tokens_saved"] == 12
    assert stats["hits_by_tier"] == {"memory": 1} and stats["hits_by_match"] == {"exact": 1}


@pytest.mark.parametrize("value", ["", [], {}, None, {"content": "", "tool_calls": [{"id": "1"}]}])
def test_empty_answers_are_hits_not_misses(value: object) -> None:
    cache = Cache([MemoryTier(), BytesTier()])
    cache.set(REQ, value)
    hit = cache.get(REQ)
    assert hit is not None and hit.entry.value == value


def test_lower_tier_hit_backfills_upper_tiers() -> None:
    top, bottom = MemoryTier(), BytesTier()
    Cache([bottom]).set(REQ, "from below")
    cache = Cache([top, bottom])
    first = cache.get(REQ)
    assert first is not None and first.tier == "store"
    second = cache.get(REQ)
    assert second is not None and second.tier == "memory" and second.entry.value == "from below"
    assert cache.stats()["hits_by_tier"] == {"store": 1, "memory": 1}


def test_write_through_stores_in_every_tier() -> None:
    top, bottom = MemoryTier(), BytesTier()
    Cache([top, bottom]).set(REQ, "x")
    assert len(top) == 1 and len(bottom.data) == 1


def test_undecodable_stored_value_is_a_miss_and_is_deleted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = BytesTier()
    cache = Cache([store])
    cache.set(REQ, "x")
    (digest,) = store.data
    store.data[digest] = b"\x80\x04garbage"
    assert cache.get(REQ) is None
    assert store.data == {}
    assert cache.stats()["decode_errors"] == 1
    assert "undecodable" in caplog.text


def test_a_failing_tier_is_skipped_logged_once_and_probed_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mono = FakeClock(0.0)
    flaky, below = BytesTier("flaky"), MemoryTier()
    cache = Cache([flaky, below], monotonic=mono)
    cache.set(REQ, "answer")
    flaky.down = True
    caplog.set_level(logging.WARNING, logger="llmcache")
    for _ in range(50):
        hit = cache.get(REQ)  # never raises; served by the tier below
        assert hit is not None and hit.tier == "memory"
        assert cache.set(REQ, "answer") is True
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1, "an outage is logged once, not per call"
    assert "hunter2" not in caplog.text, "secrets never reach logs"
    assert cache.stats()["errors_by_tier"] == {"flaky": 1}
    assert cache.stats()["breakers"]["flaky"] == "open"
    assert flaky.calls == 2  # the breaker kept calls away from the dead tier
    flaky.down = False
    mono.advance(5.0)
    hit = cache.get(REQ)
    assert cache.stats()["breakers"]["flaky"] == "closed"
    assert "recovered" in caplog.text


async def test_async_fail_open_too() -> None:
    flaky = BytesTier("flaky")
    flaky.down = True
    cache = Cache([flaky])
    assert await cache.aget(REQ) is None
    assert await cache.aset(REQ, "x") is False
    assert await cache.aclear() == 0


def test_ttl_zero_stores_nothing_and_positive_ttl_expires() -> None:
    clock = FakeClock()
    cache = Cache([MemoryTier(), BytesTier()], clock=clock, policy=CachePolicy(ttl_jitter=0))
    assert cache.set(REQ, "x", ttl=0) is False
    assert cache.get(REQ) is None
    cache.set(REQ, "x", ttl=30)
    clock.advance(29)
    assert cache.get(REQ) is not None
    clock.advance(1)
    assert cache.get(REQ) is None


def test_policy_default_ttl_applies_when_ttl_not_passed() -> None:
    clock = FakeClock()
    cache = Cache([BytesTier()], clock=clock, policy=CachePolicy(default_ttl=10, ttl_jitter=0))
    cache.set(REQ, "x")
    clock.advance(10)
    assert cache.get(REQ) is None
    cache.set(REQ, "x", ttl=None)  # None: no TTL of ours; this tier has none either
    clock.advance(10_000)
    assert cache.get(REQ) is not None


def test_oversized_answers_are_not_stored(caplog: pytest.LogCaptureFixture) -> None:
    cache = Cache([MemoryTier()], policy=CachePolicy(max_entry_bytes=100))
    assert cache.set(REQ, "y" * 200) is False
    assert cache.get(REQ) is None
    assert cache.stats()["store_rejected"] == {"too_large": 1}
    assert "max_entry_bytes" in caplog.text


def test_strict_policy_neither_reads_nor_writes_hot_requests() -> None:
    cache = Cache([MemoryTier()], policy=CachePolicy.strict())
    hot = CacheRequest(model="m", prompt="p", params={"temperature": 0.9})
    assert cache.set(hot, "x") is False
    assert cache.get(hot) is None
    assert cache.stats()["skipped"] == 1


def test_scopes_are_isolated_and_clear_is_scoped() -> None:
    cache = Cache([MemoryTier(), BytesTier()])
    alice = CacheRequest(model="m", prompt="p", scope=Scope.of(user="alice"))
    bob = CacheRequest(model="m", prompt="p", scope=Scope.of(user="bob"))
    cache.set(alice, "alice's answer")
    assert cache.get(bob) is None
    cache.set(bob, "bob's answer")
    assert cache.clear(scope=Scope.of(user="alice")) >= 1
    assert cache.get(alice) is None
    hit = cache.get(bob)
    assert hit is not None and hit.entry.value == "bob's answer"


async def test_sync_and_async_agree() -> None:
    cache = Cache([MemoryTier(), BytesTier()])
    requests = [CacheRequest(model="m", prompt=f"q{i}") for i in range(20)]
    for i, r in enumerate(requests):
        if i % 2:
            cache.set(r, i)
        else:
            await cache.aset(r, i)
    for r in requests:
        sync_hit, async_hit = cache.get(r), await cache.aget(r)
        assert sync_hit is not None and async_hit is not None
        assert sync_hit.entry.value == async_hit.entry.value


async def test_sync_api_works_inside_a_running_event_loop() -> None:
    # Jupyter runs cells inside a loop: the sync path must not try to start one.
    cache = Cache([MemoryTier()])
    cache.set(REQ, "x")
    assert cache.get(REQ) is not None
    await asyncio.sleep(0)


def test_construction_errors_are_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="list of URLs"):
        Cache.from_urls("memory://")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unsupported tier URL scheme"):
        Cache.from_urls(["ftp://x"])
    with pytest.raises(ConfigError, match="not a tier URL"):
        Cache.from_urls(["memory"])
    with pytest.raises(ConfigError, match="at least one tier"):
        Cache([])
    monkeypatch.setenv("LLMCACHE_URLS", "memory://?maxsize=5, memory://?maxsize=9")
    cache = Cache.from_env()
    assert [t.name for t in cache.tiers] == ["memory", "memory#2"]


def test_from_env_names_a_list_written_with_spaces(monkeypatch: pytest.MonkeyPatch) -> None:
    # "memory:// sqlite:///x.db" used to build the memory tier alone: the SQLite file was
    # silently never used.
    monkeypatch.setenv("LLMCACHE_URLS", "memory:// sqlite:///./never.db")
    with pytest.raises(ConfigError, match="holds several URLs"):
        Cache.from_env()
    monkeypatch.setenv("LLMCACHE_URLS", "memory://")
    monkeypatch.setenv("LLMCACHE_SEMANTIC", "  ")  # blank, as an unset variable
    with Cache.from_env() as cache:
        assert cache.semantic is None


@pytest.mark.parametrize(
    ("tiers", "semantic"),
    [
        (["mongodb://app:hunter2@db:27017/cache"], None),  # an unsupported tier scheme
        (["memory:// redis://:hunter2@db:6379/0"], None),  # a list written as one string
        (["memory://"], "qdrant://app:hunter2@db:6333"),  # an unsupported semantic scheme
    ],
)
def test_a_refused_url_is_named_without_its_password(
    tiers: list[str], semantic: str | None
) -> None:
    with pytest.raises(ConfigError) as refused:
        Cache.from_urls(tiers, semantic=semantic)
    assert "hunter2" not in str(refused.value) and "***" in str(refused.value)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        # Sealed only if LLMCACHE_ENCRYPTION_KEYS happened to be set: "yes" meant maybe.
        ({"encryption": "yes"}, "encryption must be True, False, None or a"),
        ({"policy": "strict"}, "policy must be a llmcache.CachePolicy"),  # was the first call
        ({"fleet_stats": "no"}, "fleet_stats must be True or False"),  # a true string
        ({"single_flight_timeout": "5"}, "single_flight_timeout must be >= 0 seconds"),
    ],
)
def test_options_of_the_wrong_type_fail_when_the_cache_is_built(
    options: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        Cache.from_urls(["memory://"], **options)  # type: ignore[arg-type]


def test_a_store_with_misread_arguments_says_which() -> None:
    with Cache.from_urls(["memory://"]) as cache:
        request = CacheRequest(model="m", prompt="p")
        # A dict for usage was an AttributeError from deep inside the store.
        with pytest.raises(ConfigError, match=r"usage must be a llmcache\.Usage, got dict"):
            cache.set(request, "v", usage={"input_tokens": 3})  # type: ignore[arg-type]
        # "length" was read letter by letter, so the truncated answer was stored.
        with pytest.raises(ConfigError, match="one reason per choice"):
            cache.set(request, "cut", finish_reasons="length")
        assert cache.set(request, "cut", finish_reasons=["length"]) is False
        assert cache.get(request) is None


async def test_clear_by_a_user_id_string_is_refused_not_an_attribute_error() -> None:
    with Cache.from_urls(["memory://"]) as cache:
        request = CacheRequest(model="m", prompt="p", scope=Scope.of(user="alice"))
        cache.set(request, "kept")
        with pytest.raises(ConfigError, match=r"clear\(scope=\.\.\.\) takes an llmcache\.Scope"):
            cache.clear(scope="alice")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=r"aclear\(scope=\.\.\.\) takes an llmcache"):
            await cache.aclear(scope="alice")  # type: ignore[arg-type]
        assert cache.get(request) is not None


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"scope": "alice"}, "CacheRequest.scope must be an llmcache.Scope"),  # AttributeError
        # Stored letter by letter: invalidate(tags=["faq"]) then missed the entry.
        ({"tags": "faq"}, "CacheRequest.tags is a tuple of tags"),
        ({"params": [("temperature", 0)]}, "CacheRequest.params must be a mapping"),
        ({"namespace": None}, "CacheRequest.namespace must be a string"),
        ({"model": 5}, "CacheRequest.model must be a string"),
        # Compared with each candidate's similarity: a TypeError from inside the lookup.
        ({"semantic_threshold": "0.9"}, r"semantic_threshold must be a cosine in \[-1, 1\]"),
        ({"semantic_threshold": 90}, r"semantic_threshold must be a cosine in \[-1, 1\]"),
        ({"semantic_text": ["q"]}, "CacheRequest.semantic_text must be a string or None"),
        # Stored, then never decoded by SQL and Redis, and never removable by tag.
        ({"tags": (7,)}, "every tag must be a non-empty string, got 7"),
        ({"tags": ("faq", "")}, "every tag must be a non-empty string, got ''"),
        ({"tags": None}, "CacheRequest.tags must be a tuple of tags"),  # was a TypeError
        ({"control": {"ttl": 60}}, "CacheRequest.control must be an llmcache.CacheControl"),
    ],
)
def test_a_request_with_a_field_of_the_wrong_type_is_refused(
    fields: dict[str, object], named: str
) -> None:
    with Cache.from_urls(["memory://"]) as cache:
        request = CacheRequest(**{"model": "m", "prompt": "p", **fields})  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=named):
            cache.set(request, "v")
        with pytest.raises(ConfigError, match=named):
            cache.get(request)


async def test_something_else_than_a_request_is_named() -> None:
    with Cache.from_urls(["memory://"]) as cache:
        named = r"expected an llmcache\.CacheRequest, got str"
        for call in (cache.get, cache.delete, lambda r: cache.set(r, "v")):
            with pytest.raises(ConfigError, match=named):  # was an AttributeError
                call("what is 2+2?")
        with pytest.raises(ConfigError, match=r"got dict"):
            await cache.aget({"model": "m", "prompt": "p"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("urls", "semantic", "named"),
    [
        ([None], None, "not a tier URL: None"),  # was an AttributeError ('strip')
        (["memory://"], 42, "semantic= takes a semantic tier URL .* got int"),
    ],
)
def test_a_url_that_is_not_a_string_is_named(
    urls: list[object], semantic: object, named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        Cache.from_urls(urls, semantic=semantic)  # type: ignore[arg-type]


def test_tags_given_as_a_list_are_invalidated_like_a_tuple() -> None:
    with Cache.from_urls(["memory://"]) as cache:
        request = CacheRequest(model="m", prompt="p", tags=["faq"])  # type: ignore[arg-type]
        assert cache.set(request, "v")
        assert cache.invalidate(tags=["faq"]) == 1
        assert cache.get(request) is None


def test_text_holding_lone_surrogates_is_keyed_apart_from_everything_else() -> None:
    """Bytes decoded with errors="surrogateescape" hold lone surrogates, which orjson
    refuses: the key is then the standard library's escaped JSON, behind a NUL."""
    from llmcache.keys import canonical_json, request_key

    surrogate = CacheRequest(model="m", prompt="caf\udce9")
    other = CacheRequest(model="m", prompt="caf\udc80")
    literal = CacheRequest(model="m", prompt="caf\\udce9")  # the escape's six characters
    keys = {request_key(r).digest for r in (surrogate, other, literal)}
    assert len(keys) == 3
    assert request_key(CacheRequest(model="m", prompt="caf\udce9")) == request_key(surrogate)
    assert canonical_json(["caf\udce9"]).startswith(b"\x00")
    with Cache.from_urls(["memory://"]) as cache:
        assert cache.set(surrogate, "stored")
        hit = cache.get(CacheRequest(model="m", prompt="caf\udce9"))
        assert hit is not None and hit.entry.value == "stored"
        assert cache.get(other) is None and cache.get(literal) is None


@pytest.mark.parametrize(
    ("usage", "named"),
    [
        (Usage(-500, 10), "usage.input_tokens"),
        (Usage(10, 10**13), "usage.output_tokens"),
        (Usage(10, 10, 2.5), "usage.cache_read_tokens"),  # type: ignore[arg-type]
    ],
)
def test_impossible_usage_is_refused_naming_the_count(usage: Usage, named: str) -> None:
    cache = Cache([MemoryTier()])
    with pytest.raises(ConfigError, match=named):
        cache.set(CacheRequest(model="m", prompt="p"), "x", usage=usage)
    assert cache.get(CacheRequest(model="m", prompt="p")) is None
