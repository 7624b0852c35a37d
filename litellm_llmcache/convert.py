"""LiteLLM responses <-> the JSON payload stored in llmcache; what a hit saved.

The payload is the response as LiteLLM itself caches it (``model_dump_json(exclude_unset=True)``
parsed back to a dict), so LiteLLM rebuilds it into a ``ModelResponse``,
``TextCompletionResponse``, ``EmbeddingResponse`` or a replayed stream as it would from its
own caches. Stored values are parsed by orjson only (never ``eval``/``literal_eval``).
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, TypeGuard

import orjson

from llmcache.cache import CacheHit
from llmcache.entry import MAX_TOKENS, Usage
from llmcache.fork_safety import renew_after_fork
from llmcache.pricing import Cost

#: Where a hit is marked in ``_hidden_params`` (next to LiteLLM's own ``cache_hit``).
MARKER = "llmcache"


class PayloadError(ValueError):
    """A response that cannot be stored, or a stored value LiteLLM could not rebuild."""


def to_payload(result: Any) -> dict[str, Any]:
    """The JSON-like dict to store for a LiteLLM result (a model, its JSON text, or a dict)."""
    if isinstance(result, Mapping):
        return dict(result)
    dump_json = getattr(result, "model_dump_json", None)
    if callable(dump_json):
        result = dump_json(exclude_unset=True)
    if isinstance(result, (str, bytes)):
        try:
            parsed = orjson.loads(result)
        except orjson.JSONDecodeError as exc:
            raise PayloadError(f"LiteLLM result is not JSON: {exc}") from exc
        if isinstance(parsed, dict):
            return parsed
    raise PayloadError(f"cannot store a LiteLLM result of type {type(result).__name__}")


def _int(value: object) -> int:
    """A token count as reported, or 0 (unknown) for one that cannot be (negative, absurd):
    the answer is still cached, without savings counted for it."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS:
        return value
    return 0


def _is_mapping(value: object) -> TypeGuard[Mapping[str, Any]]:
    # type(...) is dict first: a parsed payload holds plain dicts, and an ABC isinstance
    # check costs about a microsecond.
    return type(value) is dict or isinstance(value, Mapping)


def finish_reasons_of(payload: Mapping[str, Any]) -> list[str | None]:
    """Why each choice of a response ended (LiteLLM normalizes providers' reasons)."""
    choices = payload.get("choices")
    if not isinstance(choices, list):
        return []
    return [c.get("finish_reason") for c in choices if _is_mapping(c)]


def usage_of(payload: Mapping[str, Any]) -> Usage:
    """Token usage of a stored response (chat/text: ``usage``; one embedding: ``prompt_tokens``).

    ``input_tokens`` is LiteLLM's ``prompt_tokens``, which already includes prompt tokens the
    provider served from its own prompt cache (OpenAI ``prompt_tokens_details.cached_tokens``,
    Anthropic ``cache_read_input_tokens``) or wrote to it (``cache_creation_input_tokens``);
    those are reported apart as well, never added twice.
    """
    usage = payload.get("usage")
    if not _is_mapping(usage):
        return Usage(_int(payload.get("prompt_tokens")), 0)
    if "prompt_tokens" not in usage and "input_tokens" in usage:
        # The Responses API's usage: its hits saved nothing in stats() when read as chat's.
        details = usage.get("input_tokens_details")
        cached = _int(details.get("cached_tokens")) if _is_mapping(details) else 0
        return Usage(_int(usage.get("input_tokens")), _int(usage.get("output_tokens")), cached)
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if _is_mapping(details) else 0
    cached = max(cached, _int(usage.get("cache_read_input_tokens")))
    return Usage(
        _int(usage.get("prompt_tokens")),
        _int(usage.get("completion_tokens")),
        cached,
        _int(usage.get("cache_creation_input_tokens")),
    )


def hit_marker(hit: CacheHit, usage: Usage, cost: Cost) -> dict[str, Any]:
    """``_hidden_params["llmcache"]`` of a served hit: what it saved, priced by the core's
    pricer (``llmcache.pricing``: LiteLLM's table, provider-cached tokens at their rate)."""
    return {
        "tier": hit.tier,
        "match": hit.match,
        "similarity": hit.similarity,
        "input_tokens_saved": usage.input_tokens,
        "output_tokens_saved": usage.output_tokens,
        "provider_cached_tokens": usage.cache_read_tokens,
        "input_cost_saved_usd": cost.input_usd,
        "output_cost_saved_usd": cost.output_usd,
    }


class RebuildCheck:
    """Whether LiteLLM can rebuild a stored chat or text response (``rebuilds``), tried once
    per stored payload object and remembered.

    LiteLLM rebuilds what ``get_cache`` returns after it returns, outside the adapter's
    fail-open guard: a payload that is a dict but not a response (written by an import file,
    another writer or an older LiteLLM) raised "Invalid response object" into every call of
    its key, and stayed. A hit's payload is the same object while its entry is held (the
    memory tier's, or the decoded entry the cache keeps for a store tier's bytes), so the
    rebuild is tried about once per entry, not per hit.
    """

    def __init__(self, size: int = 4096) -> None:
        # id -> the payload itself: holding it keeps its id from being reused by another.
        self._checked: OrderedDict[int, Mapping[str, Any]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")

    def rebuilds(self, payload: Mapping[str, Any]) -> bool:
        if "choices" not in payload:
            return True  # one embedding of a per-input lookup: LiteLLM assembles these
        with self._lock:
            if self._checked.get(id(payload)) is payload:
                return True
        if not _litellm_rebuilds(payload):
            return False
        with self._lock:
            self._checked[id(payload)] = payload
            while len(self._checked) > self._size:
                self._checked.popitem(last=False)
        return True


def _litellm_rebuilds(payload: Mapping[str, Any]) -> bool:
    """What LiteLLM's caching handler does with a chat or text hit, on a copy."""
    from litellm.litellm_core_utils.llm_response_utils.convert_dict_to_response import (
        convert_to_model_response_object,  # what litellm.utils re-exports to the handler
    )
    from litellm.types.utils import ModelResponse, TextCompletionResponse

    copied = copy.deepcopy(dict(payload))
    choices = copied.get("choices")
    try:
        if (
            isinstance(choices, list)
            and choices
            and all(isinstance(c, dict) and "text" in c and "message" not in c for c in choices)
        ):
            TextCompletionResponse(**copied)
        else:
            convert_to_model_response_object(
                response_object=copied, model_response_object=ModelResponse()
            )
    except Exception:  # whatever LiteLLM raises on it would reach the user's call
        return False
    return True


def marked(payload: Mapping[str, Any], marker: dict[str, Any]) -> dict[str, Any]:
    """A copy of a stored chat/text response that LiteLLM rebuilds with the hit marker.

    LiteLLM copies keys it does not know onto the response object, so ``_hidden_params``
    arrives as the response's hidden params; LiteLLM then adds ``cache_hit`` and
    ``cache_key`` to the same dict.
    """
    served = dict(payload)
    hidden = payload.get("_hidden_params")  # None for what this adapter stores
    served["_hidden_params"] = (
        {**hidden, MARKER: marker}
        if hidden is not None and _is_mapping(hidden)
        else {MARKER: marker}
    )
    return served
