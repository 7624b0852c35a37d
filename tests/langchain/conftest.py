"""Fixtures of the LangChain adapter tests: caches over real tiers, and clean globals."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.globals import get_llm_cache, set_llm_cache

from langchain_llmcache import LangChainCache
from llmcache import Cache, FakeClock


@pytest.fixture(autouse=True)
def _no_global_llm_cache() -> Iterator[None]:
    """Tests pass their cache to the model; none may leak a global one into the next test."""
    before = get_llm_cache()
    yield
    set_llm_cache(before)


@pytest.fixture
def memory_cache(fake_clock: FakeClock) -> Iterator[Cache]:
    cache = Cache.from_urls(["memory://?maxsize=1000"], clock=fake_clock)
    yield cache
    cache.close()


@pytest.fixture
def lc_cache(memory_cache: Cache) -> LangChainCache:
    """The adapter over one memory tier."""
    return LangChainCache(memory_cache)


@pytest.fixture
def tier_lc_cache(tier_url: str, fake_clock: FakeClock) -> Iterator[LangChainCache]:
    """The adapter over one tier of each kind (memory, SQLite, MariaDB, PostgreSQL)."""
    cache = Cache.from_urls([tier_url], clock=fake_clock)
    yield LangChainCache(cache)
    cache.close()
