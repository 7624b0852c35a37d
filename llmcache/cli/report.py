"""``llmcache report``: dollars saved per model, by the cache and by the provider's prompt
cache, from the savings history a SQL or Redis tier keeps; optionally a PNG chart."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

from llmcache.cli.existing import open_existing
from llmcache.errors import ConfigError, LLMCacheError
from llmcache.savings import HOUR, ReportRow, SavingsReport

_UNITS = {"m": 60, "h": HOUR, "d": 24 * HOUR, "w": 7 * 24 * HOUR}
_SINCE = re.compile(r"(\d+)([mhdw])")


def parse_since(text: str) -> float:
    """``30m``, ``12h``, ``7d``, ``2w`` -> seconds; ConfigError for anything else."""
    match = _SINCE.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise ConfigError(
            f"--since takes a positive number and a unit (m, h, d, w), e.g. 7d; got {text!r}"
        )
    return int(match[1]) * _UNITS[match[2]]


def read_report(urls: Sequence[str], since_seconds: float | None) -> SavingsReport:
    """The savings history kept by the first tier in ``urls`` that keeps one."""
    cache = open_existing(urls)
    try:
        if not cache.keeps_history:
            raise LLMCacheError(
                "the savings history is kept by a SQL or Redis tier; pass its URL, e.g. "
                "--url sqlite:///./llmcache.db"
            )
        # Before 1970 is all of the history (and no date to print): --since 99999999d
        since = None if since_seconds is None else max(0.0, cache.clock() - since_seconds)
        return cache.savings(since=since)
    finally:
        cache.close()


def usd(value: float, row: ReportRow | None = None) -> str:
    """Dollars as the report shows them: cents from $1 up, micro-dollars below."""
    if row is not None and not row.priced:
        return "unpriced"
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.6f}"


def show_report(report: SavingsReport, console: Console) -> None:
    start = datetime.fromtimestamp(report.since_hour * HOUR, tz=timezone.utc)
    table = Table(title=f"llmcache: savings since {start:%Y-%m-%d %H:%M} UTC")
    table.add_column("model", overflow="fold", min_width=12)
    for name in ("hits", "tokens in", "tokens out", "saved by llmcache"):
        table.add_column(name, justify="right")
    for name in ("provider cached tokens", "saved by provider cache", "total saved"):
        table.add_column(name, justify="right")
    for row in report.rows:
        table.add_row(
            row.model or "(no model name)",
            f"{row.hits:,}",
            f"{row.tokens_saved_input:,}",
            f"{row.tokens_saved_output:,}",
            usd(row.cost_saved_usd, row),
            f"{row.provider_cache_read_tokens:,}",
            usd(row.provider_cache_saved_usd, row),
            usd(row.total_saved_usd, row),
        )
    if report.rows:
        table.add_section()
        table.add_row(
            "all models",
            f"{sum(r.hits for r in report.rows):,}",
            f"{sum(r.tokens_saved_input for r in report.rows):,}",
            f"{sum(r.tokens_saved_output for r in report.rows):,}",
            usd(report.cost_saved_usd),
            f"{sum(r.provider_cache_read_tokens for r in report.rows):,}",
            usd(report.provider_cache_saved_usd),
            usd(report.cost_saved_usd + report.provider_cache_saved_usd),
        )
    console.print(table)
    if not report.rows:
        console.print("no savings recorded in this window yet")
    unpriced = [r.model or "(no model name)" for r in report.rows if not r.priced]
    if unpriced:
        console.print(f"unpriced (LiteLLM has no price for them): {', '.join(unpriced)}")


def write_chart(report: SavingsReport, path: Path) -> None:
    from llmcache.chart import savings_chart

    savings_chart(report, path)
