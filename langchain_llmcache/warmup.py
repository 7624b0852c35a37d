"""Warm-up for LangChain: FAQ answers stored under the key ``model.invoke(question)`` looks up,
and logged calls replayed through ``model.ainvoke`` with this cache.

    from llmcache.warmup import read_faq, warm_faq
    from langchain_llmcache.warmup import LangChainWarmup

    warm_faq(LangChainWarmup(LangChainCache(cache), llm), read_faq("faq.csv"))

The key of a FAQ row is not rebuilt here: the model is run once with a stand-in cache that
answers at once, so LangChain itself computes the prompt and ``llm_string`` a later
``invoke`` of the same question will look up (the model is never called). The value stored is
the adapter's own payload of an ``AIMessage`` holding the answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.caches import BaseCache
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    convert_to_messages,
)
from langchain_core.outputs import ChatGeneration, Generation

from langchain_llmcache.cache import LangChainCache
from langchain_llmcache.convert import MARKER, to_payload, usage_of
from llmcache.errors import ConfigError
from llmcache.warmup.run import FaqAnswer

if TYPE_CHECKING:
    from llmcache.cache import Cache


class _AnswerAtOnce(BaseCache):
    """A cache that serves one answer to the first lookup and remembers what was asked."""

    def __init__(self, generations: Sequence[Generation]) -> None:
        self.generations = list(generations)
        self.asked: tuple[str, str] | None = None

    def lookup(self, prompt: str, llm_string: str) -> list[Generation]:
        self.asked = (prompt, llm_string)
        return self.generations

    def update(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        """Never called: every lookup is a hit."""

    def clear(self, **kwargs: Any) -> None:
        """Nothing is kept."""


class LangChainWarmup:
    """The ``WarmupTarget`` of one LangChain chat model over a ``LangChainCache``.

    Args:
        cache: the ``LangChainCache`` the app uses (its namespace is part of the key).
        model: the chat model the app calls, configured as the app configures it (model
            name, temperature ...: they are part of the key).
        system_prompt: the system message the app sends before each question, if any.
    """

    def __init__(
        self, cache: LangChainCache, model: BaseChatModel, *, system_prompt: str | None = None
    ) -> None:
        if not isinstance(cache, LangChainCache):
            raise ConfigError(f"LangChainWarmup takes a LangChainCache, got {type(cache).__name__}")
        if not isinstance(model, BaseChatModel):
            raise ConfigError(
                f"the model to warm up must be a LangChain chat model (BaseChatModel), "
                f"got {type(model).__name__}"
            )
        self._adapter = cache
        self._model = model
        self._system = [] if system_prompt is None else [SystemMessage(system_prompt)]
        # The app's model with this cache (a shallow copy: the caller's model is not changed).
        self._cached_model = model.model_copy(update={"cache": cache})

    @property
    def cache(self) -> Cache:
        return self._adapter.cache

    def faq_answers(self, question: str, answer: str) -> tuple[FaqAnswer]:
        """One entry: ``invoke`` and ``stream`` share it."""
        generations = [ChatGeneration(message=AIMessage(content=answer))]
        # A copy: langchain-core rewrites the usage of the message a cache hands it (to
        # {"total_cost": 0}), which the stored answer must not carry.
        stand_in = _AnswerAtOnce([g.model_copy(deep=True) for g in generations])
        self._model.model_copy(update={"cache": stand_in}).invoke(self._ask(question))
        if stand_in.asked is None:
            raise ConfigError(
                f"{type(self._model).__name__} did not look its cache up: cannot warm it"
            )
        request = self._adapter.request_for(*stand_in.asked)
        return (FaqAnswer(request, to_payload(generations), usage_of(generations)),)

    async def replay(self, messages: Sequence[Mapping[str, Any]]) -> bool:
        result = await self._cached_model.ainvoke(convert_to_messages([dict(m) for m in messages]))
        return MARKER in result.response_metadata

    def _ask(self, question: str) -> list[BaseMessage]:
        return [*self._system, HumanMessage(question)]
