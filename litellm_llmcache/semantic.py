"""What a chat call offers the semantic tier: the text to embed and what must match exactly.

Only used when the wrapped ``Cache`` has a semantic component (otherwise nothing here runs).
The embedded text is the last user message's text; everything else in the prompt (system
prompt, earlier turns, the messages after it, the non-text parts of that message such as
images, and its other fields) forms ``semantic_context``, which the semantic tier matches
exactly. Model, parameters (tools, functions ...), scope and namespace are already part of
the request the tier partitions on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple


class SemanticFields(NamedTuple):
    text: str | None  # None: not eligible for a semantic match
    context: Any


NOT_ELIGIBLE = SemanticFields(None, None)


def _text_of(content: object) -> tuple[str | None, list[Any]]:
    """(the text of a message's content, its non-text parts). Text parts are joined by
    newlines; a content with no text at all gives None."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, Sequence) or isinstance(content, (bytes, bytearray)):
        return None, [content]
    texts: list[str] = []
    others: list[Any] = []
    for part in content:
        if (
            isinstance(part, Mapping)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        ):
            texts.append(part["text"])
        else:
            others.append(part)
    return ("\n".join(texts) if texts else None), others


def semantic_fields(messages: object) -> SemanticFields:
    """The semantic text and context of a chat call's ``messages`` (JSON-like already)."""
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)):
        return NOT_ELIGIBLE
    last_user = next(
        (
            i
            for i in range(len(messages) - 1, -1, -1)
            if isinstance(messages[i], Mapping) and messages[i].get("role") == "user"
        ),
        None,
    )
    if last_user is None:
        return NOT_ELIGIBLE
    message: Mapping[str, Any] = messages[last_user]
    text, other_parts = _text_of(message.get("content"))
    if text is None or not text.strip():
        return NOT_ELIGIBLE
    # The asked message minus its text stays in the context, at its position, so images,
    # a ``name`` or any other field of it must still match exactly.
    rest = {k: v for k, v in message.items() if k != "content"}
    rest["content_parts"] = other_parts
    context = {
        "before": list(messages[:last_user]),
        "asked": rest,
        "after": list(messages[last_user + 1 :]),
    }
    return SemanticFields(text, context)
