"""Streaming from the cache: ``cached(llm)`` makes ``.stream()``/``.astream()`` use it.

langchain-core's ``stream``, ``astream`` and ``astream_events`` call a model's ``_stream``
directly and never read or write the LLM cache (LangChain issues 13119 and 23701), so with a
cache set, every streamed call (most agents stream) is a paid miss. ``cached(llm)`` wraps a
chat model in ``CachedChatModel``, whose ``_stream``/``_astream`` look the request up first:

- a hit is replayed as a stream of chunks (the text in word-sized pieces, tool calls as
  ``tool_call_chunks``, usage and metadata on the last chunk) that add up to the stored
  message, marked as a hit in ``response_metadata["llmcache"]``;
- a miss streams from the model as usual (a model that cannot stream is called once and its
  answer replayed) and, once the stream has been consumed to the end, stores the whole
  message. A stream that fails or is abandoned midway stores nothing, and releases at once
  the callers waiting for its answer (single-flight), who then call the model themselves.

The wrapper keys exactly as LangChain's own cache path does for the wrapped model (the same
``prompt`` and ``llm_string``), so ``invoke`` on the bare model, ``invoke`` on the wrapper and
``stream`` on the wrapper all share one entry. It uses the model's ``cache`` field if that is a
``BaseCache``, else the global one from ``set_llm_cache``; ``cache=False`` turns it off. It
answers as the model does: it takes over the model's callbacks, tags, metadata,
``output_version``, ``disable_streaming`` and profile, waits for the model's ``rate_limiter``
before each model call (never for a hit), and ``bind_tools``/``with_structured_output`` are the
model's own, calling the wrapper.

    llm = cached(ChatOpenAI(model="gpt-4o-mini"))
    for chunk in llm.stream("hi"):   # second time: served from the cache, still a stream
        ...
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.caches import BaseCache
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.globals import get_llm_cache
from langchain_core.language_models import BaseChatModel, BaseLanguageModel, LanguageModelInput
from langchain_core.load import dumps
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    message_chunk_to_message,
)
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, Generation
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import BaseModel, model_validator

from langchain_llmcache.cache import LangChainCache
from llmcache.request import CacheRequest

# Word-sized pieces, whitespace kept with the word before it, so the pieces join back exactly.
_PIECES = re.compile(r"\S+\s*|\s+")

#: Settings of the wrapped model that shape what a call returns or reports. LangChain reads
#: them on the model it runs, which is the wrapper, so the wrapper takes them over. Not
#: ``cache`` (the wrapper caches by itself) nor ``rate_limiter``: on the wrapper, LangChain
#: would make hits wait for it too; the wrapper acquires the model's before each model call.
MODEL_SETTINGS = (
    "callbacks",
    "tags",
    "metadata",
    "verbose",
    "custom_get_token_ids",
    "output_version",
    "disable_streaming",
    "profile",
)


class CachedChatModel(BaseChatModel):
    """A chat model whose calls, streamed or not, are served from and stored in the LLM cache.

    The wrapper does its own caching (LangChain's ``cache`` field of the wrapper itself is
    always False): LangChain's hit path returns a whole message even when the caller streams
    (a LangGraph agent in ``stream_mode="messages"`` calls ``invoke`` with a streaming
    callback), so every path goes through ``_generate``/``_stream`` here, which look up once.
    The model's ``MODEL_SETTINGS`` are the wrapper's unless given.
    """

    model: BaseChatModel
    #: Where entries live: a ``BaseCache``, None for the global one, False for no caching.
    llm_cache: BaseCache | bool | None = None
    cache: BaseCache | bool | None = False

    @model_validator(mode="before")
    @classmethod
    def _take_model_settings(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("model"), BaseChatModel):
            model = data["model"]
            # hasattr: a langchain-core without one of them (profile is recent) still works.
            taken = {name: getattr(model, name) for name in MODEL_SETTINGS if hasattr(model, name)}
            return taken | data
        return data

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
        call = self._cache_call(messages, stop, kwargs)
        if call is not None and (hit := call.lookup()):
            return ChatResult(generations=hit)
        _acquire(self.model)
        result = self.model._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
        result = self._as_returned(result)
        if call is not None:
            call.store(result.generations)
        return result

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._cache_call(messages, stop, kwargs)
        if call is not None and (hit := await call.alookup()):
            return ChatResult(generations=hit)
        await _aacquire(self.model)
        result = await self.model._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)
        result = self._as_returned(result)
        if call is not None:
            await call.astore(result.generations)
        return result

    def _as_returned(self, result: ChatResult) -> ChatResult:
        """``result`` as LangChain returns (and its own cache path stores) it for the model:
        an entry this wrapper stores is served to the bare model too, and reports what the
        miss reported (``_with_metadata``)."""
        generations = [
            _in_v1(g) if self.output_version == "v1" else g
            for g in _with_metadata(result.generations, result.llm_output)
        ]
        # (A stream needs no such step: LangChain's ``stream`` merges each chunk's
        # generation_info into its metadata in place, before ``_whole`` adds them up.)
        return ChatResult(generations=generations, llm_output=result.llm_output)

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
        call = self._cache_call(messages, stop, kwargs)
        if call is not None and (hit := call.lookup()):
            yield from _replay(hit[0])
            return
        chunks: list[ChatGenerationChunk] = []
        stored = False
        try:
            _acquire(self.model)
            for chunk in self._model_stream(messages, stop, run_manager, kwargs):
                chunks.append(chunk)
                yield chunk
            # Only a stream read to its end is stored: an abandoned or failed one never gets here.
            if call is not None and chunks:
                call.store([self._whole(chunks)])
                stored = True
        finally:
            # A stream that ends unstored (failed, or closed by its consumer: a ``break``)
            # releases its followers now; else they would wait for it until the single-flight
            # bound, since the stream's consumer, often still running, is what is watched.
            if call is not None and not stored:
                call.forgo()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        call = self._cache_call(messages, stop, kwargs)
        if call is not None and (hit := await call.alookup()):
            for chunk in _replay(hit[0]):
                yield chunk
            return
        chunks: list[ChatGenerationChunk] = []
        stored = False
        try:
            await _aacquire(self.model)
            async for chunk in self._model_astream(messages, stop, run_manager, kwargs):
                chunks.append(chunk)
                yield chunk
            if call is not None and chunks:
                await call.astore([self._whole(chunks)])
                stored = True
        finally:
            # An abandoned ``async for`` leaves its leader task running: it is not seen to end.
            if call is not None and not stored:
                await call.aforgo()

    def _model_stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> Iterator[ChatGenerationChunk]:
        """The model's stream; a model that cannot stream is called once, its answer replayed."""
        if _overrides(self.model, "_stream"):
            return self.model._stream(messages, stop=stop, run_manager=run_manager, **kwargs)
        result = self.model._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
        return _replay(result.generations[0])

    async def _model_astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> AsyncIterator[ChatGenerationChunk]:
        model = self.model
        # BaseChatModel's ``_astream`` runs a sync ``_stream`` in a thread, and raises
        # NotImplementedError for a model with neither: that one answers with ``_agenerate``.
        if _overrides(model, "_astream") or _overrides(model, "_stream"):
            async for chunk in model._astream(
                messages, stop=stop, run_manager=run_manager, **kwargs
            ):
                yield chunk
        else:
            result = await model._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)
            for chunk in _replay(result.generations[0]):
                yield chunk

    def _whole(self, chunks: list[ChatGenerationChunk]) -> ChatGeneration:
        """The complete generation a stream added up to (what ``invoke`` would have stored)."""
        total = chunks[0]
        for chunk in chunks[1:]:
            total = total + chunk
        message = message_chunk_to_message(total.message)
        whole = ChatGeneration(message=message, generation_info=total.generation_info)
        # LangChain's ``stream`` has already converted the chunks it read for a v1 model; a
        # caller that reads ``_stream`` itself (the v2 event bridge) has not.
        return _in_v1(whole) if self.output_version == "v1" else whole

    def _cache_call(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> _CacheCall | None:
        """Where this call is looked up and stored (None: no caching), keyed exactly as
        ``BaseChatModel._generate_with_cache`` keys it for the wrapped model."""
        if self.llm_cache is False:
            return None
        cache = self.llm_cache if isinstance(self.llm_cache, BaseCache) else get_llm_cache()
        if cache is None:
            return None
        normalized = [
            m.model_copy(update={"id": None}) if getattr(m, "id", None) is not None else m
            for m in messages
        ]
        return _CacheCall(cache, dumps(normalized), self._get_llm_string(stop=stop, **kwargs))

    # ------------------------------------------------------------------ tools, structured output
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """The wrapped model's tool binding (its own tool format), calling the wrapper."""
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        bound: Runnable[LanguageModelInput, AIMessage] = self._calling_wrapper(
            self.model.bind_tools(tools, **kwargs), "bind_tools"
        )
        return bound

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """The wrapped model's structured output (its own method: JSON schema, tool calling,
        JSON mode...), calling the wrapper."""
        built = self.model.with_structured_output(schema, include_raw=include_raw, **kwargs)
        structured: Runnable[LanguageModelInput, dict[str, Any] | BaseModel] = (
            self._calling_wrapper(built, "with_structured_output")
        )
        return structured

    def _calling_wrapper(self, runnable: Runnable[Any, Any], built_by: str) -> Any:
        """``runnable`` (built by the wrapped model) calling the wrapper where it called the
        model."""
        swapped = _swapped(runnable, self.model, self)
        if swapped is runnable:
            raise TypeError(
                f"{type(self.model).__name__}.{built_by} returned a {type(runnable).__name__} "
                "that does not hold the model where cached() can reach it (in a binding, "
                "sequence, map or fallback); call it on the bare model instead: its invoke "
                "uses LangChain's own cache path, but its streams are not cached"
            )
        return swapped


def cached(model: BaseChatModel) -> CachedChatModel:
    """Wrap ``model`` so that ``stream``/``astream`` (and ``astream_events``) use the cache."""
    if isinstance(model, CachedChatModel):
        return model
    if not isinstance(model, BaseChatModel):
        raise TypeError(f"cached() takes a LangChain chat model, got {type(model).__name__}")
    return CachedChatModel(model=model, llm_cache=model.cache)


@dataclass(slots=True)
class _CacheCall:
    """One call's place in the cache: the cache, and the key LangChain uses for the call."""

    cache: BaseCache
    prompt: str
    llm_string: str
    #: llmcache's request of a missed call (a ``LangChainCache``), read at the lookup: a
    #: stream closed by the garbage collector is released in another context, whose scope
    #: could make another key.
    request: CacheRequest | None = None

    def lookup(self) -> list[ChatGeneration] | None:
        return self._found(self.cache.lookup(self.prompt, self.llm_string))

    async def alookup(self) -> list[ChatGeneration] | None:
        return self._found(await self.cache.alookup(self.prompt, self.llm_string))

    def _found(self, hit: Sequence[Generation] | None) -> list[ChatGeneration] | None:
        if isinstance(hit, list) and hit:
            return _chat_generations(hit)
        if isinstance(self.cache, LangChainCache):
            self.request = self.cache.request_for(self.prompt, self.llm_string)
        return None

    def store(self, generations: Sequence[Generation]) -> None:
        self.cache.update(self.prompt, self.llm_string, generations)

    async def astore(self, generations: Sequence[Generation]) -> None:
        await self.cache.aupdate(self.prompt, self.llm_string, generations)

    def forgo(self) -> None:
        """The missed call will store nothing: release the callers waiting for its answer."""
        if self.request is not None and isinstance(self.cache, LangChainCache):
            self.cache.cache.forgo(self.request)

    async def aforgo(self) -> None:
        if self.request is not None and isinstance(self.cache, LangChainCache):
            await self.cache.cache.aforgo(self.request)


def _acquire(model: BaseChatModel) -> None:
    """Wait for the model's rate limiter before calling it; LangChain, too, waits only after
    the cache lookup missed."""
    if model.rate_limiter is not None:
        model.rate_limiter.acquire(blocking=True)


async def _aacquire(model: BaseChatModel) -> None:
    if model.rate_limiter is not None:
        await model.rate_limiter.aacquire(blocking=True)


def _overrides(model: BaseChatModel, method: str) -> bool:
    return getattr(type(model), method) is not getattr(BaseChatModel, method)


def _with_metadata(
    generations: Sequence[ChatGeneration], llm_output: dict[str, Any] | None
) -> list[ChatGeneration]:
    """``generations`` with their messages' ``response_metadata`` as LangChain's cache path
    stores them (``BaseChatModel._generate_with_cache``): each holding its generation's
    ``generation_info`` (a finish reason, say), and a single one ``llm_output`` too (a model
    name, token usage). A hit served from the entry then reports what the miss reported,
    through the wrapper or the bare model."""
    merged = []
    for generation in generations:
        metadata = {**(generation.generation_info or {}), **generation.message.response_metadata}
        if len(generations) == 1 and llm_output is not None:
            metadata = {**llm_output, **metadata}
        if metadata != generation.message.response_metadata:
            message = generation.message.model_copy(update={"response_metadata": metadata})
            generation = generation.model_copy(update={"message": message})
        merged.append(generation)
    return merged


def _in_v1(generation: ChatGeneration) -> ChatGeneration:
    """``generation`` as a model with ``output_version="v1"`` returns it: its content in
    standard content blocks (what LangChain's ``_update_message_content_to_blocks`` does)."""
    message = generation.message
    v1 = message.model_copy(
        update={
            "content": message.content_blocks,
            "response_metadata": {**message.response_metadata, "output_version": "v1"},
        }
    )
    return generation.model_copy(update={"message": v1})


def _replay(generation: Generation) -> Iterator[ChatGenerationChunk]:
    """The chunks of one stored generation: they add up to its message."""
    message = generation.message if isinstance(generation, ChatGeneration) else None
    if not isinstance(message, AIMessage):
        text = generation.text
        message = AIMessage(content=text)
    # Adding chunks up (``+``) drops ``name``, and reads tool calls again from their argument
    # text, which loses an invalid call's error and can even make it valid ("{bad" reads as
    # {}): such a message goes out in one chunk, which is the message itself.
    whole = message.name is not None or bool(message.invalid_tool_calls)
    pieces: list[Any]
    if isinstance(message.content, str) and not whole:
        pieces = _PIECES.findall(message.content) or [""]
    else:  # content blocks go out whole: splitting them would change their shape
        pieces = [message.content]
    last = len(pieces) - 1
    for index, piece in enumerate(pieces):
        fields: dict[str, Any] = {"content": piece, "id": message.id}
        if index == last:
            fields.update(
                usage_metadata=_chunk_usage(message.usage_metadata),
                response_metadata=message.response_metadata,
                additional_kwargs=message.additional_kwargs,
                chunk_position="last",
            )
            if whole:
                fields.update(
                    name=message.name,
                    tool_calls=message.tool_calls,
                    invalid_tool_calls=message.invalid_tool_calls,
                )
            else:
                fields["tool_call_chunks"] = [
                    tool_call_chunk(
                        name=call["name"],
                        args=json.dumps(call["args"]),
                        id=call.get("id"),
                        index=position,
                    )
                    for position, call in enumerate(message.tool_calls)
                ]
        yield ChatGenerationChunk(
            message=AIMessageChunk(**fields),
            generation_info=generation.generation_info if index == last else None,
        )


def _chunk_usage(usage: Any) -> Any:
    """The usage a replayed chunk can carry: langchain-core's own hit path leaves
    ``{"total_cost": 0}`` on a message it served (stored like that by LangChain's cache path
    and older warm-ups), which a chunk refuses; the answer is replayed without it."""
    if usage is None or all(k in usage for k in ("input_tokens", "output_tokens", "total_tokens")):
        return usage
    return None


def _chat_generations(generations: Sequence[Generation]) -> list[ChatGeneration]:
    """A hit as chat generations (a cache shared with completion models may hold plain ones)."""
    return [
        g if isinstance(g, ChatGeneration) else ChatGeneration(message=AIMessage(content=g.text))
        for g in generations
    ]


def _swapped(value: Any, model: BaseChatModel, wrapper: BaseChatModel) -> Any:
    """``value`` with ``wrapper`` wherever it holds ``model``: in runnables built on the model
    (bindings, sequences, maps, fallbacks: pydantic fields) and the lists, tuples and dicts
    they keep. Copies what changes, never changes anything in place; ``value`` itself when it
    holds no ``model``. What a function closes over is out of reach."""
    if value is model:
        return wrapper
    if type(value) in (list, tuple):
        items = [_swapped(item, model, wrapper) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return type(value)(items)
    if type(value) is dict:
        swapped = {key: _swapped(item, model, wrapper) for key, item in value.items()}
        return value if all(swapped[key] is item for key, item in value.items()) else swapped
    # Another model (a fallback's) is left alone: its fields hold clients, not runnables.
    if isinstance(value, Runnable) and isinstance(value, BaseModel):
        if isinstance(value, BaseLanguageModel):
            return value
        update = {}
        for name in type(value).model_fields:
            old = getattr(value, name)
            new = _swapped(old, model, wrapper)
            if new is not old:
                update[name] = new
        return value.model_copy(update=update) if update else value
    return value
