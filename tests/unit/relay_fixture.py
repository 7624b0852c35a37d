"""A stand-in for a library that only relays a lookup to llmcache and returns, as LiteLLM's
caching handler does; its caller then calls the model and stores. ``test_single_flight``
declares it a relay (``llmcache.singleflight.relay_package``)."""

from __future__ import annotations

from llmcache import Cache, CacheRequest
from llmcache.hit import CacheHit


def look_up(cache: Cache, request: CacheRequest) -> CacheHit | None:
    return cache.get(request)
