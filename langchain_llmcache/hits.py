"""What a hit hands to LangChain: fresh copies of the stored generations, marked as a hit.

The decoded generations are kept as templates (on in-memory entries, in ``CacheEntry.memo``)
and never handed out: LangChain assigns to what a cache returns (``_convert_cached_generations``
replaces ``generation.message``; LangGraph sets message ids). Each hit gets shallow copies with
their own top-level containers (metadata dicts, tool-call lists), a fresh message id, and the
marker. Objects nested deeper (a tool call's ``args``, content blocks) are shared with the
template, as LangChain's own InMemoryCache shares everything it returns.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, Generation
from langchain_core.utils.utils import LC_ID_PREFIX

from langchain_llmcache.convert import MARKER
from llmcache.cache import CacheHit


def hit_marker(hit: CacheHit) -> dict[str, Any]:
    """``response_metadata["llmcache"]`` of a hit: where it came from and how it matched."""
    return {"tier": hit.tier, "match": hit.match, "similarity": hit.similarity}


def new_message_id() -> str:
    # A fresh id per hit: langchain-core hands back the cached id, and in a LangGraph
    # MessagesState a second reply with the same id replaces the first instead of appending.
    return f"{LC_ID_PREFIX}-{uuid.uuid4()}"


class HitInfo(dict[str, Any]):
    """``generation_info`` of a plain ``Generation`` hit: the stored info plus the marker.

    It compares equal to the info that was stored, ignoring the marker, so a hit still equals
    the generation that was cached (LangChain's standard cache suite checks exactly
    ``lookup(...) == [stored]``, including a stored ``generation_info=None``). ``dict(info)``
    gives a plain dict with the marker; the marker itself is ignored on both sides.
    """

    __slots__ = ()
    __hash__ = None  # mutable, like dict

    def __eq__(self, other: object) -> bool:
        if other is None:
            return not _unmarked(self)
        if isinstance(other, dict):
            return _unmarked(self) == _unmarked(other)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal


def _unmarked(info: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if k != MARKER} if MARKER in info else info


def _fresh_message(message: BaseMessage, marker: dict[str, Any]) -> BaseMessage:
    update: dict[str, Any] = {
        "id": new_message_id(),
        "response_metadata": {**message.response_metadata, MARKER: marker},
        "additional_kwargs": dict(message.additional_kwargs),
    }
    if isinstance(message.content, list):
        update["content"] = list(message.content)
    if isinstance(message, AIMessage):
        update["tool_calls"] = list(message.tool_calls)
        update["invalid_tool_calls"] = list(message.invalid_tool_calls)
        if message.usage_metadata is not None:
            update["usage_metadata"] = dict(message.usage_metadata)
    return message.model_copy(update=update)


def fresh_hit(templates: Iterable[Generation], marker: dict[str, Any]) -> list[Generation]:
    """New generation objects equal in content to ``templates``, marked as a hit."""
    served: list[Generation] = []
    for template in templates:
        info = template.generation_info
        if isinstance(template, ChatGeneration):
            served.append(
                template.model_copy(
                    update={
                        "message": _fresh_message(template.message, dict(marker)),
                        "generation_info": None if info is None else dict(info),
                    }
                )
            )
        else:
            marked = HitInfo(info or ())
            marked[MARKER] = dict(marker)
            served.append(template.model_copy(update={"generation_info": marked}))
    return served
