"""completion / acompletion / text_completion: miss, store, hit; marked as LiteLLM marks hits."""

from __future__ import annotations

from typing import Any

import litellm
import pytest
from ll_helpers import MODEL, ask

from litellm_llmcache import LiteLLMCache
from llmcache import Cache, ConfigError


def test_completion_second_call_is_a_hit(ll_adapter: LiteLLMCache, ll_cache: Cache) -> None:
    first = litellm.completion(model=MODEL, messages=ask("hi"), mock_response="hello")
    second = litellm.completion(model=MODEL, messages=ask("hi"), mock_response="other")
    assert first._hidden_params.get("cache_hit") is not True
    assert second.choices[0].message.content == "hello"
    assert second._hidden_params["cache_hit"] is True
    assert second._hidden_params["cache_key"].startswith("llmcache:")
    marker = second._hidden_params["llmcache"]
    assert marker["tier"] == ll_cache.tiers[0].name
    assert marker["match"] == "exact"
    assert marker["similarity"] is None
    stats = ll_cache.stats()
    assert stats["hits"] == 1
    assert stats["tokens_saved"] == first.usage.prompt_tokens + first.usage.completion_tokens


async def test_acompletion_second_call_awaited_right_after_is_a_hit(
    ll_adapter: LiteLLMCache, ll_cache: Cache
) -> None:
    first = await litellm.acompletion(model=MODEL, messages=ask("hi"), mock_response="hello")
    second = await litellm.acompletion(model=MODEL, messages=ask("hi"), mock_response="other")
    assert first._hidden_params.get("cache_hit") is not True
    assert second.choices[0].message.content == "hello"
    assert second._hidden_params["cache_hit"] is True
    assert second._hidden_params["llmcache"]["tier"] == ll_cache.tiers[0].name


def test_text_completion_second_call_is_a_hit(ll_adapter: LiteLLMCache, ll_cache: Cache) -> None:
    first = litellm.text_completion(model="gpt-3.5-turbo-instruct", prompt="hi", mock_response="yo")
    second = litellm.text_completion(
        model="gpt-3.5-turbo-instruct", prompt="hi", mock_response="other"
    )
    assert first.choices[0].text == "yo"
    assert second.choices[0].text == "yo"
    assert ll_cache.stats()["hits"] == 1


async def test_atext_completion_second_call_is_a_hit(
    ll_adapter: LiteLLMCache, ll_cache: Cache
) -> None:
    await litellm.atext_completion(model="gpt-3.5-turbo-instruct", prompt="hi", mock_response="yo")
    second = await litellm.atext_completion(
        model="gpt-3.5-turbo-instruct", prompt="hi", mock_response="other"
    )
    assert second.choices[0].text == "yo"
    assert ll_cache.stats()["hits"] == 1


def test_long_conversation_is_cached(ll_adapter: LiteLLMCache, ll_cache: Cache) -> None:
    """LiteLLM's own Cache silently skips more than 4 messages; this one does not."""
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"t{i}"} for i in range(9)]
    litellm.completion(model=MODEL, messages=turns, mock_response="long")
    again = litellm.completion(model=MODEL, messages=turns, mock_response="other")
    assert again.choices[0].message.content == "long"
    assert again._hidden_params["cache_hit"] is True


def test_a_different_parameter_is_a_different_entry(ll_adapter: LiteLLMCache) -> None:
    calls: list[dict[str, object]] = [
        {},
        {"temperature": 0.2},
        {"seed": 7},
        {"n": 2},
        {"response_format": {"type": "json_object"}},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        {"max_tokens": 5},
    ]
    for index, extra in enumerate(calls):
        answer = litellm.completion(
            model=MODEL, messages=ask("same"), mock_response=f"a{index}", **extra
        )
        assert answer._hidden_params.get("cache_hit") is not True, extra
    other_model = litellm.completion(model="gpt-4o", messages=ask("same"), mock_response="m")
    assert other_model.choices[0].message.content == "m"


def test_metadata_and_api_key_are_not_keyed(ll_adapter: LiteLLMCache) -> None:
    litellm.completion(model=MODEL, messages=ask("k"), mock_response="one", api_key="sk-a")
    again = litellm.completion(
        model=MODEL,
        messages=ask("k"),
        mock_response="two",
        api_key="sk-b",
        metadata={"trace": "x"},
    )
    assert again.choices[0].message.content == "one"


def test_sync_and_async_share_entries(ll_adapter: LiteLLMCache) -> None:
    import asyncio

    litellm.completion(model=MODEL, messages=ask("both"), mock_response="sync")
    served = asyncio.run(
        litellm.acompletion(model=MODEL, messages=ask("both"), mock_response="async")
    )
    assert served.choices[0].message.content == "sync"


def test_constructor_errors_name_the_fix(ll_cache: Cache) -> None:
    with pytest.raises(ConfigError, match=r"Cache\.from_urls"):
        LiteLLMCache("memory://")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ttl must be >= 0"):
        LiteLLMCache(ll_cache, ttl=-1)
    with pytest.raises(ConfigError, match="namespace"):
        LiteLLMCache(ll_cache, namespace="")


def test_adapter_namespaces_keep_apps_apart(ll_cache: Cache, ll_install: Any) -> None:
    ll_install(ll_cache, namespace="app-a")
    litellm.completion(model=MODEL, messages=ask("n"), mock_response="a")
    ll_install(ll_cache, namespace="app-b")
    other = litellm.completion(model=MODEL, messages=ask("n"), mock_response="b")
    assert other.choices[0].message.content == "b"
