"""Tags through the LangChain adapter: ``with llmcache.tags(...)`` marks what an ``invoke``
stores, and ``cache.invalidate(tags=...)`` makes the next ``invoke`` a miss, on every tier."""

from __future__ import annotations

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from lc_fakes import ScriptedChat

from langchain_llmcache import LangChainCache
from llmcache import ConfigError, current_tags, scope, tags


def test_invalidating_a_tag_makes_the_next_invoke_a_miss(lc_tier_cache: LangChainCache) -> None:
    model = ScriptedChat(cache=lc_tier_cache)
    with tags("kb-7"):
        model.invoke("what does kb-7 say?")
    model.invoke("untagged question")
    with tags("kb-9"):
        model.invoke("what does kb-9 say?")
    assert model.calls == 3
    model.invoke("what does kb-7 say?")  # a hit: tags are not part of the key
    assert model.calls == 3

    assert lc_tier_cache.cache.invalidate(tags=["kb-7"]) == 1
    model.invoke("what does kb-7 say?")
    assert model.calls == 4  # the model was called again
    model.invoke("untagged question")
    model.invoke("what does kb-9 say?")
    assert model.calls == 4  # the others still hit


def test_invalidating_the_model_that_answered(lc_tier_cache: LangChainCache) -> None:
    """A chat model whose llm_string names only its class (LangChain's fakes, some wrappers)
    is known by the model its answers name: ``invalidate(model=...)`` with that name makes
    its next ``invoke`` a miss and leaves other models' entries alone."""
    answers = iter(
        AIMessage(content=f"answer {i}", response_metadata={"model_name": "gpt-4o-mini"})
        for i in range(1, 3)
    )
    llm = GenericFakeChatModel(messages=answers, cache=lc_tier_cache)
    other = ScriptedChat(cache=lc_tier_cache)
    assert llm.invoke("q").content == "answer 1"
    other.invoke("q")
    assert llm.invoke("q").content == "answer 1"  # a hit

    assert lc_tier_cache.cache.invalidate(model="gpt-4o-mini") == 1
    assert llm.invoke("q").content == "answer 2"  # the model was asked again
    other.invoke("q")
    assert other.calls == 1  # the other model's entry still hits


async def test_async_invoke_and_ainvalidate(lc_tier_cache: LangChainCache) -> None:
    model = ScriptedChat(cache=lc_tier_cache)
    with scope(user="alice"), tags("faq"):
        await model.ainvoke("q")
        await model.ainvoke("q")
        assert model.calls == 1
    assert await lc_tier_cache.cache.ainvalidate(tags=["faq"]) == 1
    with scope(user="alice"):
        await model.ainvoke("q")
    assert model.calls == 2


def test_tags_blocks_nest_and_validate() -> None:
    assert current_tags() == ()
    with tags("a", "b") as outer:
        assert outer == ("a", "b")
        with tags("b", "c"):
            assert current_tags() == ("a", "b", "c")
        assert current_tags() == ("a", "b")
    assert current_tags() == ()
    with pytest.raises(ConfigError, match="non-empty string"), tags(""):
        pass
    with pytest.raises(ConfigError, match="non-empty string"), tags(["a"]):  # type: ignore[arg-type]
        pass
