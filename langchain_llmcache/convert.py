"""LangChain generations <-> the JSON-like payload the core stores. Explicit mapping only.

Payload (version 1)::

    {"v": 1, "generations": [
        {"kind": "generation" | "generation_chunk", "text": "...", "info": {...} | null},
        {"kind": "chat" | "chat_chunk", "info": {...} | null,
         "message": {"type": "ai", "fields": {"content": ..., "tool_calls": [...], ...}}},
    ]}

Messages are rebuilt from a fixed table of langchain_core message classes (never from a class
path found in the data, never ``langchain_core.load.loads``, never pickle). Message ids are not
stored: every hit gets a fresh one. The ``"llmcache"`` hit marker is stripped before storing,
so re-storing a hit never persists a stale marker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    ChatMessageChunk,
    FunctionMessage,
    FunctionMessageChunk,
    HumanMessage,
    HumanMessageChunk,
    SystemMessage,
    SystemMessageChunk,
    ToolMessage,
    ToolMessageChunk,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk
from pydantic import BaseModel, ValidationError

from llmcache.entry import MAX_TOKENS, NO_USAGE, Usage, check_finite
from llmcache.errors import CodecError

PAYLOAD_VERSION = 1
#: The key of the hit marker in ``response_metadata`` / ``generation_info``.
MARKER = "llmcache"

_MESSAGE_CLASSES: dict[str, type[BaseMessage]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        AIMessage,
        AIMessageChunk,
        HumanMessage,
        HumanMessageChunk,
        SystemMessage,
        SystemMessageChunk,
        ToolMessage,
        ToolMessageChunk,
        FunctionMessage,
        FunctionMessageChunk,
        ChatMessage,
        ChatMessageChunk,
    )
}
#: Not stored: "type" names the class; "id" is replaced by a fresh one on every hit.
_UNSTORED_FIELDS = frozenset({"type", "id"})

# Most specific first: a subclass of ChatGeneration is stored as a ChatGeneration.
_GENERATION_KINDS: tuple[tuple[str, type[Generation]], ...] = (
    ("chat_chunk", ChatGenerationChunk),
    ("chat", ChatGeneration),
    ("generation_chunk", GenerationChunk),
    ("generation", Generation),
)
_KIND_CLASSES = dict(_GENERATION_KINDS)


class PayloadError(ValueError):
    """Generations that cannot be stored, or a stored payload that cannot be rebuilt."""


# ---------------------------------------------------------------------------- storing
def _jsonable(obj: Any) -> Any:
    """orjson fallback: pydantic objects (e.g. ``additional_kwargs["parsed"]``) by their dump."""
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _without_marker(info: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if info is None or MARKER not in info:
        return info
    return {k: v for k, v in info.items() if k != MARKER}


def _message_doc(message: BaseMessage) -> dict[str, Any]:
    if _MESSAGE_CLASSES.get(message.type) is None:
        raise PayloadError(f"cannot store a message of type {message.type!r}")
    # A pydantic model's __dict__ holds exactly its fields (what model_dump reads).
    fields = {k: v for k, v in message.__dict__.items() if k not in _UNSTORED_FIELDS}
    fields["response_metadata"] = _without_marker(fields.get("response_metadata"))
    return {"type": message.type, "fields": fields}


def _generation_doc(generation: Generation) -> dict[str, Any]:
    kind = next((k for k, cls in _GENERATION_KINDS if isinstance(generation, cls)), None)
    if kind is None:
        raise PayloadError(f"cannot store a {type(generation).__name__}; expected a Generation")
    doc: dict[str, Any] = {"kind": kind, "info": _without_marker(generation.generation_info)}
    if isinstance(generation, ChatGeneration):
        doc["message"] = _message_doc(generation.message)
    else:
        doc["text"] = generation.text
    return doc


def to_payload(generations: Iterable[Generation]) -> dict[str, Any]:
    """A JSON-only deep copy of ``generations`` (nothing shared with the caller's objects)."""
    doc = {"v": PAYLOAD_VERSION, "generations": [_generation_doc(g) for g in generations]}
    try:
        # The round trip converts (pydantic objects, tuples, non-str keys) and deep-copies at
        # once: the memory tier keeps this object, so it must not share the caller's dicts.
        payload: dict[str, Any] = orjson.loads(
            orjson.dumps(doc, default=_jsonable, option=orjson.OPT_NON_STR_KEYS)
        )
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise PayloadError(
            f"llmcache stores JSON only, and these generations hold a value that is not: {exc}"
        ) from None
    # The round trip turns NaN and infinities into None, where the core would no longer see
    # them: a payload equal to its source held none (the usual case: one C-level compare);
    # only one that differs (a NaN, or a value the trip converted) is walked.
    if payload != doc:
        try:
            check_finite(doc)
        except CodecError as exc:
            raise PayloadError(str(exc)) from None
    return payload


def usage_of(generations: Sequence[Generation]) -> Usage:
    """Tokens the call spent, from the messages' ``usage_metadata``.

    ``input_tokens`` includes the prompt tokens the provider's prompt cache served or wrote,
    which LangChain also reports in ``input_token_details`` (``cache_read``,
    ``cache_creation``). Several generations of one call (``n > 1``) usually repeat the call's
    total usage on each message, so identical usages count once: input (and its cached part)
    is the largest, output the sum of distinct.
    """
    seen: set[Usage] = set()
    for generation in generations:
        message = getattr(generation, "message", None)
        usage = getattr(message, "usage_metadata", None)
        if isinstance(usage, dict) and usage:
            details = usage.get("input_token_details")
            if not isinstance(details, dict):
                details = {}
            seen.add(
                Usage(
                    _count(usage.get("input_tokens")),
                    _count(usage.get("output_tokens")),
                    _count(details.get("cache_read")),
                    _count(details.get("cache_creation")),
                )
            )
    if not seen:
        return NO_USAGE
    if len(seen) == 1:
        return seen.pop()
    widest = max(seen)
    return widest._replace(output_tokens=min(sum(u.output_tokens for u in seen), MAX_TOKENS))


def model_of(generations: Sequence[Generation]) -> str:
    """The model that answered, as the provider reported it (``response_metadata``
    ``model_name``/``model``), or ""."""
    for generation in generations:
        metadata = getattr(getattr(generation, "message", None), "response_metadata", None)
        if isinstance(metadata, dict):
            for field in ("model_name", "model"):
                name = metadata.get(field)
                if isinstance(name, str) and name:
                    return name
    return ""


#: Where LangChain providers put why an answer ended: ``finish_reason`` (OpenAI chat
#: completions, Gemini, Mistral...), ``stop_reason`` (Anthropic), ``stopReason`` (Bedrock
#: Converse), ``done_reason`` (Ollama).
_REASON_FIELDS = ("finish_reason", "stop_reason", "stopReason", "done_reason")


def finish_reasons_of(generations: Sequence[Generation]) -> list[str | None]:
    """Why each generation ended, as its provider said (see ``_REASON_FIELDS``; the OpenAI
    Responses API's ``incomplete_details["reason"]``), from ``generation_info`` or the
    message's ``response_metadata``."""
    reasons: list[str | None] = []
    for generation in generations:
        message = getattr(generation, "message", None)
        for source in (generation.generation_info, getattr(message, "response_metadata", None)):
            if isinstance(source, dict):
                for field in _REASON_FIELDS:
                    reason = source.get(field)
                    if isinstance(reason, str) and reason:
                        reasons.append(reason)
                incomplete = source.get("incomplete_details")
                if isinstance(incomplete, dict):
                    reason = incomplete.get("reason")
                    if isinstance(reason, str) and reason:
                        reasons.append(reason)
    return reasons


def _count(value: object) -> int:
    return value if type(value) is int and 0 < value <= MAX_TOKENS else 0


# ---------------------------------------------------------------------------- rebuilding
def _message(doc: Any) -> BaseMessage:
    if not isinstance(doc, dict) or not isinstance(doc.get("fields"), dict):
        raise PayloadError("stored message is malformed")
    cls = _MESSAGE_CLASSES.get(doc.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise PayloadError(f"stored message has unknown type {doc.get('type')!r}")
    fields = doc["fields"]
    usage = fields.get("usage_metadata")
    try:
        message = cls(**fields)
    except ValidationError:
        if usage is None:
            raise
        # LangChain's own hit path stores usage_metadata={**old, "total_cost": 0} without
        # validation, possibly {"total_cost": 0} alone, which AIMessage refuses. The answer is
        # still good: build it without that field, then put the field back as it was.
        message = cls(**{k: v for k, v in fields.items() if k != "usage_metadata"})
    if usage is not None and getattr(message, "usage_metadata", usage) != usage:
        message = message.model_copy(update={"usage_metadata": usage})
    return message


def _generation(doc: Any) -> Generation:
    if not isinstance(doc, dict):
        raise PayloadError("stored generation is not an object")
    cls = _KIND_CLASSES.get(doc.get("kind"))  # type: ignore[arg-type]
    if cls is None:
        raise PayloadError(f"stored generation has unknown kind {doc.get('kind')!r}")
    info = doc.get("info")
    if info is not None and not isinstance(info, dict):
        raise PayloadError("stored generation_info is not an object")
    if issubclass(cls, ChatGeneration):
        return cls(message=_message(doc.get("message")), generation_info=info)
    text = doc.get("text")
    if not isinstance(text, str):
        raise PayloadError("stored generation text is not a string")
    return cls(text=text, generation_info=info)


def from_payload(payload: Any) -> tuple[Generation, ...]:
    """Rebuild stored generations; raises PayloadError for anything but a valid payload."""
    if not isinstance(payload, dict) or payload.get("v") != PAYLOAD_VERSION:
        version = payload.get("v") if isinstance(payload, dict) else None
        raise PayloadError(f"stored payload has version {version!r}; expected {PAYLOAD_VERSION}")
    items = payload.get("generations")
    if not isinstance(items, list):
        raise PayloadError("stored payload has no list of generations")
    try:
        return tuple(_generation(item) for item in items)
    # langchain-core's own validators raise more than ValidationError on hostile shapes
    # (AttributeError from a tool call that is a string: found by tests/unit/test_fuzz_decoders).
    except (ValidationError, TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
        raise PayloadError(f"stored generations do not validate: {exc}") from None
