"""Invalidation, one contract on every tier: ``Cache.invalidate``/``ainvalidate`` by tags, scope,
model, namespace and age, alone and combined.

``tier_url`` (tests/conftest.py) runs each test on memory, SQLite, MariaDB, PostgreSQL and Redis
standalone, Cluster and Sentinel. Assertions are on what a user sees: the count returned, which
requests still hit, and that nothing outside llmcache's own rows and keys changed. Age uses the
injected clock (no sleeps).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import (
    SYNC_STORE_KINDS,
    TIER_KINDS,
    delete_redis_keys,
    drop_tables,
    tier_url_of,
    with_query,
)

from llmcache import Cache, CacheRequest, ConfigError, FakeClock, Scope
from llmcache.request import ANONYMOUS
from llmcache.tiers import redis_invalidate
from llmcache.tiers.sql import SqlTier
from llmcache.tiers.sql_schema import MIGRATIONS, created_index_name
from llmcache.tiers.sql_url import parse_sql_url

ALICE = Scope.of(user="alice")
BOB = Scope.of(user="bob")
ALICE_AT_ACME = Scope.of(user="alice", tenant="acme")


def req(
    prompt: str,
    *,
    model_name: str = "gpt-x",
    namespace: str = "",
    tags: tuple[str, ...] = (),
    scope: Scope = ANONYMOUS,
) -> CacheRequest:
    # The model (the key's llm identity) follows model_name, as the adapters build it.
    return CacheRequest(
        model=f"{model_name}-llm-string",
        prompt=prompt,
        model_name=model_name,
        namespace=namespace,
        tags=tags,
        scope=scope,
    )


@pytest.fixture(params=TIER_KINDS + SYNC_STORE_KINDS)
def tier_url(request: pytest.FixtureRequest, tmp_path: object, table_prefix: str) -> Iterator[str]:
    yield from tier_url_of(request.param, request, tmp_path, table_prefix)


@pytest.fixture
def cache(tier_url: str, fake_clock: FakeClock) -> Iterator[Cache]:
    with Cache.from_urls([tier_url], clock=fake_clock) as c:
        yield c


@pytest.fixture
async def acache(tier_url: str, fake_clock: FakeClock) -> AsyncIterator[Cache]:
    async with Cache.from_urls([tier_url], clock=fake_clock) as c:
        yield c


def hits(cache: Cache, requests: dict[str, CacheRequest]) -> set[str]:
    """The names of the requests that are still served."""
    return {name for name, request in requests.items() if cache.get(request) is not None}


def store(cache: Cache, requests: dict[str, CacheRequest]) -> None:
    for name, request in requests.items():
        assert cache.set(request, f"answer {name}") is True


# ---------------------------------------------------------------------------- one criterion
def test_by_tags_removes_entries_carrying_any_of_them(cache: Cache) -> None:
    entries = {
        "faq": req("a", tags=("faq",)),
        "faq+billing": req("b", tags=("faq", "billing")),
        "billing": req("c", tags=("billing",)),
        "untagged": req("d"),
    }
    store(cache, entries)
    assert cache.invalidate(tags=["faq"]) == 2
    assert hits(cache, entries) == {"billing", "untagged"}
    assert cache.invalidate(tags=["billing", "never-used"]) == 1
    assert hits(cache, entries) == {"untagged"}
    assert cache.invalidate(tags=["faq"]) == 0  # nothing left to remove: nothing counted


def test_by_model_name(cache: Cache) -> None:
    entries = {
        "gpt-1": req("a", model_name="gpt-x"),
        "gpt-2": req("b", model_name="gpt-x", scope=ALICE),
        "claude": req("a", model_name="claude-y"),
    }
    store(cache, entries)
    assert cache.invalidate(model="gpt-x") == 2
    assert hits(cache, entries) == {"claude"}


def test_by_namespace_a_prompt_template_version(cache: Cache) -> None:
    entries = {
        "v1-a": req("a", namespace="template-v1"),
        "v1-b": req("b", namespace="template-v1", scope=BOB),
        "v2-a": req("a", namespace="template-v2"),
        "default": req("a"),
    }
    store(cache, entries)
    assert cache.invalidate(namespace="template-v1") == 2
    assert hits(cache, entries) == {"v2-a", "default"}
    assert cache.invalidate(namespace="") == 1  # the default namespace is a namespace too
    assert hits(cache, entries) == {"v2-a"}


def test_by_scope_is_exact(cache: Cache) -> None:
    entries = {
        "alice-1": req("a", scope=ALICE),
        "alice-2": req("b", scope=ALICE, tags=("t",)),
        "alice@acme": req("a", scope=ALICE_AT_ACME),
        "bob": req("a", scope=BOB),
        "anonymous": req("a"),
    }
    store(cache, entries)
    assert cache.invalidate(scope=ALICE) == 2
    assert hits(cache, entries) == {"alice@acme", "bob", "anonymous"}


def test_by_age_on_the_injected_clock(cache: Cache, fake_clock: FakeClock) -> None:
    entries = {"old": req("a"), "middle": req("b"), "new": req("c")}
    for name, request in entries.items():
        cache.set(request, name)
        fake_clock.advance(100)
    # created at t, t+100, t+200; now t+300
    assert cache.invalidate(older_than=300.5) == 0
    assert cache.invalidate(older_than=300) == 1  # "at least this old": the boundary counts
    assert hits(cache, entries) == {"middle", "new"}
    assert cache.invalidate(older_than=150) == 1
    assert hits(cache, entries) == {"new"}
    cache.set(entries["old"], "stored again, now")  # a new store is young again
    assert cache.invalidate(older_than=50) == 1
    assert hits(cache, entries) == {"old"}
    assert cache.invalidate(older_than=0) == 1


# ---------------------------------------------------------------------------- combinations
def _matrix() -> dict[str, CacheRequest]:
    out: dict[str, CacheRequest] = {}
    for who, scope in (("alice", ALICE), ("bob", BOB)):
        for model in ("gpt-x", "claude-y"):
            for ns in ("v1", "v2"):
                for tag in ("kb-7", "kb-9"):
                    name = f"{who}/{model}/{ns}/{tag}"
                    out[name] = req(name, model_name=model, namespace=ns, tags=(tag,), scope=scope)
    return out


@pytest.mark.parametrize(
    ("criteria", "removed"),
    [
        ({"tags": ["kb-7"], "model": "gpt-x"}, {"*/gpt-x/*/kb-7"}),
        ({"tags": ["kb-7"], "scope": ALICE}, {"alice/*/*/kb-7"}),
        ({"model": "claude-y", "namespace": "v2"}, {"*/claude-y/v2/*"}),
        ({"scope": BOB, "namespace": "v1"}, {"bob/*/v1/*"}),
        ({"scope": BOB, "model": "gpt-x", "namespace": "v1"}, {"bob/gpt-x/v1/*"}),
        ({"tags": ["kb-9"], "scope": ALICE, "model": "gpt-x", "namespace": "v2"},
         {"alice/gpt-x/v2/kb-9"}),
        ({"tags": ["kb-7", "kb-9"], "namespace": "v1"}, {"*/*/v1/*"}),
        ({"tags": ["kb-9"], "model": "nobody"}, set()),
    ],
    ids=["tag+model", "tag+scope", "model+ns", "scope+ns", "scope+model+ns", "all-four",
         "two-tags+ns", "no-match"],
)  # fmt: skip
def test_criteria_combine_with_and(
    cache: Cache, criteria: dict[str, Any], removed: set[str]
) -> None:
    entries = _matrix()
    store(cache, entries)
    expected = {name for name in entries if any(_fits(name, p) for p in removed)}
    assert cache.invalidate(**criteria) == len(expected)
    assert hits(cache, entries) == set(entries) - expected


def _fits(name: str, pattern: str) -> bool:
    return all(p in ("*", n) for p, n in zip(pattern.split("/"), name.split("/"), strict=True))


def test_age_combines_with_the_other_criteria(cache: Cache, fake_clock: FakeClock) -> None:
    old = {"old-faq": req("a", tags=("faq",)), "old-gpt": req("b"), "old-bob": req("c", scope=BOB)}
    store(cache, old)
    fake_clock.advance(3600)
    new = {"new-faq": req("d", tags=("faq",)), "new-gpt": req("e"), "new-bob": req("f", scope=BOB)}
    store(cache, new)
    fake_clock.advance(60)
    assert cache.invalidate(tags=["faq"], older_than=600) == 1
    assert cache.invalidate(scope=BOB, older_than=600) == 1
    assert cache.invalidate(model="gpt-x", older_than=600) == 1
    assert hits(cache, {**old, **new}) == set(new)


def test_many_scopes_every_primary(cache: Cache) -> None:
    """Forty scopes: on a Cluster their hash tags spread over every primary."""
    users = [Scope.of(user=f"u{i}") for i in range(40)]
    entries = {f"{u.user}": req("q", scope=u, tags=("t",)) for u in users}
    entries |= {f"{u.user}-m2": req("q", scope=u, model_name="m2") for u in users}
    store(cache, entries)
    assert cache.invalidate(tags=["t"]) == 40
    assert cache.invalidate(model="m2", namespace="") == 40
    assert hits(cache, entries) == set()


# ---------------------------------------------------------------------------- counts, others
def test_an_entry_counts_once_per_tier_that_held_it(tier_url: str, fake_clock: FakeClock) -> None:
    with Cache.from_urls(["memory://", tier_url], clock=fake_clock) as cache:
        entries = {"a": req("a", tags=("x",)), "b": req("b", tags=("x",)), "c": req("c")}
        store(cache, entries)
        assert cache.invalidate(tags=["x"]) == 4  # two entries, each in both tiers
        assert hits(cache, entries) == {"c"}
        assert cache.stats()["hits_by_tier"] == {"memory": 1}


def test_invalidating_never_widens_to_other_caches_or_foreign_data(
    tier_url: str, table_prefix: str, fake_clock: FakeClock
) -> None:
    """A second llmcache (another table/key prefix on the same server) holding the same entries,
    and foreign rows or keys next to ours, are untouched."""
    other_url = _other_prefix(tier_url, table_prefix)
    entries = {"a": req("a", tags=("faq",)), "b": req("b", scope=ALICE), "c": req("c")}
    with (
        Cache.from_urls([tier_url], clock=fake_clock) as cache,
        Cache.from_urls([other_url], clock=fake_clock, fleet_stats=False) as other,
        _ForeignData(cache) as foreign_intact,
    ):
        try:
            store(cache, entries)
            store(other, entries)
            fake_clock.advance(10)
            assert cache.invalidate(tags=["faq"]) == 1
            assert cache.invalidate(scope=ALICE) == 1
            assert cache.invalidate(older_than=0) == 1
            assert hits(cache, entries) == set()
            assert hits(other, entries) == set(entries)
            assert foreign_intact()
        finally:
            other.clear()


def _other_prefix(url: str, prefix: str) -> str:
    """The same server under ``<prefix>o`` (tables starting with the test's prefix are dropped
    by its fixture; Redis keys under it are deleted by ``_other_prefix_cleanup``)."""
    if url.startswith("memory"):
        return url  # another MemoryTier: nothing shared
    assert f"prefix={prefix}" in url
    return url.replace(f"prefix={prefix}", f"prefix={prefix}o")


class _ForeignData:
    """Rows of another app in the same database / keys in the same Redis, to find unchanged."""

    def __init__(self, cache: Cache) -> None:
        self.tier: Any = cache.tiers[0]

    def __enter__(self) -> Any:
        tier = self.tier
        if isinstance(tier, SqlTier):
            prefix = tier.target.table_prefix
            self.table = sa.Table(
                f"{prefix}_app", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True)
            )
            with tier.engine.begin() as conn:
                self.table.create(conn)
                conn.execute(sa.insert(self.table), [{"id": 1}, {"id": 2}])
        elif hasattr(tier, "prefix"):
            client = tier._sync()
            # Next to ours, looking like ours as far as a loose pattern would go.
            self.keys = [f"{tier.prefix}:app:{{x}}:t:faq", f"{tier.prefix}x:{{x}}:e:1"]
            for name in self.keys:
                client.set(name, b"theirs")
        return self.intact

    def intact(self) -> bool:
        tier = self.tier
        if isinstance(tier, SqlTier):
            with tier.engine.connect() as conn:
                return (
                    conn.execute(sa.select(sa.func.count()).select_from(self.table)).scalar() == 2
                )
        if hasattr(tier, "prefix"):
            client = tier._sync()
            return all(client.get(name) == b"theirs" for name in self.keys)
        return True

    def __exit__(self, *exc: object) -> None:
        tier = self.tier
        if isinstance(tier, SqlTier):
            with tier.engine.begin() as conn:
                self.table.drop(conn)
        elif hasattr(tier, "prefix"):
            client = tier._sync()
            for name in self.keys:
                client.unlink(name)


def test_no_criteria_or_bad_criteria_are_errors_naming_the_problem(cache: Cache) -> None:
    cache.set(req("a", tags=("faq",)), "v")
    with pytest.raises(ConfigError, match="clear"):
        cache.invalidate()
    with pytest.raises(ConfigError, match="list of strings"):
        cache.invalidate(tags="faq")
    with pytest.raises(ConfigError, match="at least one tag"):
        cache.invalidate(tags=[])
    with pytest.raises(ConfigError, match="non-empty string"):
        cache.invalidate(tags=["faq", ""])
    with pytest.raises(ConfigError, match=r"llmcache\.Scope"):
        cache.invalidate(scope="alice")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="model"):
        cache.invalidate(model=7)  # type: ignore[arg-type]
    for bad in (-1, float("nan"), float("inf"), True, "60"):
        with pytest.raises(ConfigError, match="older_than"):
            cache.invalidate(older_than=bad)  # type: ignore[arg-type]
    assert cache.get(req("a", tags=("faq",))) is not None  # nothing was removed


# ---------------------------------------------------------------------------- sync == async
def _scenario_requests() -> dict[str, CacheRequest]:
    return {
        "a": req("a", tags=("faq",), scope=ALICE),
        "b": req("b", tags=("faq", "kb"), namespace="v1"),
        "c": req("c", model_name="claude-y", namespace="v1"),
        "d": req("d", scope=BOB, model_name="claude-y"),
        "e": req("e"),
        "f": req("f", tags=("kb",), scope=ALICE, namespace="v2"),
    }


_SCENARIO: list[dict[str, Any]] = [
    {"tags": ["kb"], "namespace": "v1"},
    {"model": "claude-y", "scope": BOB},
    {"scope": ALICE, "older_than": 30},
    {"older_than": 5},
    {"namespace": "v1"},
]


def test_sync_scenario(cache: Cache, fake_clock: FakeClock) -> None:
    assert _run_sync(cache, fake_clock) == _EXPECTED


async def test_async_scenario_gives_the_same_counts_and_hits(
    acache: Cache, fake_clock: FakeClock
) -> None:
    entries = _scenario_requests()
    results: list[tuple[int, set[str]]] = []
    for name, request in entries.items():
        assert await acache.aset(request, name) is True
        fake_clock.advance(10)
    for criteria in _SCENARIO:
        removed = await acache.ainvalidate(**criteria)
        results.append((removed, {n for n, r in entries.items() if await acache.aget(r)}))
    assert results == _EXPECTED


def _run_sync(cache: Cache, fake_clock: FakeClock) -> list[tuple[int, set[str]]]:
    entries = _scenario_requests()
    results: list[tuple[int, set[str]]] = []
    for name, request in entries.items():
        assert cache.set(request, name) is True
        fake_clock.advance(10)
    for criteria in _SCENARIO:
        results.append((cache.invalidate(**criteria), hits(cache, entries)))
    return results


# created at t+0 (a) ... t+50 (f); now t+60
_EXPECTED = [
    (1, {"a", "c", "d", "e", "f"}),  # b: tagged kb in v1
    (1, {"a", "c", "e", "f"}),  # d
    (1, {"c", "e", "f"}),  # a (60 s old); f is 10 s old
    (3, set()),  # c, e, f: all at least 10 s old
    (0, set()),
]


# ---------------------------------------------------------------------------- batches
def test_sql_deletes_in_bounded_batches(sql_url: str, fake_clock: FakeClock) -> None:
    with Cache([SqlTier(parse_sql_url(sql_url), purge_batch=3)], clock=fake_clock) as cache:
        entries = {f"e{i}": req(f"e{i}", tags=("t",)) for i in range(10)}
        store(cache, entries)
        assert cache.invalidate(tags=["t"]) == 10
        assert hits(cache, entries) == set()


def test_redis_removes_in_bounded_batches(
    redis_any_url: str, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_invalidate, "BATCH", 2)
    monkeypatch.setattr(redis_invalidate, "SCOPES_PER_ROUND", 2)
    with Cache.from_urls([redis_any_url], clock=fake_clock) as cache:
        entries = {
            f"{user}{i}": req(f"e{i}", tags=("t",), scope=Scope.of(user=user))
            for user in ("a", "b", "c")
            for i in range(5)
        }
        # Above 128 members a set is a hash table, which SSCAN pages through by cursor.
        big = {f"big{i}": req(f"e{i}", tags=("t",), scope=BOB) for i in range(200)}
        store(cache, entries | big)
        fake_clock.advance(1)
        assert cache.invalidate(tags=["t"], older_than=1) == 215
        assert hits(cache, entries | big) == set()
        store(cache, big)
        assert cache.invalidate(tags=["t"], model="gpt-x") == 200  # SSCAN, then SMISMEMBER
        assert hits(cache, big) == set()


# ---------------------------------------------------------------------------- Redis indexes
def test_redis_index_records_go_with_their_entries(
    redis_any_url: str, fake_clock: FakeClock
) -> None:
    with Cache.from_urls([redis_any_url], clock=fake_clock, fleet_stats=False) as cache:
        tier: Any = cache.tiers[0]
        client = tier._sync()
        store(cache, {"a": req("a", tags=("x", "y")), "b": req("b", tags=("x",), scope=BOB)})

        def names(kind: str) -> set[bytes]:
            return set(client.scan_iter(match=f"{tier.prefix}:{{*}}:{kind}:*"))

        assert len(names("t")) == 3 and len(names("p")) == 2
        assert cache.invalidate(model="gpt-x") == 2
        assert names("e") == set() and names("p") == set()  # the sets it read are gone
        store(cache, {"c": req("c", tags=("x",))})
        assert cache.invalidate(tags=["x"]) == 1
        # The tag sets read lose their members (an empty set is no key); "y" was not read.
        assert len(names("t")) == 1


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(params=["redis", "redis_cluster", "redis_sentinel"])
def redis_any_url(request: pytest.FixtureRequest, table_prefix: str) -> Iterator[str]:
    """Each Redis kind under a private prefix, its keys deleted afterwards."""
    base = request.getfixturevalue(
        "redis_url" if request.param == "redis" else f"{request.param}_url"
    )
    yield with_query(base, prefix=table_prefix)
    delete_redis_keys(base, table_prefix)


@pytest.fixture(params=["sqlite", "mysql", "postgres"])
def sql_url(request: pytest.FixtureRequest, tmp_path: object, table_prefix: str) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/v1.db"
        return
    base = request.getfixturevalue(f"{request.param}_url")
    yield with_query(base, table_prefix=table_prefix)
    drop_tables(base, table_prefix)


def test_a_version_1_store_is_migrated_and_invalidated_by_age(
    sql_url: str, fake_clock: FakeClock
) -> None:
    target = parse_sql_url(sql_url)
    v1_tier = SqlTier(target, migrations=MIGRATIONS[:1])  # what the previous release created
    index = created_index_name(target.table_prefix)
    assert index not in _indexes(v1_tier)
    entries = {"old": req("a", tags=("faq",)), "new": req("b")}
    with Cache([v1_tier], clock=fake_clock) as v1:
        v1.set(entries["old"], "old")
        fake_clock.advance(1000)
        v1.set(entries["new"], "new")
    tier = SqlTier(parse_sql_url(sql_url))
    with Cache([tier], clock=fake_clock) as cache:
        assert index in _indexes(tier)
        assert _version(tier) == MIGRATIONS[-1].version == 3
        assert hits(cache, entries) == {"old", "new"}  # entries survive the migration
        assert cache.invalidate(older_than=500) == 1
        assert hits(cache, entries) == {"new"}
        tags = tier.tables.tags
        with tier.engine.connect() as conn:  # the old entry's tag rows went with it
            assert conn.execute(sa.select(sa.func.count()).select_from(tags)).scalar() == 0


def _indexes(tier: SqlTier) -> set[str]:
    with tier.engine.connect() as conn:
        return {str(ix["name"]) for ix in sa.inspect(conn).get_indexes(tier.tables.entries.name)}


def _version(tier: SqlTier) -> int:
    meta = tier.tables.meta
    with tier.engine.connect() as conn:
        return int(conn.execute(sa.select(meta.c.value)).scalar_one())


@pytest.fixture(autouse=True)
def _other_prefix_cleanup(request: pytest.FixtureRequest) -> Iterator[None]:
    """The Redis keys of the second cache in the foreign-data test (``<prefix>o``), removed
    even when the test fails half-way."""
    yield
    url = request.node.funcargs.get("tier_url")
    prefix = request.node.funcargs.get("table_prefix")
    if isinstance(url, str) and url.startswith("redis") and prefix:
        delete_redis_keys(url.split("?", 1)[0], f"{prefix}o")
