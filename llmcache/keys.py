"""Canonical, versioned cache keys.

A key is a BLAKE2b digest of one canonical JSON array:
``[KEY_VERSION, scope_digest, namespace, model, prompt, params]``. JSON quotes and escapes
every string, so no field can run into the next (no delimiter collisions), and dicts are
serialized with sorted keys, so a key never depends on dict order. The scope is hashed on its
own first (user, tenant, sorted ACL set): its fixed-length digest is what tiers index and what
Redis key patterns contain, so no user id, tenant or ACL entry can widen a pattern.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from llmcache.errors import CodecError, ConfigError
from llmcache.request import CacheRequest, Scope, check_tags, is_cosine

#: Bump when the canonical form changes: old entries then simply stop matching.
KEY_VERSION = 1

_SORTED = orjson.OPT_SORT_KEYS


def _to_jsonable(obj: Any) -> Any:
    """orjson fallback: pydantic models by their dump, pydantic model classes (a
    ``response_format``) by their JSON schema; sets as sorted lists."""
    if isinstance(obj, type):  # before model_dump: a class's is the unbound method
        schema = getattr(obj, "model_json_schema", None)
        if callable(schema):
            return {"pydantic_schema": schema()}
        raise TypeError(f"class {obj.__name__} is not JSON serializable")
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=canonical_json)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no whitespace, one float form."""
    try:
        data = orjson.dumps(obj, default=_to_jsonable, option=_SORTED)
    except TypeError as exc:
        if "surrogates" in str(exc):
            return _escaped(obj)
        raise CodecError(f"cannot build a cache key: {exc}") from exc
    # orjson writes NaN and both infinities as null: four requests (temperature=inf, -inf,
    # nan, None) would be one key and be served one another's answer.
    if b"null" in data and _has_non_finite(obj):
        return _escaped(obj)
    return data


def _has_non_finite(obj: Any) -> bool:
    """Whether a float NaN or infinity is in ``obj`` (dict values, list and tuple items)."""
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, Mapping):
        return any(_has_non_finite(value) for value in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_has_non_finite(item) for item in obj)
    return False


def _escaped(obj: Any) -> bytes:
    """What orjson cannot write as itself, by the standard library: text holding a lone
    surrogate (bytes decoded with ``errors="surrogateescape"``, say), which orjson refuses and
    which is escaped here (``\\udc80``), and NaN and infinities (``NaN``, ``Infinity``), which
    orjson writes as null. Such a request is keyed like any other instead of failing the call
    or colliding. The leading NUL keeps these bytes apart from every orjson encoding, which
    starts with a JSON value."""
    try:
        text = json.dumps(
            obj, default=_to_jsonable, sort_keys=True, separators=(",", ":"), ensure_ascii=True
        )
    except (TypeError, ValueError) as exc:
        raise CodecError(f"cannot build a cache key: {exc}") from exc
    return b"\x00" + text.encode("ascii")


def _digest(data: bytes, size: int, person: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=size, person=person).digest()


#: Every entry key hashes through a copy of this (copying a keyed hasher is cheaper than
#: building one with ``person=``, and the digest is the same).
_KEY_HASHER = hashlib.blake2b(digest_size=32, person=b"llmcache-key")


@lru_cache(maxsize=4096)
def scope_digest(scope: Scope) -> bytes:
    """16-byte digest of a scope; equal scopes (any ACL order) give equal digests."""
    parts = [scope.user, scope.tenant, sorted(scope.acl)]
    return _digest(canonical_json(parts), 16, b"llmcache-scope")


@lru_cache(maxsize=1024)
def label_digest(kind: str, label: str) -> bytes:
    """16-byte digest of an index label (model name, namespace, tag)."""
    return _digest(canonical_json([kind, label]), 16, b"llmcache-label")


class CacheKey(NamedTuple):
    """Where an entry lives: its own digest plus the digests tiers index it by.

    A NamedTuple rather than a frozen dataclass: it is built on every lookup, and a frozen
    dataclass costs several times more to construct.
    """

    digest: bytes  # 32 bytes: the entry's identity
    scope: bytes  # 16 bytes: scope_digest(request.scope)
    model: bytes  # 16 bytes: label_digest("model", request.model_name)
    namespace: bytes  # 16 bytes: label_digest("namespace", request.namespace)

    @property
    def hex(self) -> str:
        return self.digest.hex()


@lru_cache(maxsize=4096)
def _scope_parts(scope: Scope) -> tuple[bytes, str]:
    digest = scope_digest(scope)
    return digest, digest.hex()


@lru_cache(maxsize=1024)
def _label_parts(model_name: str, namespace: str) -> tuple[bytes, bytes]:
    return label_digest("model", model_name), label_digest("namespace", namespace)


def not_a_request(found: object) -> ConfigError:
    """The error for a call given something else than a ``CacheRequest``."""
    return ConfigError(
        f"expected an llmcache.CacheRequest, got {type(found).__name__}; build one with "
        "CacheRequest(model=..., prompt=...)"
    )


def _check_request(request: CacheRequest) -> None:
    """Fields of the wrong type fail here, once per request object (its key is kept): a
    string scope used to be an AttributeError, and a string of tags was stored letter by
    letter, so invalidating the tag missed the entry."""
    params = request.params
    if (  # the usual request, checked in a few type tests (LiteLLM builds one per call)
        type(request.scope) is Scope
        and type(request.model) is str
        and type(request.namespace) is str
        and type(request.model_name) is str
        and (params is None or type(params) is dict)
        and type(request.tags) is tuple
        and not request.tags
        and request.semantic_threshold is None
        and (request.semantic_text is None or type(request.semantic_text) is str)
    ):
        return
    if not isinstance(request.scope, Scope):
        raise ConfigError(
            f"CacheRequest.scope must be an llmcache.Scope, got {type(request.scope).__name__}; "
            "build one with Scope.of(user=..., tenant=..., acl=[...])"
        )
    for name in ("model", "namespace", "model_name"):
        if not isinstance(getattr(request, name), str):
            found = type(getattr(request, name)).__name__
            raise ConfigError(f"CacheRequest.{name} must be a string, got {found}")
    if params is not None and not isinstance(params, Mapping):
        raise ConfigError(f"CacheRequest.params must be a mapping, got {type(params).__name__}")
    if isinstance(request.tags, str):
        raise ConfigError(
            f"CacheRequest.tags is a tuple of tags, e.g. ({request.tags!r},), not one string"
        )
    if not isinstance(request.tags, (tuple, list)):
        found = type(request.tags).__name__
        raise ConfigError(f"CacheRequest.tags must be a tuple of tags (or empty), got {found}")
    check_tags(request.tags)  # each a non-empty string: one that is not is never invalidated
    if request.semantic_text is not None and not isinstance(request.semantic_text, str):
        found = type(request.semantic_text).__name__
        raise ConfigError(f"CacheRequest.semantic_text must be a string or None, got {found}")
    threshold = request.semantic_threshold
    if threshold is not None and not is_cosine(threshold):
        raise ConfigError(
            f"CacheRequest.semantic_threshold must be a cosine in [-1, 1] or None, "
            f"got {threshold!r}"
        )


def request_key(request: CacheRequest) -> CacheKey:
    """The key of ``request``: equal requests, equal keys; anything else, different keys.

    Computed once per request object (kept in ``request.key_memo``): requests are treated
    as immutable."""
    try:
        known: CacheKey | None = request.key_memo
    except AttributeError:
        raise not_a_request(request) from None
    if known is not None:
        return known
    _check_request(request)
    scope, scope_hex = _scope_parts(request.scope)
    params: Mapping[str, Any] | None = request.params
    canonical = canonical_json(
        [
            KEY_VERSION,
            scope_hex,
            request.namespace,
            request.model,
            request.prompt,
            dict(params) if params else None,
        ]
    )
    model, namespace = _label_parts(request.model_name, request.namespace)
    hasher = _KEY_HASHER.copy()
    hasher.update(canonical)
    key = CacheKey(hasher.digest(), scope, model, namespace)
    request.key_memo = key
    return key


def with_model_name(request: CacheRequest, model_name: str) -> CacheRequest:
    """``request`` describing its entry as ``model_name`` (for pricing and invalidation by
    model). The model name is not hashed into the digest: a key already computed keeps its
    digest and only its model label changes."""
    if model_name == request.model_name:
        return request
    # The constructor, field by field: dataclasses.replace costs seven times as much (a test
    # checks that every other field is carried over).
    r = request
    renamed = CacheRequest(
        r.model,
        r.prompt,
        r.params,
        r.scope,
        r.namespace,
        model_name,
        r.tags,
        r.semantic_text,
        r.semantic_context,
        r.semantic_threshold,
        r.control,
    )
    known: CacheKey | None = request.key_memo
    if known is not None:
        model, _ = _label_parts(model_name, request.namespace)
        renamed.key_memo = known._replace(model=model)
    return renamed
