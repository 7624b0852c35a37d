"""What a hit hands to LangChain: fresh copies of the stored generations, marked as a hit.

The decoded generations are kept as templates (on in-memory entries, in ``CacheEntry.memo``)
and never handed out: LangChain assigns to what a cache returns (``_convert_cached_generations``
replaces ``generation.message``; LangGraph sets message ids). Each hit gets shallow copies with
their own top-level containers (metadata dicts, tool-call lists), a fresh message id, and the
marker. Objects nested deeper (a tool call's ``args``, content blocks) are shared with the
template, as LangChain's own InMemoryCache shares everything it returns.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any, TypeVar

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, Generation
from langchain_core.utils.utils import LC_ID_PREFIX
from pydantic import BaseModel

from langchain_llmcache.convert import MARKER
from llmcache.cache import CacheHit

M = TypeVar("M", bound=BaseModel)


def hit_marker(hit: CacheHit) -> dict[str, Any]:
    """``response_metadata["llmcache"]`` of a hit: where it came from and how it matched."""
    return {"tier": hit.tier, "match": hit.match, "similarity": hit.similarity}


# The version-4 and RFC 4122 variant bits of a UUID, as masks over its 128-bit integer.
_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_SET = (0x4000 << 64) | (0x8000 << 48)
_random_bits = random.getrandbits  # reseeded after fork; ids must be unique, not secret


def new_message_id() -> str:
    """``f"{LC_ID_PREFIX}-{uuid4()}"``, built in a third of ``uuid.uuid4()``'s time (hot path).

    A fresh id per hit: langchain-core hands back the cached id, and in a LangGraph
    MessagesState a second reply with the same id replaces the first instead of appending.
    """
    h = f"{(_random_bits(128) & _UUID_CLEAR) | _UUID_SET:032x}"
    return f"{LC_ID_PREFIX}-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_setattr = object.__setattr__


def clone(model: M, update: dict[str, Any]) -> M:
    """``model.model_copy(update=update)`` without its overhead: a shallow copy, no validation.

    The same four slots pydantic's own ``__copy__``/``model_construct`` fill; about half the
    cost of ``model_copy``, which matters on a path budgeted at a few microseconds.
    """
    new = object.__new__(type(model))
    _setattr(new, "__dict__", {**model.__dict__, **update})
    _setattr(new, "__pydantic_fields_set__", model.__pydantic_fields_set__ | update.keys())
    extra, private = model.__pydantic_extra__, model.__pydantic_private__
    _setattr(new, "__pydantic_extra__", None if extra is None else dict(extra))
    _setattr(new, "__pydantic_private__", None if private is None else dict(private))
    return new


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
    fields = message.__dict__
    update: dict[str, Any] = {
        "id": new_message_id(),
        "response_metadata": {**fields["response_metadata"], MARKER: marker},
        "additional_kwargs": fields["additional_kwargs"].copy(),
    }
    if type(fields["content"]) is list:
        update["content"] = fields["content"].copy()
    if isinstance(message, AIMessage):
        update["tool_calls"] = fields["tool_calls"].copy()
        update["invalid_tool_calls"] = fields["invalid_tool_calls"].copy()
        usage = fields["usage_metadata"]
        if usage is not None:
            update["usage_metadata"] = usage.copy()
    return clone(message, update)


def fresh_hit(templates: Iterable[Generation], hit: CacheHit) -> list[Generation]:
    """New generation objects equal in content to ``templates``, marked as ``hit``."""
    served: list[Generation] = []
    for template in templates:
        info = template.generation_info
        if isinstance(template, ChatGeneration):
            message = _fresh_message(template.message, hit_marker(hit))
            info = None if info is None else info.copy()
            served.append(clone(template, {"message": message, "generation_info": info}))
        else:
            marked = HitInfo(info or ())
            marked[MARKER] = hit_marker(hit)
            served.append(clone(template, {"generation_info": marked}))
    return served


def mark_in_place(generations: Iterable[Generation], hit: CacheHit) -> list[Generation]:
    """Mark freshly decoded generations as ``hit`` without copying them.

    Only for objects nobody else holds: ``from_payload`` builds new ones (pydantic copies the
    containers it validates), so the copies ``fresh_hit`` makes would be wasted work.
    """
    served = list(generations)
    for generation in served:
        if isinstance(generation, ChatGeneration):
            message = generation.message
            message.response_metadata[MARKER] = hit_marker(hit)
            message.id = new_message_id()
        else:
            marked = HitInfo(generation.generation_info or ())
            marked[MARKER] = hit_marker(hit)
            generation.generation_info = marked
    return served
