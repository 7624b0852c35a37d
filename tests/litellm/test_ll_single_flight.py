"""Single-flight through LiteLLM's sync path, where each call runs in a thread of its own.

LiteLLM's caching handler looks the key up and returns; its ``wrapper`` then calls the model
and stores. A leader thread's followers watch that call: a slow one is waited for, a failed
one releases them long before the bound (``llmcache.singleflight``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import litellm
import pytest
from ll_helpers import MODEL, ask

from litellm_llmcache import LiteLLMCache
from llmcache import Cache

FOLLOWERS = 4
BOUND = 20.0


@pytest.fixture
def cache(ll_install: Callable[..., LiteLLMCache]) -> Iterator[Cache]:
    cache = Cache.from_urls(["memory://"], single_flight_timeout=BOUND)
    ll_install(cache)
    yield cache
    cache.close()


def complete(reply: Any, delay: float) -> tuple[str, bool]:
    """The answer, and whether the cache served it."""
    try:
        response = litellm.completion(
            model=MODEL,
            messages=ask("What is the refund window?"),
            mock_response=reply,
            mock_delay=delay,
        )
    except litellm.RateLimitError:
        return "rate limited", False
    return str(response.choices[0].message.content), "llmcache" in response._hidden_params


def burst(
    cache: Cache, leader_reply: Any, delay: float
) -> tuple[tuple[str, bool], list[tuple[str, bool]], float]:
    """One leader thread asks first; once it has missed (it is calling the model), followers
    ask the same. Returns the leader's (answer, served), the followers', and how long the
    followers took."""
    with ThreadPoolExecutor(FOLLOWERS + 1) as pool:
        leader = pool.submit(complete, leader_reply, delay)
        deadline = time.monotonic() + 5
        while cache.stats()["misses"] < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        started = time.monotonic()
        followers = [pool.submit(complete, "30 days", delay) for _ in range(FOLLOWERS)]
        answers = [f.result() for f in followers]
        return leader.result(), answers, time.monotonic() - started


@pytest.mark.timeout(60)
def test_followers_wait_for_a_slow_leader_and_are_served_its_answer(cache: Cache) -> None:
    leader, followers, _ = burst(cache, "30 days (the leader's)", delay=1.5)  # 3x the grace
    assert leader == ("30 days (the leader's)", False)
    assert followers == [("30 days (the leader's)", True)] * FOLLOWERS
    assert (cache.stats()["misses"], cache.stats()["hits"]) == (1, FOLLOWERS)


@pytest.mark.timeout(60)
def test_a_failed_leader_releases_its_followers_long_before_the_bound(cache: Cache) -> None:
    limited = litellm.RateLimitError("429: slow down", "openai", MODEL)
    leader, followers, took = burst(cache, limited, delay=0.3)
    assert leader == ("rate limited", False)
    assert [answer for answer, _ in followers] == ["30 days"] * FOLLOWERS
    # One follower led the next try, the others were served its answer: not one call each.
    # (LiteLLM may retry the leader's failed call in its thread: its followers wait for that.)
    assert sorted(served for _, served in followers) == [False] + [True] * (FOLLOWERS - 1)
    assert took < BOUND / 2


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", ["sync", "async"])
def test_followers_of_an_answer_that_cannot_be_stored_go_on_at_once(
    cache: Cache, ll_install: Callable[..., LiteLLMCache], path: str
) -> None:
    """The leader's result is not JSON, so it is not stored: its follower stops waiting
    then, not at the bound, although the leader's thread is still in its call."""
    adapter = ll_install(cache)
    call = {"model": MODEL, "messages": ask("What is the refund window?")}
    assert adapter.get_cache(**call) is None  # this thread leads
    with ThreadPoolExecutor(1) as pool:
        follower = pool.submit(adapter.get_cache, **call)
        deadline = time.monotonic() + 5
        while cache.stats()["misses"] < 1 and time.monotonic() < deadline:  # it waits
            time.sleep(0.005)
        time.sleep(0.2)
        started = time.monotonic()
        if path == "sync":
            adapter.add_cache(object(), **call)  # not JSON: not stored
        else:
            asyncio.run(adapter.async_add_cache(object(), **call))
        assert follower.result(timeout=BOUND + 5) is None  # a miss: it calls the model
        assert time.monotonic() - started < BOUND / 4
