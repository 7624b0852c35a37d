"""Write-behind on the server SQL tiers (``?write_behind=on``), against the real servers.

The contract suites (test_tier_contract.py, test_invalidate_contract.py) also run on these
tiers; here is what only write-behind promises: a store does not wait for the server, this
process is served what it queued, other processes see it once written, stores queued during a
commit share the next one, ``close()`` writes the queue, and a store failing in the background
is counted like any failed store. A lock held on the entries table from another connection
keeps the writer waiting for as long as a test needs, without sleeps.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import drop_tables, with_query

from llmcache import Cache, CacheRequest, FakeClock
from llmcache.tiers.sql import SqlTier


def req(prompt: str) -> CacheRequest:
    return CacheRequest(model="gpt-x", prompt=prompt, model_name="gpt-x")


@pytest.fixture(params=["mysql", "postgres"])
def base_url(request: pytest.FixtureRequest, table_prefix: str) -> Iterator[str]:
    """The server under the test's table prefix, without write-behind (``other`` readers)."""
    base = request.getfixturevalue(f"{request.param}_url")
    yield with_query(base, table_prefix=table_prefix)
    drop_tables(base, table_prefix)


def behind(url: str) -> str:
    return with_query(url, write_behind="on")


def entries_table(cache: Cache) -> tuple[sa.Engine, str]:
    tier = cache.tiers[0]
    assert isinstance(tier, SqlTier) and tier.write_behind is not None
    quoted = tier.engine.dialect.identifier_preparer.quote(tier.tables.entries.name)
    return tier.engine, quoted


@contextlib.contextmanager
def writes_blocked(cache: Cache) -> Iterator[None]:
    """Hold a lock on the entries table from another connection: the writer's next batch waits."""
    engine, table = entries_table(cache)
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("BEGIN")
            conn.exec_driver_sql(f"LOCK TABLE {table} IN EXCLUSIVE MODE")  # reads still pass
        else:
            conn.exec_driver_sql(f"LOCK TABLES {table} WRITE")
        yield
    finally:
        conn.exec_driver_sql("COMMIT" if engine.dialect.name == "postgresql" else "UNLOCK TABLES")
        conn.close()


def returns_within(seconds: float, call: Any) -> Any:
    """Run ``call`` in a thread; its result if it returned within ``seconds``, else fail."""
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(call()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "the store waited for the server"
    return result[0]


def test_a_store_does_not_wait_for_the_server_and_is_served_at_once(base_url: str) -> None:
    with (
        Cache.from_urls([behind(base_url)], fleet_stats=False) as cache,
        Cache.from_urls([base_url], fleet_stats=False) as other,
    ):
        with writes_blocked(cache):
            assert returns_within(5, lambda: cache.set(req("q"), "answer")) is True
            hit = cache.get(req("q"))  # this process reads its own store, from the queue
            assert hit is not None and hit.entry.value == "answer"
            assert cache.flush(timeout=0.3) is False  # not written yet: the table is locked
        assert cache.flush(timeout=10) is True
        hit = other.get(req("q"))  # another cache on the server: written and committed
        assert hit is not None and hit.entry.value == "answer"


async def test_an_async_store_does_not_wait_either(base_url: str) -> None:
    async with Cache.from_urls([behind(base_url)], fleet_stats=False) as cache:
        with writes_blocked(cache):
            assert await cache.aset(req("q"), "answer") is True
            hit = await cache.aget(req("q"))
            assert hit is not None and hit.entry.value == "answer"
        assert cache.flush(timeout=10) is True
    with Cache.from_urls([base_url], fleet_stats=False) as other:
        hit = other.get(req("q"))
        assert hit is not None and hit.entry.value == "answer"


def test_the_newest_store_of_a_key_wins(base_url: str) -> None:
    with Cache.from_urls([behind(base_url)], fleet_stats=False) as cache, writes_blocked(cache):
        for i in range(5):
            cache.set(req("q"), f"answer {i}")
        assert cache.get(req("q")).entry.value == "answer 4"  # type: ignore[union-attr]
    with Cache.from_urls([base_url], fleet_stats=False) as other:
        assert other.get(req("q")).entry.value == "answer 4"  # type: ignore[union-attr]


def test_stores_queued_during_a_commit_share_the_next_one(
    mysql_url: str, table_prefix: str
) -> None:
    url = with_query(mysql_url, table_prefix=table_prefix)
    try:
        with Cache.from_urls([behind(url)], fleet_stats=False) as cache:
            engine, _ = entries_table(cache)

            def commits() -> int:
                with engine.connect() as conn:
                    row = conn.exec_driver_sql("SHOW GLOBAL STATUS LIKE 'Com_commit'").one()
                    return int(row[1])

            before = commits()
            with writes_blocked(cache):
                for i in range(50):
                    assert cache.set(req(f"q{i}"), i) is True
            assert cache.flush(timeout=10)
            # 50 stores, written in at most a few transactions (without write-behind: 50).
            assert commits() - before <= 3
        with Cache.from_urls([url], fleet_stats=False) as other:
            assert [other.get(req(f"q{i}")).entry.value for i in range(50)] == list(range(50))  # type: ignore[union-attr]
    finally:
        drop_tables(mysql_url, table_prefix)


def test_a_batch_of_tagged_and_untagged_stores_is_written_whole(base_url: str) -> None:
    # The writer upserts a batch's untagged entries in one executemany and each tagged one
    # with its tag rows: every entry arrives, and the tags still select exactly theirs.
    with Cache.from_urls([behind(base_url)], fleet_stats=False) as cache:
        with writes_blocked(cache):  # everything below waits for one batch
            for i in range(30):
                tags = ("even",) if i % 2 == 0 else ()
                request = CacheRequest(model="gpt-x", prompt=f"q{i}", model_name="gpt-x", tags=tags)
                assert cache.set(request, f"answer {i}") is True
        assert cache.flush(timeout=10) is True
    with Cache.from_urls([base_url], fleet_stats=False) as other:
        values = [other.get(req(f"q{i}")) for i in range(30)]
        assert [hit.entry.value if hit else None for hit in values] == [
            f"answer {i}" for i in range(30)
        ]
        assert other.invalidate(tags=["even"]) == 15
        left = [i for i in range(30) if other.get(req(f"q{i}")) is not None]
        assert left == list(range(1, 30, 2))


def test_close_writes_what_is_queued(base_url: str) -> None:
    cache = Cache.from_urls([behind(base_url)], fleet_stats=False)
    for i in range(20):
        cache.set(req(f"q{i}"), i)
    cache.close()
    with Cache.from_urls([base_url], fleet_stats=False) as other:
        assert [other.get(req(f"q{i}")).entry.value for i in range(20)] == list(range(20))  # type: ignore[union-attr]


def test_a_multiprocessing_child_writes_what_it_queued_when_it_ends(base_url: str) -> None:
    """A cache used before a fork, then by a ``multiprocessing`` child (a ``Process`` whose
    target returns, a ``Pool`` worker closed and joined): the child ends through
    ``os._exit``, which runs no ``atexit`` handler; what it queued is written anyway, as at an
    interpreter's exit, instead of being lost with the child."""
    cache = Cache.from_urls([behind(base_url)], fleet_stats=False)
    cache.set(req("before the fork"), 0)
    cache.flush(timeout=None)
    ctx = multiprocessing.get_context("fork")
    stored = ctx.Event()

    def child() -> None:
        for i in range(5):
            cache.set(req(f"child {i}"), i)
        stored.set()  # queued; the writer waits for the lock the parent holds

    with writes_blocked(cache):
        worker = ctx.Process(target=child)
        worker.start()
        assert stored.wait(10)
    worker.join(30)
    assert worker.exitcode == 0
    with Cache.from_urls([base_url], fleet_stats=False) as other:
        assert [other.get(req(f"child {i}")).entry.value for i in range(5)] == list(range(5))  # type: ignore[union-attr]
    cache.close()


@contextlib.contextmanager
def inserts_refused(cache: Cache) -> Iterator[None]:
    """A CHECK constraint no row satisfies: every store fails on the server (not retried)."""
    engine, table = entries_table(cache)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM {table}")
        conn.exec_driver_sql(
            f"ALTER TABLE {table} ADD CONSTRAINT llmcache_no CHECK (created_at < 0)"
        )
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"ALTER TABLE {table} DROP CONSTRAINT llmcache_no")


def test_a_store_failing_in_the_background_is_counted_and_stores_then_say_so(
    base_url: str,
) -> None:
    monotonic = FakeClock(start=100.0)
    with Cache.from_urls([behind(base_url)], fleet_stats=False, monotonic=monotonic) as cache:
        name = cache.tiers[0].name
        with inserts_refused(cache):
            assert cache.set(req("a"), "a") is True  # queued: the failure comes later
            assert cache.flush(timeout=10)
            assert cache.stats()["errors_by_tier"] == {name: 1}
            assert cache.get(req("a")) is None  # a store that failed is never served
            monotonic.advance(60)  # past the breaker's cool-down
            assert cache.set(req("b"), "b") is False  # now stored synchronously: it says so
        monotonic.advance(60)
        assert cache.set(req("c"), "c") is True  # the server takes stores again
        with writes_blocked(cache):  # and they are queued again, not waited for
            assert returns_within(5, lambda: cache.set(req("d"), "d")) is True
    with Cache.from_urls([base_url], fleet_stats=False) as other:
        assert other.get(req("a")) is None and other.get(req("b")) is None
        assert other.get(req("c")).entry.value == "c"  # type: ignore[union-attr]
        assert other.get(req("d")).entry.value == "d"  # type: ignore[union-attr]
