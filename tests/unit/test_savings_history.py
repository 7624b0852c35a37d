"""The savings history a cache keeps in process: each hit in the hour it happened, bounded,
and untouched by ``reset_stats``."""

from __future__ import annotations

from llmcache import Cache, CacheRequest, FakeClock, Usage
from llmcache.savings import HISTORY_HOURS, HOUR


def _cache(clock: FakeClock) -> tuple[Cache, CacheRequest]:
    cache = Cache.from_urls(["memory://"], clock=clock)
    question = CacheRequest(model="m", prompt="q", model_name="gpt-4o-mini")
    cache.set(question, "a", usage=Usage(100, 10))
    return cache, question


def test_each_hit_lands_in_the_hour_it_happened(fake_clock: FakeClock) -> None:
    cache, question = _cache(fake_clock)
    cache.get(question)
    fake_clock.advance(HOUR)
    cache.get(question)
    cache.get(question)
    report = cache.savings()
    assert [(hour - report.hourly[0][0]) for hour, _, _ in report.hourly] == [0, 1]
    ours = [saved for _, saved, _ in report.hourly]
    assert ours[1] == 2 * ours[0] > 0
    assert [r.hits for r in report.rows] == [3]


def test_reset_stats_keeps_the_history(fake_clock: FakeClock) -> None:
    cache, question = _cache(fake_clock)
    cache.get(question)
    cache.reset_stats()
    cache.get(question)
    assert cache.stats()["by_model"]["gpt-4o-mini"]["hits"] == 1  # since the reset
    assert cache.savings().rows[0].hits == 2  # the history: both


def test_the_history_keeps_31_days(fake_clock: FakeClock) -> None:
    cache, question = _cache(fake_clock)
    cache.get(question)
    fake_clock.advance((HISTORY_HOURS + 1) * HOUR)
    cache.get(question)
    report = cache.savings(since=0)
    assert len(report.hourly) == 1
    assert report.rows[0].hits == 1


def test_a_refused_hit_is_taken_back_from_the_history(fake_clock: FakeClock) -> None:
    cache, question = _cache(fake_clock)
    hit = cache.get(question)
    assert hit is not None
    cache.record_refused(hit)  # e.g. LiteLLM's s-maxage: the caller called the model
    assert cache.savings().rows == []  # nothing saved
    assert cache.stats()["by_model"]["gpt-4o-mini"]["hits"] == 0
