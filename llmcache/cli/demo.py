"""``llmcache demo``: the same LangChain workload run without, then with, the cache.

Both runs go through ``llm.invoke`` with LangChain's global cache (``set_llm_cache``), so the
numbers are what an app would see. This module does the work and returns plain numbers;
``render.py`` shows them and ``app.py`` owns the command line.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from llmcache._optional import require
from llmcache.cache import Cache
from llmcache.cli.workload import SYSTEM_PROMPT, TENANT, USERS, Call, build_workload
from llmcache.context import scope
from llmcache.errors import ConfigError, LLMCacheError, TierError
from llmcache.keys import request_key
from llmcache.redact import describe_error, redact_url
from llmcache.request import CacheRequest, Scope

#: Wraps the workload to show progress: ``track(calls, label)`` yields the same calls.
Track = Callable[[Sequence[Call], str], Iterable[Call]]
PROVIDERS = ("fake", "openai", "auto")


def no_progress(calls: Sequence[Call], label: str) -> Iterable[Call]:
    return calls


@dataclass(frozen=True, slots=True)
class DemoConfig:
    calls: int = 200
    users: int = 4
    latency: float = 0.05  # seconds, mean of the fake model's simulated latency
    seed: int = 7
    urls: tuple[str, ...] = ()  # tier URLs, top first; () = memory + an SQLite file
    db: str | None = None  # the SQLite file of the default tiers; None = a temporary one
    memory_size: int = 50
    provider: str = "fake"
    model: str = "gpt-4o-mini"  # for a real provider
    warm: bool = False  # keep the demo's entries from earlier runs
    semantic: str | None = None  # a semantic tier URL (faiss://..., redisvl://...), or none


@dataclass(frozen=True, slots=True)
class RunResult:
    """One pass over the workload."""

    latencies: tuple[float, ...]  # seconds per llm.invoke, in call order
    hits: int  # answers marked as served by llmcache
    tokens_spent: int  # tokens of the answers the model really produced

    @property
    def calls(self) -> int:
        return len(self.latencies)

    @property
    def llm_calls(self) -> int:
        return self.calls - self.hits

    @property
    def total_seconds(self) -> float:
        return sum(self.latencies)

    def percentile(self, fraction: float) -> float:
        return percentile(self.latencies, fraction)


@dataclass(frozen=True, slots=True)
class DemoResult:
    config: DemoConfig
    provider: str  # the provider actually used ("fake" or "openai")
    model: str
    tiers: tuple[str, ...]  # the tier URLs, passwords redacted
    tier_names: tuple[str, ...]  # as in stats()["hits_by_tier"]
    without_cache: RunResult
    with_cache: RunResult
    stats: dict[str, Any]  # cache.stats() after the cached run


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p50 of 1..4 is 2): always a value that was measured."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def default_urls(db: str, memory_size: int) -> tuple[str, ...]:
    # A small memory tier on purpose: rarer questions fall out of the LRU, so the demo also
    # shows SQLite hits and their backfill into memory, as a long-running app would see.
    return (f"memory://?maxsize={memory_size}", f"sqlite:///{db}")


def run_demo(config: DemoConfig, track: Track = no_progress) -> DemoResult:
    """Run the workload without and with the cache; raises LLMCacheError on bad setup."""
    require("langchain_core", extra="langchain", feature="llmcache demo")
    model, provider, model_name = make_model(config)
    workload = build_workload(config.calls, config.users, config.seed)
    with _tier_urls(config) as urls:
        cache = Cache.from_urls(urls, semantic=config.semantic)
        try:
            check_tiers(cache, urls)
            if not config.warm:  # only the demo's own tenant: never another app's entries
                for user in USERS[: config.users]:
                    cache.clear(scope=Scope.of(user=user, tenant=TENANT))
            cache.reset_stats()
            without = _with_global_cache(None, lambda: _run(model(), workload, track, "without"))
            with_ = _with_global_cache(cache, lambda: _run(model(), workload, track, "with"))
            stats = cache.stats()
            names = tuple(tier.name for tier in cache.tiers)
        finally:
            cache.close()
    shown = tuple(redact_url(u) for u in urls)
    return DemoResult(config, provider, model_name, shown, names, without, with_, stats)


@contextmanager
def _tier_urls(config: DemoConfig) -> Iterator[tuple[str, ...]]:
    if config.urls:
        yield config.urls
        return
    if config.db is not None:
        yield default_urls(config.db, config.memory_size)
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="llmcache-demo-") as tmp:
        yield default_urls(os.path.join(tmp, "llmcache-demo.db"), config.memory_size)


def check_tiers(cache: Cache, urls: Sequence[str]) -> None:
    """Read once from every tier, so an unreachable server stops the demo with its reason.

    (An app's cache fails open instead: its LLM calls go on without the broken tier.)
    """
    probe = request_key(CacheRequest(model="llmcache-demo", prompt="probe", namespace="probe"))
    now = cache.clock()
    for tier, url in zip(cache.tiers, urls, strict=True):
        try:
            tier.get(probe, now)
        except LLMCacheError:
            raise  # already names the tier, the server and the likely fix
        except Exception as exc:
            raise TierError(
                f"{tier.name} tier {redact_url(url)}: {describe_error(exc)}; "
                "is the server running and reachable?"
            ) from exc
    semantic = cache.semantic
    if semantic is not None:
        # Loads the embedder now (MiniLM: seconds), not inside the timed run, whose first
        # lookup paid for it: the cached run read as many times slower than the model.
        try:
            semantic.embed("How do I reset my password?")
        except LLMCacheError:
            raise
        except Exception as exc:
            raise TierError(f"semantic tier: {describe_error(exc)}") from exc


def make_model(config: DemoConfig) -> tuple[Callable[[], Any], str, str]:
    """A factory of fresh chat models, the provider's name and the model's name."""
    provider = config.provider
    if provider not in PROVIDERS:
        raise ConfigError(f"unknown provider {provider!r}; use one of {', '.join(PROVIDERS)}")
    has_key = bool(os.environ.get("OPENAI_API_KEY"))
    if provider == "auto":
        provider = "openai" if has_key and _installed("langchain_openai") else "fake"
    if provider == "fake":
        from llmcache.cli.fake_model import DemoChatModel

        def fake() -> Any:
            return DemoChatModel(latency=config.latency, seed=config.seed)

        return fake, "fake", DemoChatModel.model_fields["model_name"].default
    if not has_key:
        raise ConfigError("--provider openai needs OPENAI_API_KEY in the environment")
    if not _installed("langchain_openai"):
        raise ConfigError("--provider openai needs langchain-openai: pip install langchain-openai")
    from langchain_openai import ChatOpenAI  # type: ignore[import-not-found,unused-ignore]

    def openai() -> Any:
        return ChatOpenAI(model=config.model, temperature=0)

    return openai, "openai", config.model


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _with_global_cache(cache: Cache | None, body: Callable[[], RunResult]) -> RunResult:
    """Run ``body`` with LangChain's global LLM cache set, restoring the caller's after."""
    from langchain_core.globals import get_llm_cache, set_llm_cache

    from langchain_llmcache import LangChainCache

    previous = get_llm_cache()
    set_llm_cache(None if cache is None else LangChainCache(cache))
    try:
        return body()
    finally:
        set_llm_cache(previous)


def _run(llm: Any, workload: Sequence[Call], track: Track, label: str) -> RunResult:
    from langchain_core.messages import HumanMessage, SystemMessage

    latencies: list[float] = []
    hits = tokens = 0
    for call in track(workload, label):
        messages = [SystemMessage(SYSTEM_PROMPT), HumanMessage(call.question)]
        with scope(user=call.user, tenant=TENANT):
            started = time.perf_counter()
            answer = llm.invoke(messages)
            latencies.append(time.perf_counter() - started)
        if "llmcache" in answer.response_metadata:
            hits += 1
        else:
            usage = answer.usage_metadata or {}
            tokens += int(usage.get("total_tokens", 0))
    return RunResult(tuple(latencies), hits, tokens)
