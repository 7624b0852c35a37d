"""``LLMCacheByteStore``: a LangChain ``ByteStore`` on llmcache's tiers, for embeddings.

LangChain's ``CacheBackedEmbeddings`` keeps each text's vector in a ``ByteStore``; this one
puts them in the same tiers, under the same scopes, as the LLM answers (memory in front of
SQLite, Redis for a fleet...), with TTLs, invalidation, encryption and stats:

    from langchain_classic.embeddings import CacheBackedEmbeddings
    store = LLMCacheByteStore(cache)
    embedder = CacheBackedEmbeddings.from_bytes_store(OpenAIEmbeddings(), store,
                                                      namespace="text-embedding-3-small")

Each key is one cache entry (the key is hashed like any request, so keys are never listed:
``yield_keys`` is not supported), the bytes are stored base64 in the JSON entry, and a read
that finds nothing is a miss in ``cache.stats()``, a found key a hit.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator, Iterator, Sequence

from langchain_core.stores import BaseStore

from llmcache._sentinel import UNSET, Unset
from llmcache.cache import Cache
from llmcache.context import current_scope
from llmcache.errors import ConfigError
from llmcache.request import CacheRequest

#: Default namespace of byte-store entries (part of each key; LLM answers use others).
NAMESPACE = "bytestore"
_MODEL = "llmcache-bytestore"


class LLMCacheByteStore(BaseStore[str, bytes]):
    """A ``BaseStore[str, bytes]`` on an llmcache ``Cache`` (sync and native async).

    Args:
        cache: the llmcache ``Cache`` whose tiers hold the values.
        namespace: keeps these values apart from other stores on the same tiers.
        ttl: seconds to keep each value (not passed: the cache policy's default;
            ``None``: each tier's default; ``0``: store nothing).

    Values belong to the ambient ``llmcache.scope(...)``, like answers: one user's cached
    embeddings of a private document are never another scope's.
    """

    def __init__(
        self, cache: Cache, *, namespace: str = NAMESPACE, ttl: float | Unset | None = UNSET
    ) -> None:
        if not isinstance(cache, Cache):
            raise ConfigError(
                f"LLMCacheByteStore takes an llmcache.Cache, got {type(cache).__name__}"
            )
        if not isinstance(namespace, str) or not namespace:
            raise ConfigError("LLMCacheByteStore namespace must be a non-empty string")
        self.cache = cache
        self.namespace = namespace
        self.ttl = ttl

    def _request(self, key: str) -> CacheRequest:
        if not isinstance(key, str):
            raise ConfigError(f"byte-store keys are strings, got {type(key).__name__}")
        return CacheRequest(
            model=_MODEL, prompt=key, scope=current_scope(), namespace=self.namespace
        )

    # ------------------------------------------------------------------ reads
    # A key repeated in one call (a chunk that occurs twice in a batch) is looked up once:
    # concurrent lookups of one missing key would make all but the first wait for the first
    # one's store (single-flight), which comes only after this call returns.
    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        found = {key: _bytes(self.cache.get(self._request(key))) for key in _unique(keys)}
        return [found[key] for key in keys]

    async def amget(self, keys: Sequence[str]) -> list[bytes | None]:
        unique = _unique(keys)
        hits = await asyncio.gather(*(self.cache.aget(self._request(key)) for key in unique))
        found = {key: _bytes(hit) for key, hit in zip(unique, hits, strict=True)}
        return [found[key] for key in keys]

    # ------------------------------------------------------------------ writes
    def mset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        for key, value in key_value_pairs:
            self.cache.set(self._request(key), _text(value), ttl=self.ttl)

    async def amset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        await asyncio.gather(
            *(
                self.cache.aset(self._request(key), _text(value), ttl=self.ttl)
                for key, value in key_value_pairs
            )
        )

    def mdelete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.cache.delete(self._request(key))

    async def amdelete(self, keys: Sequence[str]) -> None:
        await asyncio.gather(*(self.cache.adelete(self._request(key)) for key in keys))

    # ------------------------------------------------------------------ listing
    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        raise NotImplementedError(
            "LLMCacheByteStore cannot list keys: llmcache stores them hashed (that is what "
            "keeps scopes apart); CacheBackedEmbeddings does not need it"
        )

    async def ayield_keys(self, *, prefix: str | None = None) -> AsyncIterator[str]:
        raise NotImplementedError("LLMCacheByteStore cannot list keys: llmcache stores them hashed")
        yield  # pragma: no cover  (makes this an async generator)


def _unique(keys: Sequence[str]) -> list[str]:
    """``keys`` without repeats, in order (each checked to be a string first)."""
    for key in keys:
        if not isinstance(key, str):
            raise ConfigError(f"byte-store keys are strings, got {type(key).__name__}")
    return list(dict.fromkeys(keys))


def _text(value: bytes) -> str:
    if not isinstance(value, (bytes, bytearray)):
        raise ConfigError(f"byte-store values are bytes, got {type(value).__name__}")
    return base64.b64encode(value).decode("ascii")


def _bytes(hit: object) -> bytes | None:
    if hit is None:
        return None
    value = getattr(getattr(hit, "entry", None), "value", None)
    if not isinstance(value, str):
        return None  # not one of ours (another writer under this namespace): a miss
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
