"""Embedding caching found wrong by the embeddings probe: LiteLLM token-id inputs and the
identity of a wrapped LangChain embedder in a semantic index."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import litellm
import pytest
from langchain_classic.embeddings import CacheBackedEmbeddings
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.stores import InMemoryByteStore

from llmcache import Cache
from llmcache.errors import ConfigError
from llmcache.request import CacheRequest
from llmcache.semantic.verifier import AcceptAll

EMBEDDING_MODEL = "text-embedding-3-small"


def _vectors(response: object) -> list[list[float]]:
    return [d["embedding"] for d in response.data]  # type: ignore[attr-defined]


def test_token_ids_are_one_input_of_a_sync_embedding(ll_install: Callable[..., object]) -> None:
    # OpenAI's ``input`` may be one text as its token ids: one vector. The sync path split
    # [5, 7] into the inputs 5 and 7, served the vector of the text [5] for "5" and
    # answered with two vectors.
    cache = Cache.from_urls(["memory://"])
    ll_install(cache)
    try:
        litellm.embedding(model=EMBEDDING_MODEL, input=[5], mock_response=[1.0, 1.0])
        fresh = litellm.embedding(model=EMBEDDING_MODEL, input=[5, 7], mock_response=[2.0, 2.0])
        assert _vectors(fresh) == [[2.0, 2.0]]
        again = litellm.embedding(model=EMBEDDING_MODEL, input=[5, 7], mock_response=[3.0, 3.0])
        assert _vectors(again) == [[2.0, 2.0]]  # from the cache, still one vector
        assert cache.stats()["hits"] == 1
    finally:
        cache.close()


async def test_token_ids_are_one_input_of_an_async_embedding(
    ll_install: Callable[..., object],
) -> None:
    # LiteLLM's async embedding cache splits the list per item and asks a key for each
    # token id: one vector per token was served. Such a call is not cached instead.
    cache = Cache.from_urls(["memory://"])
    ll_install(cache)
    try:
        await litellm.aembedding(model=EMBEDDING_MODEL, input=[5], mock_response=[1.0, 1.0])
        fresh = await litellm.aembedding(
            model=EMBEDDING_MODEL, input=[5, 7], mock_response=[2.0, 2.0]
        )
        assert _vectors(fresh) == [[2.0, 2.0]]
    finally:
        cache.close()


class _ModelA(DeterministicFakeEmbedding):
    model: str = "model-a"


class _ModelB(DeterministicFakeEmbedding):
    model: str = "model-b"


def _wrapped(inner: DeterministicFakeEmbedding) -> CacheBackedEmbeddings:
    return CacheBackedEmbeddings.from_bytes_store(
        inner, InMemoryByteStore(), namespace=inner.model, key_encoder="sha256"
    )


def test_semantic_index_refuses_another_model_behind_cache_backed_embeddings(
    tmp_path: Path,
) -> None:
    # Both were named "langchain:CacheBackedEmbeddings": model B's tier opened model A's
    # index and compared its vectors with model A's.
    def build(embedder: object) -> Cache:
        return Cache.from_urls(
            ["memory://", f"sqlite:///{tmp_path}/entries.db"],
            semantic=f"faiss://{tmp_path}/vectors.faiss?threshold=0.5&refresh=0",
            embedder=embedder,
            verifier=AcceptAll(),
        )

    request = CacheRequest(model="m", prompt="q", semantic_text="How do I reset my password?")
    first = build(_wrapped(_ModelA(size=8)))
    first.set(request, "use the reset link")
    first.close()
    with pytest.raises(ConfigError, match=r"langchain:_ModelA:model-a.*langchain:_ModelB"):
        build(_wrapped(_ModelB(size=8)))
    same = build(_wrapped(_ModelA(size=8)))  # the same model behind the wrapper: served
    try:
        hit = same.get(request)
        assert hit is not None and hit.entry.value == "use the reset link"
    finally:
        same.close()
