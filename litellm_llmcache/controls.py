"""A LiteLLM call's per-call cache controls, read as LiteLLM's own cache reads them.

``cache={"no-cache": True}`` skips the lookup (the answer is still stored),
``{"no-store": True}`` skips the store, ``{"ttl": seconds}`` sets this entry's lifetime
(0 = do not store), ``{"s-maxage": seconds}`` (or ``"s-max-age"``) serves only entries
younger than that, ``{"namespace": ...}`` keys the call into its own namespace.
``metadata={"caching_disabled": True}`` neither reads nor writes. A flag that is not a bool
(``{"no-cache": "true"}``), an age that is not seconds >= 0 and a misspelt key
(``{"no_cache": True}``), which LiteLLM would ignore, are refused: the call is not cached.

llmcache's own ``metadata`` fields do the same for callers that cannot pass ``cache=``
(a proxy, a Router's defaults): ``llmcache_ttl``, ``llmcache_no_cache``,
``llmcache_no_store``, ``llmcache_strict`` (True/False: strict mode on/off for the call) and
``llmcache_tags`` (a list: tags for ``Cache.invalidate(tags=...)``). Sources, most specific
first: ``cache={...}``, then ``metadata``, then an enclosing ``llmcache.cache_control(...)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, TypeGuard

from llmcache._sentinel import UNSET, Unset
from llmcache.context import current_control
from llmcache.errors import ConfigError
from llmcache.policy import check_ttl
from llmcache.request import NO_CONTROL, CacheControl

TTL_FIELD = "llmcache_ttl"
NO_CACHE_FIELD = "llmcache_no_cache"
NO_STORE_FIELD = "llmcache_no_store"
STRICT_FIELD = "llmcache_strict"
TAGS_FIELD = "llmcache_tags"
_FLAG_FIELDS = (NO_CACHE_FIELD, NO_STORE_FIELD, STRICT_FIELD)


class Controls(NamedTuple):
    disabled: bool = False
    no_cache: bool = False
    no_store: bool = False
    ttl: float | Unset | None = UNSET
    max_age: float | None = None
    strict: bool | None = None

    @property
    def stores_nothing(self) -> bool:
        """This call's answer will not be stored (``no-store``, ``ttl`` 0).

        A miss makes the caller the single-flight leader of its key, and identical calls
        wait for the leader's store; a call that will not store releases them at once
        (``Cache.set(..., ttl=0)`` stores nothing and ends the flight).
        """
        return self.no_store or self.ttl == 0

    def cache_control(self) -> CacheControl:
        """The core's view of these controls (``CacheRequest.control``)."""
        if not (self.no_cache or self.no_store) and self.ttl is UNSET and self.strict is None:
            return NO_CONTROL
        return CacheControl(self.ttl, self.no_cache, self.no_store, self.strict)


NO_CONTROLS = Controls()


def _is_mapping(value: object) -> TypeGuard[Mapping[str, Any]]:
    # type(...) is dict first: an ABC isinstance check costs about 1 µs, on every call.
    return value is not None and (type(value) is dict or isinstance(value, Mapping))


def _seconds(name: str, value: object) -> float:
    # ``not value >= 0`` also refuses NaN, which every age comparison passes (served at any age).
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigError(
            f"LiteLLM call: cache={{'{name}': ...}} must be seconds >= 0, got {value!r}"
        )
    return float(value)


#: The keys of LiteLLM's ``cache={...}`` (``DynamicCacheControl``), by their loose spelling.
_CACHE_KEYS = ("ttl", "namespace", "s-maxage", "s-max-age", "no-cache", "no-store", "use-cache")
_LOOSE_KEYS = {key.replace("-", "_"): key for key in _CACHE_KEYS}


def _check_cache_arg(cache: Mapping[str, Any]) -> None:
    """Refuse a misspelt control (``"no_cache"``, ``"No-Cache"``) and a flag that is not a
    bool: LiteLLM ignores both, so the call would read (or store) what it asked not to."""
    for key in cache:
        if isinstance(key, str) and key not in _CACHE_KEYS:
            meant = _LOOSE_KEYS.get(key.strip().lower().replace("-", "_"))
            if meant is not None:
                raise ConfigError(f"LiteLLM call: cache={{{key!r}: ...}}: did you mean {meant!r}?")
    for name in ("no-cache", "no-store"):
        value = cache.get(name)
        if value is not None and not isinstance(value, bool):
            raise ConfigError(
                f"LiteLLM call: cache={{'{name}': ...}} must be True or False, got {value!r}"
            )


def _flag(metadata: Mapping[str, Any], name: str) -> bool | None:
    value = metadata.get(name)
    if value is not None and not isinstance(value, bool):
        raise ConfigError(f"LiteLLM call: metadata['{name}'] must be True or False, got {value!r}")
    return value


def _with_metadata(base: Controls, metadata: Mapping[str, Any]) -> Controls:
    """``base`` (the ambient controls) overridden by llmcache's metadata fields."""
    if TTL_FIELD not in metadata and all(metadata.get(f) is None for f in _FLAG_FIELDS):
        return base
    no_cache, no_store, strict = (_flag(metadata, f) for f in _FLAG_FIELDS)
    return base._replace(
        ttl=check_ttl(metadata[TTL_FIELD]) if TTL_FIELD in metadata else base.ttl,
        no_cache=base.no_cache if no_cache is None else no_cache,
        no_store=base.no_store if no_store is None else no_store,
        strict=base.strict if strict is None else strict,
    )


def controls_of(kwargs: Mapping[str, Any]) -> Controls:
    """The controls of one call (defaults when it passes none and no block sets any)."""
    ambient = current_control()
    controls = (
        NO_CONTROLS
        if ambient is NO_CONTROL
        else Controls(
            no_cache=ambient.no_cache,
            no_store=ambient.no_store,
            ttl=ambient.ttl,
            strict=ambient.strict,
        )
    )
    metadata = kwargs.get("metadata")
    if _is_mapping(metadata):
        if metadata.get("caching_disabled") is True:
            controls = controls._replace(disabled=True)
        controls = _with_metadata(controls, metadata)
    cache = kwargs.get("cache")
    if not cache or not _is_mapping(cache):
        return controls
    _check_cache_arg(cache)
    no_cache, no_store = cache.get("no-cache"), cache.get("no-store")
    return controls._replace(
        no_cache=controls.no_cache if no_cache is None else no_cache,
        no_store=controls.no_store if no_store is None else no_store,
        ttl=check_ttl(cache["ttl"]) if "ttl" in cache else controls.ttl,
        max_age=_max_age(cache),
    )


def _max_age(cache: Mapping[str, Any]) -> float | None:
    """The youngest age the call accepts: LiteLLM reads either spelling (``None`` is not
    given), so when both are given the stricter one holds."""
    ages = [
        _seconds(name, cache[name])
        for name in ("s-maxage", "s-max-age")
        if cache.get(name) is not None
    ]
    return min(ages) if ages else None


def tags_of(metadata: Mapping[str, Any]) -> tuple[str, ...]:
    """The call's ``metadata['llmcache_tags']`` (checked like ``llmcache.tags``)."""
    tags = metadata.get(TAGS_FIELD)
    if tags is None:
        return ()
    if isinstance(tags, (str, bytes)) or not isinstance(tags, Iterable):
        raise ConfigError(f"LiteLLM call: metadata['{TAGS_FIELD}'] must be a list, got {tags!r}")
    return tuple(tags)
