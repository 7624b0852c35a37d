"""Sync ``litellm.embedding`` cached per input, as LiteLLM caches ``aembedding``.

LiteLLM's sync path looks the whole call up under one key and stores the whole response;
only its async path goes input by input. Here the sync path uses the same per-input entries
(shared with ``aembedding``): every input cached -> the response is assembled from them;
some cached -> only the others are embedded (one nested call, LiteLLM's caching off for it,
each new input stored by the adapter); none -> LiteLLM embeds them all and the adapter
stores the answer input by input. No I/O here: the adapter does the lookups and stores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Bookkeeping kwargs LiteLLM adds to a call; a nested call gets its own.
_NOT_PASSED_ON = frozenset(
    {"litellm_call_id", "litellm_logging_obj", "cache_key", "caching", "litellm_trace_id"}
)


def sync_embedding_inputs(kwargs: Mapping[str, Any]) -> list[Any] | None:
    """The inputs of a sync ``embedding`` call (one or a list), else None."""
    if "input" not in kwargs:  # first: a chat call stops here, without the getattr
        return None
    logging_obj = kwargs.get("litellm_logging_obj")
    if getattr(logging_obj, "call_type", None) != "embedding":
        return None
    inputs = kwargs["input"]
    if isinstance(inputs, list):
        if inputs and all(_is_token(item) for item in inputs):
            return [inputs]  # one text given as its token ids (OpenAI's "array of tokens")
        return inputs if inputs else None
    return [inputs]


def _is_token(item: object) -> bool:
    return isinstance(item, int) and not isinstance(item, bool)


def one_input(kwargs: Mapping[str, Any], item: Any) -> dict[str, Any]:
    """The kwargs of one input's entry (the same key ``aembedding`` uses for it)."""
    return {**kwargs, "input": item}


def nested_call_kwargs(kwargs: Mapping[str, Any], missing: list[Any]) -> dict[str, Any]:
    """Kwargs of the call that embeds only the inputs no entry had."""
    nested = {k: v for k, v in kwargs.items() if k not in _NOT_PASSED_ON}
    nested["input"] = missing
    nested["caching"] = False  # the adapter stores the new inputs itself, one by one
    return nested


def _vector(item: object) -> object:
    if isinstance(item, Mapping):
        return item.get("embedding")
    return getattr(item, "embedding", None)


def assemble(
    cached: Sequence[Mapping[str, Any] | None],
    fresh: Any,
    model: str,
) -> dict[str, Any]:
    """An ``EmbeddingResponse``-shaped dict: cached vectors in place, fresh ones (the nested
    call's ``data``, in the order of the missing inputs) in the gaps."""
    fresh_data = list(getattr(fresh, "data", None) or [])
    if len(fresh_data) != sum(1 for c in cached if c is None):
        raise ValueError("the nested embedding call returned another number of vectors")
    fresh_items = iter(fresh_data)
    data = []
    prompt_tokens = 0
    for index, entry in enumerate(cached):
        if entry is None:
            vector = _vector(next(fresh_items))
        else:
            vector = entry.get("embedding")
            tokens = entry.get("prompt_tokens")
            prompt_tokens += tokens if isinstance(tokens, int) else 0
        data.append({"object": "embedding", "index": index, "embedding": vector})
    fresh_usage = getattr(fresh, "usage", None)
    fresh_tokens = getattr(fresh_usage, "prompt_tokens", None)
    prompt_tokens += fresh_tokens if isinstance(fresh_tokens, int) else 0
    cached_model = next((c.get("model") for c in cached if c is not None and c.get("model")), None)
    return {
        "object": "list",
        "model": cached_model or model,
        "data": data,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
