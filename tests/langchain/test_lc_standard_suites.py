"""LangChain's own standard cache suites (langchain-tests), run against every tier, and the
server SQL tiers with synchronous stores (``?write_behind=off``) too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import SYNC_STORE_KINDS, TIER_KINDS, tier_url_of
from langchain_core.caches import BaseCache
from langchain_tests.integration_tests import AsyncCacheTestSuite, SyncCacheTestSuite

from langchain_llmcache import LangChainCache


@pytest.fixture(params=TIER_KINDS + SYNC_STORE_KINDS)
def tier_url(request: pytest.FixtureRequest, tmp_path: object, table_prefix: str) -> Iterator[str]:
    yield from tier_url_of(request.param, request, tmp_path, table_prefix)


class TestSyncStandardSuite(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, lc_tier_cache: LangChainCache) -> BaseCache:
        return lc_tier_cache


class TestAsyncStandardSuite(AsyncCacheTestSuite):
    @pytest.fixture
    def cache(self, lc_tier_cache: LangChainCache) -> BaseCache:
        return lc_tier_cache
