"""LiteLLM adapter for llmcache: ``litellm.cache = LiteLLMCache(cache)``.

Needs the ``litellm`` extra (``pip install 'llmcache[litellm]'``), which also installs what
LiteLLM needs to serve a cache hit. Importing this package without litellm raises an
ImportError naming the extra.
"""

from llmcache._optional import require

require("litellm", extra="litellm", feature="the LiteLLM adapter (litellm_llmcache)")

from litellm_llmcache.cache import LiteLLMCache  # noqa: E402
from litellm_llmcache.scope import ACL_FIELD, TENANT_FIELD, USER_FIELD  # noqa: E402

__all__ = ["ACL_FIELD", "TENANT_FIELD", "USER_FIELD", "LiteLLMCache"]
