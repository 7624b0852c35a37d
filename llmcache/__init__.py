"""llmcache: one shared, scoped, tiered LLM-response cache for LangChain and LiteLLM.

from llmcache import Cache, scope
cache = Cache.from_urls(["memory://?maxsize=10000", "sqlite:///./llmcache.db"])
"""

from llmcache._sentinel import UNSET
from llmcache.cache import DEFAULT_URLS, Cache, CacheHit
from llmcache.clock import FakeClock
from llmcache.context import (
    cache_control,
    current_control,
    current_scope,
    current_tags,
    scope,
    tags,
)
from llmcache.entry import CacheEntry, Usage
from llmcache.errors import (
    CodecError,
    ConfigError,
    LLMCacheError,
    MissingExtraError,
    SchemaVersionError,
    TierError,
)
from llmcache.freshness import Popularity
from llmcache.keys import CacheKey, request_key
from llmcache.policy import CachePolicy
from llmcache.request import CacheControl, CacheRequest, Scope

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_URLS",
    "UNSET",
    "Cache",
    "CacheControl",
    "CacheEntry",
    "CacheHit",
    "CacheKey",
    "CachePolicy",
    "CacheRequest",
    "CodecError",
    "ConfigError",
    "FakeClock",
    "LLMCacheError",
    "MissingExtraError",
    "Popularity",
    "SchemaVersionError",
    "Scope",
    "TierError",
    "Usage",
    "__version__",
    "cache_control",
    "current_control",
    "current_scope",
    "current_tags",
    "request_key",
    "scope",
    "tags",
]
