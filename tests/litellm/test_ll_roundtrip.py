"""completion / acompletion / text_completion: miss, store, hit; marked as LiteLLM marks hits."""

from __future__ import annotations

import litellm
from conftest import MODEL, ask

from litellm_llmcache import LiteLLMCache
from llmcache import Cache


def test_completion_second_call_is_a_hit(adapter: LiteLLMCache, llm_cache: Cache) -> None:
    first = litellm.completion(model=MODEL, messages=ask("hi"), mock_response="hello")
    second = litellm.completion(model=MODEL, messages=ask("hi"), mock_response="other")
    assert first._hidden_params.get("cache_hit") is not True
    assert second.choices[0].message.content == "hello"
    assert second._hidden_params["cache_hit"] is True
    assert second._hidden_params["cache_key"].startswith("llmcache:")
    marker = second._hidden_params["llmcache"]
    assert marker["tier"] == llm_cache.tiers[0].name
    assert marker["match"] == "exact"
    assert marker["similarity"] is None
    stats = llm_cache.stats()
    assert stats["hits"] == 1
    assert stats["tokens_saved"] == first.usage.prompt_tokens + first.usage.completion_tokens


async def test_acompletion_second_call_awaited_right_after_is_a_hit(
    adapter: LiteLLMCache, llm_cache: Cache
) -> None:
    first = await litellm.acompletion(model=MODEL, messages=ask("hi"), mock_response="hello")
    second = await litellm.acompletion(model=MODEL, messages=ask("hi"), mock_response="other")
    assert first._hidden_params.get("cache_hit") is not True
    assert second.choices[0].message.content == "hello"
    assert second._hidden_params["cache_hit"] is True
    assert second._hidden_params["llmcache"]["tier"] == llm_cache.tiers[0].name
