"""A PNG of the dollars saved over time (``llmcache report --chart``), with matplotlib.

matplotlib is the ``report`` extra. The figure is built without pyplot (no GUI backend, safe in
a server or a thread); a notebook shows the PNG it wrote (``IPython.display.Image``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llmcache._optional import require
from llmcache.savings import HOUR, SavingsReport


def cumulative_savings(report: SavingsReport) -> tuple[list[datetime], list[float], list[float]]:
    """Times (UTC) and the running totals saved by the cache and by the provider's prompt
    cache: zero at the start of the first hour with savings, then at the end of each hour."""
    if not report.hourly:
        return [], [], []
    first = report.hourly[0][0]
    times = [_utc(first)]
    ours, theirs = [0.0], [0.0]
    for hour, by_cache, by_provider in report.hourly:
        times.append(_utc(hour + 1))
        ours.append(ours[-1] + by_cache)
        theirs.append(theirs[-1] + by_provider)
    return times, ours, theirs


def _utc(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * HOUR, tz=timezone.utc)


def savings_chart(report: SavingsReport, path: str | Path | None = None) -> Any:
    """A matplotlib ``Figure`` of the cumulative dollars saved; written as a PNG to ``path``
    when given. Raises MissingExtraError without matplotlib."""
    figure_module = require("matplotlib.figure", extra="report", feature="the savings chart")
    dates = require("matplotlib.dates", extra="report", feature="the savings chart")
    times, ours, theirs = cumulative_savings(report)
    figure = figure_module.Figure(figsize=(8, 4.5), dpi=100)
    axes = figure.add_subplot()
    if times:
        total = [a + b for a, b in zip(ours, theirs, strict=True)]
        axes.plot(times, total, marker="o", linewidth=2, label="total")
        axes.plot(times, ours, marker=".", label="saved by llmcache (hits)")
        axes.plot(times, theirs, marker=".", label="saved by the provider's prompt cache")
        axes.legend(loc="upper left")
    else:
        axes.text(0.5, 0.5, "no savings yet", ha="center", va="center", transform=axes.transAxes)
    axes.set_title("Dollars saved, cumulative")
    axes.set_ylabel("USD")
    axes.set_xlabel("time (UTC)")
    axes.xaxis.set_major_formatter(dates.DateFormatter("%m-%d %H:%M"))
    axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, format="png")
    return figure
