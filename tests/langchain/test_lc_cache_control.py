"""``llmcache.cache_control(...)`` overrides the policy for the LangChain calls in its block."""

from __future__ import annotations

import asyncio

import pytest
from lc_fakes import ScriptedChat, text_reply

from langchain_llmcache import LangChainCache
from llmcache import Cache, CachePolicy, ConfigError, FakeClock, cache_control


@pytest.fixture(params=["sync", "async"])
def invoke(request: pytest.FixtureRequest) -> object:
    def _invoke(model: ScriptedChat, prompt: str) -> str:
        if request.param == "sync":
            return str(model.invoke(prompt).content)
        return str(asyncio.run(model.ainvoke(prompt)).content)

    return _invoke


def test_ttl_of_the_block_wins_over_the_adapter_default(
    lc_cache: LangChainCache, fake_clock: FakeClock, invoke: object
) -> None:
    lc = LangChainCache(lc_cache.cache, ttl=3_600)
    model = ScriptedChat(cache=lc, reply=text_reply("first"))
    with cache_control(ttl=10):
        assert invoke(model, "q") == "first"  # type: ignore[operator]
    fake_clock.advance(9)
    assert invoke(model, "q") == "first"  # type: ignore[operator]
    assert model.calls == 1
    fake_clock.advance(2)
    invoke(model, "q")  # type: ignore[operator]
    assert model.calls == 2


def test_no_store_and_no_cache(lc_cache: LangChainCache, invoke: object) -> None:
    model = ScriptedChat(cache=lc_cache, reply=text_reply("answer"))
    with cache_control(no_store=True):
        invoke(model, "private")  # type: ignore[operator]
    invoke(model, "private")  # type: ignore[operator]
    assert model.calls == 2  # the first answer was not stored
    with cache_control(no_cache=True):
        invoke(model, "private")  # type: ignore[operator]
    assert model.calls == 3  # not read...
    invoke(model, "private")  # type: ignore[operator]
    assert model.calls == 3  # ...but stored (and served to the next call)
    assert lc_cache.cache.stats()["stores"] == 2


def test_strict_for_the_block_only(fake_clock: FakeClock, invoke: object) -> None:
    lc = LangChainCache(Cache.from_urls(["memory://"], clock=fake_clock))
    hot = ScriptedChat(cache=lc, temperature=0.9)
    with cache_control(strict=True):
        invoke(hot, "story")  # type: ignore[operator]
        invoke(hot, "story")  # type: ignore[operator]
    assert hot.calls == 2  # strict: a hot temperature is not cached
    invoke(hot, "story")  # type: ignore[operator]
    invoke(hot, "story")  # type: ignore[operator]
    assert hot.calls == 3  # outside the block the policy (cache all) decides
    strict = LangChainCache(Cache.from_urls(["memory://"], policy=CachePolicy.strict()))
    hot_strict = ScriptedChat(cache=strict, temperature=0.9)
    with cache_control(strict=False):  # a caller that knows its answers are reusable
        invoke(hot_strict, "story")  # type: ignore[operator]
        invoke(hot_strict, "story")  # type: ignore[operator]
    assert hot_strict.calls == 1


def test_blocks_nest_and_bad_values_are_refused() -> None:
    with cache_control(ttl=60) as outer:
        with cache_control(no_store=True) as inner:
            assert (inner.ttl, inner.no_store) == (60.0, True)
        assert not outer.no_store
    with pytest.raises(ConfigError, match="ttl must be >= 0"), cache_control(ttl=-1):
        pass
    with pytest.raises(ConfigError, match="no_store"), cache_control(no_store="yes"):  # type: ignore[arg-type]
        pass
