"""``llmcache stats``: fleet-wide hit rate and savings from the counters a Redis tier keeps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from llmcache.cli.existing import open_existing
from llmcache.cli.report import usd
from llmcache.errors import LLMCacheError


def read_fleet_stats(urls: Sequence[str]) -> dict[str, Any]:
    """The fleet-wide counters kept by the first tier in ``urls`` that keeps them."""
    cache = open_existing(urls)
    try:
        view = cache.fleet_stats()
    finally:
        cache.close()
    if view is None:
        raise LLMCacheError(
            "fleet-wide stats are kept by a Redis tier; pass its URL, e.g. --url redis://host:6379/0"
        )
    return view


def show_fleet_stats(view: dict[str, Any], console: Console) -> None:
    table = Table(title="llmcache: fleet-wide", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    lookups = view["hits"] + view["misses"]
    table.add_row("lookups", f"{lookups:,}")
    table.add_row("hit rate", f"{view['hit_rate']:.1%}")
    table.add_row("tokens saved", f"{view['tokens_saved']:,}")
    # Dollars as ``llmcache report`` shows them: micro-dollars below $1, never $0.0000 for a
    # saving too small for cents.
    table.add_row("dollars saved", usd(view["cost_saved_usd"]))
    table.add_row("saved by the provider's prompt cache", usd(view["provider_cache_saved_usd"]))
    for model, row in view["by_model"].items():
        saved = usd(row["cost_saved_usd"]) if row["priced"] else "unpriced"
        table.add_row(f"hits of {model or '(no model name)'}", f"{row['hits']:,} ({saved})")
    for tier, hits in sorted(view["hits_by_tier"].items()):
        table.add_row(f"hits from {tier}", f"{hits:,}")
    for tier, errors in sorted(view["errors_by_tier"].items()):
        table.add_row(f"errors in {tier}", f"{errors:,}")
    console.print(table)
