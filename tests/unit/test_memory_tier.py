"""The memory tier: LRU by count and by bytes, TTL on the injected clock, scoped clear."""

from __future__ import annotations

import threading

import pytest

from llmcache import Cache, CacheRequest, ConfigError, Scope, request_key
from llmcache.entry import CacheEntry, encode
from llmcache.tiers.memory import MemoryTier


def put(tier: MemoryTier, prompt: str, now: float = 0.0, size: int = 10, **kw: object) -> None:
    key = request_key(CacheRequest(model="m", prompt=prompt, **kw))  # type: ignore[arg-type]
    entry = CacheEntry(value=prompt, created_at=now)
    tier.set(key, entry, b"x" * size, now)


def has(tier: MemoryTier, prompt: str, now: float = 0.0, **kw: object) -> bool:
    key = request_key(CacheRequest(model="m", prompt=prompt, **kw))  # type: ignore[arg-type]
    return tier.get(key, now) is not None


def test_lru_evicts_least_recently_used() -> None:
    tier = MemoryTier(maxsize=2)
    put(tier, "a")
    put(tier, "b")
    assert has(tier, "a")  # touch a: b is now the oldest
    put(tier, "c")
    assert has(tier, "a") and has(tier, "c") and not has(tier, "b")


def test_byte_budget() -> None:
    tier = MemoryTier(maxsize=100, max_bytes=25)
    put(tier, "a", size=10)
    put(tier, "b", size=10)
    put(tier, "c", size=10)
    assert not has(tier, "a") and has(tier, "b") and has(tier, "c")
    put(tier, "huge", size=26)  # can never fit: refused, nothing flushed
    assert not has(tier, "huge") and has(tier, "b")


def test_default_ttl_uses_passed_time() -> None:
    tier = MemoryTier(ttl=10)
    put(tier, "a", now=100.0)
    assert has(tier, "a", now=109.9)
    assert not has(tier, "a", now=110.0)
    assert len(tier) == 0  # expired entries are dropped when seen


def test_entry_expiry_wins_when_earlier() -> None:
    tier = MemoryTier(ttl=100)
    key = request_key(CacheRequest(model="m", prompt="a"))
    tier.set(key, CacheEntry(value=1, created_at=0, expires_at=5.0), encode(CacheEntry(1, 0)), 0.0)
    assert tier.get(key, 4.0) is not None and tier.get(key, 5.0) is None


def test_scoped_clear() -> None:
    tier = MemoryTier()
    alice, bob = Scope.of(user="alice"), Scope.of(user="bob")
    put(tier, "q", scope=alice)
    put(tier, "q", scope=bob)
    assert tier.clear(request_key(CacheRequest(model="m", prompt="", scope=alice)).scope) == 1
    assert not has(tier, "q", scope=alice) and has(tier, "q", scope=bob)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memory://?maxsize=0", "maxsize must be a positive integer"),
        ("memory://?maxsize=1_000", "maxsize='1_000' .* is not a whole number"),
        ("memory://?max_bytes=%EF%BC%95", "max_bytes='５' .* is not a whole number"),
        ("memory://?maxsize=%201", "maxsize=' 1' .* is not a whole number"),
        ("memory://?ttl=0", "ttl='0' .* must be a positive number of seconds"),
        ("memory://?ttl=-1", "must be a positive number of seconds"),
        ("memory://?ttl=inf", "must be a positive number of seconds"),  # as the other tiers
        ("memory://?ttl=1e300", "is over 3153600000 seconds"),  # failed Redis's stores
        ("memory://?ttl=", "ttl='' .* is not a number"),  # was silently no TTL
        ("memory://?maxsize=ten", "maxsize='ten' .* is not a whole number"),
        ("memory://?max_bytes=1.5", "max_bytes='1.5' .* is not a whole number"),
        ("memory://?maxsize=10&maxsize=20", "'maxsize' is given twice"),  # was the last one
        ("memory://?colour=red", "unknown option"),
        ("memory://cache", "has a host or path"),
        ("memory://x/y", "has a host or path"),
    ],
)
def test_bad_urls_name_the_problem(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"memory tier: .*{message}"):
        MemoryTier.from_url(url)


@pytest.mark.parametrize("options", [{"maxsize": 0.5}, {"maxsize": True}, {"max_bytes": 2.5}])
def test_bad_sizes_in_code_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="must be a positive integer"):
        MemoryTier(**options)  # type: ignore[arg-type]  # maxsize=0.5 kept nothing


def test_url_options_reach_the_tier() -> None:
    tier = MemoryTier.from_url("memory://?maxsize=20&ttl=60&max_bytes=100000")
    assert (tier.maxsize, tier.default_ttl, tier.max_bytes) == (20, 60.0, 100_000)
    assert MemoryTier.from_url("memory:///").maxsize == 10_000  # as sqlite:/// is written


def test_thread_safety_under_contention() -> None:
    tier = MemoryTier(maxsize=50)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(2000):
                put(tier, f"{n}-{i % 80}")
                has(tier, f"{n}-{(i * 7) % 80}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(tier) <= 50


def test_an_answer_too_large_for_the_budget_drops_the_older_one_of_its_key() -> None:
    # Stored again with an answer over max_bytes, a key must not keep serving the older one
    # from memory while the tiers below hold the new one.
    cache = Cache.from_urls(["memory://?max_bytes=2000", "sqlite:///:memory:"])
    request = CacheRequest(model="m", model_name="m", prompt="q")
    cache.set(request, {"content": "old"}, ttl=None)
    cache.set(request, {"content": "new " + "x" * 5000}, ttl=None)
    hit = cache.get(request)
    assert hit is not None and hit.entry.value["content"].startswith("new ")
    assert hit.tier == "sqlite"
    cache.close()
