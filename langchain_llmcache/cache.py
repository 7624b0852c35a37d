"""``LangChainCache``: LangChain's BaseCache over an llmcache ``Cache``.

    from langchain_core.globals import set_llm_cache
    from langchain_llmcache import LangChainCache
    from llmcache import Cache, scope

    set_llm_cache(LangChainCache(Cache.from_urls(["memory://", "sqlite:///./llmcache.db"])))
    with scope(user="alice", tenant="acme"):
        llm.invoke("...")          # only ever sees alice@acme's entries

A thin translation: (prompt, llm_string, ambient scope) -> CacheRequest; generations <-> a
JSON payload. Keys, TTLs, tiers, fail-open and stats are the core's.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, NamedTuple

from langchain_core.caches import BaseCache
from langchain_core.outputs import Generation

from langchain_llmcache.convert import (
    PayloadError,
    finish_reasons_of,
    from_payload,
    model_of,
    to_payload,
    usage_of,
)
from langchain_llmcache.hits import Template, fresh_hit, mark_in_place, templates_of
from langchain_llmcache.llm_string import parse_llm_string
from langchain_llmcache.prompt_key import key_prompt
from langchain_llmcache.semantic_text import semantic_fields
from llmcache._sentinel import UNSET, Unset
from llmcache.cache import Cache, CacheHit
from llmcache.context import read_control, read_scope, read_tags
from llmcache.entry import Usage
from llmcache.errors import ConfigError
from llmcache.fork_safety import renew_after_fork
from llmcache.keys import with_model_name
from llmcache.policy import check_ttl
from llmcache.request import CacheControl, CacheRequest, Scope

logger = logging.getLogger("llmcache.langchain")

#: Default namespace of LangChain entries (part of the key; LiteLLM's entries use another).
NAMESPACE = "langchain"


#: Requests remembered for calls made again (the least recently used go first), and the
#: longest prompt remembered: a long conversation is rarely asked twice, and is not kept.
REMEMBERED_REQUESTS = 1024
REMEMBERED_PROMPT_CHARS = 16 * 1024

#: What a request is built from: prompt, llm_string, scope, tags, control.
_MadeFrom = tuple[str, str, Scope, tuple[str, ...], CacheControl]

#: ``CacheEntry.memo`` of an entry decoded once and handed out as decoded.
_SEEN_ONCE = object()


class _Decoded(NamedTuple):
    """What this adapter keeps in ``CacheEntry.memo``: the rebuilt generations (templates)."""

    generations: tuple[Template, ...]


class LangChainCache(BaseCache):
    """LangChain's LLM cache backed by llmcache's tiers. Thread-safe and asyncio-native.

    Args:
        cache: the llmcache ``Cache`` to use; ``None`` builds one with ``Cache.from_env()``
            (``LLMCACHE_URLS``, else memory + ``./llmcache.db``), closed by ``close()``.
        namespace: keeps these entries apart from other apps sharing the same store.
        ttl: seconds to keep each answer; not passed = the cache policy's default,
            ``None`` = each tier's default, ``0`` = do not store.

    Entries are keyed on the prompt, the whole ``llm_string`` (model and every parameter) and
    the ambient ``llmcache.scope(...)`` read at lookup/update time. A hit is marked in
    ``message.response_metadata["llmcache"]`` (plain ``Generation``: in
    ``generation_info["llmcache"]``) and each hit message gets a fresh id.
    """

    def __init__(
        self,
        cache: Cache | None = None,
        *,
        namespace: str = NAMESPACE,
        ttl: float | Unset | None = UNSET,
    ) -> None:
        if cache is not None and not isinstance(cache, Cache):
            raise ConfigError(
                f"LangChainCache takes an llmcache.Cache, got {type(cache).__name__}; "
                "build one with Cache.from_urls([...])"
            )
        if not isinstance(namespace, str):
            raise ConfigError(f"namespace must be a string, got {type(namespace).__name__}")
        self.cache = cache if cache is not None else Cache.from_env()
        self._owns_cache = cache is None
        self.namespace = namespace
        self.ttl = ttl if ttl is UNSET else check_ttl(ttl)
        self._requests: dict[_MadeFrom, CacheRequest] = {}
        # The last request per (prompt, llm_string), checked by identity; in least recently
        # used order, so a stream of new prompts never pushes out hot ones.
        self._recent: OrderedDict[tuple[str, str], CacheRequest] = OrderedDict()
        self._requests_lock = threading.Lock()
        renew_after_fork(self, "_requests_lock")

    def request_for(self, prompt: str, llm_string: str) -> CacheRequest:
        """The core ``CacheRequest`` that a LangChain lookup of ``prompt`` and ``llm_string``
        makes in the current ``scope(...)``, tags and control: what ``cache.get``, ``delete`` or
        ``inspect`` take for it. The same object for the same call again (its key is then
        computed once: ``request_key``)."""
        scope, tags, control = read_scope(), read_tags(), read_control()
        # Hot path: the same call again in the same ambient context (the very same scope,
        # tags and control objects: a contextvar hands back what was set) is the request
        # made last time for these strings. Only identity is checked here; anything else
        # goes through the by-value lookup below.
        made_for = (prompt, llm_string)
        recent = self._recent.get(made_for)
        if (
            recent is not None
            and recent.scope is scope
            and recent.tags is tags
            and recent.control is control
        ):
            try:  # noqa: SIM105 - contextlib.suppress costs a context manager per hit
                self._recent.move_to_end(made_for)
            except KeyError:  # another thread just let it go; it is still this call's request
                pass
            return recent
        # Everything the request is built from, compared by value (scope, tags and control
        # too: an equal scope is the same scope, never another user's).
        made_from = (prompt, llm_string, scope, tags, control)
        request = self._requests.get(made_from)
        if request is None:
            request = self._build_request(made_from)
        if len(prompt) <= REMEMBERED_PROMPT_CHARS:
            with self._requests_lock:
                if made_from not in self._requests and len(self._requests) >= REMEMBERED_REQUESTS:
                    del self._requests[next(iter(self._requests))]  # the oldest
                self._requests[made_from] = request
                if made_for not in self._recent and len(self._recent) >= REMEMBERED_REQUESTS:
                    # popitem, not iter(): the hot path reorders this one without the lock
                    self._recent.popitem(last=False)  # the least recently used
                self._recent[made_for] = request
        return request

    def _build_request(self, made_from: _MadeFrom) -> CacheRequest:
        prompt, llm_string, scope, tags, control = made_from
        if self.ttl == 0 and control.ttl is UNSET:
            # This adapter stores nothing (a call's own ttl wins): say so at lookup, so that
            # identical calls do not wait on a leader whose answer will never be stored.
            control = dataclasses.replace(control, ttl=0)
        parsed = parse_llm_string(llm_string)
        request = CacheRequest(
            model=llm_string,
            prompt=key_prompt(prompt),
            params=parsed.params,
            scope=scope,
            namespace=self.namespace,
            model_name=parsed.model_name,
            tags=tags,  # llmcache.tags(...) blocks: for invalidate(tags=...)
            control=control,  # llmcache.cache_control(...) blocks
        )
        if self.cache.semantic is not None:  # off the hot path: parse only for the tier
            fields = semantic_fields(prompt)
            request.semantic_text = fields.text
            request.semantic_context = fields.context
        return request

    # ------------------------------------------------------------------ lookup
    def lookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """The cached generations for this prompt, model and scope, or None."""
        request = self.request_for(prompt, llm_string)
        hit = self.cache.get(request)
        if hit is None:
            return None
        served = self._serve(hit)
        if served is None:  # an entry that does not rebuild is a miss, and goes
            self.cache.delete_hit(hit)
        return served

    async def alookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        request = self.request_for(prompt, llm_string)
        hit = await self.cache.aget(request)
        if hit is None:
            return None
        served = self._serve(hit)
        if served is None:  # an entry that does not rebuild is a miss, and goes
            await self.cache.adelete_hit(hit)
        return served

    def _serve(self, hit: CacheHit) -> list[Generation] | None:
        """Fresh marked generations for the hit; None if its payload is unusable.

        An entry seen for the first time (every hit from a store tier) is decoded and handed
        out as is: the decoded objects and their own containers are nobody else's (values
        nested deeper, such as a tool call's argument lists, are shared with the stored
        payload, as LangChain's InMemoryCache shares all it returns). An entry seen again is
        one a memory tier keeps: its decoded generations become templates in
        ``CacheEntry.memo``, and each later hit gets cheap copies of them, never the templates
        (LangChain assigns to what a cache returns).
        """
        memo = hit.entry.memo
        if isinstance(memo, _Decoded):
            return fresh_hit(memo.generations, hit)
        try:
            generations = from_payload(hit.entry.value)
        except PayloadError as exc:
            # Stored data is untrusted: a payload that does not rebuild is a miss.
            logger.warning("llmcache: a LangChain entry did not rebuild (%s); deleted it", exc)
            return None
        if memo is _SEEN_ONCE:
            templates = templates_of(generations)
            hit.entry.memo = _Decoded(templates)
            return fresh_hit(templates, hit)
        hit.entry.memo = _SEEN_ONCE
        return mark_in_place(generations, hit)

    # ------------------------------------------------------------------ update
    def update(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        """Store the generations (in every tier); never raises for a cache fault."""
        stored = self._stored(return_val)
        if stored is None:  # callers waiting for this answer must not wait for it
            self.cache.forgo(self.request_for(prompt, llm_string))
        else:
            payload, usage = stored
            request = self._stored_request(prompt, llm_string, return_val)
            reasons = finish_reasons_of(return_val)
            # The caller has its answer: a Redis tier sends the store without awaiting it.
            self.cache.set(
                request, payload, usage=usage, ttl=self.ttl, finish_reasons=reasons, wait=False
            )

    async def aupdate(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        stored = self._stored(return_val)
        if stored is None:
            await self.cache.aforgo(self.request_for(prompt, llm_string))
        else:
            payload, usage = stored
            request = self._stored_request(prompt, llm_string, return_val)
            reasons = finish_reasons_of(return_val)
            await self.cache.aset(
                request, payload, usage=usage, ttl=self.ttl, finish_reasons=reasons, wait=False
            )

    def _stored_request(
        self, prompt: str, llm_string: str, return_val: Sequence[Generation]
    ) -> CacheRequest:
        """The lookup's request (the same key, computed once), naming the model that answered
        when the ``llm_string`` names only the model's class: that name prices the entry."""
        request = self.request_for(prompt, llm_string)
        answered_by = model_of(return_val)
        if answered_by:
            parsed = parse_llm_string(llm_string)
            if parsed.class_named or not parsed.model_name:
                return with_model_name(request, answered_by)
        return request

    @staticmethod
    def _stored(return_val: Sequence[Generation]) -> tuple[dict[str, Any], Usage] | None:
        try:
            return to_payload(return_val), usage_of(return_val)
        except PayloadError as exc:
            # The user's call already has its answer; failing to cache it must not fail it.
            logger.warning("llmcache: not caching a LangChain answer: %s", exc)
            return None

    # ------------------------------------------------------------------ clear
    def clear(self, **kwargs: Any) -> None:
        """Remove llmcache's entries from every tier of the cache.

        ``clear()`` removes every entry of the wrapped ``Cache`` (llmcache's own tables and
        keys only: never foreign tables or keys). ``clear(scope=Scope.of(user="alice"))``
        removes only that exact scope's entries.
        """
        self.cache.clear(scope=_clear_scope(kwargs))

    async def aclear(self, **kwargs: Any) -> None:
        await self.cache.aclear(scope=_clear_scope(kwargs))

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Close the cache if this adapter built it (``LangChainCache()`` with no cache)."""
        if self._owns_cache:
            self.cache.close()

    async def aclose(self) -> None:
        if self._owns_cache:
            await self.cache.aclose()

    def __repr__(self) -> str:
        return f"LangChainCache({self.cache!r}, namespace={self.namespace!r})"


def _clear_scope(kwargs: dict[str, Any]) -> Scope | None:
    unknown = set(kwargs) - {"scope"}
    if unknown:
        raise ConfigError(
            f"LangChainCache.clear() got unknown argument(s) {sorted(unknown)}; "
            "pass scope=Scope.of(user=..., tenant=..., acl=[...]) or nothing"
        )
    scope = kwargs.get("scope")
    if scope is not None and not isinstance(scope, Scope):
        raise ConfigError(
            f"clear(scope=...) takes an llmcache.Scope, got {type(scope).__name__}; "
            "build one with Scope.of(user=..., tenant=..., acl=[...])"
        )
    return scope
