"""LangChain's own standard cache suites (langchain-tests), run against every tier."""

from __future__ import annotations

import pytest
from langchain_core.caches import BaseCache
from langchain_tests.integration_tests import AsyncCacheTestSuite, SyncCacheTestSuite

from langchain_llmcache import LangChainCache


class TestSyncStandardSuite(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, lc_tier_cache: LangChainCache) -> BaseCache:
        return lc_tier_cache


class TestAsyncStandardSuite(AsyncCacheTestSuite):
    @pytest.fixture
    def cache(self, lc_tier_cache: LangChainCache) -> BaseCache:
        return lc_tier_cache
