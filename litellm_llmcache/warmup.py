"""Warm-up for LiteLLM: FAQ answers stored under the key of
``litellm.completion(model=..., messages=[{"role": "user", "content": question}])``, and
logged calls replayed through ``litellm.acompletion`` with this cache.

    from llmcache.warmup import read_faq, warm_faq
    from litellm_llmcache.warmup import LiteLLMWarmup

    warm_faq(LiteLLMWarmup(LiteLLMCache(cache), "gpt-4o-mini"), read_faq("faq.csv"))

The request and value of a FAQ row are the adapter's own (``LiteLLMCache._store_target`` and
``stored_payload`` of a ``ModelResponse`` holding the answer, with zero usage: no tokens were
spent), so a hit takes LiteLLM's normal path. LiteLLM keys ``stream=True`` calls apart: each
row is stored for both. A replayed call is stored by LiteLLM's own cache path, which sets no
llmcache tags.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import litellm

from litellm_llmcache.cache import LiteLLMCache, _await_litellm_writes, stored_payload
from litellm_llmcache.convert import usage_of
from llmcache.errors import ConfigError
from llmcache.warmup.run import FaqAnswer

if TYPE_CHECKING:
    from llmcache.cache import Cache


class LiteLLMWarmup:
    """The ``WarmupTarget`` of one LiteLLM model over a ``LiteLLMCache``.

    Args:
        cache: the ``LiteLLMCache`` the app sets as ``litellm.cache``; replaying calls needs it
            to be ``litellm.cache`` (LiteLLM has no per-call cache).
        model: the model name the app passes (``gpt-4o-mini``, ``anthropic/claude-...``).
        system_prompt: the system message the app sends before each question, if any.
        params: other call arguments the app passes and that are keyed (``temperature`` ...).
        mock_response: passed to LiteLLM as ``mock_response`` when replaying (offline tests).
    """

    def __init__(
        self,
        cache: LiteLLMCache,
        model: str,
        *,
        system_prompt: str | None = None,
        params: Mapping[str, Any] | None = None,
        mock_response: str | None = None,
    ) -> None:
        if not isinstance(cache, LiteLLMCache):
            raise ConfigError(f"LiteLLMWarmup takes a LiteLLMCache, got {type(cache).__name__}")
        if not isinstance(model, str) or not model:
            raise ConfigError(f"the LiteLLM model must be a model name, got {model!r}")
        self._adapter = cache
        self._model = model
        self._system = (
            [] if system_prompt is None else [{"role": "system", "content": system_prompt}]
        )
        self._params = dict(params or {})
        self._mock = {} if mock_response is None else {"mock_response": mock_response}

    @property
    def cache(self) -> Cache:
        return self._adapter.llmcache

    def _call(self, messages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return {**self._params, "model": self._model, "messages": list(messages)}

    def faq_answers(self, question: str, answer: str) -> tuple[FaqAnswer, ...]:
        """Two entries: LiteLLM keys ``stream=True`` calls apart, and replays a stored
        answer as a stream to them."""
        response = litellm.ModelResponse(
            model=self._model,
            choices=[
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": answer},
                }
            ],
            usage=litellm.Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0),
        )
        call = self._call([*self._system, {"role": "user", "content": question}])
        return tuple(self._entry(response, {**call, **way}) for way in ({}, {"stream": True}))

    def _entry(self, response: Any, call: Mapping[str, Any]) -> FaqAnswer:
        target = self._adapter._store_target(call)
        if target is None:
            raise ConfigError(
                "this LiteLLMCache would not store such a call (mode='default_off' or caching "
                "disabled in params)"
            )
        request, _ttl = target  # the request carries the FAQ's tags (the ambient ones)
        payload = stored_payload(response)
        return FaqAnswer(request, payload, usage_of(payload))

    async def replay(self, messages: Sequence[Mapping[str, Any]]) -> bool:
        if litellm.cache is not self._adapter:
            raise ConfigError("replaying through LiteLLM needs litellm.cache = this LiteLLMCache")
        call = self._call(messages)
        response = await litellm.acompletion(**call, **self._mock)
        # LiteLLM stores in background tasks: the answer is stored when this returns.
        await _await_litellm_writes(call)
        return getattr(response, "_hidden_params", {}).get("cache_hit") is True
