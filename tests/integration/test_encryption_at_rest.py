"""Encryption at rest on every storage tier: the raw SQLite file, MariaDB and PostgreSQL rows
and Redis values hold no answer in plain text; answers still come back; keys rotate."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import TIER_KINDS, with_query

from llmcache import Cache, CacheRequest, FakeClock, Usage
from llmcache.crypto import Sealer

SECRET_ANSWER = "The merger with Initech closes on 2027-03-14 at $41.20 per share"
K_OLD, K_NEW = os.urandom(32), os.urandom(32)


def _keys(*pairs: tuple[str, bytes]) -> str:
    return ",".join(f"{kid}:{base64.b64encode(key).decode()}" for kid, key in pairs)


def _request(i: int = 0) -> CacheRequest:
    return CacheRequest(model="m", prompt=f"when does the merger close? {i}", tags=("deals",))


def _raw_bytes(url: str, prefix: str, tmp_path: Path) -> bytes:
    """Everything the store holds under our prefix, as raw bytes."""
    if url.startswith("sqlite"):
        return b"".join(p.read_bytes() for p in tmp_path.glob("*.db*"))
    if url.startswith(("mysql", "postgresql")):
        engine = sa.create_engine(url.split("?")[0])
        chunks = []
        with engine.connect() as conn:
            for name in sa.inspect(conn).get_table_names():
                if name.startswith(prefix):
                    table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                    for row in conn.execute(sa.select(table)):
                        chunks += [v if isinstance(v, bytes) else str(v).encode() for v in row]
        engine.dispose()
        return b"".join(chunks)
    from llmcache.tiers.redis import RedisTier

    tier = RedisTier.from_url(url)
    client = tier._sync()
    chunks = []
    for name in client.scan_iter(match=f"{prefix}:*"):
        kind = client.type(name)
        if kind == b"string":
            chunks.append(client.get(name) or b"")
        elif kind == b"set":
            chunks += list(client.smembers(name))
        elif kind == b"hash":
            chunks += [k + v for k, v in client.hgetall(name).items()]
        elif kind == b"zset":
            chunks += list(client.zrange(name, 0, -1))
    tier.close()
    return b"".join(chunks)


# Every tier that stores bytes (the memory tier keeps objects in this process: nothing is at
# rest there).
STORES = [kind for kind in TIER_KINDS if kind != "memory"]


@pytest.fixture
def store_url(tier_url: str) -> str:
    return tier_url


@pytest.mark.parametrize("tier_url", STORES, indirect=True)
def test_no_tier_stores_an_answer_in_plain_text(
    store_url: str, table_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMCACHE_ENCRYPTION_KEYS", _keys(("k1", K_OLD)))
    cache = Cache.from_urls([store_url], fleet_stats=False)
    for i in range(3):
        assert cache.set(_request(i), SECRET_ANSWER, usage=Usage(5, 7))
    hit = cache.get(_request(1))
    assert hit is not None and hit.entry.value == SECRET_ANSWER
    cache.close()

    raw = _raw_bytes(store_url, table_prefix, tmp_path)
    assert len(raw) > 100  # the check reads real stored data
    for needle in ("Initech", "merger", "41.20", "2027-03-14"):
        assert needle.encode() not in raw, f"{needle!r} stored in plain text"

    # Without encryption the same check finds the answer: the test can fail.
    plain = Cache.from_urls([with_query(store_url.split("?")[0], **_options(store_url, "p"))],
                            fleet_stats=False, encryption=False)  # fmt: skip
    plain.set(_request(9), SECRET_ANSWER)
    plain.close()
    assert b"Initech" in _raw_bytes(store_url, table_prefix + "p", tmp_path)


def _options(url: str, suffix: str) -> dict[str, str]:
    """The URL's prefix option with ``suffix`` appended (a second, private namespace)."""
    query = dict(part.split("=", 1) for part in url.split("?", 1)[1].split("&"))
    name = "table_prefix" if "table_prefix" in query else "prefix"
    return {**query, name: query[name] + suffix}


@pytest.mark.parametrize("tier_url", STORES, indirect=True)
def test_rotation_keeps_old_entries_until_their_key_is_dropped(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = Cache.from_urls([store_url], fleet_stats=False, encryption=Sealer({"k1": K_OLD}))
    old.set(_request(), SECRET_ANSWER)
    old.close()

    monkeypatch.setenv("LLMCACHE_ENCRYPTION_KEYS", _keys(("k2", K_NEW), ("k1", K_OLD)))
    rotated = Cache.from_urls([store_url], fleet_stats=False)
    hit = rotated.get(_request())
    assert hit is not None and hit.entry.value == SECRET_ANSWER
    rotated.set(_request(2), "sealed with k2")
    rotated.close()

    monkeypatch.setenv("LLMCACHE_ENCRYPTION_KEYS", _keys(("k2", K_NEW)))
    retired = Cache.from_urls([store_url], fleet_stats=False)
    assert retired.get(_request()) is None  # its key is gone: a miss
    assert retired.stats()["decode_errors"] == 0  # not counted as corrupt, not deleted
    hit = retired.get(_request(2))
    assert hit is not None and hit.entry.value == "sealed with k2"
    retired.close()


@pytest.mark.parametrize("tier_url", STORES, indirect=True)
async def test_invalidate_by_age_reads_the_age_of_sealed_entries(store_url: str) -> None:
    # Redis read each entry's age from its payload and could not open a sealed one: it
    # removed none of them, returned 0, and kept serving them.
    clock = FakeClock(1_000_000.0)
    cache = Cache.from_urls(
        [store_url], fleet_stats=False, encryption=Sealer({"k1": K_OLD}), clock=clock
    )
    for i in range(4):
        assert cache.set(_request(i), SECRET_ANSWER)
    clock.advance(3600)
    assert cache.set(_request(4), "fresh")
    assert cache.invalidate(older_than=1800) == 4
    assert await cache.ainvalidate(older_than=1800) == 0
    assert cache.set(_request(5), "old too") and cache.set(_request(6), "old too")
    clock.advance(3600)
    assert await cache.ainvalidate(older_than=1800) == 3
    assert all(cache.get(_request(i)) is None for i in (0, 1, 2, 3, 4, 5, 6))
    cache.close()


@pytest.mark.parametrize("tier_url", STORES, indirect=True)
def test_plain_entries_are_not_served_when_encryption_is_on(store_url: str) -> None:
    plain = Cache.from_urls([store_url], fleet_stats=False, encryption=False)
    plain.set(_request(), "planted in plain text")
    plain.close()
    sealed = Cache.from_urls([store_url], fleet_stats=False, encryption=Sealer({"k1": K_OLD}))
    assert sealed.get(_request()) is None
    assert sealed.stats()["decode_errors"] == 1
    sealed.close()


def test_encryption_true_without_keys_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMCACHE_ENCRYPTION_KEYS", raising=False)
    from llmcache import ConfigError

    with pytest.raises(ConfigError, match="LLMCACHE_ENCRYPTION_KEYS"):
        Cache.from_urls(["memory://"], encryption=True)


def test_the_semantic_index_keeps_no_question_in_plain_text(
    semantic_cache: object, tmp_path: Path
) -> None:
    sealer = Sealer({"k1": K_OLD})
    cache = semantic_cache(encryption=sealer)  # type: ignore[operator]
    asked = "How do I reset the password of the Initech payroll account?"
    request = CacheRequest(model="m", prompt=[asked], semantic_text=asked)
    cache.set(request, SECRET_ANSWER)
    paraphrase = "How can I reset my Initech payroll account password?"
    hit = cache.get(CacheRequest(model="m", prompt=[paraphrase], semantic_text=paraphrase))
    assert hit is not None and hit.match == "semantic" and hit.entry.value == SECRET_ANSWER
    cache.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"payroll" not in raw and b"Initech" not in raw

    # A process without the keys is served nothing, and deletes nothing it cannot read.
    plain = semantic_cache(encryption=False)  # type: ignore[operator]
    assert plain.get(request) is None
    assert plain.get(CacheRequest(model="m", prompt=[paraphrase], semantic_text=paraphrase)) is None
    plain.close()
    again = semantic_cache(encryption=sealer)  # type: ignore[operator]
    hit = again.get(request)
    assert hit is not None and hit.entry.value == SECRET_ANSWER
    hit = again.get(CacheRequest(model="m", prompt=[paraphrase], semantic_text=paraphrase))
    assert hit is not None and hit.match == "semantic"  # its vector is still there
