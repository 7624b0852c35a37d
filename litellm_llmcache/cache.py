"""``LiteLLMCache``: ``litellm.cache`` backed by an llmcache ``Cache``.

    import litellm
    from litellm_llmcache import LiteLLMCache
    from llmcache import Cache

    litellm.cache = LiteLLMCache(Cache.from_urls(["memory://", "sqlite:///./llmcache.db"]))

A subclass of LiteLLM's own ``litellm.caching.caching.Cache``: LiteLLM's handler keeps
deciding *when* to look up and store (``caching=``, ``cache={"no-cache"/"no-store"}``,
``mode="default_off"`` + ``{"use-cache": True}``, ``supported_call_types``, stream replay,
per-input embedding lookups); this class replaces *what* is keyed and where it is stored.
Keys are built from the call's kwargs by ``request.build_request`` (LiteLLM's own
``get_cache_key`` ignores ``metadata``, so it cannot isolate tenants); tiers, TTLs,
fail-open, single-flight and stats are the core's.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, NamedTuple

from litellm.caching import caching_handler as _handler
from litellm.caching.caching import Cache as _LiteLLMCache
from litellm.caching.caching import CacheMode, LiteLLMCacheType

from litellm_llmcache.controls import Controls, controls_of
from litellm_llmcache.convert import (
    PayloadError,
    RebuildCheck,
    finish_reasons_of,
    hit_marker,
    marked,
    to_payload,
    usage_of,
)
from litellm_llmcache.embeddings import (
    assemble,
    nested_call_kwargs,
    one_input,
    sync_embedding_inputs,
)
from litellm_llmcache.options import check_call_types, check_max_messages, check_mode
from litellm_llmcache.request import NAMESPACE, PROMPT_FIELDS, build_request
from litellm_llmcache.stream import replayed_stream
from llmcache._sentinel import UNSET, Unset
from llmcache.cache import Cache, CacheHit
from llmcache.errors import CodecError, ConfigError
from llmcache.fork_safety import renew_after_fork
from llmcache.keys import request_key
from llmcache.policy import check_ttl
from llmcache.pricing import cost_of
from llmcache.request import CacheRequest
from llmcache.singleflight import relay_package

logger = logging.getLogger("llmcache.litellm")

# LiteLLM's caching handler asks us and returns; its caller (``wrapper``) calls the model and
# stores: that is the call a thread leader's followers watch (llmcache.singleflight).
relay_package("litellm.caching")

#: LiteLLM's ``should_use_cache`` (``_should_use`` answers its default case without it).
_SHOULD_USE_CACHE = _LiteLLMCache.should_use_cache

_PROMPT_FIELDS = frozenset(PROMPT_FIELDS)

#: Keys handed to LiteLLM and not yet used again (LiteLLM looks embeddings up by key alone).
_REMEMBERED_KEYS = 4096
#: The ``cache_key`` of a call that cannot be keyed (never remembered, never looked up).
UNCACHEABLE_KEY = "llmcache:uncacheable"
#: How long a lookup waits for this loop's pending cache writes (seconds).
WRITE_WAIT = 5.0


#: LiteLLM's set of its pending async cache-write tasks (a private name; absent -> no wait).
_PENDING_WRITES: set[asyncio.Task[None]] | None = getattr(_handler, "_PENDING_CACHE_WRITES", None)


def _pending_litellm_writes() -> list[asyncio.Task[None]]:
    """LiteLLM's cache-write tasks still running on this loop.

    LiteLLM stores an async answer in a background task, so a second identical call awaited
    right after the first would look up before the first answer is stored; waiting for
    these tasks first makes it a hit.
    """
    if not _PENDING_WRITES:
        return []  # the common case: nothing to wait for, and no turn of the loop given away
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    return [t for t in list(_PENDING_WRITES) if t is not me and t.get_loop() is loop]


async def _await_litellm_writes(kwargs: Mapping[str, Any]) -> None:
    """Let LiteLLM's pending cache writes on this loop finish before a lookup.

    Only a stream needs a turn of the loop first: LiteLLM hands a finished async stream to
    its cache in a task of its own, which creates the write task on its first turn. Any
    other call does not yield when nothing is pending: yielding would run unrelated tasks
    (LiteLLM's success logging of earlier calls) inside this lookup.
    """
    if kwargs.get("stream") is True:
        await asyncio.sleep(0)
    pending = _pending_litellm_writes()
    if pending:
        await asyncio.wait(pending, timeout=WRITE_WAIT)


class _ModelCallError(Exception):
    """The nested call of a partial embedding hit failed: the user's call fails with it
    (not a cache fault to swallow, which would call the model a second time)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _LookedUp(NamedTuple):
    served: dict[str, Any] | None
    delete: bool  # the entry is unusable
    release: bool  # a miss whose answer will not be stored


# The outcomes that serve nothing (shared: a lookup builds a tuple only for a hit).
_UNUSABLE = _LookedUp(None, delete=True, release=False)
_MISS = _LookedUp(None, delete=False, release=False)
_MISS_RELEASED = _LookedUp(None, delete=False, release=True)


class LiteLLMCache(_LiteLLMCache):
    """LiteLLM's cache backed by llmcache's tiers. Assign it to ``litellm.cache``.

    Args:
        cache: the llmcache ``Cache``; ``None`` builds one with ``Cache.from_env()``
            (closed by ``disconnect()``/``close()``).
        namespace: keeps these entries apart from other apps sharing the same store;
            a call's ``cache={"namespace": ...}`` is added to it.
        ttl: seconds to keep each answer; not passed = the cache policy's default,
            ``None`` = each tier's default, ``0`` = do not store. A call's
            ``cache={"ttl": ...}`` overrides it.
        mode: LiteLLM's ``CacheMode``: ``"default_on"``, or ``"default_off"`` (only calls
            with ``cache={"use-cache": True}`` use the cache).
        supported_call_types: as LiteLLM's; ``None`` = LiteLLM's default list
            (completion, text completion, embedding, transcription and their async twins).
        max_messages: LiteLLM's own cache skips conversations longer than 4 messages;
            here the default is no limit.
    """

    def __init__(
        self,
        cache: Cache | None = None,
        *,
        namespace: str = NAMESPACE,
        ttl: float | Unset | None = UNSET,
        mode: CacheMode | str = CacheMode.default_on,
        supported_call_types: list[Any] | None = None,
        max_messages: int | None = None,
    ) -> None:
        if cache is not None and not isinstance(cache, Cache):
            raise ConfigError(
                f"LiteLLMCache takes an llmcache.Cache, got {type(cache).__name__}; "
                "build one with Cache.from_urls([...])"
            )
        if not isinstance(namespace, str) or not namespace:
            raise ConfigError(f"namespace must be a non-empty string, got {namespace!r}")
        extra: dict[str, Any] = {}
        if supported_call_types is not None:
            extra["supported_call_types"] = check_call_types(supported_call_types)
        super().__init__(
            type=LiteLLMCacheType.LOCAL,
            mode=check_mode(mode),
            **extra,
        )
        # LiteLLM's own default (4) would silently skip long conversations.
        self.max_messages = check_max_messages(max_messages)
        self.llmcache = cache if cache is not None else Cache.from_env()
        # Semantic fields are built only for a cache that can use them (decided once).
        self._semantic = getattr(self.llmcache, "semantic", None) is not None
        self._owns_cache = cache is None
        self.llmcache_namespace = namespace
        self.default_ttl = ttl if ttl is UNSET else check_ttl(ttl)
        #: Keys ``get_cache_key`` made, with the request and the controls of their call: an
        #: async embedding lookup passes only the key (``async_get_cache``).
        self._keys: OrderedDict[str, tuple[CacheRequest, Controls]] = OrderedDict()
        self._keys_lock = threading.Lock()
        renew_after_fork(self, "_keys_lock")
        self._rebuild_check = RebuildCheck()

    # ------------------------------------------------------------------ keys
    def get_cache_key(self, **kwargs: Any) -> str:
        """Our key for the call, as LiteLLM's ``cache_key`` (shown in ``_hidden_params``).

        A call whose llmcache fields do not read (an ACL that is one string, a bad
        ``llmcache_ttl``) or whose arguments cannot be keyed gets a key that is never looked
        up: its lookup and store refuse it too, and the call itself goes on (LiteLLM's async
        path asks for the key first).
        """
        if type(kwargs.get("input")) is int:
            # One token id of a text given as token ids: LiteLLM's async embedding cache
            # splits such a list per item, which would serve one vector per token.
            return UNCACHEABLE_KEY
        try:
            request = build_request(kwargs, self.llmcache_namespace)
            token = "llmcache:" + request_key(request).digest.hex()
            controls = controls_of(kwargs)
        except (ConfigError, CodecError) as exc:  # a key that cannot be built fails no call
            logger.warning("llmcache: not caching a LiteLLM call: %s", exc)
            return UNCACHEABLE_KEY
        with self._keys_lock:
            self._keys[token] = (request, controls)
            self._keys.move_to_end(token)
            while len(self._keys) > _REMEMBERED_KEYS:
                self._keys.popitem(last=False)
        return token

    def _request(
        self, kwargs: Mapping[str, Any], controls: Controls | None = None
    ) -> CacheRequest | None:
        """The call's request; LiteLLM's per-input embedding lookups pass only our key.

        A caller-given ``cache_key`` is never trusted: keys are shown in ``_hidden_params``,
        so one user could pass another's. The request (and its scope) is rebuilt from the
        call; a key alone is honoured only in LiteLLM's per-input lookup, which passes
        nothing else, with a key ``get_cache_key`` just built from the whole call.
        """
        if not _PROMPT_FIELDS.isdisjoint(kwargs):  # a C loop, not a generator per lookup
            if self.default_ttl == 0:
                # This adapter stores nothing (a call's own ttl wins): say so at lookup, so
                # that a hit is never recomputed early and nobody waits for this call.
                controls = controls if controls is not None else controls_of(kwargs)
                if controls.ttl is UNSET:
                    controls = controls._replace(ttl=0)
            return build_request(
                kwargs, self.llmcache_namespace, semantic=self._semantic, controls=controls
            )
        made = self._made_for_key(kwargs)
        return None if made is None else made[0]

    def _made_for_key(self, kwargs: Mapping[str, Any]) -> tuple[CacheRequest, Controls] | None:
        """The request and controls of the call ``get_cache_key`` made a key-only lookup's
        key for (None unless ``kwargs`` is just that key)."""
        token = kwargs.get("cache_key")
        if isinstance(token, str) and len(kwargs) == 1:
            with self._keys_lock:
                return self._keys.get(token)
        return None

    def _should_use(self, kwargs: Mapping[str, Any]) -> bool:
        """LiteLLM's own rule (mode, ``use-cache``, ``max_messages``)."""
        if (
            self.max_messages is None
            and self.mode == CacheMode.default_on
            and type(self).should_use_cache is _SHOULD_USE_CACHE
        ):
            return True  # what LiteLLM's rule answers then, without repacking the kwargs
        return bool(self.should_use_cache(**kwargs))  # type: ignore[no-untyped-call]

    # ------------------------------------------------------------------ lookup
    def _readable(self, kwargs: Mapping[str, Any], controls: Controls) -> bool:
        return not controls.disabled and not controls.no_cache and self._should_use(kwargs)

    def get_cache(self, dynamic_cache_object: Any = None, **kwargs: Any) -> Any:
        """The stored response for this call, or None (LiteLLM then calls the model)."""
        try:
            controls = controls_of(kwargs)
            if not self._readable(kwargs, controls):
                return None
            inputs = sync_embedding_inputs(kwargs)
            if inputs is not None:
                return self._sync_embeddings(kwargs, inputs, controls)
            request = self._request(kwargs, controls)
            served = None if request is None else self._lookup(request, controls)
            return None if served is None else replayed_stream(served, kwargs)
        except _ModelCallError as failed:
            raise failed.error from None
        except Exception as exc:  # a cache fault never fails the user's call
            logger.warning("llmcache: LiteLLM lookup failed: %s", exc)
            return None

    def _lookup(self, request: CacheRequest, controls: Controls) -> dict[str, Any] | None:
        looked_up = self._looked_up(self.llmcache.get(request), controls)
        if looked_up.delete:
            self.llmcache.delete(request)
        if looked_up.release:
            self.llmcache.set(request, None, ttl=0)  # see Controls.stores_nothing
        return looked_up.served

    def _sync_embeddings(
        self, kwargs: Mapping[str, Any], inputs: list[Any], controls: Controls
    ) -> dict[str, Any] | None:
        """A sync embedding call, input by input (see ``embeddings``)."""
        requests = [self._request(one_input(kwargs, item)) for item in inputs]
        cached = [None if r is None else self._lookup(r, controls) for r in requests]
        if all(c is None for c in cached):
            return None  # LiteLLM embeds them all; add_cache stores them one by one
        missing = [i for i, entry in enumerate(cached) if entry is None]
        fresh = None
        if missing:
            import litellm

            items = [inputs[i] for i in missing]
            try:
                fresh = litellm.embedding(**nested_call_kwargs(kwargs, items))
            except Exception as exc:
                for i in missing:  # release identical calls waiting for these inputs
                    if (request := requests[i]) is not None:
                        self.llmcache.set(request, None, ttl=0)
                raise _ModelCallError(exc) from exc
            self._store_embeddings(fresh, kwargs, items)
        return assemble(cached, fresh, str(kwargs.get("model") or ""))

    async def async_get_cache(self, dynamic_cache_object: Any = None, **kwargs: Any) -> Any:
        try:
            made = self._made_for_key(kwargs)
            # A key-only lookup (LiteLLM's async embeddings, input by input) reads the
            # controls of the call its key was made for: its ``s-maxage`` was ignored.
            controls = made[1] if made is not None else controls_of(kwargs)
            request = self._request(kwargs, controls) if self._readable(kwargs, controls) else None
            if request is None:
                return None
            await _await_litellm_writes(kwargs)
            looked_up = self._looked_up(await self.llmcache.aget(request), controls)
            if looked_up.delete:
                await self.llmcache.adelete(request)
            if looked_up.release:
                await self.llmcache.aset(request, None, ttl=0)
            served = looked_up.served
            return None if served is None else replayed_stream(served, kwargs)
        except Exception as exc:
            logger.warning("llmcache: LiteLLM lookup failed: %s", exc)
            return None

    def _looked_up(self, hit: CacheHit | None, controls: Controls) -> _LookedUp:
        """What a lookup serves and what is left to do (the I/O is the caller's)."""
        if hit is not None and not (
            isinstance(hit.entry.value, dict) and self._rebuild_check.rebuilds(hit.entry.value)
        ):
            logger.warning(
                "llmcache: a LiteLLM entry is not a response LiteLLM can rebuild; deleted it"
            )
            return _UNUSABLE
        if hit is None:
            # A miss made this call the single-flight leader; one that stores nothing
            # releases the identical calls waiting for it.
            # (A call's own ttl, e.g. from cache_control, wins over the adapter's ttl=0.)
            adapter_stores_nothing = controls.ttl is UNSET and self.default_ttl == 0
            release = controls.stores_nothing or adapter_stores_nothing
            return _MISS_RELEASED if release else _MISS
        return _LookedUp(self._serve(hit, controls), delete=False, release=False)

    def _serve(self, hit: CacheHit, controls: Controls) -> dict[str, Any] | None:
        entry = hit.entry
        if controls.max_age is not None and self.llmcache.clock() - entry.created_at > (
            controls.max_age
        ):
            # Older than the caller accepts: LiteLLM calls the model, and for the caller it
            # was a miss, so the stats must not count it as a hit.
            self.llmcache.record_refused(hit)
            return None
        payload: dict[str, Any] = entry.value
        if "choices" not in payload:
            return payload  # one embedding of a per-input lookup: LiteLLM assembles these
        # The usage stored with the entry (``usage_of(payload)`` when it was stored): what the
        # core counted for this hit, so the marker and stats() agree, without parsing again.
        usage = entry.usage
        return marked(payload, hit_marker(hit, usage, cost_of(entry.model, usage)))

    # ------------------------------------------------------------------ store
    def _store_target(
        self, kwargs: Mapping[str, Any]
    ) -> tuple[CacheRequest, float | Unset | None] | None:
        """The request an answer to this call is stored under, and its TTL; None when the
        call stores nothing."""
        controls = controls_of(kwargs)
        if controls.disabled or controls.no_store or not self._should_use(kwargs):
            return None
        request = self._request(kwargs, controls)
        if request is None:
            return None
        return request, self.default_ttl if controls.ttl is UNSET else controls.ttl

    def add_cache(self, result: Any, **kwargs: Any) -> None:
        """Store LiteLLM's answer in every tier (before the call returns)."""
        inputs = sync_embedding_inputs(kwargs)
        if inputs is not None:
            self._store_embeddings(result, kwargs, inputs)
        else:
            self._store(result, kwargs)

    def _store(self, result: Any, kwargs: Mapping[str, Any]) -> None:
        try:
            prepared = self._prepared(result, kwargs)
            if isinstance(prepared, CacheRequest):
                self.llmcache.forgo(prepared)
            elif prepared is not None:
                request, payload, options = prepared
                self.llmcache.set(request, payload, **options, wait=False)
        except ConfigError as exc:
            logger.warning("llmcache: not storing a LiteLLM answer: %s", exc)
        except Exception as exc:
            logger.warning("llmcache: storing a LiteLLM answer failed: %s", exc)

    async def async_add_cache(
        self, result: Any, dynamic_cache_object: Any = None, **kwargs: Any
    ) -> None:
        try:
            prepared = self._prepared(result, kwargs)
            if isinstance(prepared, CacheRequest):
                await self.llmcache.aforgo(prepared)
            elif prepared is not None:
                request, payload, options = prepared
                await self.llmcache.aset(request, payload, **options, wait=False)
        except ConfigError as exc:
            logger.warning("llmcache: not storing a LiteLLM answer: %s", exc)
        except Exception as exc:
            logger.warning("llmcache: storing a LiteLLM answer failed: %s", exc)

    def _prepared(
        self, result: Any, kwargs: Mapping[str, Any]
    ) -> tuple[CacheRequest, dict[str, Any], dict[str, Any]] | CacheRequest | None:
        """What ``set`` takes for this answer: (request, payload, options); None when the
        call stores nothing; only the request when the answer cannot be stored (not JSON),
        which the cache is then told to forgo, so that callers waiting for it stop waiting."""
        target = self._store_target(kwargs)
        if target is None:
            return None
        request, ttl = target
        try:
            payload = stored_payload(result)
        except PayloadError as exc:
            logger.warning("llmcache: not storing a LiteLLM answer: %s", exc)
            return request
        options = {
            "usage": usage_of(payload),
            "ttl": ttl,
            "finish_reasons": finish_reasons_of(payload),
        }
        return request, payload, options

    async def async_add_cache_pipeline(
        self, result: Any, dynamic_cache_object: Any = None, **kwargs: Any
    ) -> None:
        """Store an embedding response one input at a time (a later call with some of the
        same inputs embeds only the others)."""
        try:
            inputs = kwargs.get("input")
            items = inputs if isinstance(inputs, list) else [inputs]
            stores = [
                self.async_add_cache(entry, **one)
                for one, entry in self._per_input(result, kwargs, items)
            ]
            await asyncio.gather(*stores)
        except Exception as exc:
            logger.warning("llmcache: storing LiteLLM embeddings failed: %s", exc)

    def _store_embeddings(self, result: Any, kwargs: Mapping[str, Any], inputs: list[Any]) -> None:
        try:
            for one, entry in self._per_input(result, kwargs, inputs):
                self._store(entry, one)
        except Exception as exc:
            logger.warning("llmcache: storing LiteLLM embeddings failed: %s", exc)

    def _per_input(
        self, result: Any, kwargs: Mapping[str, Any], inputs: list[Any]
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(kwargs of one input, its entry) for each input of an embedding response."""
        data = getattr(result, "data", None) or []
        if len(data) != len(inputs):
            return []  # LiteLLM's rule: a response that does not match its inputs is not kept
        model = getattr(result, "model", None)
        return [
            (
                one_input(kwargs, item),
                dict(
                    self._convert_to_cached_embedding(
                        data[index],
                        model,
                        prompt_tokens=self._get_per_item_prompt_tokens(result, index),
                        prompt_tokens_details=self._get_per_item_prompt_tokens_details(
                            result, index
                        ),
                    )
                ),
            )
            for index, item in enumerate(inputs)
        ]

    async def batch_cache_write(self, result: Any, **kwargs: Any) -> None:
        await self.async_add_cache(result, **kwargs)

    # ------------------------------------------------------------------ lifecycle
    async def ping(self) -> object:
        return "PONG"

    async def delete_cache_keys(self, keys: object) -> object:
        return None  # llmcache entries are removed with Cache.clear/invalidate, by scope

    async def disconnect(self) -> None:
        if self._owns_cache:
            await self.llmcache.aclose()

    def close(self) -> None:
        """Close the llmcache ``Cache`` if this adapter built it."""
        if self._owns_cache:
            self.llmcache.close()

    def __repr__(self) -> str:
        return f"LiteLLMCache({self.llmcache!r}, namespace={self.llmcache_namespace!r})"


def stored_payload(result: Any) -> dict[str, Any]:
    """What is stored of a LiteLLM response (PayloadError if it is not JSON)."""
    payload = to_payload(result)
    payload.pop("_hidden_params", None)
    return payload
