"""The prompt as the cache keys it: what the provider sees, not LangChain's bookkeeping.

LangChain's cache key is ``dumps(messages)``, which includes each earlier AI message's
``response_metadata`` and ``usage_metadata``. Those never reach the provider, but they differ
between a reply that was computed and the same reply served from a cache (our hit marker,
langchain-core's ``total_cost: 0`` usage rewrite, a provider's request id), so every turn after
a cached one would miss: an agent whose first turn hit would pay for all the others. The key
drops those fields from every message; content, tool calls, names and tool-call ids stay.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

#: Fields of a serialized message that LangChain keeps for the caller, never sends to a model.
_BOOKKEEPING = ("response_metadata", "usage_metadata", "id")
# Cheap pre-check: a prompt without either field (any first turn) is keyed as it is.
_MARKERS = ('"response_metadata"', '"usage_metadata"')


def key_prompt(prompt: str) -> str:
    """``prompt`` without the bookkeeping fields of its messages (unchanged if it has none)."""
    if not any(marker in prompt for marker in _MARKERS):
        return prompt
    try:
        messages = orjson.loads(prompt)
    except orjson.JSONDecodeError:
        return _key_lone_surrogates(prompt)
    if type(messages) is not list or not any(map(_strip, messages)):
        return prompt
    return orjson.dumps(messages).decode()


def _key_lone_surrogates(prompt: str) -> str:
    """``key_prompt`` of what orjson does not read: a plain-text prompt (keyed as it is), or
    messages holding a lone surrogate (text decoded with ``surrogateescape``; ``dumps``
    writes it as an escape), which the standard library reads and writes. Two keys that are
    the same string decode to the same messages, whichever library wrote them."""
    try:
        messages = json.loads(prompt)
        if type(messages) is not list or not any(map(_strip, messages)):
            return prompt
        return json.dumps(messages, separators=(",", ":"))
    # JSONDecodeError, a number too long to convert; nesting deeper than the stack (orjson
    # refused it at 1024 levels) is a plain-text prompt too.
    except (ValueError, RecursionError):
        return prompt  # a plain-text prompt that mentions the words: keyed as it is


def _strip(message: Any) -> bool:
    """Remove the bookkeeping fields of one serialized message; True if any was there.

    Only a message as ``dumps`` writes it (``lc``, ``type``, and an ``id`` path naming a
    message class): a completion model's prompt is the user's own text, keyed as it is, even
    when it is JSON holding an "id" or "usage_metadata" (two such prompts were one key)."""
    if (
        type(message) is not dict
        or message.get("lc") != 1
        or message.get("type") != "constructor"
        or not _names_a_message(message.get("id"))
    ):
        return False
    fields = message.get("kwargs")
    if type(fields) is not dict:
        return False
    found = False
    for name in _BOOKKEEPING:
        if name in fields:
            del fields[name]
            found = True
    return found


def _names_a_message(path: Any) -> bool:
    """``["langchain", "schema", "messages", "AIMessage"]`` and the like."""
    return (
        type(path) is list
        and len(path) >= 2
        and path[0] in ("langchain", "langchain_core")
        and type(path[-1]) is str
        and "Message" in path[-1]
    )
