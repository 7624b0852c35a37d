"""Import hygiene of the adapter, and async methods that are native (no executor)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading

from langchain_core.outputs import Generation

from langchain_llmcache import LangChainCache
from llmcache import Cache
from llmcache.entry import CacheEntry
from llmcache.keys import CacheKey
from llmcache.tiers.base import Found
from llmcache.tiers.memory import MemoryTier


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_importing_the_adapter_does_not_import_litellm() -> None:
    result = run_python(
        """
        import sys
        import langchain_llmcache
        from langchain_llmcache import LangChainCache
        assert "litellm" not in sys.modules, "litellm was imported"
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_without_langchain_core_the_error_names_the_extra() -> None:
    result = run_python(
        """
        import importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "langchain_core":
                    raise ImportError(f"No module named {name!r}")
                return None

        sys.meta_path.insert(0, Block())
        from llmcache import MissingExtraError
        try:
            import langchain_llmcache
        except MissingExtraError as exc:
            assert exc.extra == "langchain", exc.extra
            print(exc)
        else:
            raise SystemExit("imported without langchain_core")
        """
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'llmcache[langchain]'" in result.stdout
    assert "langchain_core" in result.stdout


class RecordingTier(MemoryTier):
    """A real memory tier that records which primitives ran, and on which thread.

    Declared not in-process so the cache walks it through its async primitives, as it walks
    every I/O tier (memory tiers are otherwise probed directly, on the caller's thread).
    """

    in_process = False

    def __init__(self) -> None:
        super().__init__(name="memory")
        self.calls: list[tuple[str, int]] = []

    def _record(self, name: str) -> None:
        self.calls.append((name, threading.get_ident()))

    def get(self, key: CacheKey, now: float) -> Found:
        self._record("get")
        return super().get(key, now)

    def set(self, key: CacheKey, entry: CacheEntry, payload: bytes, now: float) -> None:
        self._record("set")
        super().set(key, entry, payload, now)

    def clear(self, scope: bytes | None) -> int:
        self._record("clear")
        return super().clear(scope)

    async def aget(self, key: CacheKey, now: float) -> Found:
        self._record("aget")
        return await super().aget(key, now)

    async def aset(self, key: CacheKey, entry: CacheEntry, payload: bytes, now: float) -> None:
        self._record("aset")
        await super().aset(key, entry, payload, now)

    async def aclear(self, scope: bytes | None) -> int:
        self._record("aclear")
        return await super().aclear(scope)


async def test_async_methods_call_the_async_core_on_the_event_loop_thread() -> None:
    tier = RecordingTier()
    lc = LangChainCache(Cache([tier]))
    loop_thread = threading.get_ident()
    await lc.aupdate("p", "llm", [Generation(text="x")])
    assert [g.text for g in await lc.alookup("p", "llm") or []] == ["x"]
    await lc.aclear()
    # BaseCache's defaults would run lookup/update/clear in an executor thread instead.
    # (The memory tier's async primitives run its sync ones inline, hence the pairs.)
    names = [name for name, _ in tier.calls]
    assert names == ["aset", "set", "aget", "get", "aclear", "clear"]
    assert {thread for _, thread in tier.calls} == {loop_thread}


def test_sync_methods_never_start_an_event_loop() -> None:
    """The sync path works inside a running loop (Jupyter): it must not call asyncio.run."""

    async def inside_a_running_loop() -> list[str]:
        lc = LangChainCache(Cache.from_urls(["memory://"]))
        lc.update("p", "llm", [Generation(text="sync")])
        return [g.text for g in lc.lookup("p", "llm") or []]

    assert asyncio.run(inside_a_running_loop()) == ["sync"]
