"""A broken tier or a bad stored value never fails a LiteLLM call (real broken tiers)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import litellm
import pytest
from ll_helpers import MODEL, ask

from litellm_llmcache import LiteLLMCache
from litellm_llmcache.request import NAMESPACE, build_request
from llmcache import Cache


async def test_calls_answer_through_a_corrupt_sqlite_tier(
    tmp_path: Path, ll_install: Callable[..., LiteLLMCache]
) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not an SQLite database\x00" * 512)
    cache = Cache.from_urls(["memory://", f"sqlite:///{path}"])
    try:
        ll_install(cache)
        first = await litellm.acompletion(model=MODEL, messages=ask("f"), mock_response="real")
        again = await litellm.acompletion(model=MODEL, messages=ask("f"), mock_response="x")
        sync = litellm.completion(model=MODEL, messages=ask("g"), mock_response="sync real")
        assert first.choices[0].message.content == "real"
        assert again.choices[0].message.content == "real"  # the healthy memory tier serves
        assert again._hidden_params["llmcache"]["tier"] == "memory"
        assert sync.choices[0].message.content == "sync real"
        assert cache.stats()["errors_by_tier"][cache.tiers[1].name] >= 1
    finally:
        cache.close()


def test_a_stored_value_that_is_not_a_response_is_a_miss(
    ll_adapter: LiteLLMCache, ll_cache: Cache
) -> None:
    litellm.completion(model=MODEL, messages=ask("v"), mock_response="good")
    request = build_request({"model": MODEL, "messages": ask("v")}, NAMESPACE)
    ll_cache.set(request, ["not", "a", "response"])  # same key, unusable value
    served = litellm.completion(model=MODEL, messages=ask("v"), mock_response="recomputed")
    assert served.choices[0].message.content == "recomputed"
    assert ll_cache.stats()["stores"] == 3  # good, the bad value, then recomputed (bad deleted)


@pytest.mark.parametrize(
    "value",
    [
        {"choices": [{"message": {"content": "x", "role": "assistant"}}], "usage": "n/a"},
        {"choices": [{"message": "hello"}]},
        {"choices": [{"text": "x"}], "usage": 5},
    ],
)
async def test_a_stored_response_litellm_cannot_rebuild_is_a_miss_and_deleted(
    ll_adapter: LiteLLMCache, ll_cache: Cache, value: dict[str, object]
) -> None:
    # LiteLLM rebuilds a hit after get_cache returns: "Invalid response object" was raised
    # into every call of the key (an import file or another writer put it there), and stayed.
    request = build_request({"model": MODEL, "messages": ask("poison")}, NAMESPACE)
    ll_cache.set(request, value)
    served = litellm.completion(model=MODEL, messages=ask("poison"), mock_response="fresh")
    assert served.choices[0].message.content == "fresh"
    again = await litellm.acompletion(model=MODEL, messages=ask("poison"), mock_response="x")
    assert again.choices[0].message.content == "fresh"  # what replaced it is served
    assert again._hidden_params["llmcache"]["match"] == "exact"
    ll_cache.set(request, value)
    served = await litellm.acompletion(model=MODEL, messages=ask("poison"), mock_response="async")
    assert served.choices[0].message.content == "async"


def test_a_known_cache_key_does_not_open_another_users_entry(ll_adapter: LiteLLMCache) -> None:
    """Keys are visible in ``_hidden_params``; passing alice's as ``cache_key`` gets bob nothing."""
    litellm.completion(model=MODEL, messages=ask("mine"), user="alice", mock_response="alice's")
    hit = litellm.completion(model=MODEL, messages=ask("mine"), user="alice", mock_response="x")
    token = hit._hidden_params["cache_key"]
    assert token.startswith("llmcache:")
    stolen = litellm.completion(
        model=MODEL, messages=ask("mine"), user="bob", cache_key=token, mock_response="bob's"
    )
    assert stolen.choices[0].message.content == "bob's"
    assert ll_adapter.get_cache(cache_key=token, user="bob") is None
    assert ll_adapter.get_cache(cache_key=token) is not None  # LiteLLM's own per-input lookup


async def test_a_message_holding_a_lone_surrogate_never_fails_the_call(
    ll_adapter: LiteLLMCache,
) -> None:
    """LiteLLM's async path asks for the key before anything else: a key that could not be
    built (orjson refuses lone surrogates) was raised into ``acompletion``."""
    messages = [{"role": "user", "content": "log line: caf\udce9"}]
    first = await litellm.acompletion(model=MODEL, messages=messages, mock_response="answer")
    again = await litellm.acompletion(model=MODEL, messages=messages, mock_response="other")
    assert first.choices[0].message.content == "answer"
    assert again.choices[0].message.content == "answer"  # a hit
    assert again._hidden_params["cache_hit"] is True
