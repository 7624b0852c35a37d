"""Scope from ``user=``, ``metadata`` and ``llmcache.scope``: nobody is served another's entry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import litellm
import pytest
from ll_helpers import MODEL, ask

from litellm_llmcache import LiteLLMCache
from llmcache import Cache, scope


def _answer(**kwargs: object) -> str:
    response = litellm.completion(model=MODEL, messages=ask("secret?"), **kwargs)
    return str(response.choices[0].message.content)


def test_user_argument_isolates(ll_adapter: LiteLLMCache) -> None:
    assert _answer(user="alice", mock_response="alice's") == "alice's"
    assert _answer(user="bob", mock_response="bob's") == "bob's"
    assert _answer(user="alice", mock_response="x") == "alice's"
    assert _answer(mock_response="anonymous") == "anonymous"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"llmcache_tenant": "acme"}, {"llmcache_tenant": "globex"}),
        ({"llmcache_user": "alice"}, {"llmcache_user": "bob"}),
        ({"llmcache_acl": ["kb-1"]}, {"llmcache_acl": ["kb-2"]}),
        ({"llmcache_acl": ["kb-1"]}, {"llmcache_acl": ["kb-1", "kb-2"]}),
        ({"llmcache_tenant": "acme"}, {}),
    ],
)
def test_metadata_fields_isolate(
    ll_adapter: LiteLLMCache, first: dict[str, object], second: dict[str, object]
) -> None:
    assert _answer(metadata=first, mock_response="first") == "first"
    assert _answer(metadata=second, mock_response="second") == "second"
    assert _answer(metadata=first, mock_response="x") == "first"


def test_acl_order_does_not_matter(ll_adapter: LiteLLMCache) -> None:
    assert _answer(metadata={"llmcache_acl": ["a", "b"]}, mock_response="ab") == "ab"
    assert _answer(metadata={"llmcache_acl": ["b", "a", "a"]}, mock_response="x") == "ab"


def test_ambient_scope_isolates_and_matches_metadata(ll_adapter: LiteLLMCache) -> None:
    with scope(user="alice", tenant="acme"):
        assert _answer(mock_response="ambient") == "ambient"
    assert _answer(mock_response="anonymous") == "anonymous"
    same = {"llmcache_user": "alice", "llmcache_tenant": "acme"}
    assert _answer(metadata=same, mock_response="x") == "ambient"


def test_a_call_cannot_replace_the_ambient_user(ll_adapter: LiteLLMCache) -> None:
    """Inside scope(user="alice"), user="bob" is neither alice nor bob: combined, narrower."""
    assert _answer(user="bob", mock_response="bob's") == "bob's"
    with scope(user="alice"):
        assert _answer(mock_response="alice's") == "alice's"
        assert _answer(user="bob", mock_response="both") == "both"
        assert _answer(user="alice", mock_response="x") == "alice's"


def test_an_unreadable_acl_is_not_cached(ll_adapter: LiteLLMCache, ll_cache: Cache) -> None:
    """A scope that cannot be read is never guessed: no lookup, no store (the call works)."""
    bad = {"llmcache_acl": "kb-1"}  # one string, not a list
    assert _answer(metadata=bad, mock_response="one") == "one"
    assert _answer(metadata=bad, mock_response="two") == "two"
    assert ll_cache.stats()["stores"] == 0


def test_caching_disabled_in_metadata_neither_reads_nor_writes(
    ll_adapter: LiteLLMCache, ll_cache: Cache
) -> None:
    off = {"caching_disabled": True}
    assert _answer(mock_response="stored") == "stored"
    assert _answer(metadata=off, mock_response="fresh") == "fresh"
    assert _answer(metadata={"caching_disabled": True}, user="u", mock_response="u1") == "u1"
    assert _answer(user="u", mock_response="u2") == "u2"
    assert ll_cache.stats()["stores"] == 2


async def test_64_concurrent_users_only_see_their_own(
    ll_adapter: LiteLLMCache, ll_cache: Cache
) -> None:
    users = [f"user-{i}" for i in range(64)]

    async def ask_as(user: str, text: str) -> str:
        response = await litellm.acompletion(
            model=MODEL,
            messages=ask("what is mine?"),
            mock_response=text,
            metadata={"llmcache_user": user, "llmcache_tenant": "t"},
        )
        return str(response.choices[0].message.content)

    first = await asyncio.gather(*(ask_as(u, f"for {u}") for u in users))
    assert first == [f"for {u}" for u in users]
    again = await asyncio.gather(*(ask_as(u, "leaked?") for u in users))
    assert again == [f"for {u}" for u in users]
    assert ll_cache.stats()["hits"] == 64


async def test_64_concurrent_scoped_tasks(ll_adapter: LiteLLMCache) -> None:
    async def ask_in_scope(user: str, text: str) -> str:
        with scope(user=user, acl=["kb"]):
            response = await litellm.acompletion(
                model=MODEL, messages=ask("mine?"), mock_response=text
            )
        return str(response.choices[0].message.content)

    users = [f"u{i}" for i in range(64)]
    await asyncio.gather(*(ask_in_scope(u, u) for u in users))
    again = await asyncio.gather(*(ask_in_scope(u, "leak") for u in users))
    assert again == users


async def test_64_concurrent_users_on_redis_alone(
    redis_prefix_url: str, ll_install: Callable[..., LiteLLMCache]
) -> None:
    """The same isolation when every hit comes from Redis (no memory tier in front)."""
    cache = Cache.from_urls([redis_prefix_url])
    try:
        ll_install(cache)
        users = [f"user-{i}" for i in range(64)]

        async def ask_as(user: str, text: str) -> tuple[str, Any]:
            response = await litellm.acompletion(
                model=MODEL, messages=ask("what is mine?"), mock_response=text, user=user
            )
            return str(response.choices[0].message.content), response._hidden_params

        first = await asyncio.gather(*(ask_as(u, f"for {u}") for u in users))
        assert [text for text, _ in first] == [f"for {u}" for u in users]
        again = await asyncio.gather(*(ask_as(u, "leaked?") for u in users))
        # A fault first (a store lost to a timeout reads as a miss below, not as a leak).
        assert cache.stats()["errors_by_tier"].get(cache.tiers[0].name, 0) == 0
        assert [text for text, _ in again] == [f"for {u}" for u in users]
        assert all(hidden["llmcache"]["tier"] == cache.tiers[0].name for _, hidden in again)
        assert cache.stats()["hits"] == 64
    finally:
        await cache.aclose()
