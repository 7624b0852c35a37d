"""Streaming from the cache: ``cached(llm)`` makes ``.stream()``/``.astream()`` use it.

langchain-core's ``stream``, ``astream`` and ``astream_events`` call a model's ``_stream``
directly and never read or write the LLM cache (LangChain issues 13119 and 23701), so with a
cache set, every streamed call (most agents stream) is a paid miss. ``cached(llm)`` wraps a
chat model in ``CachedChatModel``, whose ``_stream``/``_astream`` look the request up first:

- a hit is replayed as a stream of chunks (the text in word-sized pieces, tool calls as
  ``tool_call_chunks``, usage and metadata on the last chunk) that add up to the stored
  message, marked as a hit in ``response_metadata["llmcache"]``;
- a miss streams from the model as usual and, once the stream has been consumed to the end,
  stores the whole message (a stream that fails or is abandoned midway stores nothing).

The wrapper keys exactly as LangChain's own cache path does for the wrapped model (the same
``prompt`` and ``llm_string``), so ``invoke`` on the bare model, ``invoke`` on the wrapper and
``stream`` on the wrapper all share one entry. It uses the model's ``cache`` field if that is a
``BaseCache``, else the global one from ``set_llm_cache``; ``cache=False`` turns it off.

    llm = cached(ChatOpenAI(model="gpt-4o-mini"))
    for chunk in llm.stream("hi"):   # second time: served from the cache, still a stream
        ...
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.caches import BaseCache
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.globals import get_llm_cache
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.load import dumps
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    message_chunk_to_message,
)
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, Generation
from langchain_core.runnables import Runnable, RunnableBinding
from langchain_core.tools import BaseTool

# Word-sized pieces, whitespace kept with the word before it, so the pieces join back exactly.
_PIECES = re.compile(r"\S+\s*|\s+")


class CachedChatModel(BaseChatModel):
    """A chat model whose calls, streamed or not, are served from and stored in the LLM cache.

    The wrapper does its own caching (LangChain's ``cache`` field of the wrapper itself is
    always False): LangChain's hit path returns a whole message even when the caller streams
    (a LangGraph agent in ``stream_mode="messages"`` calls ``invoke`` with a streaming
    callback), so every path goes through ``_generate``/``_stream`` here, which look up once.
    """

    model: BaseChatModel
    #: Where entries live: a ``BaseCache``, None for the global one, False for no caching.
    llm_cache: BaseCache | bool | None = None
    cache: BaseCache | bool | None = False

    @property
    def _llm_type(self) -> str:
        return self.model._llm_type

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return dict(self.model._identifying_params)

    def _get_llm_string(self, stop: list[str] | None = None, **kwargs: Any) -> str:
        # The wrapped model's, so the wrapper shares entries with the bare model.
        return self.model._get_llm_string(stop=stop, **kwargs)

    # ------------------------------------------------------------------ whole answers
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        cache, key = self._lookup_key(messages, stop, kwargs)
        if cache is not None:
            hit = cache.lookup(*key)
            if isinstance(hit, list) and hit:
                return ChatResult(generations=_chat_generations(hit))
        result = self.model._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
        if cache is not None:
            cache.update(*key, result.generations)
        return result

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        cache, key = self._lookup_key(messages, stop, kwargs)
        if cache is not None:
            hit = await cache.alookup(*key)
            if isinstance(hit, list) and hit:
                return ChatResult(generations=_chat_generations(hit))
        result = await self.model._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)
        if cache is not None:
            await cache.aupdate(*key, result.generations)
        return result

    # ------------------------------------------------------------------ streamed answers
    # LangChain itself reports each chunk to the callbacks (``on_llm_new_token``) as it
    # comes out of ``_stream``, so the replay only yields chunks.
    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        cache, key = self._lookup_key(messages, stop, kwargs)
        if cache is not None:
            hit = cache.lookup(*key)
            if isinstance(hit, list) and hit:
                yield from _replay(hit[0])
                return
        chunks: list[ChatGenerationChunk] = []
        if _streams(self.model):
            source = self.model._stream(messages, stop=stop, run_manager=run_manager, **kwargs)
        else:  # a model that cannot stream: one call, replayed as a stream
            result = self.model._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
            source = _replay(result.generations[0])
        for chunk in source:
            chunks.append(chunk)
            yield chunk
        # Only a stream read to its end is stored: an abandoned or failed one never gets here.
        if cache is not None and chunks:
            cache.update(*key, [_whole(chunks)])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        cache, key = self._lookup_key(messages, stop, kwargs)
        if cache is not None:
            hit = await cache.alookup(*key)
            if isinstance(hit, list) and hit:
                for chunk in _replay(hit[0]):
                    yield chunk
                return
        chunks: list[ChatGenerationChunk] = []
        async for chunk in self.model._astream(
            messages, stop=stop, run_manager=run_manager, **kwargs
        ):
            chunks.append(chunk)
            yield chunk
        if cache is not None and chunks:
            await cache.aupdate(*key, [_whole(chunks)])

    def _lookup_key(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[BaseCache | None, tuple[str, str]]:
        """The cache to use (None: no caching) and the (prompt, llm_string) key, built
        exactly as ``BaseChatModel._generate_with_cache`` builds it for the wrapped model."""
        if self.llm_cache is False:
            return None, ("", "")
        cache = self.llm_cache if isinstance(self.llm_cache, BaseCache) else get_llm_cache()
        if cache is None:
            return None, ("", "")
        normalized = [
            m.model_copy(update={"id": None}) if getattr(m, "id", None) is not None else m
            for m in messages
        ]
        return cache, (dumps(normalized), self._get_llm_string(stop=stop, **kwargs))

    # ------------------------------------------------------------------ tools
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """The wrapped model's tool binding (its own tool format), bound to the wrapper."""
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        bound = self.model.bind_tools(tools, **kwargs)
        if not isinstance(bound, RunnableBinding):
            raise TypeError(
                f"{type(self.model).__name__}.bind_tools returned {type(bound).__name__}, "
                "not a RunnableBinding: cached() cannot re-bind it to the cache wrapper"
            )
        return self.bind(**bound.kwargs)


def cached(model: BaseChatModel) -> CachedChatModel:
    """Wrap ``model`` so that ``stream``/``astream`` (and ``astream_events``) use the cache."""
    if isinstance(model, CachedChatModel):
        return model
    if not isinstance(model, BaseChatModel):
        raise TypeError(f"cached() takes a LangChain chat model, got {type(model).__name__}")
    return CachedChatModel(model=model, llm_cache=model.cache)


def _streams(model: BaseChatModel) -> bool:
    return type(model)._stream is not BaseChatModel._stream


def _replay(generation: Generation) -> Iterator[ChatGenerationChunk]:
    """The chunks of one stored generation: they add up to its message."""
    message = generation.message if isinstance(generation, ChatGeneration) else None
    if not isinstance(message, AIMessage):
        text = generation.text
        message = AIMessage(content=text)
    pieces: list[Any]
    if isinstance(message.content, str):
        pieces = _PIECES.findall(message.content) or [""]
    else:  # content blocks go out whole: splitting them would change their shape
        pieces = [message.content]
    last = len(pieces) - 1
    for index, piece in enumerate(pieces):
        fields: dict[str, Any] = {"content": piece, "id": message.id}
        if index == last:
            fields.update(
                tool_call_chunks=[
                    tool_call_chunk(
                        name=call["name"],
                        args=json.dumps(call["args"]),
                        id=call.get("id"),
                        index=position,
                    )
                    for position, call in enumerate(message.tool_calls)
                ],
                usage_metadata=message.usage_metadata,
                response_metadata=message.response_metadata,
                additional_kwargs=message.additional_kwargs,
                chunk_position="last",
            )
        yield ChatGenerationChunk(
            message=AIMessageChunk(**fields),
            generation_info=generation.generation_info if index == last else None,
        )


def _chat_generations(generations: list[Generation]) -> list[ChatGeneration]:
    """A hit as chat generations (a cache shared with completion models may hold plain ones)."""
    return [
        g if isinstance(g, ChatGeneration) else ChatGeneration(message=AIMessage(content=g.text))
        for g in generations
    ]


def _whole(chunks: list[ChatGenerationChunk]) -> ChatGeneration:
    """The complete generation a stream added up to (what ``invoke`` would have stored)."""
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    message = message_chunk_to_message(total.message)
    return ChatGeneration(message=message, generation_info=total.generation_info)
