"""The SQL tier's invalidation: the rows a ``Selector`` matches, deleted in bounded batches.

Each batch is one transaction: up to ``batch`` keys found through the indexes (scope, model,
namespace, created_at columns; the tags table's (tag, key) primary key), their entry rows
deleted with the criteria checked again (a key stored again meanwhile with a newer created_at
stays), then the tag rows of the keys whose entry is gone. Batches keep every transaction,
and the locks it holds, small on a large table. Statements here are built per call (their
IN lists vary); invalidation is rare, so compiling them per call is fine.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import sqlalchemy as sa

from llmcache.tiers.selector import Selector
from llmcache.tiers.sql_engine import Plan, Step
from llmcache.tiers.sql_schema import Tables


class Batch(NamedTuple):
    found: int  # keys the batch selected: fewer than the batch size means the last batch
    removed: int  # entry rows it deleted


def criteria(tables: Tables, selector: Selector, cutoff: float | None) -> list[Any]:
    e, t = tables.entries, tables.tags
    where: list[Any] = []
    if selector.scope is not None:
        where.append(e.c.scope == selector.scope)
    if selector.model is not None:
        where.append(e.c.model == selector.model)
    if selector.namespace is not None:
        where.append(e.c.namespace == selector.namespace)
    if cutoff is not None:
        where.append(e.c.created_at <= cutoff)
    if selector.tags is not None:
        tagged = sa.select(t.c.key).where(t.c.tag.in_(sorted(selector.tags)))
        where.append(e.c.key.in_(tagged))
    return where


def invalidate_batch(
    tables: Tables, selector: Selector, cutoff: float | None, batch: int
) -> Plan[Batch]:
    """One batch (run it in a transaction); call again while ``found == batch``."""
    e, t = tables.entries, tables.tags
    where = criteria(tables, selector, cutoff)
    keys: list[bytes] = yield Step(sa.select(e.c.key).where(*where).limit(batch), None, "column")
    if not keys:
        return Batch(0, 0)
    keys = [bytes(k) for k in keys]  # psycopg returns memoryview for BYTEA
    removed = yield Step(sa.delete(e).where(e.c.key.in_(keys), *where), None, "rowcount")
    gone = ~sa.exists().where(e.c.key == t.c.key)
    yield Step(sa.delete(t).where(t.c.key.in_(keys), gone), None)
    return Batch(len(keys), int(removed))
