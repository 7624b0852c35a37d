"""A hit is flagged as LiteLLM flags its own, costs nothing, and counts what it saved."""

from __future__ import annotations

import litellm
import pytest
from ll_helpers import MODEL, ask

from litellm_llmcache import LiteLLMCache
from llmcache import Cache


def _priced_response(cached_tokens: int) -> litellm.ModelResponse:
    return litellm.ModelResponse(
        model=MODEL,
        choices=[
            {
                "message": {"role": "assistant", "content": "priced"},
                "finish_reason": "stop",
                "index": 0,
            }
        ],
        usage=litellm.Usage(
            prompt_tokens=1000,
            completion_tokens=200,
            total_tokens=1200,
            prompt_tokens_details={"cached_tokens": cached_tokens},
        ),
    )


@pytest.mark.parametrize("cached_tokens", [0, 400])
async def test_hit_costs_nothing_and_saves_the_original_cost(
    ll_adapter: LiteLLMCache, ll_cache: Cache, cached_tokens: int
) -> None:
    first = await litellm.acompletion(
        model=MODEL, messages=ask("p"), mock_response=_priced_response(cached_tokens)
    )
    original_cost = first._hidden_params["response_cost"]
    assert original_cost > 0
    hit = await litellm.acompletion(model=MODEL, messages=ask("p"), mock_response="x")
    assert hit.choices[0].message.content == "priced"
    assert hit._hidden_params["cache_hit"] is True
    assert hit._hidden_params["response_cost"] == 0
    marker = hit._hidden_params["llmcache"]
    assert marker["provider_cached_tokens"] == cached_tokens
    expected_in, expected_out = litellm.cost_per_token(
        model=MODEL,
        prompt_tokens=1000,
        completion_tokens=200,
        cache_read_input_tokens=cached_tokens,
    )
    assert marker["input_cost_saved_usd"] == pytest.approx(expected_in)
    assert marker["output_cost_saved_usd"] == pytest.approx(expected_out)
    assert marker["input_cost_saved_usd"] + marker["output_cost_saved_usd"] == pytest.approx(
        original_cost
    )
    stats = ll_cache.stats()
    # prompt_tokens already include the provider-cached ones: counted once
    assert stats["input_tokens_saved"] == 1000
    assert stats["output_tokens_saved"] == 200
    assert stats["cost_saved_usd"] == pytest.approx(original_cost)


def test_provider_prompt_cache_lowers_the_dollars_saved(ll_adapter: LiteLLMCache) -> None:
    litellm.completion(model=MODEL, messages=ask("a"), mock_response=_priced_response(0))
    litellm.completion(model=MODEL, messages=ask("b"), mock_response=_priced_response(800))
    full = litellm.completion(model=MODEL, messages=ask("a"), mock_response="x")
    discounted = litellm.completion(model=MODEL, messages=ask("b"), mock_response="x")
    full_in = full._hidden_params["llmcache"]["input_cost_saved_usd"]
    cut_in = discounted._hidden_params["llmcache"]["input_cost_saved_usd"]
    assert 0 < cut_in < full_in


def test_unpriced_model_saves_tokens_but_no_dollars(
    ll_adapter: LiteLLMCache, ll_cache: Cache
) -> None:
    litellm.completion(model="openai/my-private-model", messages=ask("q"), mock_response="a")
    hit = litellm.completion(model="openai/my-private-model", messages=ask("q"), mock_response="b")
    assert hit.choices[0].message.content == "a"
    assert ll_cache.stats()["cost_saved_usd"] == 0
    assert ll_cache.stats()["tokens_saved"] > 0


@pytest.mark.parametrize("lower", ["sqlite", "redis"])
def test_a_hit_from_a_lower_tier_is_backfilled_and_marked(
    lower: str, tmp_path: object, ll_install: object, request: pytest.FixtureRequest
) -> None:
    if lower == "redis":
        url = request.getfixturevalue("redis_prefix_url")
    else:
        url = f"sqlite:///{tmp_path}/two.db"
    cache = Cache.from_urls(["memory://", url])
    try:
        ll_install(cache)  # type: ignore[operator]
        litellm.completion(model=MODEL, messages=ask("t"), mock_response="stored")
        cache.tiers[0].clear(None)
        from_sql = litellm.completion(model=MODEL, messages=ask("t"), mock_response="x")
        from_memory = litellm.completion(model=MODEL, messages=ask("t"), mock_response="y")
        assert from_sql._hidden_params["llmcache"]["tier"] == cache.tiers[1].name
        assert from_memory._hidden_params["llmcache"]["tier"] == cache.tiers[0].name
        assert from_memory.choices[0].message.content == "stored"
    finally:
        cache.close()


@pytest.mark.parametrize("prompt_tokens", [-3, 10**13])
def test_an_answer_reporting_impossible_usage_is_still_cached(
    ll_adapter: LiteLLMCache, ll_cache: Cache, prompt_tokens: int
) -> None:
    # A provider (or proxy) bug: the answer was stored, then failed every read (never served).
    reported = litellm.ModelResponse(
        model=MODEL,
        choices=[{"message": {"role": "assistant", "content": "odd"}, "finish_reason": "stop"}],
        usage={"prompt_tokens": prompt_tokens, "completion_tokens": 5, "total_tokens": 2},
    )
    litellm.completion(model=MODEL, messages=ask("q"), mock_response=reported)
    hit = litellm.completion(model=MODEL, messages=ask("q"), mock_response="other")
    assert hit.choices[0].message.content == "odd"
    stats = ll_cache.stats()
    assert stats["decode_errors"] == 0
    assert stats["input_tokens_saved"] == 0  # unknown, not negative
    assert stats["output_tokens_saved"] == 5
