"""Reads and writes fail apart: a tier that refuses writes (full disk, read-only replica,
out of memory) keeps serving reads; a tier that cannot read is down and is skipped whole."""

from __future__ import annotations

import asyncio
import logging

import pytest

from llmcache import Cache, CacheRequest, FakeClock
from llmcache.entry import CacheEntry
from llmcache.keys import CacheKey
from llmcache.tiers.memory import MemoryTier

REQ = CacheRequest(model="m", prompt="p")


class RefusingTier(MemoryTier):
    """A memory tier whose writes or reads can be made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.name = "refusing"
        self.in_process = False  # walked like an I/O tier, through the breakers
        self.refuse_writes = False
        self.refuse_reads = False
        self.calls = 0

    def get(self, key: CacheKey, now: float) -> object:  # type: ignore[override]
        self.calls += 1
        if self.refuse_reads:
            raise OSError("connection refused")
        return super().get(key, now)

    def set(self, key: CacheKey, entry: CacheEntry, payload: bytes, now: float) -> None:
        self.calls += 1
        if self.refuse_writes:
            raise OSError("database or disk is full")
        super().set(key, entry, payload, now)


def test_refused_writes_leave_reads_serving(caplog: pytest.LogCaptureFixture) -> None:
    tier = RefusingTier()
    cache = Cache([tier], monotonic=FakeClock(0.0))
    cache.set(REQ, "stored before the disk filled up")
    tier.refuse_writes = True
    caplog.set_level(logging.WARNING, logger="llmcache")
    for i in range(20):
        assert cache.set(CacheRequest(model="m", prompt=f"new {i}"), "x") is False
        hit = cache.get(REQ)
        assert hit is not None and hit.entry.value == "stored before the disk filled up"
    assert cache.stats()["errors_by_tier"] == {"refusing": 1}  # then the write breaker is open
    assert len([r for r in caplog.records if "failed" in r.getMessage()]) == 1


def test_a_tier_that_cannot_read_is_skipped_for_writes_too() -> None:
    mono = FakeClock(0.0)
    tier = RefusingTier()
    cache = Cache([tier, MemoryTier()], monotonic=mono)
    tier.refuse_reads = tier.refuse_writes = True
    assert cache.get(REQ) is None
    calls = tier.calls
    for _ in range(20):
        cache.set(REQ, "x")  # stored below; the dead tier is not called
        cache.get(REQ)
    assert tier.calls == calls
    assert cache.stats()["errors_by_tier"] == {"refusing": 1}
    assert cache.stats()["breakers"]["refusing"] == "open"

    tier.refuse_reads = tier.refuse_writes = False
    mono.advance(5.0)
    cache.get(CacheRequest(model="m", prompt="probe"))  # the read probe finds it back
    assert cache.stats()["breakers"]["refusing"] == "closed"
    assert cache.set(REQ, "y") is True
    assert tier.get(cache_key(), 0.0) is not None


def cache_key() -> CacheKey:
    from llmcache.keys import request_key

    return request_key(REQ)


def test_writes_that_keep_failing_after_reads_recover_open_alone() -> None:
    mono = FakeClock(0.0)
    tier = RefusingTier()
    cache = Cache([tier], monotonic=mono)
    cache.set(REQ, "kept")
    tier.refuse_reads = tier.refuse_writes = True
    cache.get(REQ)
    tier.refuse_reads = False  # back, but the disk is still full
    mono.advance(5.0)
    assert cache.get(REQ) is not None
    assert cache.set(CacheRequest(model="m", prompt="n"), "x") is False
    assert cache.get(REQ) is not None  # reads keep working
    assert cache.stats()["breakers"]["refusing"] == "open"  # the write side


class StallingTier(RefusingTier):
    """Its async reads can be made to hang (a server that stopped answering)."""

    def __init__(self) -> None:
        super().__init__()
        self.stall = False

    async def aget(self, key: CacheKey, now: float) -> object:  # type: ignore[override]
        if self.stall:
            await asyncio.sleep(60)
        return self.get(key, now)


async def test_a_probe_whose_caller_was_cancelled_does_not_keep_the_tier_skipped() -> None:
    """The one call let through to probe a tier is cancelled before the tier answers (a
    client that disconnected, an ``asyncio.wait_for`` that ran out): it never reports. The
    tier must still be probed again and serve once it is back, not be skipped for good."""
    mono = FakeClock(0.0)
    tier = StallingTier()
    cache = Cache([tier], monotonic=mono)
    cache.set(REQ, "kept")
    tier.refuse_reads = True
    assert await cache.aget(REQ) is None  # the tier fails: its breakers open
    tier.refuse_reads, tier.stall = False, True
    mono.advance(5.0)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(cache.aget(REQ), 0.05)  # the probe, cancelled
    tier.stall = False  # the tier answers again
    mono.advance(10.0)
    hit = await cache.aget(REQ)
    assert hit is not None and hit.entry.value == "kept"
    assert cache.stats()["breakers"]["refusing"] == "closed"
