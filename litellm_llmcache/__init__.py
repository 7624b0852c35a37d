"""LiteLLM adapter for llmcache (placeholder).

``LiteLLMCache`` (``litellm.cache = LiteLLMCache(cache)``) arrives in a later release of
llmcache. Until then this package only reserves the name: importing it works and exports
nothing, so code can probe for the adapter without installing litellm.
"""

__all__: list[str] = []
