"""``llmcache doctor``: check each configured tier (reachable, latency, schema, modules)."""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from llmcache.cache import Cache
from llmcache.diagnose import describe_tier

PROBES = 5


def run_doctor(urls: Sequence[str], semantic: str | None) -> dict[str, Any]:
    """The doctor's findings; ``ok`` is False when a tier is unreachable or has a problem."""
    # The findings carry each failure's reason; the cache's own outage warnings would repeat
    # them on stderr (restored afterwards: the doctor may run inside another program).
    logger = logging.getLogger("llmcache")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return _examine(urls, semantic)
    finally:
        logger.setLevel(level)


def _examine(urls: Sequence[str], semantic: str | None) -> dict[str, Any]:
    cache = Cache.from_urls(
        urls, semantic=semantic, single_flight_timeout=None, fleet_stats=False, encryption=False
    )
    try:
        rounds = [cache.health(probe=True)["tiers"] for _ in range(PROBES)]
        tiers = []
        for tier in cache.tiers:
            probes = [r[tier.name] for r in rounds]
            reachable = all(p["reachable"] for p in probes)
            tiers.append(
                {
                    "tier": tier.name,
                    "reachable": reachable,
                    "latency_ms": statistics.median(p["latency_ms"] for p in probes),
                    **describe_tier(tier),  # an unreachable tier says why in "problem"
                }
            )
    finally:
        cache.close()
    ok = all(t["reachable"] and "problem" not in t for t in tiers)
    return {"ok": ok, "tiers": tiers}


def show_doctor(report: dict[str, Any], console: Console) -> None:
    table = Table(title="llmcache doctor")
    for column in ("tier", "reachable", "latency", "details"):
        table.add_column(column)
    for tier in report["tiers"]:
        details = {k: v for k, v in tier.items() if k not in ("tier", "reachable", "latency_ms")}
        table.add_row(
            tier["tier"],
            "yes" if tier["reachable"] else "[red]NO[/red]",
            f"{tier['latency_ms']:.2f} ms",
            ", ".join(f"{k}={v}" for k, v in details.items()),
        )
    console.print(table)
    console.print("all good" if report["ok"] else "[red]problems found[/red]")
