"""What the semantic tier embeds from a LangChain prompt, and what must match exactly.

LangChain hands a cache ``prompt``: for a chat model, ``langchain_core.load.dumps(messages)``
(a JSON list of serialized messages); for a completion model (``BaseLLM``), the prompt text.
The text of the last human message is embedded; every other message (system prompt, earlier
and later turns), and any non-text part of that last message (images, files), is the
``semantic_context`` that must match exactly. The JSON is read with ``json.loads`` and plain
dict access: never LangChain's ``loads`` (which builds objects) and never eval.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

#: Fields of a serialized message that never reach the provider: they must not split a
#: conversation into different partitions (ids are random, metadata comes from responses).
_NOT_SENT = frozenset({"id", "response_metadata", "usage_metadata"})
_HUMAN = frozenset({"HumanMessage", "HumanMessageChunk"})


class SemanticFields(NamedTuple):
    text: str | None  # None = not eligible for a semantic match
    context: Any


def semantic_fields(prompt: str) -> SemanticFields:
    """``(text of the last user turn, everything else)`` of a LangChain cache prompt."""
    messages = _messages(prompt)
    if messages is None:  # a completion model's prompt: all of it is the user's text
        return SemanticFields(prompt or None, None)
    last = next((i for i in range(len(messages) - 1, -1, -1) if _kind(messages[i]) in _HUMAN), None)
    if last is None:
        return SemanticFields(None, None)
    kwargs = dict(messages[last]["kwargs"])
    text, attachments = _split_content(kwargs.pop("content", ""))
    rest = {k: v for k, v in kwargs.items() if k not in _NOT_SENT and k != "type"}
    context = {
        "before": [_clean(m) for m in messages[:last]],
        "after": [_clean(m) for m in messages[last + 1 :]],
        "last": {"attachments": attachments, **rest} if attachments or rest else None,
    }
    return SemanticFields(text or None, context)


def _messages(prompt: str) -> list[dict[str, Any]] | None:
    if not prompt.startswith("[{"):
        return None
    try:
        parsed = json.loads(prompt)
    except ValueError:
        return None
    if not isinstance(parsed, list) or not all(
        isinstance(m, dict)
        and m.get("type") == "constructor"
        and isinstance(m.get("id"), list)
        and isinstance(m.get("kwargs"), dict)
        for m in parsed
    ):
        return None
    return parsed


def _kind(message: dict[str, Any]) -> str:
    return str(message["id"][-1]) if message["id"] else ""


def _clean(message: dict[str, Any]) -> dict[str, Any]:
    kwargs = {k: v for k, v in message["kwargs"].items() if k not in _NOT_SENT}
    return {"kind": _kind(message), **kwargs}


def _split_content(content: Any) -> tuple[str, list[Any]]:
    """Text of a message's content, and its non-text blocks."""
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    others: list[Any] = []
    for block in content if isinstance(content, list) else [content]:
        if isinstance(block, str):
            texts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        else:
            others.append(block)
    return "\n".join(texts), others
