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


try:  # langchain-core's own dependency (Rust): a quarter of the pure-Python id's time
    from uuid_utils import uuid4 as _fast_uuid4
except ImportError:  # pragma: no cover - langchain-core installs it
    _fast_uuid4 = None  # type: ignore[assignment]


def new_message_id() -> str:
    """A fresh ``f"{LC_ID_PREFIX}-{uuid4()}"`` (hot path: one per hit).

    A fresh id per hit: langchain-core hands back the cached id, and in a LangGraph
    MessagesState a second reply with the same id replaces the first instead of appending.
    """
    if _fast_uuid4 is not None:
        return LC_ID_PREFIX + "-" + str(_fast_uuid4())
    h = f"{(_random_bits(128) & _UUID_CLEAR) | _UUID_SET:032x}"  # a third of uuid.uuid4()'s time
    return f"{LC_ID_PREFIX}-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def clone(model: M, update: dict[str, Any]) -> M:
    """``model.model_copy(update=update)`` without its overhead: a shallow copy, no validation.

    The same four slots pydantic's own ``__copy__``/``model_construct`` fill; about half the
    cost of ``model_copy``, which matters on a path budgeted at a few microseconds.
    """
    fields = model.__dict__.copy()
    fields.update(update)
    return _built(model, fields, model.__pydantic_fields_set__.union(update))


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


#: Message fields a hit gets a copy of its own of, when they hold a list or dict (``id`` and
#: ``response_metadata`` are replaced on every hit anyway).
_MESSAGE_CONTAINERS = ("additional_kwargs", "tool_calls", "invalid_tool_calls", "usage_metadata")
#: ``ChatGeneration`` fields every hit replaces.
_GENERATION_FRESH = frozenset(("message", "generation_info"))

# Pydantic's own slot descriptors: one C call each, where ``object.__setattr__`` first looks
# the name up along the class's MRO (hot path: four per object, two objects per hit).
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


class _ChatTemplate:
    """A decoded ``ChatGeneration``, with what every hit of it needs worked out once.

    A hit is two new pydantic objects (generation, message) built straight from field dicts:
    what ``model_copy`` does, without its per-call bookkeeping.
    """

    __slots__ = (
        "containers",
        "generation",
        "generation_fields_set",
        "message",
        "message_fields_set",
    )

    def __init__(self, generation: ChatGeneration) -> None:
        self.generation = generation
        message = self.message = generation.message
        fields = message.__dict__
        containers = [
            name for name in _MESSAGE_CONTAINERS if isinstance(fields.get(name), (list, dict))
        ]
        if type(fields.get("content")) is list:
            containers.append("content")
        self.containers: tuple[str, ...] = tuple(containers)
        self.message_fields_set = frozenset(
            (*message.__pydantic_fields_set__, "id", "response_metadata", *containers)
        )
        self.generation_fields_set = _GENERATION_FRESH | generation.__pydantic_fields_set__

    def fresh(self, marker: dict[str, Any]) -> ChatGeneration:
        message = self.message
        fields = message.__dict__.copy()
        for name in self.containers:
            fields[name] = fields[name].copy()
        fields["id"] = new_message_id()
        fields["response_metadata"] = {**fields["response_metadata"], MARKER: marker}
        served_message = _built(message, fields, set(self.message_fields_set))
        generation = self.generation
        info = generation.generation_info
        gen_fields = generation.__dict__.copy()
        gen_fields["message"] = served_message
        gen_fields["generation_info"] = None if info is None else info.copy()
        return _built(generation, gen_fields, set(self.generation_fields_set))


def _built(model: M, fields: dict[str, Any], fields_set: set[str]) -> M:
    """A new ``type(model)`` holding ``fields`` and ``fields_set`` (both its own from now on),
    with ``model``'s extra and private slots copied."""
    new = object.__new__(type(model))
    _set_dict(new, fields)
    _set_fields_set(new, fields_set)
    extra, private = model.__pydantic_extra__, model.__pydantic_private__
    _set_extra(new, None if extra is None else extra.copy())
    _set_private(new, None if private is None else private.copy())
    return new


Template = _ChatTemplate | Generation


def templates_of(generations: Iterable[Generation]) -> tuple[Template, ...]:
    """The decoded generations of an entry, prepared for ``fresh_hit`` (done once per entry)."""
    return tuple(_ChatTemplate(g) if isinstance(g, ChatGeneration) else g for g in generations)


def fresh_hit(templates: Iterable[Template], hit: CacheHit) -> list[Generation]:
    """New generation objects equal in content to ``templates``, marked as ``hit``."""
    served: list[Generation] = []
    for template in templates:
        if type(template) is _ChatTemplate:
            served.append(template.fresh(hit_marker(hit)))
        else:
            assert isinstance(template, Generation)
            marked = HitInfo(template.generation_info or ())
            marked[MARKER] = hit_marker(hit)
            served.append(clone(template, {"generation_info": marked}))
    return served


def mark_in_place(generations: Iterable[Generation], hit: CacheHit) -> list[Generation]:
    """Mark freshly decoded generations as ``hit`` without copying them.

    Only for objects nobody else holds: ``from_payload`` builds new ones (pydantic copies the
    containers it validates; values nested deeper stay shared with the payload, as the
    module docstring says), so the copies ``fresh_hit`` makes would be wasted work.
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
