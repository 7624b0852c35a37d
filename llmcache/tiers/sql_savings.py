"""The SQL tier's savings history: ``{prefix}_savings``, one row per (hour, model).

Every process using the database adds its counts (an upsert that adds to the row, one
transaction per batch), so the table is the history of every run on it: a laptop's
``llmcache report --url sqlite:///./llmcache.db`` shows yesterday's runs too. Rows older than
``HISTORY_HOURS`` are deleted when a batch opens a new hour.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from llmcache.keys import label_digest
from llmcache.savings import COUNTERS, HISTORY_HOURS, Buckets, new_row
from llmcache.tiers.sql_engine import Plan, Step
from llmcache.tiers.sql_schema import Statement, Tables, _on_conflict_insert, _values

#: Longest model name kept for reading (the key is the digest of the whole name).
MODEL_CHARS = 255


class SavingsStatements:
    def __init__(self, tables: Tables, dialect: str) -> None:
        s = tables.savings
        self.add = _adding_upsert(s, dialect)
        self.read = sa.select(s.c.hour, s.c.model, *(s.c[name] for name in COUNTERS)).where(
            s.c.hour >= sa.bindparam("since")
        )
        self.forget = sa.delete(s).where(s.c.hour < sa.bindparam("before"))


def _adding_upsert(table: sa.Table, dialect: str) -> Statement:
    """INSERT a row, or add its counters to the row already there."""
    if dialect == "mysql":
        my = mysql.insert(table).values(_values(table))
        return my.on_duplicate_key_update({n: table.c[n] + my.inserted[n] for n in COUNTERS})
    ins = _on_conflict_insert(table, dialect)
    return ins.on_conflict_do_update(
        index_elements=["hour", "model_key"],
        set_={n: table.c[n] + ins.excluded[n] for n in COUNTERS},
    )


def publish_plan(sql: SavingsStatements, buckets: Buckets, forget_before: int | None) -> Plan[None]:
    rows: list[dict[str, Any]] = [
        {
            "hour": hour,
            "model_key": label_digest("model", model),
            # PostgreSQL refuses NUL in text; the row is keyed by the whole name's digest.
            "model": model[:MODEL_CHARS].replace("\x00", "\ufffd"),
            **dict(zip(COUNTERS, row, strict=True)),
        }
        for (hour, model), row in buckets.items()
    ]
    yield Step(sql.add, rows)
    if forget_before is not None:
        yield Step(sql.forget, {"before": forget_before})


def read_plan(sql: SavingsStatements, since_hour: int) -> Plan[Buckets]:
    found = yield Step(sql.read, {"since": since_hour}, "rows")
    buckets: Buckets = {}
    for hour, model, *counts in found:
        row = buckets.setdefault((int(hour), str(model)), new_row())
        for i, count in enumerate(counts):
            row[i] += int(count)
    return buckets


def oldest_kept(newest_hour: int) -> int:
    return newest_hour - HISTORY_HOURS
