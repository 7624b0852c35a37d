"""Metrics export: Prometheus (``prometheus_client``) and OpenTelemetry, from ``Cache.stats()``.

Both read the cache's own counters when scraped or collected, so exporting costs nothing on
the request path and the numbers are the ones ``stats()`` and ``llmcache stats`` show.
Labels are only tier names, match types, model names, store-refusal reasons and token kinds:
never a user, tenant, ACL, prompt or key, so a metrics backend never holds what the cache keeps
private. Per-model dollars are priced when scraped (``llmcache.pricing``).

    from prometheus_client import start_http_server
    from llmcache.metrics import register_prometheus
    register_prometheus(cache)          # into the default registry
    start_http_server(9464)

    from opentelemetry import metrics
    from llmcache.metrics import register_opentelemetry
    register_opentelemetry(cache, metrics.get_meter("llmcache"))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from llmcache._optional import require

if TYPE_CHECKING:
    from llmcache.cache import Cache

#: Breaker states as a gauge: 0 closed (serving), 1 half-open (probing), 2 open (skipped).
BREAKER_LEVELS = {"closed": 0, "half_open": 1, "open": 2}


class Metric(NamedTuple):
    kind: str  # "counter" or "gauge"
    help: str


#: Every exported metric (name without prefix): a fixed set, so exporters can declare them all.
METRICS = {
    "hits": Metric("counter", "Lookups served from the cache"),
    "hits_by_tier": Metric("counter", "Hits by the tier that served them"),
    "hits_by_match": Metric("counter", "Hits by match type (exact or semantic)"),
    "misses": Metric("counter", "Lookups no tier could answer"),
    "stores": Metric("counter", "Answers stored"),
    "skipped": Metric("counter", "Lookups the policy skipped"),
    "decode_errors": Metric("counter", "Stored values that did not decode (deleted)"),
    "early_refreshes": Metric("counter", "Hits turned into misses to recompute before expiry"),
    "ttl_extensions": Metric("counter", "Popular entries whose expiry was extended"),
    "tier_errors": Metric("counter", "Tier operations that failed, by tier"),
    "store_rejected": Metric("counter", "Answers refused for storage, by reason"),
    "semantic_rejected": Metric(
        "counter", "Semantic candidates not served, by reason (threshold, verifier, ...)"
    ),
    "semantic_skipped": Metric("counter", "Exact misses the semantic tier did not search"),
    "tokens_saved": Metric("counter", "Tokens hits saved, by kind (input or output)"),
    "cost_saved_usd": Metric("counter", "Dollars hits saved"),
    "model_hits": Metric("counter", "Hits by the model of the entry served"),
    "model_input_tokens_saved": Metric("counter", "Input tokens hits saved, by model"),
    "model_output_tokens_saved": Metric("counter", "Output tokens hits saved, by model"),
    "model_cost_saved_usd": Metric("counter", "Dollars hits saved, by model"),
    "provider_cache_read_tokens": Metric(
        "counter", "Prompt tokens the provider's prompt cache served on misses, by model"
    ),
    "provider_cache_creation_tokens": Metric(
        "counter", "Prompt tokens written to the provider's prompt cache on misses, by model"
    ),
    "provider_cache_saved_usd": Metric(
        "counter", "Dollars the provider's prompt cache saved on misses, by model"
    ),
    "hit_ratio": Metric("gauge", "Hits per lookup since start"),
    "breaker_state": Metric("gauge", "Circuit breaker by tier: 0 closed, 1 half-open, 2 open"),
}


class Sample(NamedTuple):
    name: str
    labels: dict[str, str]
    value: float


def samples(stats: dict[str, Any]) -> Iterator[Sample]:
    """The exported values of one ``Cache.stats()`` snapshot (shared by both exporters)."""
    yield Sample("hits", {}, stats["hits"])
    yield Sample("misses", {}, stats["misses"])
    yield Sample("stores", {}, stats["stores"])
    yield Sample("skipped", {}, stats["skipped"])
    yield Sample("decode_errors", {}, stats["decode_errors"])
    yield Sample("early_refreshes", {}, stats["early_refreshes"])
    yield Sample("ttl_extensions", {}, stats["ttl_extensions"])
    yield Sample("hit_ratio", {}, stats["hit_rate"])
    yield Sample("cost_saved_usd", {}, stats["cost_saved_usd"])
    for kind in ("input", "output"):
        yield Sample("tokens_saved", {"kind": kind}, stats[f"{kind}_tokens_saved"])
    for tier, count in stats["hits_by_tier"].items():
        yield Sample("hits_by_tier", {"tier": tier}, count)
    for match, count in stats["hits_by_match"].items():
        yield Sample("hits_by_match", {"match": match}, count)
    for tier, count in stats["errors_by_tier"].items():
        yield Sample("tier_errors", {"tier": tier}, count)
    for reason, count in stats["store_rejected"].items():
        yield Sample("store_rejected", {"reason": reason}, count)
    for name in ("semantic_rejected", "semantic_skipped"):  # with a semantic tier only
        for reason, count in stats.get(name, {}).items():
            yield Sample(name, {"reason": reason}, count)
    for model, row in stats.get("by_model", {}).items():
        labels = {"model": model}
        yield Sample("model_hits", labels, row["hits"])
        yield Sample("model_input_tokens_saved", labels, row["tokens_saved_input"])
        yield Sample("model_output_tokens_saved", labels, row["tokens_saved_output"])
        yield Sample("model_cost_saved_usd", labels, row["cost_saved_usd"])
        yield Sample("provider_cache_read_tokens", labels, row["provider_cache_read_tokens"])
        yield Sample(
            "provider_cache_creation_tokens", labels, row["provider_cache_creation_tokens"]
        )
        yield Sample("provider_cache_saved_usd", labels, row["provider_cache_saved_usd"])
    for tier, state in stats.get("breakers", {}).items():
        yield Sample("breaker_state", {"tier": tier}, BREAKER_LEVELS.get(state, 2))


class PrometheusCollector:
    """A ``prometheus_client`` collector over one cache (``llmcache_*`` metrics)."""

    def __init__(self, cache: Cache, *, prefix: str = "llmcache") -> None:
        self._metrics = require(
            "prometheus_client.core", extra="metrics", feature="Prometheus metrics"
        )
        self._cache = cache
        self._prefix = prefix

    def _family(self, name: str, labels: list[str]) -> Any:
        metric = METRICS[name]
        kind = (
            self._metrics.CounterMetricFamily
            if metric.kind == "counter"
            else self._metrics.GaugeMetricFamily
        )
        return kind(f"{self._prefix}_{name}", metric.help, labels=labels)

    def collect(self) -> Iterator[Any]:
        families: dict[str, Any] = {}
        for sample in samples(self._cache.stats()):
            family = families.get(sample.name)
            if family is None:
                family = families[sample.name] = self._family(sample.name, sorted(sample.labels))
            family.add_metric([sample.labels[k] for k in sorted(sample.labels)], sample.value)
        yield from families.values()

    def describe(self) -> Iterator[Any]:
        """Every metric's name (the samples, tiers and reasons appear when scraped): the
        registry refuses a second collector with the same names (two caches, or one cache
        registered twice, need their own ``prefix``) instead of a scrape that repeats them."""
        return (self._family(name, []) for name in METRICS)


def register_prometheus(cache: Cache, registry: Any = None, *, prefix: str = "llmcache") -> Any:
    """Register a collector for ``cache`` (default registry unless given); returns it."""
    if registry is None:
        registry = require(
            "prometheus_client", extra="metrics", feature="Prometheus metrics"
        ).REGISTRY
    collector = PrometheusCollector(cache, prefix=prefix)
    registry.register(collector)
    return collector


def register_opentelemetry(cache: Cache, meter: Any, *, prefix: str = "llmcache") -> list[Any]:
    """Observable OpenTelemetry instruments over ``cache`` on ``meter``; returns them."""
    otel = require("opentelemetry.metrics", extra="metrics", feature="OpenTelemetry metrics")
    instruments = []
    for name, metric in METRICS.items():
        make = (
            meter.create_observable_counter
            if metric.kind == "counter"
            else meter.create_observable_gauge
        )
        observe = _observer(cache, name, otel)
        instruments.append(make(f"{prefix}.{name}", callbacks=[observe], description=metric.help))
    return instruments


def _observer(cache: Cache, name: str, otel: Any) -> Callable[[Any], Iterable[Any]]:
    def observe(options: Any) -> Iterable[Any]:
        return [
            otel.Observation(s.value, s.labels) for s in samples(cache.stats()) if s.name == name
        ]

    return observe
