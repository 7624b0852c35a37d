"""Showing a demo result: rich tables for people, a JSON document for scripts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from llmcache.cli.demo import DemoResult, RunResult, Track
from llmcache.cli.workload import Call


def as_dict(result: DemoResult) -> dict[str, Any]:
    """The result as JSON-ready data (what ``--json`` prints)."""
    stats = result.stats
    return {
        "provider": result.provider,
        "model": result.model,
        "tiers": list(result.tiers),
        "calls": result.config.calls,
        "users": result.config.users,
        "hit_rate": _ratio(result.with_cache.hits, result.with_cache.calls),
        "tokens_saved": stats["tokens_saved"],
        "hits_by_tier": stats["hits_by_tier"],
        "errors_by_tier": stats["errors_by_tier"],
        "speedup": _ratio(result.without_cache.total_seconds, result.with_cache.total_seconds),
        "without_cache": _run_dict(result.without_cache),
        "with_cache": _run_dict(result.with_cache),
        "stats": stats,
    }


def _run_dict(run: RunResult) -> dict[str, Any]:
    return {
        "calls": run.calls,
        "hits": run.hits,
        "llm_calls": run.llm_calls,
        "tokens_spent": run.tokens_spent,
        "latency_p50_ms": round(run.percentile(0.50) * 1000, 3),
        "latency_p95_ms": round(run.percentile(0.95) * 1000, 3),
        "total_seconds": round(run.total_seconds, 3),
    }


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def show(result: DemoResult, console: Console) -> None:
    """The summary table, then hits by tier."""
    before, after = result.without_cache, result.with_cache
    console.print(
        f"[bold]llmcache demo[/]: {result.config.calls} calls from {result.config.users} users, "
        f"model {escape(result.model)} ({escape(result.provider)})"
    )
    # The user's URLs and paths as given, never read as markup ("d[/b]/demo.db" raised).
    console.print(f"tiers, top first: {escape(' -> '.join(result.tiers))}", soft_wrap=True)
    table = Table(title="LangChain llm.invoke, without and with llmcache")
    table.add_column("")
    table.add_column("without cache", justify="right")
    table.add_column("with llmcache", justify="right")
    table.add_row("calls", str(before.calls), str(after.calls))
    table.add_row("hit rate", "-", f"{_ratio(after.hits, after.calls):.1%}")
    table.add_row("LLM calls made", str(before.llm_calls), str(after.llm_calls))
    table.add_row("latency p50", _ms(before.percentile(0.5)), _ms(after.percentile(0.5)))
    table.add_row("latency p95", _ms(before.percentile(0.95)), _ms(after.percentile(0.95)))
    table.add_row("total time", f"{before.total_seconds:.2f} s", f"{after.total_seconds:.2f} s")
    table.add_row("tokens spent", f"{before.tokens_spent:,}", f"{after.tokens_spent:,}")
    table.add_row("tokens saved", "-", f"{result.stats['tokens_saved']:,}")
    console.print(table)
    console.print(_tier_table(result))
    console.print("A hit in a lower tier is copied into the tiers above it (backfill).")


def _tier_table(result: DemoResult) -> Table:
    stats = result.stats
    table = Table(title="Hits by tier")
    table.add_column("tier")
    table.add_column("hits", justify="right")
    table.add_column("errors", justify="right")
    for name in result.tier_names:
        hits = stats["hits_by_tier"].get(name, 0)
        errors = stats["errors_by_tier"].get(name, 0)
        table.add_row(name, str(hits), str(errors))
    return table


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


@contextmanager
def progress_bar(console: Console) -> Iterator[Track]:
    """A ``Track`` drawing one rich progress bar per run of the workload.

    The bar starts with the first run, so a setup error prints its one line alone.
    """
    columns = (
        TextColumn("{task.description:>15}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    progress = Progress(*columns, console=console)

    def track(calls: Sequence[Call], label: str) -> Iterable[Call]:
        progress.start()
        return progress.track(calls, total=len(calls), description=f"{label} cache")

    try:
        yield track
    finally:
        if progress.live.is_started:
            progress.stop()
