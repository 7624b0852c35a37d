"""LiteLLM's per-call cache controls keep their meaning (sync and async); llmcache's own
(``metadata`` fields, ``llmcache.cache_control`` blocks) and tags (``llmcache.tags``,
``metadata["llmcache_tags"]``) reach the core."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import litellm
import pytest
from litellm.caching.caching import CacheMode
from ll_helpers import MODEL, ask

from litellm_llmcache import LiteLLMCache
from llmcache import Cache, ConfigError, FakeClock, cache_control, tags


@pytest.fixture(params=["sync", "async"])
def answer(request: pytest.FixtureRequest) -> Callable[..., str]:
    """``answer(mock_response=..., **kwargs)``: the text of one completion, sync or async."""

    def _answer(**kwargs: Any) -> str:
        kwargs.setdefault("messages", ask("q"))
        if request.param == "sync":
            response = litellm.completion(model=MODEL, **kwargs)
        else:
            response = asyncio.run(litellm.acompletion(model=MODEL, **kwargs))
        return str(response.choices[0].message.content)

    return _answer


def test_no_cache_skips_the_lookup_but_stores(
    ll_adapter: LiteLLMCache, answer: Callable[..., str]
) -> None:
    assert answer(mock_response="old") == "old"
    assert answer(mock_response="new", cache={"no-cache": True}) == "new"
    assert answer(mock_response="x") == "new"


def test_no_store_is_not_stored(ll_adapter: LiteLLMCache, answer: Callable[..., str]) -> None:
    assert answer(mock_response="one", cache={"no-store": True}) == "one"
    assert answer(mock_response="two") == "two"
    assert answer(mock_response="x", cache={"no-store": True}) == "two"


@pytest.mark.parametrize(
    "per_call",
    [{"cache": {"ttl": 10}}, {"metadata": {"llmcache_ttl": 10}}],
    ids=["cache", "metadata"],
)
def test_ttl_per_call(
    ll_adapter: LiteLLMCache,
    fake_clock: FakeClock,
    answer: Callable[..., str],
    per_call: dict[str, Any],
) -> None:
    assert answer(mock_response="short", **per_call) == "short"
    fake_clock.advance(9)
    assert answer(mock_response="x") == "short"
    fake_clock.advance(2)
    assert answer(mock_response="later") == "later"


def test_ttl_zero_does_not_store(
    ll_adapter: LiteLLMCache, ll_cache: Cache, answer: Callable[..., str]
) -> None:
    assert answer(mock_response="one", cache={"ttl": 0}) == "one"
    assert answer(mock_response="two") == "two"
    assert ll_cache.stats()["stores"] == 1


def test_adapter_ttl(
    ll_cache: Cache,
    ll_install: Callable[..., LiteLLMCache],
    fake_clock: FakeClock,
    answer: Callable[..., str],
) -> None:
    ll_install(ll_cache, ttl=5)
    assert answer(mock_response="one") == "one"
    fake_clock.advance(6)
    assert answer(mock_response="two") == "two"


def test_s_maxage_serves_only_younger_entries(
    ll_adapter: LiteLLMCache, fake_clock: FakeClock, answer: Callable[..., str]
) -> None:
    assert answer(mock_response="old") == "old"
    fake_clock.advance(30)
    assert answer(mock_response="x", cache={"s-maxage": 60}) == "old"
    assert answer(mock_response="fresh", cache={"s-maxage": 10}) == "fresh"
    assert answer(mock_response="y", cache={"s-max-age": 10}) == "fresh"


def test_namespace_per_call(ll_adapter: LiteLLMCache, answer: Callable[..., str]) -> None:
    assert answer(mock_response="default") == "default"
    assert answer(mock_response="a", cache={"namespace": "a"}) == "a"
    assert answer(mock_response="x", cache={"namespace": "a"}) == "a"
    assert answer(mock_response="y") == "default"


def test_a_per_call_namespace_is_invalidated_under_the_adapters(
    ll_adapter: LiteLLMCache, ll_cache: Cache, answer: Callable[..., str]
) -> None:
    # As the README names it: invalidate(namespace="prompt-v3") alone finds nothing.
    assert answer(mock_response="old", cache={"namespace": "prompt-v3"}) == "old"
    assert ll_cache.invalidate(namespace="prompt-v3") == 0
    assert ll_cache.invalidate(namespace="litellm/prompt-v3") >= 1
    assert answer(mock_response="new", cache={"namespace": "prompt-v3"}) == "new"


def test_caching_false_neither_reads_nor_writes(
    ll_adapter: LiteLLMCache, ll_cache: Cache, answer: Callable[..., str]
) -> None:
    assert answer(mock_response="stored") == "stored"
    assert answer(mock_response="off", caching=False) == "off"
    assert ll_cache.stats()["hits"] == 0


def test_default_off_mode_needs_use_cache(
    ll_cache: Cache, ll_install: Callable[..., LiteLLMCache], answer: Callable[..., str]
) -> None:
    ll_install(ll_cache, mode="default_off")
    assert answer(mock_response="one") == "one"
    assert answer(mock_response="two") == "two"
    assert answer(mock_response="opted", cache={"use-cache": True}) == "opted"
    assert answer(mock_response="x", cache={"use-cache": True}) == "opted"
    assert answer(mock_response="three") == "three"


def test_a_subclass_rule_for_using_the_cache_is_honoured(
    ll_cache: Cache, answer: Callable[..., str]
) -> None:
    """The adapter answers LiteLLM's default rule itself (default_on, no max_messages), but
    only while ``should_use_cache`` is LiteLLM's own: an override still decides."""

    class NeverUse(LiteLLMCache):
        def should_use_cache(self, **kwargs: Any) -> bool:
            return False

    before = litellm.cache
    litellm.cache = NeverUse(ll_cache)
    try:
        assert answer(mock_response="one") == "one"
        assert answer(mock_response="two") == "two"
    finally:
        litellm.cache = before
    assert ll_cache.stats()["stores"] == 0


def test_mode_switched_after_construction_is_honoured(
    ll_cache: Cache, ll_install: Callable[..., LiteLLMCache], answer: Callable[..., str]
) -> None:
    adapter = ll_install(ll_cache)
    adapter.mode = CacheMode.default_off
    assert answer(mock_response="one") == "one"
    assert answer(mock_response="two") == "two"
    assert answer(mock_response="opted", cache={"use-cache": True}) == "opted"
    assert answer(mock_response="x", cache={"use-cache": True}) == "opted"


def test_supported_call_types(ll_cache: Cache, ll_install: Callable[..., LiteLLMCache]) -> None:
    ll_install(ll_cache, supported_call_types=["embedding"])
    for text in ("one", "two"):
        response = litellm.completion(model=MODEL, messages=ask("q"), mock_response=text)
        assert response.choices[0].message.content == text
    assert ll_cache.stats()["stores"] == 0


@pytest.mark.parametrize(
    ("options", "named"),
    [
        # Each typo used to turn caching off in silence (LiteLLM compares as given).
        ({"supported_call_types": ["completions"]}, "['completions'] are not LiteLLM call types"),
        ({"supported_call_types": "completion"}, "must be a list of LiteLLM call types"),
        ({"mode": "default-off"}, "mode must be one of ['default_on', 'default_off']"),
        ({"max_messages": 0}, "max_messages must be a positive number of messages"),
    ],
)
def test_option_typos_are_refused(ll_cache: Cache, options: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as refused:
        LiteLLMCache(ll_cache, **options)
    assert named in str(refused.value)


def test_max_messages_when_asked_for(
    ll_cache: Cache, ll_install: Callable[..., LiteLLMCache]
) -> None:
    ll_install(ll_cache, max_messages=2)
    turns = [{"role": "user", "content": f"t{i}"} for i in range(3)]
    for text in ("one", "two"):
        response = litellm.completion(model=MODEL, messages=turns, mock_response=text)
        assert response.choices[0].message.content == text
    assert ll_cache.stats()["stores"] == 0


def test_an_entry_refused_by_s_maxage_counts_as_a_miss(
    ll_adapter: LiteLLMCache, ll_cache: Cache, fake_clock: FakeClock, answer: Callable[..., str]
) -> None:
    """Too old for the caller: the model answers, so the stats must not claim a hit."""
    assert answer(mock_response="old") == "old"
    fake_clock.advance(30)
    assert answer(mock_response="fresh", cache={"s-maxage": 10}) == "fresh"
    stats = ll_cache.stats()
    assert stats["hits"] == 0
    assert stats["misses"] == 2
    assert stats["hits_by_tier"] == {}
    assert stats["hits_by_match"] == {}
    assert stats["tokens_saved"] == 0
    assert stats["cost_saved_usd"] == 0
    assert answer(mock_response="x", cache={"s-maxage": 10}) == "fresh"  # the new entry serves
    assert ll_cache.stats()["hits"] == 1


def test_tags_of_a_block_are_stored_and_invalidate_removes_the_entry(
    ll_adapter: LiteLLMCache, ll_cache: Cache, answer: Callable[..., str]
) -> None:
    with tags("kb-7"):
        assert answer(mock_response="from kb-7") == "from kb-7"
    assert answer(mock_response="x") == "from kb-7"
    assert ll_cache.invalidate(tags=["kb-8"]) == 0
    assert ll_cache.invalidate(tags=["kb-7"]) >= 1
    assert answer(mock_response="rebuilt") == "rebuilt"


def test_tags_in_metadata(
    ll_adapter: LiteLLMCache, ll_cache: Cache, answer: Callable[..., str]
) -> None:
    assert answer(mock_response="one", metadata={"llmcache_tags": ["faq"]}) == "one"
    assert ll_cache.invalidate(tags=["faq"]) >= 1
    assert answer(mock_response="two") == "two"


def test_metadata_ttl_no_store_and_no_cache(
    ll_adapter: LiteLLMCache, fake_clock: FakeClock, answer: Callable[..., str]
) -> None:
    assert answer(mock_response="private", metadata={"llmcache_no_store": True}) == "private"
    assert answer(mock_response="short", metadata={"llmcache_ttl": 10}) == "short"
    assert answer(mock_response="x") == "short"
    assert answer(mock_response="fresh", metadata={"llmcache_no_cache": True}) == "fresh"
    assert answer(mock_response="x") == "fresh"  # stored by the no-cache call, ttl default
    fake_clock.advance(11)
    assert answer(mock_response="y") == "fresh"


def test_cache_control_block_and_the_calls_own_cache_argument(
    ll_adapter: LiteLLMCache, fake_clock: FakeClock, answer: Callable[..., str]
) -> None:
    with cache_control(ttl=10):
        assert answer(mock_response="block", messages=ask("a")) == "block"
        assert answer(mock_response="own", messages=ask("b"), cache={"ttl": 100}) == "own"
    fake_clock.advance(11)
    assert answer(mock_response="a again", messages=ask("a")) == "a again"  # the block's ttl
    assert answer(mock_response="x", messages=ask("b")) == "own"  # the call's own wins
    with cache_control(no_store=True):
        assert answer(mock_response="unstored", messages=ask("c")) == "unstored"
    assert answer(mock_response="c", messages=ask("c")) == "c"


def test_strict_per_call(
    ll_adapter: LiteLLMCache, ll_cache: Cache, answer: Callable[..., str]
) -> None:
    strict = {"llmcache_strict": True}
    assert answer(mock_response="one", temperature=0.9, metadata=strict) == "one"
    assert answer(mock_response="two", temperature=0.9, metadata=strict) == "two"
    assert answer(mock_response="cold", temperature=0, metadata=strict) == "cold"
    assert answer(mock_response="x", temperature=0, metadata=strict) == "cold"
    assert ll_cache.stats()["stores"] == 1


def test_bad_metadata_values_do_not_fail_the_call(
    ll_adapter: LiteLLMCache, ll_cache: Cache, answer: Callable[..., str]
) -> None:
    assert answer(mock_response="ok", metadata={"llmcache_no_store": "yes"}) == "ok"
    assert answer(mock_response="ok2", metadata={"llmcache_tags": "faq"}) == "ok2"
    assert ll_cache.stats()["stores"] == 0


@pytest.mark.parametrize(
    ("reason", "rejected"), [("length", "truncated"), ("content_filter", "content_filter")]
)
def test_cut_or_filtered_responses_are_never_stored(
    ll_adapter: LiteLLMCache, ll_cache: Cache, reason: str, rejected: str
) -> None:
    call = {"model": MODEL, "messages": ask("write a long essay")}
    response = litellm.ModelResponse(
        choices=[{"message": {"role": "assistant", "content": "partial"}, "finish_reason": reason}]
    )
    ll_adapter.add_cache(response, **call)
    asyncio.run(ll_adapter.async_add_cache(response, **call))
    assert ll_adapter.get_cache(**call) is None
    assert ll_cache.stats()["store_rejected"] == {rejected: 2}
    stop = litellm.ModelResponse(
        choices=[{"message": {"role": "assistant", "content": "whole"}, "finish_reason": "stop"}]
    )
    ll_adapter.add_cache(stop, **call)
    assert ll_adapter.get_cache(**call) is not None


def test_a_calls_own_ttl_wins_over_an_adapter_that_stores_nothing(
    ll_cache: Cache, ll_install: Callable[..., LiteLLMCache], answer: Callable[..., str]
) -> None:
    ll_install(ll_cache, ttl=0)
    assert answer(mock_response="dropped") == "dropped"
    with cache_control(ttl=60):
        assert answer(mock_response="kept") == "kept"
    assert answer(mock_response="x") == "kept"
    assert ll_cache.stats()["stores"] == 1  # the answer only, never a placeholder


@pytest.mark.parametrize(
    "control",
    [
        {"no-cache": "true"},
        {"no-cache": 1},
        {"no-store": "yes"},
        {"no_cache": True},
        {"No-Cache": True},
        {"s_maxage": 10},
        {"s-maxage": float("nan")},
    ],
    ids=["no-cache-str", "no-cache-int", "no-store-str", "underscore", "case", "s_maxage", "nan"],
)
def test_a_malformed_cache_control_is_neither_read_nor_stored(
    ll_adapter: LiteLLMCache,
    ll_cache: Cache,
    fake_clock: FakeClock,
    answer: Callable[..., str],
    control: dict[str, Any],
) -> None:
    """LiteLLM ignores these: the call would be served what it asked not to be (a stale or
    cached answer), or stored. As the README says, the call runs and is not cached."""
    assert answer(mock_response="cached") == "cached"
    fake_clock.advance(100)
    assert answer(mock_response="fresh", cache=control) == "fresh"
    assert answer(mock_response="x") == "cached"  # the malformed call stored nothing
    assert ll_cache.stats()["stores"] == 1


def test_s_max_age_is_read_when_s_maxage_is_none(
    ll_adapter: LiteLLMCache, fake_clock: FakeClock, answer: Callable[..., str]
) -> None:
    assert answer(mock_response="old") == "old"
    fake_clock.advance(30)
    assert answer(mock_response="fresh", cache={"s-maxage": None, "s-max-age": 10}) == "fresh"
    fake_clock.advance(30)
    both = {"s-maxage": 100, "s-max-age": 10}  # the stricter of the two holds
    assert answer(mock_response="fresher", cache=both) == "fresher"


def test_a_none_flag_keeps_the_enclosing_blocks(
    ll_adapter: LiteLLMCache, answer: Callable[..., str]
) -> None:
    assert answer(mock_response="cached") == "cached"
    with cache_control(no_cache=True):
        assert answer(mock_response="fresh", cache={"no-cache": None}) == "fresh"


def test_a_read_only_adapter_never_recomputes_a_warmed_entry_early(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # LiteLLMCache(ttl=0) serves what a warm-up stored: a hit turned into a miss near expiry
    # refreshed nothing, and each call near expiry paid the model.
    from llmcache import CachePolicy

    clock = FakeClock()
    policy = CachePolicy(ttl_jitter=0, early_recompute=0.2)
    core = Cache.from_urls(["memory://"], policy=policy, clock=clock, rand=lambda: 0.001)
    monkeypatch.setattr(litellm, "cache", LiteLLMCache(core, ttl=0))
    litellm.completion(model=MODEL, messages=ask("w"), mock_response="warmed", cache={"ttl": 100})
    clock.advance(90)
    for i in range(3):
        reply = litellm.completion(model=MODEL, messages=ask("w"), mock_response=f"model {i}")
        assert reply.choices[0].message.content == "warmed"
    assert core.stats()["early_refreshes"] == 0
    core.close()
