"""A cached chat answer replayed as a stream, every chunk marked as an llmcache hit.

LiteLLM replays a cached dict as a stream itself, but its chunks carry none of the hit's
hidden params (not even its own ``cache_hit``). For a chat completion the adapter builds
the replay the way LiteLLM does (its own converters and ``CustomStreamWrapper`` with the
``cached_response`` provider) and adds ``_hidden_params["llmcache"]`` to the wrapper and
to each chunk. A text completion's stream is stored as a chat answer (``text_completion``
calls ``completion``); LiteLLM replayed it as chat chunks (``delta``, no ``text``: the caller's
``chunk.choices[0].text`` raised), so it is replayed here through LiteLLM's
``TextCompletionStreamWrapper``, as ``text_completion`` wraps a fresh stream. Other call types
(Responses) keep LiteLLM's own replay.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litellm.litellm_core_utils.llm_response_utils.convert_dict_to_response import (
    convert_to_streaming_response,
    convert_to_streaming_response_async,
)
from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper
from litellm.text_completions.streaming_iterator import TextCompletionStreamWrapper

from litellm_llmcache.convert import MARKER

#: Call types whose cached stream is replayed here (LiteLLM's names, from its logging object).
_CHAT_CALLS = {"completion": False, "acompletion": True}  # name -> async
_TEXT_CALLS = {"text_completion": False, "atext_completion": True}


class MarkedStream(CustomStreamWrapper):
    """LiteLLM's replay of a cached chat stream whose chunks carry the hit marker."""

    def __init__(self, *args: Any, marker: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.llmcache_marker = dict(marker)
        self.hidden_params[MARKER] = self.llmcache_marker

    def model_response_creator(self, *args: Any, **kwargs: Any) -> Any:
        chunk = super().model_response_creator(*args, **kwargs)
        chunk.hidden_params[MARKER] = self.llmcache_marker
        return chunk

    def __contains__(self, item: object) -> bool:
        # LiteLLM's sync hit path asks ``"detail" in cached_result``; without this, ``in``
        # would iterate (consume) the stream to answer.
        return False


class MarkedTextStream(TextCompletionStreamWrapper):
    """A replayed chat stream as the text-completion chunks ``text_completion`` streams,
    marked as ``MarkedStream`` marks its chunks."""

    def __init__(self, *args: Any, marker: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.llmcache_marker = dict(marker)
        self._hidden_params = {MARKER: self.llmcache_marker}

    def convert_to_text_completion_object(self, chunk: Any) -> Any:
        converted = super().convert_to_text_completion_object(chunk)
        converted._hidden_params[MARKER] = self.llmcache_marker
        return converted

    def __contains__(self, item: object) -> bool:
        return False  # as MarkedStream: ``in`` must not consume the stream


def replayed_stream(served: dict[str, Any], kwargs: Mapping[str, Any]) -> Any:
    """``served`` as a marked stream when the call asked for a chat or text-completion
    stream (of a stored chat answer), else as is."""
    if kwargs.get("stream") is not True:
        return served
    logging_obj = kwargs.get("litellm_logging_obj")
    call_type = str(getattr(logging_obj, "call_type", ""))
    is_async = _CHAT_CALLS.get(call_type, _TEXT_CALLS.get(call_type))
    marker = (served.get("_hidden_params") or {}).get(MARKER)
    choices = served.get("choices")
    if (
        is_async is None
        or marker is None
        or not isinstance(choices, list)
        or not all(isinstance(c, Mapping) and "message" in c for c in choices)
    ):
        return served
    convert = convert_to_streaming_response_async if is_async else convert_to_streaming_response
    model = str(kwargs.get("model") or "")
    stream = MarkedStream(
        completion_stream=convert(response_object=served),
        model=model,
        custom_llm_provider="cached_response",
        logging_obj=logging_obj,
        marker=marker,
    )
    if call_type not in _TEXT_CALLS or "messages" in kwargs:
        # A chat call, or the ``completion`` call inside ``text_completion``, which wraps
        # what it returns itself.
        return stream
    options = kwargs.get("stream_options")
    return MarkedTextStream(
        completion_stream=stream,
        model=model,
        stream_options=dict(options) if isinstance(options, Mapping) else None,
        custom_llm_provider="cached_response",
        marker=marker,
    )
