"""LangChain adapter for llmcache: ``set_llm_cache(LangChainCache(cache))``.

Needs langchain-core (``pip install 'llmcache[langchain]'``); never imports litellm.
"""

from llmcache._optional import require

require("langchain_core", extra="langchain", feature="langchain_llmcache (the LangChain adapter)")

from langchain_llmcache.bytestore import LLMCacheByteStore  # noqa: E402  (after the check)
from langchain_llmcache.cache import LangChainCache  # noqa: E402
from langchain_llmcache.streaming import CachedChatModel, cached  # noqa: E402

__all__ = ["CachedChatModel", "LLMCacheByteStore", "LangChainCache", "cached"]
