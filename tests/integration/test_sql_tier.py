"""SQL-tier specifics: URLs, schema and migrations, concurrency, processes, purge, faults.

Everything runs on real SQLite files and the real MariaDB and PostgreSQL servers. Faults are
real too: a closed port, a file of garbage bytes, a full database (max_page_count), a write
lock held by another connection, a table dropped under a running tier.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import drop_tables, exact_ttl, with_query

from llmcache import (
    Cache,
    CachePolicy,
    CacheRequest,
    ConfigError,
    FakeClock,
    SchemaVersionError,
    Scope,
)
from llmcache.entry import CacheEntry, encode
from llmcache.keys import CacheKey, label_digest, request_key
from llmcache.tiers import tier_from_url
from llmcache.tiers.sql import SqlTier
from llmcache.tiers.sql_engine import create_sync_engine
from llmcache.tiers.sql_schema import MIGRATIONS, Migration, Tables, build_tables, ensure_schema
from llmcache.tiers.sql_url import parse_sql_url

#: The schema version this llmcache writes; the probe migrations below come after it.
LATEST = MIGRATIONS[-1].version

REQ = CacheRequest(model="gpt-x", prompt="What is 2+2?", model_name="gpt-x")
SQL_KINDS = ["sqlite", "mysql", "postgres"]


def request(prompt: str, **scope: Any) -> CacheRequest:
    return CacheRequest(model="gpt-x", prompt=prompt, scope=Scope.of(**scope))


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(params=SQL_KINDS)
def sql_base(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A database URL without llmcache options: a fresh SQLite file or a real server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/cache.db"
    return str(request.getfixturevalue("mysql_url" if request.param == "mysql" else "postgres_url"))


@pytest.fixture
def sql_url(sql_base: str, table_prefix: str) -> Iterator[str]:
    """``sql_base`` with a private table prefix; every table starting with it is dropped.

    Stores are synchronous here (``write_behind=off``) because these tests count rows on disk
    right after a store; write-behind, the servers' default, has test_sql_write_behind.py, and
    the contract suites run the servers both ways."""
    yield with_query(sql_base, table_prefix=table_prefix, write_behind="off")
    drop_tables(sql_base, table_prefix)


def rows(url: str, table: str) -> int:
    engine = sa.create_engine(parse_sql_url(url).url)
    try:
        with engine.connect() as conn:
            quoted = engine.dialect.identifier_preparer.quote(table)
            return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {quoted}")).scalar_one())
    finally:
        engine.dispose()


def sql_tier(url: str, **kwargs: Any) -> SqlTier:
    return SqlTier(parse_sql_url(url), **kwargs)


def failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]


# ---------------------------------------------------------------------------- URLs
@pytest.mark.parametrize(
    ("url", "name", "driver"),
    [
        ("sqlite:///x.db", "sqlite", "sqlite+pysqlite"),
        ("mysql://u@h/db", "mysql", "mysql+pymysql"),
        ("mysql+pymysql://u@h:3306/db", "mysql", "mysql+pymysql"),
        ("mariadb://u@h/db", "mysql", "mysql+pymysql"),
        ("mariadb+pymysql://u@h/db", "mysql", "mysql+pymysql"),
        ("postgresql://u@h/db", "postgresql", "postgresql+psycopg"),
        ("postgres://u@h/db", "postgresql", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h:5432/db", "postgresql", "postgresql+psycopg"),
    ],
)
def test_url_schemes_map_to_one_driver_each(url: str, name: str, driver: str) -> None:
    target = parse_sql_url(url)
    assert (target.name, target.url.drivername) == (name, driver)
    assert target.table_prefix == "llmcache" and target.ttl is None


@pytest.mark.parametrize(
    ("url", "queued"),
    [
        ("sqlite:///x.db", False),  # a WAL commit without fsync: nothing to gain
        ("mysql://u@h/db", True),  # a commit waits for a log flush to disk
        ("postgresql://u@h/db", True),
        ("sqlite:///x.db?write_behind=on", True),
        ("mysql://u@h/db?write_behind=off", False),
        ("postgresql://u@h/db?write_behind=OFF", False),
    ],
)
def test_server_tiers_write_behind_by_default_and_a_url_says_otherwise(
    url: str, queued: bool
) -> None:
    target = parse_sql_url(url)
    assert target.write_behind is queued
    assert "write_behind" not in target.url.query


def test_an_sqlite_file_in_a_missing_directory_is_refused_when_the_cache_is_built(
    tmp_path: Path,
) -> None:
    # SQLite would fail every call (failing open: no caching, one logged error per outage);
    # a typo in a path is a configuration error, named at once, and no directory is created.
    missing = tmp_path / "no-such-dir"
    with pytest.raises(ConfigError, match=r"directory .*no-such-dir does not exist"):
        Cache.from_urls(["memory://", f"sqlite:///{missing}/cache.db"])
    assert not missing.exists()
    with pytest.raises(ConfigError, match=r"is a directory; name a database file in it"):
        Cache.from_urls([f"sqlite:///{tmp_path}"])
    # A file in an existing directory, a relative path, :memory: and SQLite URIs are opened.
    with Cache.from_urls([f"sqlite:///{tmp_path}/cache.db"]) as cache:
        request = CacheRequest(model="m", prompt="kept")
        assert cache.set(request, {"answer": 1})
        assert cache.get(request) is not None
    Cache.from_urls(["sqlite:///:memory:"]).close()
    Cache.from_urls([f"sqlite:///file:{tmp_path}/uri.db?uri=true"]).close()


def test_a_missing_directory_names_what_was_probably_meant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where ./tmp does not exist, and /tmp does
    with pytest.raises(ConfigError, match=r"four slashes: sqlite:////tmp/cache\.db"):
        Cache.from_urls(["sqlite:///tmp/cache.db"])
    with pytest.raises(ConfigError, match=r"SQLite does not expand ~"):
        Cache.from_urls(["sqlite:///~/cache.db"])
    with pytest.raises(ConfigError, match=r"in an existing directory$"):  # no guess to offer
        Cache.from_urls(["sqlite:///no-such-dir-anywhere/cache.db"])


@pytest.mark.parametrize("option", ["table_prefix", "ttl", "write_behind"])
def test_an_option_without_a_value_is_refused_not_replaced_by_the_default(option: str) -> None:
    # SQLAlchemy drops a query option without a value: the default was used in silence.
    with pytest.raises(ConfigError, match=f"option '{option}' in .* has no value"):
        parse_sql_url(f"mysql+pymysql://root@127.0.0.1/test?{option}=&charset=utf8mb4")


def test_a_misspelt_sqlite_option_is_refused(tmp_path: Path) -> None:
    # SQLAlchemy only warns and drops it: the entries went to the default tables.
    with pytest.raises(ConfigError, match="unknown option 'tabel_prefix'"):
        Cache.from_urls([f"sqlite:///{tmp_path}/c.db?tabel_prefix=app2"])
    Cache.from_urls([f"sqlite:///{tmp_path}/c.db?timeout=5&table_prefix=app2"]).close()


def test_a_misspelt_driver_option_is_named_when_the_cache_is_built(
    mysql_url: str, postgres_url: str
) -> None:
    # pymysql raised a bare TypeError from the constructor; psycopg's refusal was taken for a
    # server that is down: a tier built, that then never worked.
    for url, says in (
        (with_query(mysql_url, conect_timeout="5"), "unexpected keyword argument 'conect_timeout'"),
        (with_query(mysql_url, charset="nosuch"), "refused the URL's options"),
        (
            with_query(postgres_url, conect_timeout="5"),
            'invalid connection option "conect_timeout"',
        ),
    ):
        with pytest.raises(ConfigError, match=says):
            Cache.from_urls([url])


def test_llmcache_options_are_removed_and_driver_options_kept() -> None:
    target = parse_sql_url("mysql://u:pw@h/db?table_prefix=app_cache&ttl=90&charset=utf8mb4")
    assert (target.table_prefix, target.ttl) == ("app_cache", 90.0)
    assert dict(target.url.query) == {"charset": "utf8mb4"}


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://root:s3cret@h/db?table_prefix=1abc", "table_prefix"),
        ("mysql://root:s3cret@h/db?table_prefix=a-b", "table_prefix"),
        ("mysql://root:s3cret@h/db?table_prefix=" + "a" * 42, "table_prefix"),
        ("mysql://root:s3cret@h/db?table_prefix=a;drop", "table_prefix"),
        ("mysql://root:s3cret@h/db?ttl=soon", "ttl"),
        ("mysql://root:s3cret@h/db?ttl=0", "ttl=0 would store nothing"),
        ("mysql://root:s3cret@h/db?ttl=-5", "positive"),
        ("mysql://root:s3cret@h/db?ttl=inf", "positive"),
        ("mysql://root:s3cret@h/db?ttl=1&ttl=2", "twice"),
        ("mysql://root:s3cret@h/db?write_behind=yes", "write_behind='yes'"),
        ("mysql+mysqldb://root:s3cret@h/db", "unsupported driver"),
        ("postgresql+psycopg2://root:s3cret@h/db", "unsupported driver"),
        ("mysql://root:s3cret@h", "names no database"),
        ("mysql://root:s3cret@h:notaport/db", "cannot parse"),
    ],
)
def test_bad_urls_say_what_is_wrong_without_the_password(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        tier_from_url(url)
    message = str(info.value)
    assert says in message
    assert "s3cret" not in message and "\n" not in message


def test_a_valid_prefix_of_41_characters_is_accepted(tmp_path: Any) -> None:
    prefix = "p" + "_9" * 20
    tier = tier_from_url(f"sqlite:///{tmp_path}/c.db?table_prefix={prefix}")
    assert isinstance(tier, SqlTier) and tier.tables.entries.name == f"{prefix}_entries"
    tier.close()


# ---------------------------------------------------------------------------- schema
def test_schema_tables_types_indexes_and_version(sql_url: str) -> None:
    tier = sql_tier(sql_url)
    prefix = tier.target.table_prefix
    try:
        with tier.engine.connect() as conn:
            inspector = sa.inspect(conn)
            names = set(inspector.get_table_names())
            assert {f"{prefix}_entries", f"{prefix}_tags", f"{prefix}_meta"} <= names
            columns = {c["name"]: c for c in inspector.get_columns(f"{prefix}_entries")}
            assert columns["expires_at"]["nullable"] is True
            kind = tier.engine.dialect.name
            value_type = str(columns["value"]["type"]).upper()
            key_type = str(columns["key"]["type"]).upper()
            if kind == "mysql":
                assert value_type == "LONGBLOB" and key_type == "BINARY(32)"
            elif kind == "postgresql":
                assert value_type == key_type == "BYTEA"
            else:
                assert value_type == key_type == "BLOB"
            assert inspector.get_pk_constraint(f"{prefix}_entries")["constrained_columns"] == [
                "key"
            ]
            assert set(inspector.get_pk_constraint(f"{prefix}_tags")["constrained_columns"]) == {
                "tag",
                "key",
            }
            indexed = {tuple(i["column_names"]) for i in inspector.get_indexes(f"{prefix}_entries")}
            assert {("expires_at",), ("scope",), ("model",), ("namespace",)} <= indexed
            assert ("created_at",) in indexed
            version = conn.execute(
                sa.text(f"SELECT value FROM {prefix}_meta WHERE name = 'schema_version'")
            ).scalar_one()
            assert version == str(LATEST)
    finally:
        tier.close()


def test_keys_are_compared_as_bytes(sql_url: str) -> None:
    """MariaDB's default collation ignores case and trailing spaces in text columns."""
    tier = sql_tier(sql_url)
    entry = CacheEntry("v", 1.0)
    scope = label_digest("tag", "s")
    digests = [b"A" * 32, b"a" * 32, b"x" * 31 + b" ", b"x" * 31 + b"\x00", b"x" * 31 + b"\t"]
    try:
        for i, digest in enumerate(digests):
            entry = CacheEntry(f"v{i}", 1.0)
            tier.set(CacheKey(digest, scope, scope, scope), entry, encode(entry), 1.0)
        for i, digest in enumerate(digests):
            found = tier.get(CacheKey(digest, scope, scope, scope), 1.0)
            assert isinstance(found, bytes) and f'"v{i}"'.encode() in found
        assert rows(sql_url, f"{tier.target.table_prefix}_entries") == len(digests)
    finally:
        tier.close()


def _v2_probe(prefix: str) -> sa.Table:
    return sa.Table(
        f"{prefix}_v2probe", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True)
    )


def _add_v2(conn: sa.Connection, tables: Tables) -> None:
    _v2_probe(tables.prefix).create(conn, checkfirst=True)


V2 = (*MIGRATIONS, Migration(LATEST + 1, "test-only: a probe table", _add_v2))


def test_an_older_store_is_migrated_and_keeps_its_entries(sql_url: str) -> None:
    with Cache([sql_tier(sql_url)]) as v1:  # a real version-1 store, with an entry in it
        v1.set(REQ, "kept across the migration")
    tier = sql_tier(sql_url, migrations=V2)
    prefix = tier.target.table_prefix
    with Cache([tier]) as v2:
        hit = v2.get(REQ)
        assert hit is not None and hit.entry.value == "kept across the migration"
        with tier.engine.connect() as conn:
            assert sa.inspect(conn).has_table(f"{prefix}_v2probe")
            version = conn.execute(
                sa.text(f"SELECT value FROM {prefix}_meta WHERE name = 'schema_version'")
            ).scalar_one()
        assert version == str(LATEST + 1)
    # Opening a migrated store again is a no-op (and the probe step is not re-run).
    sql_tier(sql_url, migrations=V2).close()


def test_a_newer_store_is_refused_naming_both_versions_and_the_fix(sql_url: str) -> None:
    sql_tier(sql_url, migrations=V2).close()
    with pytest.raises(SchemaVersionError) as info:
        Cache.from_urls([sql_url])
    message = str(info.value)
    assert f"version {LATEST + 1}" in message and f"version {LATEST}" in message
    assert "upgrade llmcache" in message and "table_prefix" in message


@pytest.mark.parametrize("sql_base", ["sqlite", "postgres"], indirect=True)
def test_a_failing_migration_is_rolled_back(sql_url: str) -> None:
    """SQLite and PostgreSQL run DDL in transactions (MySQL commits each DDL statement)."""
    sql_tier(sql_url).close()

    def broken(conn: sa.Connection, tables: Tables) -> None:
        _add_v2(conn, tables)
        raise RuntimeError("migration bug")

    with pytest.raises(RuntimeError, match="migration bug"):
        sql_tier(sql_url, migrations=(*MIGRATIONS, Migration(LATEST + 1, "broken", broken)))
    tier = sql_tier(sql_url)  # still a version-1 store: v1 code opens it fine
    prefix = tier.target.table_prefix
    with tier.engine.connect() as conn:
        assert not sa.inspect(conn).has_table(f"{prefix}_v2probe")
    tier.close()


# ---------------------------------------------------------------------------- concurrency
async def test_32_concurrent_asets_on_one_key(sql_url: str) -> None:
    tagged = CacheRequest(model="gpt-x", prompt="same key", tags=("faq", "hot"))
    values = {f"answer {i}" for i in range(32)}
    async with Cache.from_urls([sql_url]) as cache:
        results = await asyncio.gather(*(cache.aset(tagged, v) for v in sorted(values)))
        assert results == [True] * 32
        assert cache.stats()["errors_by_tier"] == {}
        hit = await cache.aget(tagged)
        assert hit is not None and hit.entry.value in values
        assert set(hit.entry.tags) == {"faq", "hot"}
    prefix = parse_sql_url(sql_url).table_prefix
    assert rows(sql_url, f"{prefix}_entries") == 1
    assert rows(sql_url, f"{prefix}_tags") == 2


def test_32_threads_setting_one_key(sql_url: str) -> None:
    values = [f"answer {i}" for i in range(32)]
    with Cache.from_urls([sql_url]) as cache, ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda v: cache.set(REQ, v), values))
        reads = list(pool.map(lambda _: cache.get(REQ), range(32)))
        assert results == [True] * 32
        assert cache.stats()["errors_by_tier"] == {}
        assert all(hit is not None and hit.entry.value in values for hit in reads)


def _process_worker(url: str, worker: int, count: int, start: Any) -> int:
    """Runs in its own process: opens the (maybe not yet created) store, writes and reads."""
    start.wait(60)
    errors = 0
    with Cache.from_urls([url]) as cache:
        for i in range(count):
            req = request(f"proc {worker} item {i}", user=f"w{worker}")
            if not cache.set(req, {"worker": worker, "i": i}):
                errors += 1
            hit = cache.get(req)
            if hit is None or hit.entry.value != {"worker": worker, "i": i}:
                errors += 1
        errors += sum(cache.stats()["errors_by_tier"].values())
    return errors


def test_several_processes_share_one_fresh_sqlite_file(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    procs, count = 4, 150
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(procs) as pool:  # exiting terminates stragglers
        start = manager.Barrier(procs)
        jobs = pool.starmap_async(_process_worker, [(url, w, count, start) for w in range(procs)])
        errors = jobs.get(timeout=120)
    assert errors == [0] * procs
    with Cache.from_urls([url]) as cache:
        for w in range(procs):
            for i in range(count):
                hit = cache.get(request(f"proc {w} item {i}", user=f"w{w}"))
                assert hit is not None and hit.entry.value == {"worker": w, "i": i}
    assert rows(url, "llmcache_entries") == procs * count


def test_sqlite_file_settings(tmp_path: Any) -> None:
    tier = sql_tier(f"sqlite:///{tmp_path}/c.db")
    conn = tier.engine.raw_connection()
    try:
        cursor = conn.cursor()
        assert cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert cursor.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert cursor.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        assert cursor.execute("PRAGMA foreign_keys").fetchone()[0] == 0
    finally:
        conn.close()
        tier.close()


async def test_sqlite_in_memory_works_across_threads_and_tasks() -> None:
    async with Cache.from_urls(["sqlite:///:memory:"]) as cache:
        with ThreadPoolExecutor(8) as pool:
            assert all(pool.map(lambda i: cache.set(request(f"q{i}"), i), range(40)))
        await asyncio.gather(*(cache.aset(request(f"a{i}"), i) for i in range(20)))
        assert [cache.get(request(f"q{i}")).entry.value for i in range(40)] == list(range(40))  # type: ignore[union-attr]
        hits = await asyncio.gather(*(cache.aget(request(f"a{i}")) for i in range(20)))
        assert [h.entry.value for h in hits] == list(range(20))  # type: ignore[union-attr]
        assert cache.stats()["errors_by_tier"] == {}


def test_postgres_async_is_native(postgres_url: str, table_prefix: str) -> None:
    tier = tier_from_url(with_query(postgres_url, table_prefix=table_prefix))
    try:
        assert isinstance(tier, SqlTier) and tier.async_mode == "native"
    finally:
        tier.close()
        drop_tables(postgres_url, table_prefix)


# ---------------------------------------------------------------------------- purge
def test_expired_rows_are_purged_in_bounded_batches_on_writes_only(
    sql_url: str, fake_clock: FakeClock
) -> None:
    tier = sql_tier(sql_url, purge_every=4, purge_batch=5, purge_interval=10_000)
    prefix = tier.target.table_prefix
    entries, tags = f"{prefix}_entries", f"{prefix}_tags"
    with Cache([tier], clock=fake_clock, policy=exact_ttl()) as cache:
        for i in range(12):
            cache.set(CacheRequest(model="m", prompt=f"old {i}", tags=("t",)), i, ttl=10)
        fake_clock.advance(11)
        assert rows(sql_url, entries) == 12
        for i in range(12):  # reads never purge, and never return an expired row
            assert cache.get(CacheRequest(model="m", prompt=f"old {i}", tags=("t",))) is None
        assert rows(sql_url, entries) == 12
        expired_left = []
        for i in range(6):
            cache.set(request(f"new {i}"), i)  # no TTL: never purged
            expired_left.append(rows(sql_url, entries) - (i + 1))
        # The 13th write is due (every 4th) and purges one batch of 5; a full batch means
        # more may wait, so the next write purges again (5), then the last 2; then none left.
        assert expired_left == [7, 2, 0, 0, 0, 0]
        assert rows(sql_url, tags) == 0  # the purged entries' tags went with them


def test_purge_is_also_due_after_an_interval(sql_url: str, fake_clock: FakeClock) -> None:
    tier = sql_tier(sql_url, purge_every=1_000_000, purge_interval=60)
    entries = f"{tier.target.table_prefix}_entries"
    with Cache([tier], clock=fake_clock, policy=exact_ttl()) as cache:
        cache.set(request("a"), 1, ttl=5)  # the first write purges (nothing yet)
        cache.set(request("b"), 2, ttl=5)
        fake_clock.advance(30)
        cache.set(request("c"), 3)
        assert rows(sql_url, entries) == 3  # expired, but no purge due yet
        fake_clock.advance(31)
        cache.set(request("d"), 4)
        assert rows(sql_url, entries) == 2


def test_purge_finds_expired_rows_through_the_index(tmp_path: Any) -> None:
    tier = sql_tier(f"sqlite:///{tmp_path}/c.db")
    statement = tier._sql.expired_keys.params(now=1.0)  # the very statement purges run
    sql = statement.compile(dialect=tier.engine.dialect, compile_kwargs={"literal_binds": True})
    conn = tier.engine.raw_connection()
    try:
        plan = conn.cursor().execute(f"EXPLAIN QUERY PLAN {sql}")
        detail = " ".join(str(row[-1]) for row in plan.fetchall())
    finally:
        conn.close()
        tier.close()
    assert "USING" in detail and "INDEX llmcache_entries_expires" in detail, detail
    assert "SCAN llmcache_entries" not in detail.replace("USING", ""), detail


# ---------------------------------------------------------------------------- clear
def test_clear_touches_only_our_tables_and_prefix(sql_base: str, table_prefix: str) -> None:
    ours = with_query(sql_base, table_prefix=table_prefix)
    neighbour = with_query(sql_base, table_prefix=table_prefix + "b")
    foreign = f"{table_prefix}appnotes"  # someone else's table in the same database
    engine = sa.create_engine(parse_sql_url(ours).url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE TABLE {foreign} (id INTEGER PRIMARY KEY, note TEXT)"))
            conn.execute(sa.text(f"INSERT INTO {foreign} VALUES (1, 'keep'), (2, 'me')"))
        with Cache.from_urls([ours]) as a, Cache.from_urls([neighbour]) as b:
            for i in range(3):
                a.set(request(f"q{i}", user="alice"), i)
                b.set(request(f"q{i}", user="alice"), i)
            assert a.clear(scope=Scope.of(user="bob")) == 0
            assert a.clear() == 3
            assert a.get(request("q0", user="alice")) is None
            hit = b.get(request("q0", user="alice"))
            assert hit is not None and hit.entry.value == 0
            assert b.clear(scope=Scope.of(user="alice")) == 3
        assert rows(ours, foreign) == 2
    finally:
        engine.dispose()
        drop_tables(sql_base, table_prefix)


# ---------------------------------------------------------------------------- faults
def _monotonic() -> FakeClock:
    return FakeClock(start=100.0)


@pytest.mark.parametrize(
    "url",
    [
        "mysql+pymysql://root:s3cret@127.0.0.1:1/test",
        "mariadb://root:s3cret@127.0.0.1:1/test",
        "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/test",
        "mysql+pymysql://root:s3cret@127.0.0.1:1/test?write_behind=on",
        "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/test?write_behind=on",
    ],
)
async def test_a_server_at_a_closed_port_fails_open(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    monotonic = _monotonic()
    caplog.set_level(logging.WARNING, logger="llmcache")
    cache = Cache.from_urls([url], monotonic=monotonic)  # construction does not fail
    name = cache.tiers[0].name
    for _ in range(3):
        assert cache.get(REQ) is None
        assert cache.set(REQ, "v") is False
        assert await cache.aget(REQ) is None
        assert await cache.aset(REQ, "v") is False
        monotonic.advance(10)  # past the breaker's cool-down: the next call probes again
    stats = cache.stats()
    assert stats["errors_by_tier"][name] >= 3
    assert len(failures(caplog)) == 1, failures(caplog)  # once per outage, not per call
    assert "s3cret" not in caplog.text
    assert "is the server running" in failures(caplog)[0]
    await cache.aclose()


def test_a_corrupt_sqlite_file_fails_open(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(os.urandom(64 * 1024))
    caplog.set_level(logging.WARNING, logger="llmcache")
    monotonic = _monotonic()
    with Cache.from_urls([f"sqlite:///{path}"], monotonic=monotonic) as cache:
        for _ in range(3):
            assert cache.get(REQ) is None
            assert cache.set(REQ, "v") is False
            monotonic.advance(10)
        assert cache.stats()["errors_by_tier"]["sqlite"] >= 3
    assert len(failures(caplog)) == 1
    assert "not a database" in failures(caplog)[0]


def test_a_full_sqlite_file_fails_open_without_logging_prompts(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    tier = sql_tier(f"sqlite:///{tmp_path}/full.db")

    @sa.event.listens_for(tier.engine, "connect")
    def _limit(dbapi_conn: Any, _record: Any) -> None:
        pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages + 20}")

    tier.engine.dispose()  # new connections get the limit
    caplog.set_level(logging.WARNING, logger="llmcache")
    monotonic = _monotonic()
    with Cache([tier], monotonic=monotonic) as cache:
        assert cache.set(REQ, "small answer") is True
        big = "secret-value " * 3000  # ~40 KB: the file has room for about two
        stored = [cache.set(request(f"secret-prompt-{i}"), big) for i in range(6)]
        assert stored[0] is True and False in stored
        # Only the write breaker opened: reads of what was stored go on at once.
        hit = cache.get(REQ)
        assert hit is not None and hit.entry.value == "small answer"
        assert len(failures(caplog)) == 1
        assert "full" in failures(caplog)[0]
        assert cache.health()["tiers"]["sqlite"]["writes"] == "open"
        assert cache.health()["tiers"]["sqlite"]["reads"] == "closed"
    assert "secret" not in caplog.text


def test_a_locked_sqlite_file_fails_open_then_recovers(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    path = f"{tmp_path}/locked.db"
    url = f"sqlite:///{path}?timeout=0.2"
    caplog.set_level(logging.WARNING, logger="llmcache")
    monotonic = _monotonic()
    with Cache.from_urls([url], monotonic=monotonic) as cache:
        assert cache.set(REQ, "before") is True
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another connection holds the write lock
        holder.execute("DELETE FROM llmcache_meta WHERE name = 'nothing'")
        try:
            assert cache.set(request("during"), "x") is False
            assert cache.set(request("during 2"), "x") is False  # breaker open: skipped
            assert cache.stats()["errors_by_tier"] == {"sqlite": 1}
            monotonic.advance(10)
            hit = cache.get(REQ)  # WAL: reads are not blocked by the writer
            assert hit is not None and hit.entry.value == "before"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert cache.set(request("after"), "y") is True
        hit = cache.get(request("after"))
        assert hit is not None and hit.entry.value == "y"
    assert len(failures(caplog)) == 1
    assert "locked" in failures(caplog)[0]


def test_a_corrupt_row_is_a_miss_and_is_deleted(sql_url: str) -> None:
    prefix = parse_sql_url(sql_url).table_prefix
    with Cache.from_urls([sql_url]) as cache:
        cache.set(REQ, "good")
        cache.set(request("neighbour"), "fine")
        engine = sa.create_engine(parse_sql_url(sql_url).url)
        key = engine.dialect.identifier_preparer.quote("key")
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.text(f"UPDATE {prefix}_entries SET value = :junk WHERE {key} = :k"),
                    {"junk": b"\x00\xffnot json{", "k": request_key(REQ).digest},
                )
        finally:
            engine.dispose()
        assert cache.get(REQ) is None
        assert cache.stats()["decode_errors"] == 1
        assert rows(sql_url, f"{prefix}_entries") == 1
        hit = cache.get(request("neighbour"))
        assert hit is not None and hit.entry.value == "fine"


@pytest.mark.parametrize(
    ("column", "junk"),
    [
        ("value", "not an entry"),  # SQLite keeps text in a BLOB column
        ("value", 42),
        ("value", 4.2),
        ("expires_at", "tomorrow"),  # and text in a REAL one
        ("expires_at", b"\x00"),
    ],
)
def test_a_row_another_tool_wrote_in_sqlite_is_a_miss_and_is_deleted(
    tmp_path: Path, column: str, junk: object
) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with Cache.from_urls([url]) as cache:
        cache.set(REQ, "good")
        cache.set(request("neighbour"), "fine")
        with sqlite3.connect(tmp_path / "c.db") as conn:
            conn.execute(
                f"UPDATE llmcache_entries SET {column} = ? WHERE key = ?",
                (junk, request_key(REQ).digest),
            )
        conn.close()
        listed = {s.entry.value if s.entry else None for s in cache.entries()}
        assert listed == {"fine", None}  # listed as unreadable, not an exception
        assert cache.get(REQ) is None  # not an exception in the user's call
        stats = cache.stats()
        assert stats["decode_errors"] == 1
        assert stats["errors_by_tier"] == {}  # the tier did not fail, for anyone
        hit = cache.get(request("neighbour"))
        assert hit is not None and hit.entry.value == "fine"
        cache.set(REQ, "again")  # the row is gone: stored anew, and served
        hit = cache.get(REQ)
        assert hit is not None and hit.entry.value == "again"
    assert rows(url, "llmcache_entries") == 2


def test_an_entry_another_tool_rewrote_as_text_in_sqlite_is_still_served(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with Cache.from_urls([url]) as cache:
        cache.set(REQ, "good")
        with sqlite3.connect(tmp_path / "c.db") as conn:
            conn.execute("UPDATE llmcache_entries SET value = CAST(value AS TEXT)")
        conn.close()
        hit = cache.get(REQ)
        assert hit is not None and hit.entry.value == "good"


async def test_statement_errors_never_log_parameters(
    sql_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLAlchemy puts the SQL parameters (our prompts and answers) in str(error)."""
    caplog.set_level(logging.WARNING, logger="llmcache")
    prefix = parse_sql_url(sql_url).table_prefix
    monotonic = _monotonic()
    async with Cache.from_urls([sql_url], monotonic=monotonic) as cache:
        assert await cache.aset(request("warm-up"), "ok") is True
        drop_tables(sql_url.split("?")[0], f"{prefix}_entries")  # the table vanishes
        # The marker has letters no hex digest or random table prefix holds: "4242" once
        # failed this test by appearing in the prefix itself (t94242bae31).
        secret = request("secret-prompt-quokka")
        assert await cache.aset(secret, "secret-answer-quokka") is False
        monotonic.advance(10)
        assert cache.set(secret, "secret-answer-quokka") is False
        assert await cache.aget(secret) is None
    assert failures(caplog), "the failure is logged"
    assert "quokka" not in caplog.text


def test_many_openers_of_a_fresh_store_at_once(sql_url: str) -> None:
    """Schema creation is race-safe: each opener gets a ready store, none an error.

    ``ensure_schema`` is called directly: through a Cache, an opener that lost the race would
    only fail open and retry on first use, which would hide the race.
    """
    openers = 6
    target = parse_sql_url(sql_url)
    tables = build_tables(target.table_prefix)
    engines = [create_sync_engine(target) for _ in range(openers)]
    barrier = threading.Barrier(openers)

    def open_store(engine: sa.Engine) -> int:
        barrier.wait()
        return ensure_schema(engine, tables, MIGRATIONS, target.where)

    try:
        with ThreadPoolExecutor(openers) as pool:
            assert list(pool.map(open_store, engines)) == [LATEST] * openers
    finally:
        for engine in engines:
            engine.dispose()
    with Cache.from_urls([sql_url]) as cache:
        assert cache.set(REQ, "ok") is True
        assert cache.stats()["errors_by_tier"] == {}


def test_a_new_sqlite_file_gets_small_pages_and_an_older_file_keeps_its_own(tmp_path: Any) -> None:
    # A store writes a page of each B-tree to the WAL: a new file takes 2 KB pages. A file
    # made with another page size (an earlier llmcache, or another tool) is used as it is.
    fresh, older = tmp_path / "fresh.db", tmp_path / "older.db"
    with sqlite3.connect(older) as made:
        made.execute("PRAGMA page_size=4096")
        made.execute("PRAGMA journal_mode=WAL")
        made.execute("CREATE TABLE unrelated (x)")  # the page size is fixed from here on
    for path in (fresh, older):
        cache = Cache.from_urls([f"sqlite:///{path}"])
        assert cache.set(request("q"), "kept")
        cache.close()
        cache = Cache.from_urls([f"sqlite:///{path}"])  # a restart reads it back
        hit = cache.get(request("q"))
        assert hit is not None and hit.entry.value == "kept"
        cache.close()
    sizes = {}
    for path in (fresh, older):
        with sqlite3.connect(path) as check:
            sizes[path.name] = check.execute("PRAGMA page_size").fetchone()[0]
            assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert sizes == {"fresh.db": 2048, "older.db": 4096}


@pytest.mark.parametrize("write_behind", ["on", "off"])
def test_a_postgres_store_after_the_server_ended_the_connection_is_written(
    postgres_url: str, table_prefix: str, write_behind: str
) -> None:
    # A server restart or a proxy's idle cut-off: psycopg's pipelined batch raised past
    # SQLAlchemy with no sqlstate, was not retried, and the tier was failed for everyone.
    name = f"llmcache-test-{table_prefix}"
    url = with_query(
        postgres_url, table_prefix=table_prefix, write_behind=write_behind, application_name=name
    )
    try:
        with Cache.from_urls([url], fleet_stats=False) as cache:
            assert cache.set(request("before"), "A") and cache.flush(5)
            assert cache.get(request("before")) is not None
            engine = sa.create_engine(parse_sql_url(postgres_url).url)
            try:
                with engine.begin() as conn:
                    ended = conn.execute(
                        sa.text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                            " WHERE application_name = :name"
                        ),
                        {"name": name},
                    ).scalar()
            finally:
                engine.dispose()
            assert ended >= 1
            assert cache.set(request("after"), "B") and cache.flush(5)
            hit = cache.get(request("after"))
            assert hit is not None and hit.entry.value == "B"
            assert cache.stats()["errors_by_tier"] == {}
    finally:
        drop_tables(postgres_url, table_prefix)


@pytest.mark.parametrize("write_behind", ["on", "off"])
def test_an_answer_over_mariadbs_packet_size_costs_no_other_store(
    mysql_url: str, table_prefix: str, write_behind: str, caplog: pytest.LogCaptureFixture
) -> None:
    # max_entry_bytes raised past the server's max_allowed_packet (16 MiB here): the huge
    # store failed its batch (the small stores queued with it were lost) and the breaker
    # then skipped the tier, logging "server has gone away".
    url = with_query(mysql_url, table_prefix=table_prefix, write_behind=write_behind)
    policy = CachePolicy(max_entry_bytes=64_000_000)
    try:
        with Cache.from_urls([url], policy=policy, fleet_stats=False) as cache:
            assert cache.set(request("warm"), "up") and cache.flush(5)
            with caplog.at_level(logging.WARNING, logger="llmcache"):
                for i in range(3):
                    cache.set(request(f"small {i}"), f"a{i}")
                cache.set(request("huge"), "z" * 20_000_000)
                for i in range(3, 6):
                    cache.set(request(f"small {i}"), f"a{i}")
                assert cache.flush(10)
            assert "over the server's max_allowed_packet" in caplog.text
            assert cache.stats()["errors_by_tier"] == {}
            for i in range(6):
                hit = cache.get(request(f"small {i}"))
                assert hit is not None and hit.entry.value == f"a{i}"
            assert cache.get(request("huge")) is None
    finally:
        drop_tables(mysql_url, table_prefix)
