"""A LiteLLM call's per-call cache controls, read as LiteLLM's own cache reads them.

``cache={"no-cache": True}`` skips the lookup (the answer is still stored),
``{"no-store": True}`` skips the store, ``{"ttl": seconds}`` sets this entry's lifetime
(0 = do not store), ``{"s-maxage": seconds}`` (or ``"s-max-age"``) serves only entries
younger than that, ``{"namespace": ...}`` keys the call into its own namespace.
``metadata={"caching_disabled": True}`` neither reads nor writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from llmcache._sentinel import UNSET, Unset
from llmcache.errors import ConfigError
from llmcache.policy import check_ttl


class Controls(NamedTuple):
    disabled: bool = False
    no_cache: bool = False
    no_store: bool = False
    ttl: float | Unset | None = UNSET
    max_age: float | None = None

    @property
    def stores_nothing(self) -> bool:
        """This call's answer will not be stored (``no-store``, ``ttl`` 0).

        A miss makes the caller the single-flight leader of its key, and identical calls
        wait for the leader's store; a call that will not store releases them at once
        (``Cache.set(..., ttl=0)`` stores nothing and ends the flight).
        """
        return self.no_store or self.ttl == 0


NO_CONTROLS = Controls()


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(
            f"LiteLLM call: cache={{'{name}': ...}} must be seconds >= 0, got {value!r}"
        )
    return float(value)


def controls_of(kwargs: Mapping[str, Any]) -> Controls:
    """The controls of one call (defaults when it passes none)."""
    metadata = kwargs.get("metadata")
    # type(...) is dict first: an ABC isinstance check costs about 1 µs, on every call.
    disabled = (
        metadata is not None
        and (type(metadata) is dict or isinstance(metadata, Mapping))
        and metadata.get("caching_disabled") is True
    )
    cache = kwargs.get("cache")
    if not cache or not (type(cache) is dict or isinstance(cache, Mapping)):
        return Controls(disabled=True) if disabled else NO_CONTROLS
    ttl: float | Unset | None = UNSET
    if "ttl" in cache:
        ttl = check_ttl(cache["ttl"])
    max_age = cache.get("s-maxage", cache.get("s-max-age"))
    return Controls(
        disabled=disabled,
        no_cache=cache.get("no-cache") is True,
        no_store=cache.get("no-store") is True,
        ttl=ttl,
        max_age=None if max_age is None else _seconds("s-maxage", max_age),
    )
