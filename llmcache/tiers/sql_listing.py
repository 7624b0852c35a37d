"""The SQL tier's listing: one page of the rows a ``Selector`` matches, by keyset pagination.

Rows come in primary-key order, ``key > :after`` (the last key of the page before), so each
page is one index range scan of at most ``limit`` rows, however large the table, and an entry
stored or removed meanwhile never shifts the pages (no OFFSET). The criteria are the
invalidation's (``sql_invalidate.criteria``: digests only, tags through the tags table), plus
"not expired by ``now``"; ``older_than`` is not a listing criterion.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from llmcache.keys import CacheKey
from llmcache.tiers.listing import Listed, ListPage
from llmcache.tiers.selector import Selector
from llmcache.tiers.sql_engine import Plan, Step
from llmcache.tiers.sql_invalidate import criteria
from llmcache.tiers.sql_schema import Tables, read_row


def list_page_plan(
    tables: Tables, selector: Selector, now: float, after: bytes | None, limit: int
) -> Plan[ListPage]:
    e = tables.entries
    where: list[Any] = criteria(tables, selector._replace(older_than=None), None)
    where.append(sa.or_(e.c.expires_at.is_(None), e.c.expires_at > now))
    if after is not None:
        where.append(e.c.key > after)
    columns = (e.c.key, e.c.scope, e.c.model, e.c.namespace, e.c.expires_at, e.c.value)
    query = sa.select(*columns).where(*where).order_by(e.c.key).limit(limit)
    rows = yield Step(query, None, "rows")
    items = [
        # bytes(): psycopg returns memoryview for BYTEA
        Listed(CacheKey(bytes(k), bytes(s), bytes(m), bytes(n)), *read_row(value, expires))
        for k, s, m, n, expires, value in rows
    ]
    return ListPage(items, items[-1].key.digest if len(items) == limit else None)
