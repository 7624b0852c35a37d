"""Isolation attacks on every tier: forged scopes, injection through user-supplied values,
clear and invalidate that must leave foreign data alone, and secrets that must stay out of
logs and stats."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from figures import record

from llmcache import Cache, CacheRequest, Scope

ALICE = Scope.of(user="alice", tenant="acme", acl=["kb-7", "kb-9"])

FORGERIES = [
    Scope.of(user="alice", tenant="acme"),  # ACL dropped
    Scope.of(user="alice", tenant="acme", acl=["kb-7"]),  # ACL narrowed
    Scope.of(user="alice", tenant="acme", acl=["kb-7", "kb-9", "kb-1"]),  # ACL widened
    Scope.of(user="alice|acme", acl=["kb-7", "kb-9"]),  # separator tricks
    Scope.of(user="alice", tenant="acme|kb-7", acl=["kb-9"]),
    Scope.of(user="alice", tenant="acme", acl=["kb-7,kb-9"]),
    Scope.of(user="alice*", tenant="acme", acl=["kb-7", "kb-9"]),  # glob characters
    Scope.of(user="*", tenant="*", acl=["*"]),
    Scope.of(user="alic?", tenant="acm[e]", acl=["kb-7", "kb-9"]),
    Scope.of(user="alice\x00", tenant="acme", acl=["kb-7", "kb-9"]),  # NUL
    Scope.of(user="Alice", tenant="acme", acl=["kb-7", "kb-9"]),  # case
    Scope.of(user="alice ", tenant="acme", acl=["kb-7", "kb-9"]),  # trailing space
    Scope.of(user="ａｌｉｃｅ", tenant="acme", acl=["kb-7", "kb-9"]),  # fullwidth letters
    Scope.of(user="a" * 1024, tenant="acme", acl=["kb-7", "kb-9"]),  # very long id
    Scope.of(user=None, tenant="alice", acl=["acme", "kb-7", "kb-9"]),  # shifted parts
    Scope(),  # anonymous
]

HOSTILE = [
    "'; DROP TABLE llmcache_entries; --",
    "' OR '1'='1",
    '" OR ""="',
    "*",
    "?",
    "[a-z]*",
    "\\*",
    "{tag}",
    "llmcache:*",
    "%",
    "_",
    "\x00",
    "é\u0301",
]


def _request(prompt: str, scope: Scope = ALICE, **kw: object) -> CacheRequest:
    return CacheRequest(model="m", prompt=prompt, scope=scope, **kw)  # type: ignore[arg-type]


@pytest.fixture
def tier_kind(request: pytest.FixtureRequest) -> str:
    """The tier this case runs on (the ``tier_url`` parameter), for the figures' rows."""
    return str(request.node.callspec.params["tier_url"])


@pytest.fixture
def cache(tier_url: str) -> Iterator[Cache]:
    cache = Cache.from_urls([tier_url], fleet_stats=False, single_flight_timeout=None)
    yield cache
    cache.close()


def test_forged_scopes_never_see_an_entry(cache: Cache, tier_kind: str) -> None:
    cache.set(_request("quarterly numbers"), "alice's private answer")
    seen = 0
    for forged in FORGERIES:
        found = cache.get(_request("quarterly numbers", forged))
        seen += found is not None
        assert found is None, forged.describe()
    reordered = Scope.of(user="alice", tenant="acme", acl=["kb-9", "kb-7", "kb-9"])
    hit = cache.get(_request("quarterly numbers", reordered))
    assert hit is not None and hit.entry.value == "alice's private answer"
    record(
        f"security: forged scopes, {tier_kind}",
        forged_scopes_tried=len(FORGERIES),
        entries_they_saw=seen,
    )


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_values_are_data_not_code(cache: Cache, tier_kind: str, hostile: str) -> None:
    scope = Scope.of(user=hostile, tenant=hostile, acl=[hostile])
    request = _request(hostile, scope, namespace=hostile, model_name=hostile, tags=(hostile,))
    bystander = _request("bystander", ALICE, tags=("faq",), model_name="gpt")
    cache.set(bystander, "keep me")
    assert cache.set(request, hostile)
    hit = cache.get(request)
    assert hit is not None and hit.entry.value == hostile
    # Patterns in criteria match literally: a tag or model "*" is not a wildcard.
    removed = cache.invalidate(tags=[hostile])
    assert removed == 1
    assert cache.get(request) is None
    assert cache.get(bystander) is not None
    cache.set(request, hostile)
    assert cache.invalidate(model=hostile) == 1
    assert cache.invalidate(namespace=hostile) == 0
    assert cache.clear(scope=scope) == 0
    assert cache.get(bystander) is not None
    # One row per tier: the table sums the cases.
    record(f"security: hostile values as data, {tier_kind}", hostile_values_tried=1)


@pytest.fixture
def foreign_data(tier_url: str, tier_kind: str, table_prefix: str) -> Iterator[None]:
    """Rows and keys that are not ours, next to ours: they must survive clear/invalidate."""
    base = tier_url.split("?")[0]
    if tier_url.startswith(("mysql", "postgresql")):
        engine = sa.create_engine(base)
        table = f"{table_prefix}_not_ours"
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE TABLE {table} (k VARCHAR(20), v VARCHAR(20))"))
            conn.execute(sa.text(f"INSERT INTO {table} VALUES ('user', 'data')"))
        yield
        with engine.begin() as conn:
            rows = conn.execute(sa.text(f"SELECT v FROM {table}")).scalars().all()
            assert rows == ["data"]
            conn.execute(sa.text(f"DROP TABLE {table}"))
        engine.dispose()
        _record_foreign(tier_kind, checked=1, intact=len(rows))
    elif tier_url.startswith("redis"):
        import redis

        target = (
            redis.RedisCluster.from_url(base.replace("redis+cluster", "redis"))
            if "cluster" in base
            else None
        )
        client = target if target is not None else _plain_client(tier_url)
        names = [f"{table_prefix}x:not-ours", f"not-ours:{table_prefix}", f"{table_prefix}"]
        for name in names:
            client.set(name, "data")
        yield
        intact = 0
        for name in names:
            assert client.get(name) == b"data", name
            intact += 1
            client.delete(name)
        client.close()
        _record_foreign(tier_kind, checked=len(names), intact=intact)
    else:
        yield


def _record_foreign(tier_kind: str, *, checked: int, intact: int) -> None:
    record(
        f"security: clear/invalidate next to foreign data, {tier_kind}",
        foreign_items_checked=checked,
        foreign_items_intact=intact,
        entries_lost=checked - intact,
    )


def _plain_client(tier_url: str) -> object:
    from llmcache.tiers.redis import RedisTier

    tier = RedisTier.from_url(tier_url)
    return tier._sync()


def test_clear_and_invalidate_leave_foreign_data_alone(cache: Cache, foreign_data: None) -> None:
    cache.set(_request("a", tags=("t",), model_name="gpt"), "ours")
    cache.invalidate(tags=["t"])
    cache.invalidate(model="gpt")
    cache.invalidate(older_than=0)
    cache.clear()
    assert cache.get(_request("a")) is None


SECRET = "sk-proj-THISISASECRETKEY0123456789"


def test_secrets_in_requests_never_reach_logs_or_stats(
    caplog: pytest.LogCaptureFixture, tmp_path: object
) -> None:
    llm_string = json.dumps({"model": "gpt-4o", "openai_api_key": SECRET, "api_key": SECRET})
    # A tier that fails on every call (nothing listens there): errors get logged.
    cache = Cache.from_urls(
        ["memory://", "redis://:" + SECRET + "@127.0.0.1:1/0"],
        fleet_stats=False,
        single_flight_timeout=None,
    )
    request = CacheRequest(
        model=llm_string, prompt="hi", params={"api_key": SECRET}, model_name="gpt-4o"
    )
    with caplog.at_level(logging.DEBUG):
        cache.get(request)
        cache.set(request, "answer")
        cache.get(request)
        cache.clear()
    assert cache.stats()["errors_by_tier"]  # the failure was counted and logged
    assert caplog.records
    found = {
        "logs": caplog.text.count(SECRET),
        "stats": json.dumps(cache.stats()).count(SECRET),
        "repr": repr(cache).count(SECRET),
    }
    assert SECRET not in caplog.text
    assert SECRET not in json.dumps(cache.stats())
    assert SECRET not in repr(cache)
    cache.close()
    record(
        "security: secrets in llm_string, params and the Redis URL, failing tier",
        log_lines_checked=len(caplog.records),
        secrets_found_in_logs=found["logs"],
        secrets_found_in_stats_or_repr=found["stats"] + found["repr"],
    )
