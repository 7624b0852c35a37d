"""Metrics export: what a Prometheus scrape and an OpenTelemetry reader see after real
cache traffic, and that no label ever carries a user, tenant, ACL or prompt."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest

from llmcache import Cache, CacheRequest, FakeClock, Scope, Usage
from llmcache.metrics import METRICS, register_opentelemetry, register_prometheus

SECRET_USER = "alice-secret-user-id"


def _traffic(cache: Cache) -> None:
    request = CacheRequest(
        model="m",
        prompt="what is our Q3 revenue?",
        scope=Scope.of(user=SECRET_USER, tenant="acme", acl=["kb-secret"]),
    )
    cache.get(request)  # miss
    cache.set(request, "42", usage=Usage(100, 20))
    cache.get(request)  # hit
    cache.get(request)  # hit


@pytest.fixture
def cache(fake_clock: FakeClock) -> Cache:
    cache = Cache.from_urls(["memory://"], clock=fake_clock)
    _traffic(cache)
    return cache


def test_a_prometheus_scrape_shows_hits_misses_and_savings(cache: Cache) -> None:
    registry = CollectorRegistry()
    register_prometheus(cache, registry)
    value = registry.get_sample_value
    assert value("llmcache_hits_total") == 2
    assert value("llmcache_misses_total") == 1
    assert value("llmcache_hits_by_tier_total", {"tier": "memory"}) == 2
    assert value("llmcache_hits_by_match_total", {"match": "exact"}) == 2
    assert value("llmcache_tokens_saved_total", {"kind": "input"}) == 200
    assert value("llmcache_tokens_saved_total", {"kind": "output"}) == 40
    assert value("llmcache_breaker_state", {"tier": "memory"}) == 0
    assert value("llmcache_hit_ratio") == pytest.approx(2 / 3)


def test_scrapes_follow_the_counters(cache: Cache) -> None:
    registry = CollectorRegistry()
    register_prometheus(cache, registry)
    _traffic(cache)
    assert registry.get_sample_value("llmcache_hits_total") == 5  # the first get now hits too


def test_no_label_or_value_text_carries_private_data(cache: Cache) -> None:
    registry = CollectorRegistry()
    register_prometheus(cache, registry)
    text = generate_latest(registry).decode()
    assert "llmcache_hits_total" in text
    for private in (SECRET_USER, "acme", "kb-secret", "revenue"):
        assert private not in text


def test_opentelemetry_reads_the_same_numbers(cache: Cache) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    register_opentelemetry(cache, provider.get_meter("llmcache"))
    data = reader.get_metrics_data()
    points = {
        (metric.name, tuple(sorted(point.attributes.items()))): point.value
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        for point in metric.data.data_points
    }
    assert points[("llmcache.hits", ())] == 2
    assert points[("llmcache.hits_by_tier", (("tier", "memory"),))] == 2
    assert points[("llmcache.tokens_saved", (("kind", "input"),))] == 200
    assert not any(SECRET_USER in str(key) for key in points)
    provider.shutdown()


def test_every_exported_name_is_declared() -> None:
    from llmcache.metrics import samples

    stats = Cache.from_urls(["memory://"]).stats()
    stats["errors_by_tier"] = {"redis": 1}
    stats["store_rejected"] = {"too_large": 1}
    stats["semantic_rejected"] = {"numbers_differ": 1}
    stats["semantic_skipped"] = {"too_long": 1}
    assert {s.name for s in samples(stats)} <= set(METRICS)


def test_semantic_rejections_are_scraped_by_reason(fake_clock: FakeClock) -> None:
    from word_embeddings import WordEmbeddings

    from llmcache.semantic.verifier import AcceptAll

    cache = Cache.from_urls(
        ["memory://"],
        clock=fake_clock,
        semantic="faiss://:memory:?threshold=0.99",
        embedder=WordEmbeddings(),
        verifier=AcceptAll(),
    )
    ask = "best films of the year"
    cache.set(CacheRequest(model="m", prompt=ask, semantic_text=ask), "a")
    other = "best films of the decade"
    assert cache.get(CacheRequest(model="m", prompt=other, semantic_text=other)) is None
    registry = CollectorRegistry()
    register_prometheus(cache, registry)
    rejected = registry.get_sample_value(
        "llmcache_semantic_rejected_total", {"reason": "below_threshold"}
    )
    assert rejected == 1


def test_savings_are_exported_by_model_and_nothing_else(fake_clock: FakeClock) -> None:
    cache = Cache.from_urls(["memory://"], clock=fake_clock)
    request = CacheRequest(
        model="m",
        prompt="what is our Q3 revenue?",
        model_name="gpt-4o-mini",
        scope=Scope.of(user=SECRET_USER, tenant="acme"),
    )
    cache.get(request)
    cache.set(request, "42", usage=Usage(1000, 100, cache_read_tokens=400))  # a discounted miss
    cache.get(request)
    registry = CollectorRegistry()
    register_prometheus(cache, registry)
    value = registry.get_sample_value
    model = {"model": "gpt-4o-mini"}
    by_model = cache.stats()["by_model"]["gpt-4o-mini"]
    assert value("llmcache_model_hits_total", model) == 1
    assert value("llmcache_model_input_tokens_saved_total", model) == 1000
    assert value("llmcache_model_output_tokens_saved_total", model) == 100
    assert value("llmcache_model_cost_saved_usd_total", model) == by_model["cost_saved_usd"] > 0
    assert value("llmcache_provider_cache_read_tokens_total", model) == 400
    assert value("llmcache_provider_cache_saved_usd_total", model) == pytest.approx(
        by_model["provider_cache_saved_usd"]
    )
    assert by_model["provider_cache_saved_usd"] > 0
    text = generate_latest(registry).decode()
    for private in (SECRET_USER, "acme", "revenue"):
        assert private not in text
    labels = {
        label
        for family in registry.collect()
        for sample in family.samples
        for label in sample.labels
    }
    assert labels <= {"model", "tier", "match", "kind", "reason"}
    cache.close()


def test_a_second_collector_with_the_same_names_is_refused(
    cache: Cache, fake_clock: FakeClock
) -> None:
    registry = CollectorRegistry()
    register_prometheus(cache, registry)
    other = Cache.from_urls(["memory://"], clock=fake_clock)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        register_prometheus(other, registry)  # a scrape would repeat every llmcache_* series
    register_prometheus(other, registry, prefix="llmcache_other")
    text = generate_latest(registry).decode()
    assert text.count("# TYPE llmcache_hits_total counter") == 1
    assert "llmcache_other_hits_total 0.0" in text
    assert "llmcache_hits_total 2.0" in text


def test_a_scrape_restricted_by_name_finds_the_metrics(cache: Cache) -> None:
    registry = CollectorRegistry()
    register_prometheus(cache, registry)
    only = registry.restricted_registry(["llmcache_hits_total"])  # ?name[]= on /metrics
    assert "llmcache_hits_total 2.0" in generate_latest(only).decode()
