"""What a tier stores: CacheEntry, and its codec (JSON via orjson; never pickle, never eval).

Stored form (schema 1), a JSON object::

    {"s": 1, "value": <adapter payload>, "created": 1700000000.0, "expires": null | float,
     "model": "gpt-4o-mini", "usage": [input_tokens, output_tokens], "tags": ["faq"],
     "usage_cache": [cache_read_tokens, cache_creation_tokens]}

``usage_cache`` (the provider's prompt-cache part of the input tokens) is written only when it
is not zero, and a reader that does not know it ignores it: entries written before it existed,
and by it, decode everywhere.

A value that does not decode (truncated, hostile, a newer schema, wrong shapes) raises
CodecError; the cache then treats it as a miss and deletes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import isfinite
from typing import Any, NamedTuple, TypeGuard

import orjson

from llmcache.errors import CodecError, ConfigError
from llmcache.keys import _to_jsonable

ENTRY_SCHEMA = 1
#: Refuse to decode anything larger than this (a stored value is never trusted blindly).
MAX_DECODE_BYTES = 64 * 1024 * 1024


class Usage(NamedTuple):
    """Tokens the original call spent: what a hit saves. (A NamedTuple: one is built per
    decoded entry, and a frozen dataclass costs several times more to construct.)

    ``input_tokens`` counts every prompt token, including those the provider's own prompt
    cache served (``cache_read_tokens``: OpenAI ``cached_tokens``, Anthropic
    ``cache_read_input_tokens``) or wrote (``cache_creation_tokens``), as LiteLLM's
    ``prompt_tokens`` and LangChain's ``usage_metadata["input_tokens"]`` do.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


NO_USAGE = Usage()

#: The most tokens one answer's usage may count (a trillion): far above any model's window,
#: far below what overflows the fleet's 64-bit Redis counters when summed.
MAX_TOKENS = 10**12


def check_usage(usage: Usage) -> None:
    """Raise ConfigError unless every count of ``usage`` is a whole number of tokens in
    [0, MAX_TOKENS]: a negative one was stored, then failed every read (the entry was never
    served), and counted negative savings meanwhile."""
    for name, count in zip(Usage._fields, usage, strict=True):
        if not _is_count(count):
            raise ConfigError(
                f"usage.{name} must be a whole number of tokens from 0 to {MAX_TOKENS}, "
                f"got {count!r}"
            )


@dataclass(slots=True)
class CacheEntry:
    """One cached answer. ``value`` is the adapter's JSON-like payload.

    ``expires_at`` is absolute wall time, or None for "the tier's default TTL". ``memo`` is
    scratch space for an adapter to keep a decoded form next to an in-memory entry; it is
    never stored or compared.
    """

    value: Any
    created_at: float
    expires_at: float | None = None
    model: str = ""
    usage: Usage = NO_USAGE
    tags: tuple[str, ...] = ()
    memo: Any = field(default=None, compare=False, repr=False)

    def is_expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def encode(entry: CacheEntry) -> bytes:
    """Serialize ``entry``; raises CodecError when its value is not JSON-like."""
    doc = {
        "s": ENTRY_SCHEMA,
        "value": entry.value,
        "created": entry.created_at,
        "expires": entry.expires_at,
        "model": entry.model,
        **usage_fields(entry.usage),
        "tags": list(entry.tags),
    }
    try:
        return orjson.dumps(doc, default=_to_jsonable)
    except TypeError as exc:
        raise CodecError(f"cannot store this value: {exc}") from exc


def check_finite(value: Any) -> None:
    """Raise CodecError when ``value`` holds a float NaN or infinity.

    JSON has neither, and orjson writes both as null: stored, such an answer would come back
    changed (a ``-inf`` logprob as None). Not stored, it stays the caller's own. Every store
    pays it, a hit never does: about 2 µs for an LLM answer's payload in a tight loop, 5 µs
    inside a LangChain miss that stores (session 19, an A/B in one process).
    """
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is str or kind is int or item is None:  # most leaves
            continue
        if isinstance(item, dict):
            extend(item.values())
        elif isinstance(item, (list, tuple)):
            extend(item)
        elif isinstance(item, float) and not isfinite(item):  # numpy's float64 too
            raise CodecError(
                f"cannot store this value: it holds {item!r}, which JSON cannot represent "
                "(it would come back as null)"
            )


def usage_fields(usage: Usage) -> dict[str, list[int]]:
    """The stored form of ``usage`` (entries, export rows): ``usage``, and ``usage_cache``
    only when the provider's prompt cache took part."""
    fields = {"usage": [usage.input_tokens, usage.output_tokens]}
    if usage.cache_read_tokens or usage.cache_creation_tokens:
        fields["usage_cache"] = [usage.cache_read_tokens, usage.cache_creation_tokens]
    return fields


def _is_number(value: object) -> TypeGuard[float]:
    return type(value) is float or type(value) is int  # not bool, not a subclass


def _is_count(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_TOKENS


def decode(data: bytes | bytearray | memoryview | str) -> CacheEntry:
    """Parse stored bytes back into a CacheEntry, or raise CodecError."""
    if len(data) > MAX_DECODE_BYTES:
        raise CodecError(f"stored entry is larger than {MAX_DECODE_BYTES} bytes")
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CodecError(f"stored entry is not valid JSON: {exc}") from None
    if type(doc) is not dict:
        raise CodecError("stored entry is not a JSON object")
    return from_doc(doc)


def from_doc(doc: dict[str, Any], what: str = "stored entry") -> CacheEntry:
    """A CacheEntry from its parsed stored form (``decode``, an export's row: extra fields
    are ignored), or CodecError naming the field that is wrong."""
    schema = doc.get("s")
    if schema != ENTRY_SCHEMA or type(schema) is not int:
        raise CodecError(f"{what} has schema {schema!r}; this llmcache reads {ENTRY_SCHEMA}")
    if "value" not in doc:
        raise CodecError(f"{what} has no value")
    created = doc.get("created")
    if not _is_number(created):
        raise CodecError(f"{what} field 'created' is not a number")
    expires = doc.get("expires")
    if expires is not None and not _is_number(expires):
        raise CodecError(f"{what} field 'expires' is not a number")
    usage = _usage(doc["usage"], doc.get("usage_cache"), what) if "usage" in doc else NO_USAGE
    tags = doc.get("tags", ())
    if tags:
        if type(tags) is not list or not all(type(t) is str for t in tags):
            raise CodecError(f"{what} field 'tags' is malformed")
        tags = tuple(tags)
    model = doc.get("model", "")
    if type(model) is not str:
        raise CodecError(f"{what} field 'model' is malformed")
    return CacheEntry(
        value=doc["value"],
        created_at=float(created),
        expires_at=None if expires is None else float(expires),
        model=model,
        usage=usage,
        tags=tags or (),
    )


def _usage(tokens: object, cached: object, what: str) -> Usage:
    if type(tokens) is not list or len(tokens) != 2 or not all(map(_is_count, tokens)):
        raise CodecError(f"{what} field 'usage' is malformed")
    if cached is None:
        return Usage(tokens[0], tokens[1])
    if type(cached) is not list or len(cached) != 2 or not all(map(_is_count, cached)):
        raise CodecError(f"{what} field 'usage_cache' is malformed")
    return Usage(tokens[0], tokens[1], cached[0], cached[1])
