"""Load, short version (the long runs: ``python scripts/reliability.py load``).

8 processes x 8 threads on one SQLite file, and 64 asyncio tasks against MariaDB, PostgreSQL
and Redis: zero errors reach callers, and every acknowledged entry reads back identical.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from conftest import delete_redis_keys, drop_tables, with_query
from figures import SECONDS, record
from load_workloads import LoadResult, processes_load, tasks_load, verify


def _check(name: str, result: LoadResult) -> None:
    summary = result.summary()
    record(name, **summary)
    assert summary["caller_errors"] == 0, result.caller_errors[:5]
    assert summary["stores_acknowledged"] > 100
    assert summary["entries_lost"] == 0 and summary["altered"] == 0


def test_8_processes_of_8_threads_on_one_sqlite_file(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/load.db"
    result = processes_load([url], processes=8, threads=8, seconds=SECONDS)
    assert result.workers == 64
    _check("load: 8 processes x 8 threads, one SQLite file", verify([url], result))


def test_memory_over_sqlite_under_the_same_load(tmp_path: object) -> None:
    urls = ["memory://?maxsize=500", f"sqlite:///{tmp_path}/load.db"]
    result = processes_load(urls, processes=4, threads=8, seconds=SECONDS)
    # What reached the shared file, read from it alone.
    _check("load: 4 processes x 8 threads, memory over SQLite", verify([urls[1]], result))


@pytest.fixture(params=["mysql", "postgres", "redis"])
def server_url(request: pytest.FixtureRequest, table_prefix: str) -> Iterator[str]:
    kind = request.param
    base = request.getfixturevalue("redis_url" if kind == "redis" else f"{kind}_url")
    option = "prefix" if kind == "redis" else "table_prefix"
    url = with_query(base, **{option: table_prefix})
    yield url
    if kind == "redis":
        delete_redis_keys(base, table_prefix)
    else:
        drop_tables(base, table_prefix)


def test_64_asyncio_tasks_against_a_server(server_url: str) -> None:
    result = asyncio.run(tasks_load([server_url], tasks=64, seconds=SECONDS))
    assert result.workers == 64
    kind = server_url.split(":")[0].split("+")[0]
    _check(f"load: 64 asyncio tasks, {kind}", verify([server_url], result))
