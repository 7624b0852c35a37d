"""Savings per model, and over time: the counters behind ``stats()["by_model"]`` and
``llmcache report``.

Per model, a hit adds what the original call spent (``hits``, its input and output tokens, and
the part of its input the provider's prompt cache served or wrote), and a stored answer whose
usage reports provider-cached tokens adds them as the provider's saving on that miss. Counters
hold tokens only; dollars are priced when read (``llmcache.pricing``), so the fleet's Redis
hash and the SQL history hold exact integers, and a hit never reads a price table.

Never double counted: a hit saved the whole original bill (cache reads at their reduced price)
and counts nothing for the provider; the provider's saving is counted once, on the miss that
paid the reduced price.

Over time: the same counters per (hour, model) bucket (``Buckets``). A cache with a SQL or Redis
tier publishes them there (``HistorySink``: the SQL tier's ``{prefix}_savings`` table, Redis's
``<prefix>:savings:<hour>`` hashes, kept ``HISTORY_HOURS``); a cache without keeps them in
process, as many hours.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol

from llmcache.entry import Usage
from llmcache.pricing import Cost, cost_of

NOTHING = Cost(0.0, 0.0, 0.0, priced=False)

#: What each (model) or (hour, model) row counts, in this order.
COUNTERS = (
    "hits",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",  # of the input tokens hits saved: the provider had cached them
    "cache_creation_tokens",
    "provider_cache_read_tokens",  # on misses: tokens the provider's prompt cache served
    "provider_cache_creation_tokens",
)
HOUR = 3600
#: How long the savings history is kept (hours): 31 days.
HISTORY_HOURS = 31 * 24
#: Distinct models counted; more (a bug, or a name made per call) are counted as OTHER_MODEL.
MAX_MODELS = 1000
OTHER_MODEL = "(other models)"

Row = list[int]
#: (hour number since the epoch, model) -> counters in COUNTERS order.
Buckets = dict[tuple[int, str], Row]


def hour_of(when: float) -> int:
    return int(when // HOUR)


def new_row() -> Row:
    return [0] * len(COUNTERS)


def add_hit(row: Row, usage: Usage, sign: int = 1) -> None:
    row[0] += sign
    row[1] += sign * usage.input_tokens
    row[2] += sign * usage.output_tokens
    row[3] += sign * usage.cache_read_tokens
    row[4] += sign * usage.cache_creation_tokens


def add_provider_cache(row: Row, usage: Usage) -> None:
    row[5] += usage.cache_read_tokens
    row[6] += usage.cache_creation_tokens


def add_rows(into: Buckets, rows: Mapping[tuple[int, str], Row]) -> None:
    for key, row in rows.items():
        mine = into.setdefault(key, new_row())
        for i, value in enumerate(row):
            mine[i] += value


class HistorySink(Protocol):
    """A tier that keeps the savings history (SQL, Redis)."""

    name: str

    def publish_history(self, buckets: Buckets) -> None: ...
    def read_history(self, since_hour: int) -> Buckets: ...


def history_from_fields(hours: Iterable[tuple[int, Mapping[bytes, bytes]]]) -> Buckets:
    """Buckets from per-hour hashes of ``<counter>:<model>`` fields (Redis); a field that is
    not one of ours is skipped."""
    index = {name: i for i, name in enumerate(COUNTERS)}
    buckets: Buckets = {}
    for hour, fields in hours:
        for raw, value in fields.items():
            try:
                name, _, model = raw.decode().partition(":")
                count = int(value)
            except (UnicodeDecodeError, ValueError):
                continue
            if name in index:
                buckets.setdefault((hour, model), new_row())[index[name]] += count
    return buckets


# ---------------------------------------------------------------------------- priced views
def priced_row(model: str, row: Row) -> dict[str, Any]:
    """``stats()["by_model"][model]``: a row's counters and what they are worth. A row with
    no tokens is not priced (``priced`` False): nothing to price, and no price table read."""
    hits = Usage(row[1], row[2], row[3], row[4])
    reads = Usage(row[5] + row[6], 0, row[5], row[6])
    if not any(row[1:]):
        ours = provider = NOTHING
    else:
        ours, provider = cost_of(model, hits), cost_of(model, reads)
    return {
        "hits": row[0],
        "tokens_saved_input": row[1],
        "tokens_saved_output": row[2],
        "cost_saved_usd": ours.total_usd,
        "provider_cache_read_tokens": row[5],
        "provider_cache_creation_tokens": row[6],
        "provider_cache_saved_usd": provider.provider_cache_saved_usd,
        "priced": ours.priced,
    }


def priced_models(rows: Mapping[str, Row]) -> dict[str, dict[str, Any]]:
    return {model: priced_row(model, row) for model, row in sorted(rows.items())}


def add_priced_totals(view: dict[str, Any], rows: Mapping[str, Row]) -> dict[str, Any]:
    """``view`` (a ``stats()``-shaped dict) with ``by_model`` priced and its dollars added:
    ``cost_saved_usd`` (plus what adapters recorded themselves), the ``provider_cache_*``
    totals and ``unpriced_models`` (models with hits or provider-cached tokens but no price)."""
    by_model = priced_models(rows)
    view["by_model"] = by_model
    view["cost_saved_usd"] = view.get("cost_saved_usd", 0.0) + sum(
        m["cost_saved_usd"] for m in by_model.values()
    )
    for name in ("provider_cache_read_tokens", "provider_cache_creation_tokens"):
        view[name] = sum(m[name] for m in by_model.values())
    view["provider_cache_saved_usd"] = sum(m["provider_cache_saved_usd"] for m in by_model.values())
    view["unpriced_models"] = sorted(
        model
        for model, m in by_model.items()
        if not m["priced"]
        and (m["tokens_saved_input"] or m["tokens_saved_output"] or m["provider_cache_read_tokens"])
    )
    return view


# ---------------------------------------------------------------------------- the report
class ReportRow(NamedTuple):
    model: str
    hits: int
    tokens_saved_input: int
    tokens_saved_output: int
    cost_saved_usd: float
    provider_cache_read_tokens: int
    provider_cache_saved_usd: float
    priced: bool

    @property
    def total_saved_usd(self) -> float:
        return self.cost_saved_usd + self.provider_cache_saved_usd


class SavingsReport(NamedTuple):
    """Savings per model over a window, and the dollars saved per hour (for the chart)."""

    since_hour: int
    rows: list[ReportRow]
    #: (hour, dollars saved by the cache, by the provider's prompt cache) with any savings.
    hourly: list[tuple[int, float, float]]

    @property
    def cost_saved_usd(self) -> float:
        return sum(r.cost_saved_usd for r in self.rows)

    @property
    def provider_cache_saved_usd(self) -> float:
        return sum(r.provider_cache_saved_usd for r in self.rows)

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since_hour * HOUR,
            "models": {
                r.model: {**r._asdict(), "total_saved_usd": r.total_saved_usd} for r in self.rows
            },
            "cost_saved_usd": self.cost_saved_usd,
            "provider_cache_saved_usd": self.provider_cache_saved_usd,
            "total_saved_usd": self.cost_saved_usd + self.provider_cache_saved_usd,
            "hourly": [
                {"hour": hour * HOUR, "cost_saved_usd": ours, "provider_cache_saved_usd": theirs}
                for hour, ours, theirs in self.hourly
            ],
        }


def build_report(buckets: Buckets, since_hour: int) -> SavingsReport:
    """Sum the buckets from ``since_hour`` on, per model and per hour, and price them."""
    totals: dict[str, Row] = {}
    per_hour: dict[int, list[float]] = {}
    for (hour, model), row in buckets.items():
        if hour < since_hour:
            continue
        total = totals.setdefault(model, new_row())
        for i, value in enumerate(row):
            total[i] += value
        priced = priced_row(model, row)
        spent = per_hour.setdefault(hour, [0.0, 0.0])
        spent[0] += priced["cost_saved_usd"]
        spent[1] += priced["provider_cache_saved_usd"]
    rows = [_report_row(model, priced_row(model, row)) for model, row in sorted(totals.items())]
    hourly = [(hour, ours, theirs) for hour, (ours, theirs) in sorted(per_hour.items())]
    return SavingsReport(since_hour, rows, hourly)


def _report_row(model: str, priced: dict[str, Any]) -> ReportRow:
    return ReportRow(
        model=model,
        hits=priced["hits"],
        tokens_saved_input=priced["tokens_saved_input"],
        tokens_saved_output=priced["tokens_saved_output"],
        cost_saved_usd=priced["cost_saved_usd"],
        provider_cache_read_tokens=priced["provider_cache_read_tokens"],
        provider_cache_saved_usd=priced["provider_cache_saved_usd"],
        priced=priced["priced"],
    )


def prune(buckets: Buckets, newest_hour: int) -> None:
    """Drop buckets older than ``HISTORY_HOURS`` before ``newest_hour`` (in place)."""
    oldest = newest_hour - HISTORY_HOURS
    for key in [k for k in buckets if k[0] < oldest]:
        del buckets[key]
