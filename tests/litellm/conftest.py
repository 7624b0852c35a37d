"""Fixtures of the LiteLLM adapter tests: ``litellm.cache`` set to a LiteLLMCache per test.

LITELLM_LOCAL_MODEL_COST_MAP must be set before litellm is imported: otherwise the import
tries to download LiteLLM's price map (seconds of retries without internet).
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from collections.abc import Callable, Iterator
from typing import Any

import litellm
import pytest

from litellm_llmcache import LiteLLMCache
from llmcache import Cache, FakeClock

MODEL = "gpt-4o-mini"


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(params=["memory", "sqlite"])
def llm_cache(
    request: pytest.FixtureRequest, tmp_path: Any, fake_clock: FakeClock
) -> Iterator[Cache]:
    """An llmcache Cache on memory only, or on SQLite only (so SQLite really serves)."""
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/llm.db"
    cache = Cache.from_urls([url], clock=fake_clock)
    yield cache
    cache.close()


@pytest.fixture
def install() -> Iterator[Callable[..., LiteLLMCache]]:
    """``install(cache, **opts)`` sets ``litellm.cache``; restored after the test."""
    before = litellm.cache

    def _install(cache: Cache, **opts: Any) -> LiteLLMCache:
        adapter = LiteLLMCache(cache, **opts)
        litellm.cache = adapter
        return adapter

    yield _install
    litellm.cache = before


@pytest.fixture
def adapter(llm_cache: Cache, install: Callable[..., LiteLLMCache]) -> LiteLLMCache:
    return install(llm_cache)
