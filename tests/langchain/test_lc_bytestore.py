"""``LLMCacheByteStore`` under LangChain's ``CacheBackedEmbeddings``, on every tier: vectors
come back from the cache, counted as hits, scoped, with TTL and invalidation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from conftest import exact_ttl
from langchain_classic.embeddings import CacheBackedEmbeddings
from langchain_core.embeddings import Embeddings

from langchain_llmcache.bytestore import LLMCacheByteStore
from llmcache import Cache, ConfigError, FakeClock, scope


class CountingEmbeddings(Embeddings):
    """Deterministic fake vectors; counts the texts it had to embed."""

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.embedded += texts
        return [[float(len(t)), float(sum(map(ord, t)) % 97), 0.5] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


@pytest.fixture
def cache(tier_url: str, fake_clock: FakeClock) -> Iterator[Cache]:
    cache = Cache.from_urls([tier_url], clock=fake_clock, fleet_stats=False, policy=exact_ttl())
    yield cache
    cache.close()


def _embedder(cache: Cache, **options: object) -> tuple[CountingEmbeddings, Embeddings]:
    inner = CountingEmbeddings()
    store = LLMCacheByteStore(cache, **options)  # type: ignore[arg-type]
    return inner, CacheBackedEmbeddings.from_bytes_store(inner, store, namespace="fake-v1")


def test_documents_are_embedded_once(cache: Cache) -> None:
    inner, embedder = _embedder(cache)
    first = embedder.embed_documents(["alpha", "beta"])
    again = embedder.embed_documents(["beta", "gamma", "alpha"])
    assert inner.embedded == ["alpha", "beta", "gamma"]  # only the new text
    assert again[0] == first[1] and again[2] == first[0]
    assert cache.stats()["hits"] == 2


def test_async_path_equals_sync(cache: Cache) -> None:
    inner, embedder = _embedder(cache)
    sync = embedder.embed_documents(["one", "two"])
    asynced = asyncio.run(embedder.aembed_documents(["two", "one", "three"]))
    assert asynced[:2] == [sync[1], sync[0]]
    assert inner.embedded == ["one", "two", "three"]


def test_vectors_belong_to_their_scope(cache: Cache) -> None:
    inner, embedder = _embedder(cache)
    with scope(user="alice"):
        embedder.embed_documents(["alice's private memo"])
    with scope(user="bob"):
        embedder.embed_documents(["alice's private memo"])
    assert inner.embedded == ["alice's private memo"] * 2


def test_ttl_and_invalidation_apply(cache: Cache, fake_clock: FakeClock) -> None:
    inner, embedder = _embedder(cache, ttl=60)
    embedder.embed_documents(["doc"])
    fake_clock.advance(61)
    embedder.embed_documents(["doc"])
    assert inner.embedded == ["doc", "doc"]
    removed = cache.invalidate(namespace="bytestore")
    assert removed >= 1
    embedder.embed_documents(["doc"])
    assert inner.embedded == ["doc"] * 3


def test_listing_keys_is_refused_with_the_reason() -> None:
    store = LLMCacheByteStore(Cache.from_urls(["memory://"]))
    with pytest.raises(NotImplementedError, match="hashed"):
        list(store.yield_keys())
    with pytest.raises(ConfigError, match="bytes"):
        store.mset([("k", "not bytes")])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match=r"llmcache\.Cache"):
        LLMCacheByteStore("memory://")  # type: ignore[arg-type]


def test_a_text_repeated_in_a_batch_is_read_once(cache: Cache) -> None:
    # A chunk repeated in one batch (a page header, a footer): the async path looked each
    # copy up at once, and every copy after the first waited, as a single-flight follower,
    # for a store that comes only after the lookup returns (half a second a copy).
    inner, embedder = _embedder(cache)
    vectors = asyncio.run(embedder.aembed_documents(["footer", "body", "footer", "footer"]))
    assert vectors[0] == vectors[2] == vectors[3] == inner.embed_query("footer")
    assert cache.stats()["misses"] == 2  # "footer" and "body", each read once
    again = embedder.embed_documents(["body", "footer", "body"])
    assert again == [vectors[1], vectors[0], vectors[1]]
    assert cache.stats()["hits"] == 2
