"""Property-based tests (hypothesis): keys are canonical and the codec round-trips.

- Equal requests always share a key, whatever the dict order or ACL order and duplicates.
- Requests that differ in any keyed field (scope part, ACL set, model, namespace, prompt, params)
  never share one.
- Any JSON-like value with any usage and tags survives encode/decode unchanged, and arbitrary
  bytes either decode to an entry or raise CodecError: never another exception.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmcache import CacheEntry, CacheRequest, Scope, Usage, request_key
from llmcache.entry import decode, encode
from llmcache.errors import CodecError

pytestmark = pytest.mark.figures("properties")  # inputs tried, in the reliability figures

# Text ids as users send them: any code point that UTF-8 can encode (no lone surrogates).
ids = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=20)
json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | ids | st.just("")
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ids, inner, max_size=4),
    max_leaves=12,
)
scopes = st.builds(
    Scope.of,
    user=st.none() | ids,
    tenant=st.none() | ids,
    acl=st.lists(ids, max_size=4),
)


def _shuffled(value: Any, rng: random.Random) -> Any:
    """The same JSON value with every dict's insertion order shuffled."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


@settings(max_examples=200, deadline=None)
@given(
    model=ids,
    prompt=json_values,
    params=st.dictionaries(ids, json_values, max_size=4),
    scope=scopes,
    seed=st.integers(0, 2**32),
)
def test_equal_requests_share_a_key_whatever_the_order(
    model: str, prompt: Any, params: dict[str, Any], scope: Scope, seed: int
) -> None:
    rng = random.Random(seed)
    acl = list(scope.acl) * 2  # duplicates, in another order
    rng.shuffle(acl)
    same_scope = Scope.of(user=scope.user, tenant=scope.tenant, acl=acl)
    a = CacheRequest(model=model, prompt=prompt, params=params, scope=scope)
    b = CacheRequest(
        model=model,
        prompt=_shuffled(prompt, rng),
        params=_shuffled(params, rng),
        scope=same_scope,
    )
    assert request_key(a) == request_key(b)


@settings(max_examples=150, deadline=None)
@given(a=scopes, b=scopes)
def test_distinct_scopes_never_share_a_key(a: Scope, b: Scope) -> None:
    ka = request_key(CacheRequest(model="m", prompt="p", scope=a))
    kb = request_key(CacheRequest(model="m", prompt="p", scope=b))
    assert (ka == kb) == (a == b)
    assert (ka.scope == kb.scope) == (a == b)


@settings(max_examples=150, deadline=None)
@given(
    a=st.tuples(ids, ids, json_values, st.dictionaries(ids, json_values, max_size=3)),
    b=st.tuples(ids, ids, json_values, st.dictionaries(ids, json_values, max_size=3)),
)
def test_requests_differing_in_any_keyed_field_never_share_a_key(
    a: tuple[str, str, Any, dict[str, Any]], b: tuple[str, str, Any, dict[str, Any]]
) -> None:
    ra = CacheRequest(model=a[0], namespace=a[1], prompt=a[2], params=a[3])
    rb = CacheRequest(model=b[0], namespace=b[1], prompt=b[2], params=b[3])
    # JSON equality is the identity the key promises (1 == 1.0 and True vs 1 aside: orjson
    # writes 1 and 1.0 differently, so they are different requests, as for the model API).
    same = [_typed(x) for x in a] == [_typed(x) for x in b]
    assert (request_key(ra).digest == request_key(rb).digest) == same


def _typed(value: Any) -> Any:
    """A form where values equal only if their JSON texts are equal (bool/int/float apart)."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return orjson.dumps(value)  # -0.0 and 0.0 are equal in Python, not in JSON


@settings(max_examples=150, deadline=None)
@given(
    value=json_values,
    created=st.floats(0, 4e9),
    expires=st.none() | st.floats(0, 4e9),
    usage=st.tuples(st.integers(0, 10**9), st.integers(0, 10**9)),
    tags=st.lists(ids, max_size=4),
    model=st.just("") | ids,
)
def test_codec_round_trips_any_json_value(
    value: Any,
    created: float,
    expires: float | None,
    usage: tuple[int, int],
    tags: list[str],
    model: str,
) -> None:
    entry = CacheEntry(
        value=value,
        created_at=created,
        expires_at=expires,
        model=model,
        usage=Usage(*usage),
        tags=tuple(tags),
    )
    assert decode(encode(entry)) == entry


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bytes_decode_or_raise_codec_error(data: bytes) -> None:
    try:
        entry = decode(data)
    except CodecError:
        return
    assert isinstance(entry, CacheEntry)


@settings(max_examples=150, deadline=None)
@given(value=json_values, cut=st.integers(0, 10_000))
def test_truncated_entries_are_codec_errors(value: Any, cut: int) -> None:
    payload = encode(CacheEntry(value=value, created_at=1.0))
    truncated = payload[: cut % len(payload)]
    try:
        decode(truncated)
    except CodecError:
        return
    raise AssertionError(f"a truncated entry decoded: {truncated!r}")


@settings(max_examples=150, deadline=None)
@given(
    ttl=st.floats(0.001, 1e6),
    jitter=st.floats(0.0, 0.99),
    age=st.floats(0.0, 2e6),
    draw=st.floats(0.0, 1.0, exclude_max=True),
)
def test_ttl_with_jitter_expires_within_its_spread(
    ttl: float, jitter: float, age: float, draw: float
) -> None:
    """An entry stored with a jittered TTL is served before ``ttl*(1-jitter)`` and gone after
    ``ttl*(1+jitter)``, on an injected clock (no sleeps)."""
    from llmcache import CachePolicy

    policy = CachePolicy(ttl_jitter=jitter)
    expires = policy.expires_at(ttl, 1_000.0, rand=lambda: draw)
    assert expires is not None
    entry = CacheEntry(value="x", created_at=1_000.0, expires_at=expires)
    now = 1_000.0 + age
    if age < ttl * (1 - jitter) * (1 - 1e-9):
        assert not entry.is_expired(now)
    if age >= ttl * (1 + jitter) * (1 + 1e-9):
        assert entry.is_expired(now)
