"""``llmcache doctor`` on real tiers: reachability, schema versions, Redis modules, exit codes."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner
from conftest import drop_redis_stack_prefix

from llmcache import Cache
from llmcache.cli.app import cli
from llmcache.keys import CacheKey


def _doctor(*args: str) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(cli, ["doctor", *args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_every_tier_reports_what_it_is(
    tmp_path: Path, redis_url: str, redis_stack_url: str, mysql_url: str, postgres_url: str
) -> None:
    Cache.from_urls([f"sqlite:///{tmp_path}/d.db"]).close()  # an app made it
    code, report = _doctor(
        "--url", "memory://",
        "--url", f"sqlite:///{tmp_path}/d.db",
        "--url", mysql_url,
        "--url", postgres_url,
        "--url", redis_url,
        "--url", redis_stack_url,
    )  # fmt: skip
    assert code == 0 and report["ok"] is True
    tiers = {t["tier"]: t for t in report["tiers"]}  # type: ignore[union-attr]
    assert all(t["reachable"] for t in tiers.values())
    assert tiers["sqlite"]["schema_version"] == tiers["sqlite"]["schema_supported"]
    assert tiers["mysql"]["dialect"] == "mysql"
    assert tiers["postgresql"]["dialect"] == "postgresql"
    assert tiers["redis"]["semantic_ready"] is False  # plain Redis: no search module
    assert tiers["redis#2"]["semantic_ready"] is True  # Redis Stack
    assert "search" in tiers["redis#2"]["modules"]


def test_an_unreachable_tier_fails_with_its_reason() -> None:
    code, report = _doctor("--url", "memory://", "--url", "redis://127.0.0.1:1/0")
    assert code == 1 and report["ok"] is False
    redis = report["tiers"][1]  # type: ignore[index]
    assert redis["reachable"] is False
    assert "refused" in redis["problem"].lower()


def test_a_store_from_a_newer_llmcache_is_a_problem(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/newer.db"
    Cache.from_urls([url]).close()  # an app made it
    code, _ = _doctor("--url", url)
    assert code == 0
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE llmcache_meta SET value = '99' WHERE name = 'schema_version'"))
    engine.dispose()
    result = CliRunner().invoke(cli, ["doctor", "--url", url])
    assert result.exit_code == 1
    assert "newer" in result.stderr and "99" in result.stderr
    assert "Traceback" not in result.output


def test_a_bad_url_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(cli, ["doctor", "--url", "nosuch://x"])
    assert result.exit_code == 2
    assert "unsupported tier URL scheme" in result.stderr
    assert "Traceback" not in result.output


def _semantic_entry(urls: list[str], semantic: str) -> None:
    from llmcache import Cache
    from llmcache.request import CacheRequest

    text = "How do I reset my password?"
    with Cache.from_urls(urls, semantic=semantic) as cache:
        assert cache.set(CacheRequest(model="m", prompt=[None, text], semantic_text=text), "a")


def test_the_semantic_index_is_checked_against_the_exact_tiers(tmp_path: Path) -> None:
    sqlite, faiss = f"sqlite:///{tmp_path}/c.db", f"faiss://{tmp_path}/v.faiss?verify=off"
    _semantic_entry([sqlite], faiss)
    code, report = _doctor("--url", sqlite, "--semantic", faiss)
    semantic = report["tiers"][-1]  # type: ignore[index]
    assert code == 0 and report["ok"] is True
    assert semantic["tier"].startswith("semantic")
    assert (semantic["vectors_checked"], semantic["vectors_without_entry"]) == (1, 0)
    # The same persistent index behind a cache that no longer holds its entries.
    Cache.from_urls([f"sqlite:///{tmp_path}/other.db"]).close()
    code, report = _doctor("--url", f"sqlite:///{tmp_path}/other.db", "--semantic", faiss)
    semantic = report["tiers"][-1]  # type: ignore[index]
    assert code == 1 and report["ok"] is False
    assert semantic["vectors_without_entry"] == 1
    assert "1 of 1 sampled vectors" in semantic["problem"]


def test_a_redisvl_index_is_checked_too(redis_stack_url: str) -> None:
    prefix = f"doc{uuid.uuid4().hex[:8]}"
    options = f"?verify=off&prefix={prefix}&index={prefix}"
    url = redis_stack_url.replace("redis://", "redisvl://", 1) + options
    exact = f"{redis_stack_url}?prefix={prefix}e"
    try:
        _semantic_entry([exact], url)
        code, report = _doctor("--url", exact, "--semantic", url)
        assert code == 0, report
        assert report["tiers"][-1]["vectors_checked"] == 1  # type: ignore[index]
        code, report = _doctor("--url", "memory://", "--semantic", url)
        assert code == 1 and report["tiers"][-1]["vectors_without_entry"] == 1  # type: ignore[index]
    finally:
        drop_redis_stack_prefix(redis_stack_url, prefix)


def test_a_redisvl_index_of_another_embedder_is_a_problem(redis_stack_url: str) -> None:
    import numpy as np

    from llmcache.semantic.index import IndexedEntry
    from llmcache.semantic.redisvl_index import RedisVLIndex

    prefix = f"tdoc{uuid.uuid4().hex[:8]}"
    url = redis_stack_url.replace("redis://", "redisvl://", 1) + f"?prefix={prefix}"
    other = RedisVLIndex.from_url(url, dim=384)
    other.bind_embedder("someone-else")
    key = CacheKey(b"d" * 32, b"s" * 16, b"m" * 16, b"n" * 16)
    other.add(IndexedEntry(key, b"p" * 16, np.eye(1, 384, dtype=np.float32)[0], "q", None))
    other.close()
    try:
        code, report = _doctor("--url", "memory://", "--semantic", url)
        assert code == 1 and report["ok"] is False
        semantic = report["tiers"][1]  # type: ignore[index]
        assert semantic["tier"] == "semantic (redisvl)"
        assert semantic["embedder"].startswith("minilm+")
        assert "'someone-else'" in semantic["problem"]
        assert "llmcache reindex" in semantic["problem"]
    finally:
        drop_redis_stack_prefix(redis_stack_url, f"{prefix}:")


def test_an_older_store_is_reported_as_it_was_found(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/older.db"
    Cache.from_urls([url]).close()  # an app made it, then a store of schema 2 is emulated
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE llmcache_savings"))
        conn.execute(sa.text("UPDATE llmcache_meta SET value = '2' WHERE name = 'schema_version'"))
    code, report = _doctor("--url", url)
    assert code == 0
    (sqlite,) = report["tiers"]  # type: ignore[misc]
    assert sqlite["schema_version"] == 2  # not the 3 that opening it made it
    assert "migrated" in sqlite["note"]
    engine.dispose()


def test_a_database_without_llmcache_tables_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/other-app.db"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE users (id INTEGER)"))
    engine.dispose()
    code, report = _doctor("--url", url)
    assert code == 0
    (sqlite,) = report["tiers"]  # type: ignore[misc]
    assert sqlite["schema_version"] == 0
    assert "no llmcache tables" in sqlite["note"]
