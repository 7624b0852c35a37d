"""Streams replay as streams; embeddings are cached per input; the Router shares entries."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import litellm
import pytest
from litellm import CustomLLM, EmbeddingResponse
from ll_helpers import MODEL, ask

from litellm_llmcache import LiteLLMCache
from llmcache import Cache, FakeClock


def _text(chunks: list[object]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks)  # type: ignore[attr-defined]


def _assert_marked(stream: object, chunks: list[Any], cache: Cache) -> None:
    """The replay and every chunk carry the hit marker, as a non-stream hit does."""
    assert stream._hidden_params["cache_hit"] is True  # type: ignore[attr-defined]
    assert stream._hidden_params["llmcache"]["tier"] == cache.tiers[0].name  # type: ignore[attr-defined]
    assert chunks
    for chunk in chunks:
        marker = chunk._hidden_params["llmcache"]
        assert marker["tier"] == cache.tiers[0].name
        assert marker["match"] == "exact"
        assert marker["output_tokens_saved"] > 0


def test_cached_stream_replays_as_a_stream(ll_adapter: LiteLLMCache, ll_cache: Cache) -> None:
    first = list(
        litellm.completion(model=MODEL, messages=ask("s"), mock_response="streamed", stream=True)
    )
    assert _text(first) == "streamed"
    plain = litellm.completion(model=MODEL, messages=ask("s"), mock_response="plain")
    assert plain.choices[0].message.content == "plain"  # stream=True is keyed
    again = litellm.completion(model=MODEL, messages=ask("s"), mock_response="x", stream=True)
    assert isinstance(again, litellm.CustomStreamWrapper)
    chunks = list(again)
    assert _text(chunks) == "streamed"
    _assert_marked(again, chunks, ll_cache)
    assert ll_cache.stats()["hits"] == 1


def test_a_fresh_stream_is_not_marked(ll_adapter: LiteLLMCache) -> None:
    chunks = list(
        litellm.completion(model=MODEL, messages=ask("f"), mock_response="new", stream=True)
    )
    assert chunks
    assert all("llmcache" not in c._hidden_params for c in chunks)


async def test_cached_async_stream_replays_as_a_stream(
    ll_adapter: LiteLLMCache, ll_cache: Cache
) -> None:
    first = await litellm.acompletion(
        model=MODEL, messages=ask("as"), mock_response="streamed", stream=True
    )
    assert _text([c async for c in first]) == "streamed"
    again = await litellm.acompletion(
        model=MODEL, messages=ask("as"), mock_response="x", stream=True
    )
    chunks = [c async for c in again]
    assert _text(chunks) == "streamed"
    _assert_marked(again, chunks, ll_cache)
    assert ll_cache.stats()["hits"] == 1


def test_embedding_second_call_is_a_hit(ll_adapter: LiteLLMCache, ll_cache: Cache) -> None:
    first = litellm.embedding(model="text-embedding-3-small", input="a", mock_response=[0.1, 0.2])
    again = litellm.embedding(model="text-embedding-3-small", input="a", mock_response=[0.9, 0.9])
    assert again._hidden_params["cache_hit"] is True
    assert [d["embedding"] for d in again.data] == [d["embedding"] for d in first.data]
    assert ll_cache.stats()["hits"] == 1


class CountingEmbedder(CustomLLM):
    """A provider that embeds each text as [len(text)] and records what it was asked."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[list[str]] = []

    def _embed(self, input: list[str], model_response: EmbeddingResponse) -> EmbeddingResponse:
        self.asked.append(list(input))
        model_response.data = [
            {"object": "embedding", "index": i, "embedding": [float(len(t))]}
            for i, t in enumerate(input)
        ]
        model_response.usage = litellm.Usage(prompt_tokens=len(input), total_tokens=len(input))
        return model_response

    def embedding(
        self, model: str, input: list[str], model_response: EmbeddingResponse, **_: Any
    ) -> EmbeddingResponse:  # type: ignore[override]
        return self._embed(input, model_response)

    async def aembedding(
        self, model: str, input: list[str], model_response: EmbeddingResponse, **_: Any
    ) -> EmbeddingResponse:  # type: ignore[override]
        return self._embed(input, model_response)


@pytest.fixture
def embedder() -> Iterator[CountingEmbedder]:
    handler = CountingEmbedder()
    before = litellm.custom_provider_map
    litellm.custom_provider_map = [{"provider": "counting", "custom_handler": handler}]
    litellm.utils.custom_llm_setup()
    yield handler
    litellm.custom_provider_map = before
    litellm.utils.custom_llm_setup()


async def test_aembedding_partial_hit_embeds_only_missing_inputs(
    ll_adapter: LiteLLMCache, ll_cache: Cache, embedder: CountingEmbedder
) -> None:
    await litellm.aembedding(model="counting/e", input=["a", "bb"])
    mixed = await litellm.aembedding(model="counting/e", input=["a", "ccc"])
    assert [d["embedding"] for d in mixed.data] == [[1.0], [3.0]]
    assert embedder.asked == [["a", "bb"], ["ccc"]]  # "a" was served, only "ccc" embedded
    full = await litellm.aembedding(model="counting/e", input=["ccc", "bb"])
    assert [d["embedding"] for d in full.data] == [[3.0], [2.0]]
    assert full._hidden_params["cache_hit"] is True
    assert embedder.asked == [["a", "bb"], ["ccc"]]


@pytest.mark.parametrize("control", [{"s-maxage": 10}, {"s-max-age": 10}])
async def test_aembedding_honours_s_maxage(
    ll_adapter: LiteLLMCache,
    ll_cache: Cache,
    embedder: CountingEmbedder,
    fake_clock: FakeClock,
    control: dict[str, int],
) -> None:
    # LiteLLM looks async embeddings up input by input with only the key: the age limit of
    # the call was lost and a 100 s old embedding was served.
    await litellm.aembedding(model="counting/e", input=["a"])
    for _ in range(500):  # LiteLLM stores in a task of its own: let it land first
        if ll_cache.stats()["stores"]:
            break
        await asyncio.sleep(0.01)
    fake_clock.advance(100)
    again = await litellm.aembedding(model="counting/e", input=["a"], cache=control)
    assert embedder.asked == [["a"], ["a"]]
    assert again._hidden_params.get("cache_hit") is not True
    served = await litellm.aembedding(model="counting/e", input=["a"], cache={"s-maxage": 500})
    assert served._hidden_params["cache_hit"] is True  # younger than 500 s: served
    assert len(embedder.asked) == 2


async def test_router_deployments_of_one_group_share_entries(
    ll_adapter: LiteLLMCache, ll_cache: Cache
) -> None:
    router = litellm.Router(
        model_list=[
            {"model_name": "chat", "litellm_params": {"model": "gpt-4o-mini", "api_key": "a"}},
            {"model_name": "chat", "litellm_params": {"model": "gpt-4o", "api_key": "b"}},
        ],
        cache_responses=True,
    )
    first = await router.acompletion(model="chat", messages=ask("r"), mock_response="routed")
    for _ in range(3):
        again = await router.acompletion(model="chat", messages=ask("r"), mock_response="x")
        assert again.choices[0].message.content == "routed"
    assert first.choices[0].message.content == "routed"
    sync = router.completion(model="chat", messages=ask("r"), mock_response="y")
    assert sync.choices[0].message.content == "routed"


async def test_per_input_embeddings_are_scoped(
    ll_adapter: LiteLLMCache, ll_cache: Cache, embedder: CountingEmbedder
) -> None:
    await litellm.aembedding(model="counting/e", input=["a"], metadata={"llmcache_user": "alice"})
    await litellm.aembedding(model="counting/e", input=["a"], metadata={"llmcache_user": "bob"})
    await litellm.aembedding(model="counting/e", input=["a"], metadata={"llmcache_user": "alice"})
    assert embedder.asked == [["a"], ["a"]]  # bob's own call; alice's second served


def test_embedding_partial_hit_embeds_only_missing_inputs(
    ll_adapter: LiteLLMCache, ll_cache: Cache, embedder: CountingEmbedder
) -> None:
    """Sync ``embedding`` is cached per input too (LiteLLM itself only does it for async)."""
    first = litellm.embedding(model="counting/e", input=["a", "bb"])
    assert first._hidden_params.get("cache_hit") is not True
    mixed = litellm.embedding(model="counting/e", input=["a", "ccc"])
    assert [d["embedding"] for d in mixed.data] == [[1.0], [3.0]]
    assert [d["index"] for d in mixed.data] == [0, 1]
    assert embedder.asked == [["a", "bb"], ["ccc"]]  # "a" was served, only "ccc" embedded
    full = litellm.embedding(model="counting/e", input=["ccc", "bb", "a"])
    assert [d["embedding"] for d in full.data] == [[3.0], [2.0], [1.0]]
    assert full._hidden_params["cache_hit"] is True
    assert full.usage is not None
    assert full.usage.prompt_tokens == 3  # what the three inputs cost when first embedded
    assert embedder.asked == [["a", "bb"], ["ccc"]]
    one = litellm.embedding(model="counting/e", input="bb")
    assert [d["embedding"] for d in one.data] == [[2.0]]
    assert embedder.asked == [["a", "bb"], ["ccc"]]


async def test_sync_and_async_embeddings_share_entries(
    ll_adapter: LiteLLMCache, embedder: CountingEmbedder
) -> None:
    litellm.embedding(model="counting/e", input=["a", "bb"])
    served = await litellm.aembedding(model="counting/e", input=["bb", "a"])
    assert [d["embedding"] for d in served.data] == [[2.0], [1.0]]
    await litellm.aembedding(model="counting/e", input=["dddd"])
    # LiteLLM stores an async answer in a background task; the next async call waits for it
    # (a sync call, which cannot, would miss while the task is pending).
    again = await litellm.aembedding(model="counting/e", input=["dddd"])
    assert again._hidden_params["cache_hit"] is True
    mixed = litellm.embedding(model="counting/e", input=["dddd", "eeeee"])
    assert [d["embedding"] for d in mixed.data] == [[4.0], [5.0]]
    assert embedder.asked == [["a", "bb"], ["dddd"], ["eeeee"]]


def test_sync_per_input_embeddings_are_scoped(
    ll_adapter: LiteLLMCache, embedder: CountingEmbedder
) -> None:
    alice, bob = {"llmcache_user": "alice"}, {"llmcache_user": "bob"}
    litellm.embedding(model="counting/e", input=["a", "b"], metadata=alice)
    litellm.embedding(model="counting/e", input=["a", "c"], metadata=bob)
    litellm.embedding(model="counting/e", input=["b", "c"], metadata=alice)
    assert embedder.asked == [["a", "b"], ["a", "c"], ["c"]]


class FailingEmbedder(CountingEmbedder):
    """Embeds like CountingEmbedder, but fails on any text starting with "fail"."""

    def _embed(self, input: list[str], model_response: EmbeddingResponse) -> EmbeddingResponse:
        self.asked.append(list(input))
        if any(t.startswith("fail") for t in input):
            raise litellm.BadRequestError(message="refused", model="e", llm_provider="failing")
        return super()._embed(input, model_response)


def test_a_failed_embedding_of_the_missing_inputs_fails_the_call_once(
    ll_adapter: LiteLLMCache, ll_cache: Cache
) -> None:
    handler = FailingEmbedder()
    before = litellm.custom_provider_map
    litellm.custom_provider_map = [{"provider": "failing", "custom_handler": handler}]
    litellm.utils.custom_llm_setup()
    try:
        litellm.embedding(model="failing/e", input=["ok"])
        handler.asked.clear()
        with pytest.raises(Exception, match="refused"):
            litellm.embedding(model="failing/e", input=["ok", "fail-me"])
        assert handler.asked == [["fail-me"]]  # the model was asked once, for the missing input
        # and nothing was stored for the failed input: a later call embeds it again
        with pytest.raises(Exception, match="refused"):
            litellm.embedding(model="failing/e", input=["fail-me"])
    finally:
        litellm.custom_provider_map = before
        litellm.utils.custom_llm_setup()
