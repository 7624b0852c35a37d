"""A pooled server connection that dies is replaced without the caller noticing.

Idle connections are pinged before use; a busy one is not (that would cost a round trip per
lookup), so a dead busy connection fails once and the plan runs again on a fresh one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import drop_tables, with_query

from llmcache import Cache, CacheRequest
from llmcache.tiers.sql import SqlTier
from llmcache.tiers.sql_engine import PING_IDLE_AFTER, Plan, Step

REQ = CacheRequest(model="m", prompt="Who wrote Dune?", model_name="m")

KILL = {
    "mysql": (sa.select(sa.func.connection_id()), "KILL {}"),
    "postgresql": (sa.select(sa.func.pg_backend_pid()), "SELECT pg_terminate_backend({})"),
}


def _ask_plan(ask: sa.Select[Any]) -> Plan[Any]:
    row = yield Step(ask, {}, "first")
    return row[0]


@pytest.fixture(params=["mysql", "postgres"])
def server(
    request: pytest.FixtureRequest, table_prefix: str
) -> Iterator[tuple[Cache, Callable[[], None]]]:
    base = request.getfixturevalue(f"{request.param}_url")
    cache = Cache.from_urls([with_query(base, table_prefix=table_prefix)])
    tier = cache.tiers[0]
    assert isinstance(tier, SqlTier)
    killer = sa.create_engine(base, isolation_level="AUTOCOMMIT")

    def kill_pooled_connection() -> None:
        ask, kill = KILL[tier.engine.dialect.name]
        # Asked through the tier: the connection its next plan runs on (kept between plans).
        pid = tier._run(lambda: _ask_plan(ask), write=False)
        with killer.connect() as conn:
            conn.exec_driver_sql(kill.format(int(pid)))

    yield cache, kill_pooled_connection
    cache.close()
    killer.dispose()
    drop_tables(base, table_prefix)


def test_a_busy_connection_killed_by_the_server_is_replaced(
    server: tuple[Cache, Callable[[], None]],
) -> None:
    cache, kill_pooled_connection = server
    cache.set(REQ, "Frank Herbert")
    kill_pooled_connection()
    hit = cache.get(REQ)  # the dead connection fails, the lookup reruns on a fresh one
    assert hit is not None
    assert hit.entry.value == "Frank Herbert"
    assert cache.stats()["errors_by_tier"] == {}
    kill_pooled_connection()
    assert cache.set(REQ, "F. Herbert") is True
    assert cache.stats()["errors_by_tier"] == {}


def test_an_idle_connection_killed_by_the_server_is_pinged_and_replaced(
    server: tuple[Cache, Callable[[], None]],
) -> None:
    cache, kill_pooled_connection = server
    cache.set(REQ, "Frank Herbert")
    kill_pooled_connection()
    time.sleep(PING_IDLE_AFTER + 0.2)  # idle long enough to be pinged at checkout
    hit = cache.get(REQ)
    assert hit is not None
    assert hit.entry.value == "Frank Herbert"
    assert cache.stats()["errors_by_tier"] == {}


@pytest.mark.parametrize("server", ["postgres"], indirect=True)  # MySQL's async is threaded
async def test_async_lookups_recover_too(server: tuple[Cache, Callable[[], None]]) -> None:
    cache, _ = server
    await cache.aset(REQ, "Frank Herbert")
    tier = cache.tiers[0]
    assert isinstance(tier, SqlTier)
    assert tier.async_mode == "native"
    executor = tier._async_executor()
    async with executor.engine.connect() as conn:  # the async pool's connection
        pid = (await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar()
    sync = sa.create_engine(tier.target.url, isolation_level="AUTOCOMMIT")
    with sync.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
    sync.dispose()
    hit = await cache.aget(REQ)
    assert hit is not None
    assert hit.entry.value == "Frank Herbert"
    assert cache.stats()["errors_by_tier"] == {}
