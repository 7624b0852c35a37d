"""Round-trips found broken by probing the LiteLLM adapter (one test per fix)."""

from __future__ import annotations

import litellm
from ll_helpers import MODEL, ask
from pydantic import BaseModel

from litellm_llmcache import LiteLLMCache
from llmcache import Cache


class _Answer(BaseModel):
    x: int


class _Other(BaseModel):
    y: str


def test_response_format_pydantic_class_is_cached_and_keyed(ll_adapter: LiteLLMCache) -> None:
    first = litellm.completion(
        model=MODEL, messages=ask("rf"), response_format=_Answer, mock_response='{"x": 1}'
    )
    other = litellm.completion(
        model=MODEL, messages=ask("rf"), response_format=_Other, mock_response='{"y": "a"}'
    )
    again = litellm.completion(
        model=MODEL, messages=ask("rf"), response_format=_Answer, mock_response="unused"
    )
    assert first._hidden_params.get("cache_hit") is not True
    assert other.choices[0].message.content == '{"y": "a"}'  # another schema, another entry
    assert other._hidden_params.get("cache_hit") is not True
    assert again.choices[0].message.content == '{"x": 1}'
    assert again._hidden_params["cache_hit"] is True


TEXT_MODEL = "gpt-3.5-turbo-instruct"


async def test_atext_completion_stream_hit_replays_text_chunks(ll_adapter: LiteLLMCache) -> None:
    first = await litellm.atext_completion(
        model=TEXT_MODEL, prompt="say hi", mock_response="hello there", stream=True
    )
    assert "".join([c.choices[0].text or "" async for c in first]) == "hello there"
    again = await litellm.atext_completion(
        model=TEXT_MODEL, prompt="say hi", mock_response="other", stream=True
    )
    chunks = [c async for c in again]
    assert "".join(c.choices[0].text or "" for c in chunks) == "hello there"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c._hidden_params["llmcache"]["match"] == "exact" for c in chunks)
    # A sync call of the same prompt is served the same entry, as text chunks too.
    sync = litellm.text_completion(
        model=TEXT_MODEL, prompt="say hi", mock_response="other", stream=True
    )
    assert "".join(c.choices[0].text or "" for c in sync) == "hello there"


def test_responses_and_embedding_of_one_model_and_input_never_share(
    ll_adapter: LiteLLMCache,
) -> None:
    model = "text-embedding-3-small"
    litellm.responses(model=model, input="hello", mock_response="a text answer")
    vectors = litellm.embedding(model=model, input="hello", mock_response=[0.1, 0.2])
    assert vectors._hidden_params.get("cache_hit") is not True
    assert vectors.data[0]["embedding"] == [0.1, 0.2]
    litellm.embedding(model=model, input="other", mock_response=[0.3, 0.4])
    answer = litellm.responses(model=model, input="other", mock_response="fresh")
    assert answer.output_text == "fresh"
    again = litellm.responses(model=model, input="hello", mock_response="unused")
    assert again.output_text == "a text answer"  # Responses calls are still cached
    assert again._hidden_params["cache_hit"] is True


def test_responses_hit_counts_the_tokens_it_saved(
    ll_adapter: LiteLLMCache, ll_cache: Cache
) -> None:
    first = litellm.responses(model=MODEL, input="hello there", mock_response="an answer")
    litellm.responses(model=MODEL, input="hello there", mock_response="unused")
    stats = ll_cache.stats()
    assert stats["hits"] == 1
    assert stats["tokens_saved"] == first.usage.input_tokens + first.usage.output_tokens > 0
