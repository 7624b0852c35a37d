"""LiteLLM responses <-> the JSON payload stored in llmcache; what a hit saved.

The payload is the response as LiteLLM itself caches it (``model_dump_json(exclude_unset=True)``
parsed back to a dict), so LiteLLM rebuilds it into a ``ModelResponse``,
``TextCompletionResponse``, ``EmbeddingResponse`` or a replayed stream as it would from its
own caches. Stored values are parsed by orjson only (never ``eval``/``literal_eval``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from llmcache.cache import CacheHit
from llmcache.entry import Usage

logger = logging.getLogger("llmcache.litellm")

#: Distinct (model, usage) prices kept; hits of one entry ask for the same one again.
PRICES_REMEMBERED = 4096

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


class Saved(NamedTuple):
    """What the original call spent: tokens (for ``stats()``) and provider-cached input."""

    usage: Usage
    provider_cached_tokens: int
    cache_creation_tokens: int


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def finish_reasons_of(payload: Mapping[str, Any]) -> list[str | None]:
    """Why each choice of a response ended (LiteLLM normalizes providers' reasons)."""
    choices = payload.get("choices")
    if not isinstance(choices, list):
        return []
    return [c.get("finish_reason") for c in choices if isinstance(c, Mapping)]


def saved_by(payload: Mapping[str, Any]) -> Saved:
    """Token usage of a stored response (chat/text: ``usage``; one embedding: ``prompt_tokens``).

    ``input_tokens`` is LiteLLM's ``prompt_tokens``, which already includes prompt tokens the
    provider served from its own prompt cache; those are reported apart (never added twice).
    """
    usage = payload.get("usage")
    if not isinstance(usage, Mapping):
        return Saved(Usage(_int(payload.get("prompt_tokens")), 0), 0, 0)
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, Mapping) else 0
    cached = max(cached, _int(usage.get("cache_read_input_tokens")))
    return Saved(
        Usage(_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))),
        cached,
        _int(usage.get("cache_creation_input_tokens")),
    )


def dollars_saved(model: str, saved: Saved) -> tuple[float, float]:
    """(input, output) USD the original call cost, from LiteLLM's own price table.

    Provider-cached prompt tokens are priced at their cache-read rate. A model LiteLLM
    does not price gives (0.0, 0.0): a saving is never guessed.
    """
    if not model or saved.usage.total == 0:
        return 0.0, 0.0
    import litellm  # the adapter's own dependency; imported here to keep this module light

    return _price(
        id(litellm.model_cost),
        model,
        saved.usage.input_tokens,
        saved.usage.output_tokens,
        saved.provider_cached_tokens,
        saved.cache_creation_tokens,
    )


@functools.lru_cache(maxsize=PRICES_REMEMBERED)
def _price(
    table: int, model: str, prompt: int, completion: int, cache_read: int, cache_creation: int
) -> tuple[float, float]:
    """LiteLLM's price of one usage, remembered: pricing takes LiteLLM hundreds of µs, and
    hits of one entry repeat the same usage. ``table`` (the identity of
    ``litellm.model_cost``) makes a replaced price table price anew."""
    import litellm

    try:
        input_usd, output_usd = litellm.cost_per_token(
            model=model,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cache_read_input_tokens=cache_read,
            cache_creation_input_tokens=cache_creation,
        )
    except Exception as exc:  # an unpriced model (custom, mock): no dollars, not an error
        logger.debug("llmcache: LiteLLM has no price for %r (%s)", model, exc)
        return 0.0, 0.0
    return float(input_usd), float(output_usd)


def hit_marker(hit: CacheHit, saved: Saved, cost: tuple[float, float]) -> dict[str, Any]:
    """``_hidden_params["llmcache"]`` of a served hit."""
    return {
        "tier": hit.tier,
        "match": hit.match,
        "similarity": hit.similarity,
        "input_tokens_saved": saved.usage.input_tokens,
        "output_tokens_saved": saved.usage.output_tokens,
        "provider_cached_tokens": saved.provider_cached_tokens,
        "input_cost_saved_usd": cost[0],
        "output_cost_saved_usd": cost[1],
    }


def marked(payload: Mapping[str, Any], marker: dict[str, Any]) -> dict[str, Any]:
    """A copy of a stored chat/text response that LiteLLM rebuilds with the hit marker.

    LiteLLM copies keys it does not know onto the response object, so ``_hidden_params``
    arrives as the response's hidden params; LiteLLM then adds ``cache_hit`` and
    ``cache_key`` to the same dict.
    """
    served = dict(payload)
    hidden = payload.get("_hidden_params")
    served["_hidden_params"] = {**(hidden if isinstance(hidden, Mapping) else {}), MARKER: marker}
    return served
