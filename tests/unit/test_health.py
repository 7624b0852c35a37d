"""``cache.health()``, and the events a cache raises: tier down and recovered, hit rate below
a floor and back."""

from __future__ import annotations

import logging

import pytest

from llmcache import Cache, CacheRequest, ConfigError, FakeClock
from llmcache.health import HealthEvent
from llmcache.keys import CacheKey
from llmcache.tiers.memory import MemoryTier


class SwitchableTier(MemoryTier):
    """A memory tier walked like an I/O tier, that can be switched off."""

    def __init__(self) -> None:
        super().__init__()
        self.name = "switchable"
        self.in_process = False
        self.down = False

    def get(self, key: CacheKey, now: float) -> object:  # type: ignore[override]
        if self.down:
            raise ConnectionError("connection refused")
        return super().get(key, now)


def _req(i: int) -> CacheRequest:
    return CacheRequest(model="m", prompt=f"q{i}")


def test_health_reports_each_tier_and_probes_on_request() -> None:
    tier = SwitchableTier()
    events: list[HealthEvent] = []
    mono = FakeClock(0.0)
    cache = Cache([MemoryTier(), tier], monotonic=mono, on_health=events.append)
    report = cache.health(probe=True)
    assert report["healthy"] is True
    assert report["tiers"]["switchable"]["reachable"] is True
    assert report["tiers"]["switchable"]["latency_ms"] >= 0

    tier.down = True
    assert cache.get(_req(1)) is None  # fails open
    report = cache.health()
    assert report["healthy"] is False
    assert report["tiers"]["switchable"]["state"] == "open"
    assert report["tiers"]["switchable"]["errors"] == 1
    assert [(e.kind, e.tier) for e in events] == [("tier_down", "switchable")]
    assert "connection refused" in events[0].detail

    # A probe reaches the tier even while its breaker is open, and sees it back.
    assert cache.health(probe=True)["tiers"]["switchable"]["reachable"] is False
    tier.down = False
    report = cache.health(probe=True)
    assert report["tiers"]["switchable"]["reachable"] is True
    assert report["healthy"] is True
    assert [e.kind for e in events] == ["tier_down", "tier_recovered"]


def test_a_low_hit_rate_raises_an_event_once_and_its_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[HealthEvent] = []
    cache = Cache([MemoryTier()], on_health=events.append, hit_rate_floor=0.5, hit_rate_window=20)
    caplog.set_level(logging.WARNING, logger="llmcache")
    for i in range(60):  # all misses: three windows below the floor
        cache.get(_req(1000 + i))
    assert [e.kind for e in events] == ["hit_rate_low"]
    assert "0.0%" in events[0].detail
    assert cache.health()["hit_rate_low"] is True
    assert cache.health()["healthy"] is False
    assert "hit rate low" in caplog.text

    cache.set(_req(0), "answer")
    for _ in range(30):  # a window of mostly hits, closed by a miss
        cache.get(_req(0))
    cache.get(_req(9999))
    assert [e.kind for e in events] == ["hit_rate_low", "hit_rate_recovered"]
    assert cache.health()["hit_rate_low"] is False


def test_a_broken_callback_never_breaks_a_call(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: HealthEvent) -> None:
        raise RuntimeError("pager down")

    tier = SwitchableTier()
    tier.down = True
    cache = Cache([tier], on_health=broken)
    assert cache.get(_req(1)) is None
    assert "on_health callback failed" in caplog.text


def test_floor_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="hit_rate_floor"):
        Cache([MemoryTier()], hit_rate_floor=1.5)
    with pytest.raises(ConfigError, match="hit_rate_window"):
        Cache([MemoryTier()], hit_rate_floor=0.5, hit_rate_window=1)


def test_the_window_after_reset_stats_is_a_rate_between_0_and_1() -> None:
    events: list[HealthEvent] = []
    cache = Cache([MemoryTier()], on_health=events.append, hit_rate_floor=0.5, hit_rate_window=10)
    for i in range(10):  # a window of misses: low
        cache.get(_req(1000 + i))
    cache.reset_stats()
    cache.set(_req(0), "answer")
    for _ in range(25):  # only hits since the reset (hits are not checked), then a miss
        cache.get(_req(0))
    cache.get(_req(9999))
    assert [e.kind for e in events] == ["hit_rate_low", "hit_rate_recovered"]
    assert "96.2%" in events[-1].detail  # 25 hits of 26 lookups since the reset
    assert cache.health()["hit_rate_last_window"] == pytest.approx(25 / 26)
