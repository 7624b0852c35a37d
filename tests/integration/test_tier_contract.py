"""The tier contract: one suite, run through the public Cache API on every tier.

``tier_url`` (tests/conftest.py) is parametrized over every tier kind, here also MariaDB and
PostgreSQL with synchronous stores (``?write_behind=off``; write-behind is their default);
adding a tier means adding one parameter there. Every assertion is on what a user sees: the
value a hit returns, the tier that served it, ``stats()``, the count ``clear`` reports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from conftest import SYNC_STORE_KINDS, TIER_KINDS, exact_ttl, tier_url_of, with_query

from llmcache import Cache, CacheRequest, FakeClock, Scope, Usage
from llmcache.tiers import tier_from_url
from llmcache.tiers.memory import MemoryTier

REQ = CacheRequest(model="gpt-x", prompt="What is 2+2?", model_name="gpt-x")


def request(prompt: str, **scope: Any) -> CacheRequest:
    return CacheRequest(model="gpt-x", prompt=prompt, model_name="gpt-x", scope=Scope.of(**scope))


@pytest.fixture(params=TIER_KINDS + SYNC_STORE_KINDS)
def tier_url(request: pytest.FixtureRequest, tmp_path: object, table_prefix: str) -> Iterator[str]:
    yield from tier_url_of(request.param, request, tmp_path, table_prefix)


@pytest.fixture
def cache(tier_url: str, fake_clock: FakeClock) -> Iterator[Cache]:
    with Cache.from_urls([tier_url], clock=fake_clock, policy=exact_ttl()) as c:
        yield c


@pytest.fixture
async def acache(tier_url: str, fake_clock: FakeClock) -> AsyncIterator[Cache]:
    async with Cache.from_urls([tier_url], clock=fake_clock, policy=exact_ttl()) as c:
        yield c


def value_of(cache: Cache, req: CacheRequest) -> Any:
    hit = cache.get(req)
    assert hit is not None, f"expected a hit for {req.prompt!r}"
    return hit.entry.value


def test_round_trip_of_a_json_value(cache: Cache) -> None:
    value = {"content": "4", "n": 2, "f": 0.5, "ok": True, "list": [1, "two", None]}
    assert cache.get(REQ) is None
    assert cache.set(REQ, value, usage=Usage(12, 3)) is True
    hit = cache.get(REQ)
    assert hit is not None
    assert hit.entry.value == value
    assert hit.entry.usage == Usage(12, 3)
    assert (hit.tier, hit.match) == (cache.tiers[0].name, "exact")
    stats = cache.stats()
    assert stats["hits"] == 1 and stats["misses"] == 1 and stats["tokens_saved"] == 15
    assert stats["errors_by_tier"] == {}


@pytest.mark.parametrize(
    "value",
    ["", [], {}, None, [None, {"a": None}], {"content": "", "tool_calls": [{"id": "c1"}]}],
    ids=["empty-str", "empty-list", "empty-dict", "none", "none-bearing", "tool-calls-only"],
)
def test_empty_and_none_bearing_values_are_hits(cache: Cache, value: Any) -> None:
    assert cache.set(REQ, value) is True
    hit = cache.get(REQ)
    assert hit is not None, "a stored empty answer is a hit, not a miss"
    assert hit.entry.value == value


def test_unknown_key_is_a_miss(cache: Cache) -> None:
    cache.set(REQ, "4")
    assert cache.get(request("What is 3+3?")) is None
    assert cache.get(CacheRequest(model="other-model", prompt=REQ.prompt)) is None
    assert cache.get(CacheRequest(model="gpt-x", prompt=REQ.prompt, params={"t": 1})) is None
    assert cache.stats()["misses"] == 3


def test_overwrite_returns_the_new_value(cache: Cache) -> None:
    cache.set(REQ, "old", usage=Usage(1, 1))
    assert cache.set(REQ, "new", usage=Usage(5, 5)) is True
    hit = cache.get(REQ)
    assert hit is not None and hit.entry.value == "new" and hit.entry.usage == Usage(5, 5)


def test_tags_round_trip(cache: Cache) -> None:
    tagged = CacheRequest(model="gpt-x", prompt="tagged", tags=("faq", "billing"))
    cache.set(tagged, "v")
    hit = cache.get(tagged)
    assert hit is not None and set(hit.entry.tags) == {"faq", "billing"}


def test_delete(cache: Cache) -> None:
    other = request("keep me")
    cache.set(REQ, "4")
    cache.set(other, "kept")
    cache.delete(REQ)
    assert cache.get(REQ) is None
    assert value_of(cache, other) == "kept"
    cache.delete(REQ)  # deleting what is not there is fine


def test_clear_removes_everything(cache: Cache) -> None:
    for i in range(5):
        cache.set(request(f"q{i}", user=f"u{i}"), i)
    assert cache.clear() == 5
    assert all(cache.get(request(f"q{i}", user=f"u{i}")) is None for i in range(5))
    assert cache.clear() == 0


def test_clear_of_one_scope_keeps_the_others(cache: Cache) -> None:
    alice = Scope.of(user="alice", tenant="acme")
    for i in range(3):
        cache.set(request(f"q{i}", user="alice", tenant="acme"), f"a{i}")
        cache.set(request(f"q{i}", user="bob", tenant="acme"), f"b{i}")
    cache.set(request("q0"), "anonymous")
    assert cache.clear(scope=alice) == 3
    assert cache.get(request("q0", user="alice", tenant="acme")) is None
    assert [value_of(cache, request(f"q{i}", user="bob", tenant="acme")) for i in range(3)] == [
        "b0",
        "b1",
        "b2",
    ]
    assert value_of(cache, request("q0")) == "anonymous"


@pytest.mark.parametrize(
    "other",
    [
        {"user": "bob", "tenant": "acme", "acl": ["kb-7", "kb-9"]},
        {"user": "alice", "tenant": "globex", "acl": ["kb-7", "kb-9"]},
        {"user": "alice", "tenant": "acme", "acl": ["kb-7"]},
        {"user": "alice", "tenant": "acme", "acl": ["kb-7", "kb-9", "kb-1"]},
        {"user": "alice", "tenant": "acme"},
        {},
    ],
    ids=["other-user", "other-tenant", "fewer-acl", "more-acl", "no-acl", "anonymous"],
)
def test_scopes_are_isolated(cache: Cache, other: dict[str, Any]) -> None:
    cache.set(request("salary of X?", user="alice", tenant="acme", acl=["kb-7", "kb-9"]), "s")
    assert cache.get(request("salary of X?", **other)) is None


def test_acl_order_and_duplicates_do_not_matter(cache: Cache) -> None:
    cache.set(request("q", user="alice", tenant="acme", acl=["kb-7", "kb-9"]), "v")
    same = request("q", user="alice", tenant="acme", acl=["kb-9", "kb-7", "kb-9"])
    assert value_of(cache, same) == "v"


def test_ttl_zero_stores_nothing(cache: Cache) -> None:
    assert cache.set(REQ, "4", ttl=0) is False
    assert cache.get(REQ) is None
    assert cache.stats()["stores"] == 0


def test_ttl_none_without_a_tier_default_never_expires(cache: Cache, fake_clock: FakeClock) -> None:
    cache.set(REQ, "4", ttl=None)
    fake_clock.advance(10 * 365 * 86400)
    assert value_of(cache, REQ) == "4"


def test_ttl_none_uses_the_tier_default(tier_url: str, fake_clock: FakeClock) -> None:
    url = with_query(tier_url, ttl="60")
    with Cache.from_urls([url], clock=fake_clock, policy=exact_ttl()) as cache:
        cache.set(REQ, "4", ttl=None)
        cache.set(request("short"), "s", ttl=10)  # the earlier of entry TTL and tier default
        fake_clock.advance(59)
        assert value_of(cache, REQ) == "4"
        assert cache.get(request("short")) is None
        fake_clock.advance(2)
        assert cache.get(REQ) is None


def test_positive_ttl_expires(cache: Cache, fake_clock: FakeClock) -> None:
    cache.set(REQ, "4", ttl=30)
    cache.set(request("forever"), "f", ttl=None)
    fake_clock.advance(29)
    assert value_of(cache, REQ) == "4"
    fake_clock.advance(1)
    assert cache.get(REQ) is None
    assert value_of(cache, request("forever")) == "f"
    cache.set(REQ, "again", ttl=30)  # an expired key can be stored again
    assert value_of(cache, REQ) == "again"


def test_backfill_from_a_lower_tier_into_memory(tier_url: str, fake_clock: FakeClock) -> None:
    lower = tier_from_url(tier_url)
    with Cache([MemoryTier(), lower], clock=fake_clock) as cache:
        assert cache.set(REQ, "4", usage=Usage(3, 4)) is True  # written through to both
        cache.tiers[0].clear(None)  # now only the lower tier has it
        first = cache.get(REQ)
        assert first is not None and first.entry.value == "4"
        assert first.tier == lower.name != "memory"
        second = cache.get(REQ)
        assert second is not None and second.entry.value == "4" and second.tier == "memory"
        assert second.entry.usage == Usage(3, 4)
        assert cache.stats()["hits_by_tier"] == {lower.name: 1, "memory": 1}


async def test_backfill_async(tier_url: str, fake_clock: FakeClock) -> None:
    lower = tier_from_url(tier_url)
    async with Cache([MemoryTier(), lower], clock=fake_clock) as cache:
        await cache.aset(REQ, "4")
        await cache.tiers[0].aclear(None)  # now only the lower tier has it
        first = await cache.aget(REQ)
        second = await cache.aget(REQ)
        assert first is not None and first.tier == lower.name
        assert second is not None and second.tier == "memory"


def _script(cache: Cache, fake_clock: FakeClock, tag: str) -> list[Any]:
    """A sequence of operations; returns what a user would see after each."""
    a, b = request(f"{tag}-a", user="u1"), request(f"{tag}-b", user="u2")
    seen: list[Any] = [cache.get(a)]
    seen.append(cache.set(a, {"v": 1}, ttl=20))
    seen.append(cache.set(b, ["x", None]))
    seen.append(cache.set(b, "zero", ttl=0))
    seen.append(_value(cache.get(a)))
    seen.append(cache.set(a, {"v": 2}, ttl=20))
    seen.append(_value(cache.get(a)))
    fake_clock.advance(21)
    seen.append(_value(cache.get(a)))
    seen.append(_value(cache.get(b)))
    cache.delete(b)
    seen.append(_value(cache.get(b)))
    cache.set(a, "again")
    seen.append(cache.clear(scope=Scope.of(user="u1")))
    seen.append(_value(cache.get(a)))
    return seen


async def _ascript(cache: Cache, fake_clock: FakeClock, tag: str) -> list[Any]:
    a, b = request(f"{tag}-a", user="u1"), request(f"{tag}-b", user="u2")
    seen: list[Any] = [await cache.aget(a)]
    seen.append(await cache.aset(a, {"v": 1}, ttl=20))
    seen.append(await cache.aset(b, ["x", None]))
    seen.append(await cache.aset(b, "zero", ttl=0))
    seen.append(_value(await cache.aget(a)))
    seen.append(await cache.aset(a, {"v": 2}, ttl=20))
    seen.append(_value(await cache.aget(a)))
    fake_clock.advance(21)
    seen.append(_value(await cache.aget(a)))
    seen.append(_value(await cache.aget(b)))
    await cache.adelete(b)
    seen.append(_value(await cache.aget(b)))
    await cache.aset(a, "again")
    seen.append(await cache.aclear(scope=Scope.of(user="u1")))
    seen.append(_value(await cache.aget(a)))
    return seen


def _value(hit: Any) -> Any:
    return "<miss>" if hit is None else ("hit", hit.entry.value)


async def test_async_api_gives_the_same_answers_as_sync(
    acache: Cache, fake_clock: FakeClock
) -> None:
    sync_seen = _script(acache, fake_clock, "sync")
    async_seen = await _ascript(acache, fake_clock, "async")
    assert async_seen == sync_seen
    assert sync_seen == [
        None, True, True, False, ("hit", {"v": 1}), True, ("hit", {"v": 2}),
        "<miss>", ("hit", ["x", None]), "<miss>", 1, "<miss>",
    ]  # fmt: skip
    assert acache.stats()["errors_by_tier"] == {}


def test_a_large_value_round_trips(cache: Cache) -> None:
    big = {"content": "x" * 500_000, "tail": "end"}
    assert cache.set(REQ, big) is True
    assert value_of(cache, REQ) == big


async def test_a_large_value_round_trips_async(acache: Cache) -> None:
    big = "é" * 250_000  # 500 KB of UTF-8
    assert await acache.aset(REQ, big) is True
    hit = await acache.aget(REQ)
    assert hit is not None and hit.entry.value == big


@pytest.mark.parametrize(
    "prompt",
    ["Ça coûte combien ? 💶", "東京の天気は？", "مرحبا بالعالم", "zero\x00byte", "a" * 20_000],
    ids=["french-emoji", "japanese", "arabic", "nul", "long"],
)
def test_unicode_prompts(cache: Cache, prompt: str) -> None:
    req = request(prompt, user="ü", tenant="ß", acl=["グループ"])
    cache.set(req, f"answer to {prompt[:10]}")
    assert value_of(cache, req) == f"answer to {prompt[:10]}"
    assert cache.get(request(prompt.upper() + "!", user="ü", tenant="ß", acl=["グループ"])) is None


# ---------------------------------------------------------------------------- listing
def _fill_for_listing(cache: Cache) -> dict[str, Any]:
    """23 entries over 3 users, 2 models, a tag on some; returns value -> its request."""
    stored: dict[str, Any] = {}
    for i in range(23):
        req = CacheRequest(
            model="gpt-x" if i % 2 else "gpt-y",
            model_name="gpt-x" if i % 2 else "gpt-y",
            prompt=f"listing {i}",
            scope=Scope.of(user=f"u{i % 3}", tenant="acme"),
            tags=("faq", "*") if i % 5 == 0 else (),
        )
        assert cache.set(req, f"v{i}", usage=Usage(i, 1)) is True
        stored[f"v{i}"] = req
    return stored


def _values(entries: Any) -> list[str]:
    return sorted(s.entry.value for s in entries)


def test_listing_pages_through_every_entry_once(cache: Cache) -> None:
    stored = _fill_for_listing(cache)
    listed = list(cache.entries(page_size=4))
    assert _values(listed) == sorted(stored)
    assert len({s.key.digest for s in listed}) == len(stored)
    for item in listed:  # each comes with its whole key: a get of its request finds it
        req = stored[item.entry.value]
        assert cache.get(req) is not None
        assert item.entry.model == req.model_name and item.tier == cache.tiers[0].name
        assert item.size > 0 and item.unreadable is None


def test_listing_filters_by_scope_model_and_tag(cache: Cache) -> None:
    stored = _fill_for_listing(cache)
    u1 = Scope.of(user="u1", tenant="acme")
    assert _values(cache.entries(scope=u1, page_size=3)) == sorted(
        v for v, r in stored.items() if r.scope == u1
    )
    assert _values(cache.entries(model="gpt-x", page_size=5)) == sorted(
        v for v, r in stored.items() if r.model_name == "gpt-x"
    )
    faq = sorted(v for v, r in stored.items() if "faq" in r.tags)
    assert _values(cache.entries(tags=["faq"])) == faq
    assert _values(cache.entries(tags=["*"])) == faq  # a glob character is data, not a pattern
    assert _values(cache.entries(scope=u1, model="gpt-x", tags=["faq"])) == sorted(
        v for v, r in stored.items() if r.scope == u1 and r.model_name == "gpt-x" and r.tags
    )
    assert list(cache.entries(tags=["nope"])) == []
    assert list(cache.entries(scope=Scope.of(user="u1"))) == []  # no tenant: another scope


def test_listing_skips_expired_entries(cache: Cache, fake_clock: FakeClock) -> None:
    cache.set(request("short"), "short", ttl=10)
    cache.set(request("long"), "long", ttl=100)
    fake_clock.advance(11)
    listed = list(cache.entries())
    assert _values(listed) == ["long"]
    assert listed[0].expires_at == pytest.approx(fake_clock() + 89)


async def test_async_listing_gives_the_same_entries(acache: Cache) -> None:
    _fill_for_listing(acache)
    sync_listed = [(s.key, s.entry.value) for s in acache.entries(page_size=6)]
    async_listed = [(s.key, s.entry.value) async for s in acache.aentries(page_size=6)]
    assert sorted(async_listed) == sorted(sync_listed) and len(sync_listed) == 23
