"""Which entries an invalidation removes: a ``Selector``, built and validated once by the cache.

Every criterion given must match (AND); ``tags`` matches an entry carrying any of them (OR).
Criteria are digests, the same ones tiers already index entries by (``CacheKey.scope``,
``.model``, ``.namespace`` and ``label_digest("tag", t)``): the SQL tier's columns and tag rows
and the Redis tier's index keys hold digests, never the user's strings, so a tag or model name
can't contain a SQL wildcard or a Redis glob character, and every tier compares the same
fixed-size values. The memory tier, which keeps entries with their tag strings, digests them
(``label_digest`` is cached) to compare.

``older_than`` is an age in seconds: an entry matches when ``created_at <= now - older_than``
(it is at least that old), ``now`` being the cache's injected clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

from llmcache.entry import CacheEntry
from llmcache.errors import ConfigError
from llmcache.keys import CacheKey, label_digest, scope_digest
from llmcache.request import Scope, check_tags


class Selector(NamedTuple):
    scope: bytes | None = None
    model: bytes | None = None
    namespace: bytes | None = None
    tags: frozenset[bytes] | None = None
    older_than: float | None = None

    def cutoff(self, now: float) -> float | None:
        """Entries created at or before this wall time match ``older_than`` (None: any age)."""
        return None if self.older_than is None else now - self.older_than

    @property
    def scope_only(self) -> bool:
        """Only a scope: the same as ``clear(scope)``, which tiers do without any index."""
        return (
            self.scope is not None
            and self.model is None
            and self.namespace is None
            and self.tags is None
            and self.older_than is None
        )


def build_selector(
    *,
    tags: Iterable[str] | None = None,
    scope: Scope | None = None,
    model: str | None = None,
    namespace: str | None = None,
    older_than: float | None = None,
) -> Selector:
    """Validate ``Cache.invalidate``'s arguments into a Selector; ConfigError names the problem."""
    if (
        tags is None
        and scope is None
        and model is None
        and namespace is None
        and older_than is None
    ):
        raise ConfigError(
            "invalidate() needs at least one of tags, scope, model, namespace, older_than; "
            "to remove everything use clear()"
        )
    return _selector(tags, scope, model, namespace, older_than, "invalidate")


def build_list_selector(
    *,
    tags: Iterable[str] | None = None,
    scope: Scope | None = None,
    model: str | None = None,
    namespace: str | None = None,
) -> Selector:
    """Validate the criteria of a listing (``Cache.entries``, export, inspect): none is
    everything."""
    return _selector(tags, scope, model, namespace, None, "entries")


def _selector(
    tags: Iterable[str] | None,
    scope: Scope | None,
    model: str | None,
    namespace: str | None,
    older_than: float | None,
    action: str,
) -> Selector:
    tag_digests = (
        None if tags is None else frozenset(label_digest("tag", t) for t in check_tags(tags))
    )
    if tags is not None and not tag_digests:
        raise ConfigError(f"{action}(tags=[]) selects nothing; pass at least one tag, or None")
    check_scope(scope, action)
    for kind, label in (("model", model), ("namespace", namespace)):
        if label is not None and not isinstance(label, str):
            raise ConfigError(f"{action}({kind}=...) must be a string, got {type(label).__name__}")
    if older_than is not None:
        if isinstance(older_than, bool) or not isinstance(older_than, (int, float)):
            raise ConfigError(
                f"{action}(older_than=...) is seconds of age, got {type(older_than).__name__}"
            )
        if not math.isfinite(older_than) or older_than < 0:
            raise ConfigError(
                f"{action}(older_than=...) must be a finite number of seconds >= 0, "
                f"got {older_than}"
            )
    return Selector(
        scope=None if scope is None else scope_digest(scope),
        model=None if model is None else label_digest("model", model),
        namespace=None if namespace is None else label_digest("namespace", namespace),
        tags=tag_digests,
        older_than=None if older_than is None else float(older_than),
    )


def selects(selector: Selector, key: CacheKey, entry: CacheEntry, cutoff: float | None) -> bool:
    """Does ``selector`` match this entry? (For tiers that hold entries in memory.)"""
    if selector.scope is not None and key.scope != selector.scope:
        return False
    if selector.model is not None and key.model != selector.model:
        return False
    if selector.namespace is not None and key.namespace != selector.namespace:
        return False
    if cutoff is not None and entry.created_at > cutoff:
        return False
    if selector.tags is not None:
        return any(label_digest("tag", t) in selector.tags for t in entry.tags)
    return True


def check_scope(scope: object, action: str) -> None:
    """``scope=`` of ``action`` is None or a Scope (a user id string selects nothing)."""
    if scope is not None and not isinstance(scope, Scope):
        raise ConfigError(
            f"{action}(scope=...) takes an llmcache.Scope, got {type(scope).__name__}; "
            "build one with Scope.of(user=..., tenant=..., acl=[...])"
        )
