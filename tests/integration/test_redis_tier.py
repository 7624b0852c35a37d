"""Redis tier specifics, on the real Redis (127.0.0.1:6379): URLs, key layout, native TTL,
tag sets, clear() touching only llmcache's own keys, and who closes which client.

The shared behaviour (round trips, scopes, TTL through the cache, sync == async) is in
test_tier_contract.py, which runs on Redis too.
"""

from __future__ import annotations

import dataclasses
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from conftest import delete_redis_keys, exact_ttl, with_query

from llmcache import Cache, CacheRequest, ConfigError, FakeClock, Scope
from llmcache.errors import MissingExtraError, TierError
from llmcache.keys import label_digest, request_key, scope_digest
from llmcache.tiers import tier_from_url
from llmcache.tiers.redis import RedisTier


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def raw(redis_url: str, prefix: str) -> Iterator[redis.Redis]:
    """A plain client on the same server, to look at what the tier stored."""
    client = redis.Redis.from_url(redis_url)
    yield client
    for name in client.scan_iter(match=f"{prefix}*"):
        client.unlink(name)
    client.close()


@pytest.fixture
def cache(redis_url: str, prefix: str, fake_clock: FakeClock) -> Iterator[Cache]:
    url = with_query(redis_url, prefix=prefix)
    with Cache.from_urls([url], clock=fake_clock, policy=exact_ttl()) as c:
        yield c
    delete_redis_keys(redis_url, prefix)


def req(prompt: str, tags: tuple[str, ...] = (), **scope: str) -> CacheRequest:
    return CacheRequest(model="m", prompt=prompt, tags=tags, scope=Scope.of(**scope))


# ---------------------------------------------------------------------------- URLs
@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("redis://127.0.0.1:6379/0", "redis"),
        ("rediss://127.0.0.1:6380/0", "redis"),
        ("unix:///tmp/redis.sock?db=1", "redis"),
        ("redis+cluster://127.0.0.1:7101", "redis-cluster"),
        ("redis+sentinel://127.0.0.1:7301/llmcache", "redis-sentinel"),
    ],
)
def test_every_scheme_builds_a_tier_named_for_its_kind(url: str, name: str) -> None:
    tier = tier_from_url(url)  # no connection is made before first use
    try:
        assert isinstance(tier, RedisTier) and tier.name == name
        assert tier.prefix == "llmcache" and tier.default_ttl is None
    finally:
        tier.close()


def test_our_options_leave_the_url_and_socket_timeouts_are_small() -> None:
    tier = RedisTier.from_url("redis://127.0.0.1:6379/3?prefix=app-1&ttl=90")
    try:
        assert (tier.prefix, tier.default_ttl) == ("app-1", 90.0)
        kwargs = tier._sync().connection_pool.connection_kwargs
        assert kwargs["db"] == 3
        assert kwargs["socket_connect_timeout"] == 0.25 and kwargs["socket_timeout"] == 0.5
        assert "prefix" not in kwargs and "ttl" not in kwargs
    finally:
        tier.close()


def test_timeouts_are_overridable_in_the_url() -> None:
    tier = RedisTier.from_url("redis://127.0.0.1:6379/0?socket_timeout=2&socket_connect_timeout=1")
    try:
        kwargs = tier._sync().connection_pool.connection_kwargs
        assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (2.0, 1.0)
    finally:
        tier.close()


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("redis://127.0.0.1/0?prefix=a*b", "prefix 'a*b'"),
        ("redis://127.0.0.1/0?prefix=a:b", "prefix 'a:b'"),
        ("redis://127.0.0.1/0?prefix=" + "x" * 33, "is not allowed"),
        ("redis://127.0.0.1/0?ttl=0", "ttl=0 would store nothing"),
        ("redis://127.0.0.1/0?ttl=abc", "not a number"),
        ("redis://127.0.0.1/0?prefix=a&prefix=b", "given twice"),
        ("redis://127.0.0.1/0?bogus_option=1", "bad option"),
        ("redis+sentinel://127.0.0.1:7301", "names no service"),
        ("redis+sentinel://127.0.0.1:7301/svc?bogus=1", "unknown option"),
        # redis-py itself ignores a path that is not a number: database 0, silently
        ("redis://127.0.0.1:6379/cache", "must be a number"),
        ("rediss://127.0.0.1:6379/1/2", "must be a number"),
        ("redis+cluster://127.0.0.1:7101/1", "database 0 only"),
        # redis-py lets ?db= win over the path: the tier said 13, wrote and cleared 5
        ("redis://127.0.0.1:6379/13?db=5", "database 13 in its path and 5 in ?db="),
        ("redis+cluster://127.0.0.1:7101?db=3", "database 0 only"),
        ("redis+sentinel://127.0.0.1:7301/svc?db=-1", "must be a database number"),
        ("redis+sentinel://127.0.0.1:7301/svc?db=1&db=2", "'db' is given twice"),
        # redis-py takes 0 as a non-blocking socket and fails every connect on -1 or nan:
        # a tier that never works, its errors blaming the server
        ("redis://127.0.0.1/0?socket_timeout=0", "must be a positive number of seconds"),
        ("redis://127.0.0.1/0?socket_connect_timeout=-1", "must be a positive number"),
        ("redis://127.0.0.1/0?socket_timeout=nan", "must be a positive number of seconds"),
        ("redis+sentinel://127.0.0.1:7301/svc?socket_timeout=0", "must be a positive number"),
        ("redis://127.0.0.1/0?socket_timeout=soon", "is not a number of seconds"),
    ],
)
def test_bad_urls_name_the_problem(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match="redis tier") as info:
        tier_from_url(url)
    assert fragment in str(info.value)


def test_missing_redis_package_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from llmcache.errors import MissingExtraError, TierError\n"
        "from llmcache.tiers import tier_from_url\n"
        "try:\n"
        "    tier_from_url('redis://127.0.0.1:6379/0')\n"
        "except MissingExtraError as exc:\n"
        "    print(exc.extra, '|', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("redis | ")
    assert "pip install 'llmcache[redis]'" in out.stdout
    assert issubclass(MissingExtraError, ConfigError)


# ---------------------------------------------------------------------------- keys and TTL
def test_key_layout_and_native_ttl(cache: Cache, raw: redis.Redis, prefix: str) -> None:
    request = req("q", user="alice", tenant="acme")
    cache.set(request, "v", ttl=30)
    key = request_key(request)
    name = f"{prefix}:{{{scope_digest(request.scope).hex()}}}:e:{key.digest.hex()}"
    assert raw.exists(name) == 1
    assert 29_000 < raw.pttl(name) <= 30_000  # Redis expires it on its own
    cache.set(req("forever"), "f", ttl=None)
    forever = f"{prefix}:{{{scope_digest(Scope()).hex()}}}:e:{request_key(req('forever')).hex}"
    assert raw.pttl(forever) == -1  # no TTL: a plain SET


def test_tier_default_ttl_becomes_px(redis_url: str, raw: redis.Redis, prefix: str) -> None:
    tier = RedisTier.from_url(with_query(redis_url, prefix=prefix, ttl="60"))
    with Cache([tier]) as cache:
        cache.set(req("q"), "v", ttl=None)
        (name,) = raw.scan_iter(match=f"{prefix}:{{*}}:e:*")
        assert 59_000 < raw.pttl(name) <= 60_000


def test_an_already_expired_entry_is_not_stored(
    cache: Cache, raw: redis.Redis, prefix: str
) -> None:
    tier = cache.tiers[0]
    request = req("q")
    cache.set(request, "old", ttl=None)
    entry = cache.get(request)
    assert entry is not None
    stale = dataclasses.replace(entry.entry, expires_at=cache.clock() - 1)
    tier.set(request_key(request), stale, b"ignored", cache.clock())
    assert list(raw.scan_iter(match=f"{prefix}:{{*}}:e:*")) == []  # the old value is gone too
    assert cache.get(request) is None


def test_tag_sets_list_the_entry_and_outlive_it(
    cache: Cache, raw: redis.Redis, prefix: str
) -> None:
    short = req("short", tags=("faq", "billing"), user="u")
    long = req("long", tags=("faq",), user="u")
    cache.set(long, "l", ttl=100)
    cache.set(short, "s", ttl=10)  # a shorter TTL must not shorten the set that lists "long"
    scope_hex = scope_digest(short.scope).hex()
    faq = f"{prefix}:{{{scope_hex}}}:t:{label_digest('tag', 'faq').hex()}"
    billing = f"{prefix}:{{{scope_hex}}}:t:{label_digest('tag', 'billing').hex()}"
    members = {m.decode() for m in raw.smembers(faq)}
    assert members == {
        f"{prefix}:{{{scope_hex}}}:e:{request_key(long).hex}",
        f"{prefix}:{{{scope_hex}}}:e:{request_key(short).hex}",
    }
    assert 99_000 < raw.pttl(faq) <= 100_000
    assert 9_000 < raw.pttl(billing) <= 10_000
    cache.set(req("untimed", tags=("faq",), user="u"), "u", ttl=None)
    assert raw.pttl(faq) == -1  # an entry without TTL: its tag set never expires either


def test_a_value_without_our_header_is_a_miss_and_deleted(
    cache: Cache, raw: redis.Redis, prefix: str
) -> None:
    request = req("q")
    cache.set(request, "v")
    (name,) = raw.scan_iter(match=f"{prefix}:{{*}}:e:*")
    raw.set(name, b"not an llmcache value")
    assert cache.get(request) is None
    assert raw.exists(name) == 0
    assert cache.stats()["errors_by_tier"] == {}


# ---------------------------------------------------------------------------- clear
def test_clear_leaves_foreign_keys_alone(
    redis_url: str, raw: redis.Redis, prefix: str, fake_clock: FakeClock
) -> None:
    other_prefix = prefix + "y"  # another app whose prefix starts like ours
    foreign = {
        f"{prefix}": b"bare prefix",
        f"{prefix}:not-ours": b"no hash tag",
        f"{prefix}x:{{abc}}:e:1": b"longer prefix",
        f"x{prefix}:{{abc}}:e:1": b"prefix inside",
        f"{prefix}-app:{{abc}}:e:1": b"other app",
        # An app's hash-tagged keys under our prefix: "{*}" matched them, and clear() took them.
        f"{prefix}:{{session-42}}:cart": b"an app's cart",
        f"{prefix}:{{{scope_digest(Scope.of(user='u0')).hex()}}}:mine": b"in a scope's slot",
    }
    for name, value in foreign.items():
        raw.set(name, value)
    db1 = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/1")
    mine_in_db1 = f"{prefix}:{{{'0' * 32}}}:e:{'0' * 64}"
    db1.set(mine_in_db1, b"same prefix, other database")
    with (
        Cache.from_urls([with_query(redis_url, prefix=prefix)], clock=fake_clock) as cache,
        Cache.from_urls([with_query(redis_url, prefix=other_prefix)], clock=fake_clock) as other,
    ):
        for i in range(3):
            cache.set(req(f"q{i}", tags=("t",), user=f"u{i}"), i)
        other.set(req("q0"), "theirs")
        assert cache.clear(scope=Scope.of(user="u0")) == 1
        assert cache.clear() == 2  # entries, not tag sets
        assert other.get(req("q0")) is not None
        other.clear()
    try:
        assert {n: raw.get(n) for n in foreign} == foreign
        assert db1.get(mine_in_db1) == b"same prefix, other database"
        left = {n.decode() for n in raw.scan_iter(match=f"{prefix}:{{*")}
        assert left <= set(foreign)  # our tag sets went too
    finally:
        db1.unlink(mine_in_db1)
        db1.close()
        for name in foreign:
            raw.unlink(name)


def test_clear_in_batches_counts_every_entry(cache: Cache, raw: redis.Redis, prefix: str) -> None:
    pipe = raw.pipeline(transaction=False)
    for i in range(1200):  # more than two SCAN/UNLINK batches
        cache_name = f"{prefix}:{{{'ab' * 16}}}:e:{i:064x}"
        pipe.set(cache_name, b"x")
    pipe.execute()
    assert cache.clear() == 1200
    assert list(raw.scan_iter(match=f"{prefix}:{{*}}:*")) == []


async def test_aclear_of_one_scope(cache: Cache, raw: redis.Redis, prefix: str) -> None:
    for i in range(3):
        await cache.aset(req(f"q{i}", tags=("t",), user="alice"), i)
        await cache.aset(req(f"q{i}", user="bob"), i)
    assert await cache.aclear(scope=Scope.of(user="alice")) == 3
    alice_hex = scope_digest(Scope.of(user="alice")).hex()
    assert list(raw.scan_iter(match=f"{prefix}:{{{alice_hex}}}:*")) == []
    assert await cache.aget(req("q1", user="bob")) is not None


# ---------------------------------------------------------------------------- clients
async def test_a_passed_in_client_is_used_and_not_closed(
    redis_url: str, raw: redis.Redis, prefix: str, fake_clock: FakeClock
) -> None:
    client = redis.Redis.from_url(redis_url)
    tier = RedisTier(client=client, prefix=prefix)
    cache = Cache([tier], clock=fake_clock)
    cache.set(req("sync"), "s")
    await cache.aset(req("async"), "a")  # through an async client derived from `client`
    derived = tier._async()
    assert derived is not None and derived is not client
    assert (
        derived.connection_pool.connection_kwargs["port"]
        == client.connection_pool.connection_kwargs["port"]
    )
    assert (await cache.aget(req("sync"))) is not None
    await cache.aclose()
    assert client.ping() is True  # still the user's, still open
    # A set: SCAN may return a key twice while the server rehashes (a busy shared server).
    assert len(set(raw.scan_iter(match=f"{prefix}:{{*}}:e:*"))) == 2
    assert len(tier._aclients) == 0  # the derived one was ours: closed and dropped
    with Cache([tier], clock=fake_clock) as again:  # the borrowed client still serves
        assert again.get(req("sync")) is not None
    assert client.ping() is True
    client.close()


def test_a_decoding_client_is_refused() -> None:
    with pytest.raises(ConfigError, match="decode_responses=False"):
        RedisTier(client=redis.Redis(decode_responses=True))


def test_neither_url_nor_client_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="needs a URL or a client"):
        RedisTier()


def test_close_closes_what_the_tier_created(redis_url: str, prefix: str) -> None:
    tier = RedisTier.from_url(with_query(redis_url, prefix=prefix))
    client = tier._sync()
    client.ping()
    assert len(client.connection_pool._available_connections) == 1
    tier.close()
    assert client.connection_pool._available_connections == [] or all(
        c._sock is None for c in client.connection_pool._available_connections
    )


def test_an_async_client_as_client_is_refused() -> None:
    import redis.asyncio as aioredis

    with pytest.raises(ConfigError, match="takes a sync redis-py client"):
        RedisTier(client=aioredis.Redis())


def test_a_sentinel_client_needs_its_async_twin() -> None:
    from redis.sentinel import Sentinel

    master = Sentinel([("127.0.0.1", 7301)]).master_for("llmcache")
    with pytest.raises(ConfigError, match="async_client="):
        RedisTier(client=master)


# ---------------------------------------------------------------------------- Cluster
@pytest.fixture
def cluster_cache(redis_cluster_url: str, prefix: str, fake_clock: FakeClock) -> Iterator[Cache]:
    with Cache.from_urls([with_query(redis_cluster_url, prefix=prefix)], clock=fake_clock) as c:
        yield c
        c.clear()


def _primaries_holding(cache: Cache, prefix: str) -> set[str]:
    client = cache.tiers[0]._sync()
    holders = set()
    for node in client.get_primaries():
        conn = redis.Redis(host=node.host, port=node.port)
        if any(True for _ in conn.scan_iter(match=f"{prefix}:{{*}}:*")):
            holders.add(node.name)
        conn.close()
    return holders


def test_cluster_clear_scans_every_primary(cluster_cache: Cache, prefix: str) -> None:
    users = [f"u{i}" for i in range(30)]
    for user in users:
        cluster_cache.set(req("q", tags=("t",), user=user), user)
    assert len(_primaries_holding(cluster_cache, prefix)) >= 2  # the scopes spread out
    assert cluster_cache.clear(scope=Scope.of(user="u0")) == 1
    assert cluster_cache.clear() == 29
    assert _primaries_holding(cluster_cache, prefix) == set()


async def test_cluster_async_clear_scans_every_primary(cluster_cache: Cache, prefix: str) -> None:
    for i in range(20):
        await cluster_cache.aset(req("q", user=f"u{i}"), i)
    assert await cluster_cache.aclear() == 20
    assert _primaries_holding(cluster_cache, prefix) == set()


def test_an_entry_and_its_tag_sets_share_a_slot(cluster_cache: Cache, prefix: str) -> None:
    cluster_cache.set(req("q", tags=("a", "b", "c"), user="alice"), "v")
    client = cluster_cache.tiers[0]._sync()
    names = [n for node in client.get_primaries() for n in _keys_on(node, prefix)]
    assert len(names) == 5  # the entry, its partition set and three tag sets
    assert len({client.keyslot(n) for n in names}) == 1


def _keys_on(node: Any, prefix: str) -> list[bytes]:
    conn = redis.Redis(host=node.host, port=node.port)
    try:
        return list(conn.scan_iter(match=f"{prefix}:{{*}}:*"))
    finally:
        conn.close()


async def test_a_passed_in_cluster_client_gets_a_derived_async_client(
    redis_cluster_url: str, prefix: str, fake_clock: FakeClock
) -> None:
    from redis.cluster import RedisCluster

    client = RedisCluster.from_url(redis_cluster_url.replace("redis+cluster", "redis"))
    tier = RedisTier(client=client, prefix=prefix)
    assert tier.name == "redis-cluster"
    cache = Cache([tier], clock=fake_clock)
    cache.set(req("sync", user="a"), "s")
    hit = await cache.aget(req("sync", user="a"))
    assert hit is not None and hit.entry.value == "s"
    assert await cache.aclear() == 1
    await cache.aclose()
    assert client.ping() is True  # the user's client stays open
    client.close()


def test_a_cluster_that_is_down_at_start_fails_open(prefix: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Cache.from_urls([f"redis+cluster://127.0.0.1:{port}?prefix={prefix}"]) as cache:
        assert cache.get(req("q")) is None
        assert cache.set(req("q"), "v") is False
        assert cache.stats()["errors_by_tier"]["redis-cluster"] == 1


# ---------------------------------------------------------------------------- Sentinel
def _open_sockets(client: Any) -> int:
    pool = client.connection_pool
    return sum(1 for c in pool._available_connections + list(pool._in_use_connections) if c._sock)


def test_sentinel_close_closes_the_sentinel_connections_too(
    redis_sentinel_url: str, prefix: str
) -> None:
    from llmcache.tiers.redis import _sentinels_of

    tier = RedisTier.from_url(with_query(redis_sentinel_url, prefix=prefix))
    with Cache([tier]) as cache:
        cache.set(req("q"), "v")
        assert cache.get(req("q")) is not None and cache.clear() == 1
        master = tier._sync()
        sentinels = _sentinels_of(master)
        assert sentinels and sum(_open_sockets(s) for s in sentinels) >= 1
        assert master.connection_pool.connection_kwargs["socket_timeout"] == 0.5
    assert sum(_open_sockets(s) for s in sentinels) == 0
    assert _open_sockets(master) == 0


async def test_sentinel_aclose_closes_what_it_created(redis_sentinel_url: str, prefix: str) -> None:
    from llmcache.tiers.redis import _sentinels_of

    tier = RedisTier.from_url(with_query(redis_sentinel_url, prefix=prefix))
    async with Cache([tier]) as cache:
        await cache.aset(req("q"), "v")
        assert (await cache.aget(req("q"))) is not None and await cache.aclear() == 1
        aclient = tier._async()
        sentinels = _sentinels_of(aclient)
        assert sentinels
    assert len(tier._aclients) == 0
    for client in (aclient, *sentinels):
        pool = client.connection_pool
        assert not any(c.is_connected for c in pool._available_connections)


def test_from_env_takes_a_sentinel_url_with_several_sentinels(
    redis_sentinel_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # LLMCACHE_URLS was split at every comma: "redis+sentinel://127.0.0.1:7301" then named
    # no service, and the README's form of a Sentinel URL could not be used from the env.
    sentinels = redis_sentinel_url.replace(":7301/", ":7301,127.0.0.1:7301/", 1)
    assert sentinels != redis_sentinel_url
    monkeypatch.setenv("LLMCACHE_URLS", f"memory://, {with_query(sentinels, prefix=prefix)}")
    with Cache.from_env() as cache:
        assert [t.name for t in cache.tiers] == ["memory", "redis-sentinel"]
        assert cache.set(req("q"), "v") and cache.clear() == 2


# ---------------------------------------------------------------------------- unix socket
@pytest.fixture
def unix_socket(tmp_path: Any) -> Iterator[str]:
    """A redis-server of this test listening on a unix socket only."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    path = tmp_path / "redis.sock"
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(path), "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not path.exists():
            assert time.monotonic() < deadline, "redis-server did not create its socket"
            time.sleep(0.02)
        yield str(path)
    finally:
        proc.kill()
        proc.wait(timeout=10)


async def test_unix_socket_url_and_a_passed_in_unix_client(
    unix_socket: str, fake_clock: FakeClock
) -> None:
    with Cache.from_urls([f"unix://{unix_socket}?db=2&prefix=u"], clock=fake_clock) as cache:
        cache.set(req("q"), "over a socket")
        assert (await cache.aget(req("q"))).entry.value == "over a socket"  # type: ignore[union-attr]
    client = redis.Redis(unix_socket_path=unix_socket, db=2)
    tier = RedisTier(client=client, prefix="u")
    assert tier.target.where == f"redis unix:{unix_socket}"
    cache = Cache([tier], clock=fake_clock)
    hit = await cache.aget(req("q"))  # the derived async client speaks over the same socket
    assert hit is not None and hit.entry.value == "over a socket"
    assert tier._async().connection_pool.connection_class.__name__ == "UnixDomainSocketConnection"
    await cache.aclose()
    assert len(list(client.scan_iter(match="u:{*}:e:*"))) == 1  # the entry
    client.close()


# ---------------------------------------------------------------------------- TLS
@pytest.fixture
def tls_server(tmp_path: Any) -> Iterator[tuple[int, str]]:
    """A redis-server of this test speaking TLS only, with a throwaway CA: (port, CA file)."""
    if shutil.which("redis-server") is None or shutil.which("openssl") is None:
        pytest.skip("redis-server or openssl is not installed")
    ca, key, cert = tmp_path / "ca.pem", tmp_path / "key.pem", tmp_path / "cert.pem"

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    # The extensions Python 3.13's strict verification (VERIFY_X509_STRICT) requires.
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", str(tmp_path / "ca-key.pem"), "-out", str(ca))  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", str(key), "-out", str(tmp_path / "req.pem"))  # fmt: skip
    (tmp_path / "san.cnf").write_text(
        "subjectAltName=IP:127.0.0.1\nauthorityKeyIdentifier=keyid\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    openssl("x509", "-req", "-in", str(tmp_path / "req.pem"), "-CA", str(ca),
            "-CAkey", str(tmp_path / "ca-key.pem"), "-CAcreateserial", "-days", "1",
            "-extfile", str(tmp_path / "san.cnf"), "-out", str(cert))  # fmt: skip
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
         "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server (TLS) did not start"
                time.sleep(0.02)
        yield port, str(ca)
    finally:
        proc.kill()
        proc.wait(timeout=10)


async def test_rediss_url_speaks_tls(tls_server: tuple[int, str], fake_clock: FakeClock) -> None:
    port, ca = tls_server
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}&prefix=tls"
    with Cache.from_urls([url], clock=fake_clock) as cache:
        assert cache.set(req("q"), "secret-free answer") is True
        hit = await cache.aget(req("q"))  # redis.asyncio over TLS too
        assert hit is not None and hit.entry.value == "secret-free answer"
        assert cache.stats()["errors_by_tier"] == {}
    plain = f"redis://127.0.0.1:{port}/0?prefix=tls"  # TLS server, plain client: fails open
    with Cache.from_urls([plain], clock=fake_clock) as cache:
        assert cache.get(req("q")) is None
        assert cache.stats()["errors_by_tier"] == {"redis": 1}


def test_each_event_loop_gets_its_own_async_client(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    """Threads each running their own loop share one tier without closing each other's
    connections (redis.asyncio connections belong to the loop that opened them).
    (``raw`` removes what the test stored.)"""
    import asyncio
    import threading

    tier = RedisTier.from_url(with_query(redis_url, prefix=prefix))
    cache = Cache([tier])
    clients: list[Any] = []
    seen: list[Any] = []

    def worker(n: int) -> None:
        async def run() -> None:
            for i in range(30):
                await cache.aset(req(f"w{n}-{i}"), i)
                hit = await cache.aget(req(f"w{n}-{i}"))
                seen.append(None if hit is None else hit.entry.value)
                await asyncio.sleep(0)
            clients.append(tier._async())

        asyncio.run(run())

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(seen, key=str) == sorted(list(range(30)) * 3, key=str)
    assert len({id(c) for c in clients}) == 3
    assert cache.stats()["errors_by_tier"] == {}
    cache.close()
    assert len(tier._aclients) == 0


def test_sentinel_url_with_several_sentinels_and_passwords() -> None:
    from llmcache.tiers.redis_url import parse_redis_url

    target = parse_redis_url(
        "redis+sentinel://:m-secret@127.0.0.1:7301,127.0.0.1:7399/llmcache"
        "?db=2&sentinel_password=s-secret&socket_timeout=1.5&prefix=p"
    )
    assert target.sentinels == (("127.0.0.1", 7301), ("127.0.0.1", 7399))
    assert (target.service, target.prefix) == ("llmcache", "p")
    master, sentinel = target._sentinel_kwargs()
    assert (master["password"], master["db"], master["socket_timeout"]) == ("m-secret", 2, 1.5)
    assert sentinel["password"] == "s-secret" and "db" not in sentinel
    assert "secret" not in target.where


def test_passwords_stay_out_of_names_and_errors() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tier = RedisTier.from_url(f"redis://:hunter2@127.0.0.1:{port}/0")
    with pytest.raises(TierError) as info:
        tier.get(request_key(req("q")), 0.0)
    tier.close()
    assert "hunter2" not in repr(tier) and "hunter2" not in str(info.value)
    assert f"127.0.0.1:{port}" in str(info.value) and "is the server running" in str(info.value)


# ---------------------------------------------------------------------------- foreign values
@pytest.mark.parametrize("kind", ["hash", "list", "set"])
@pytest.mark.parametrize("single_flight", [True, False])  # True: read and lock in one script
async def test_a_key_of_another_type_under_an_entry_is_a_miss_and_is_deleted(
    redis_url: str, prefix: str, raw: redis.Redis, kind: str, single_flight: bool
) -> None:
    # Another writer (or a hand edit) left a hash where an entry lives: GET answers WRONGTYPE.
    # It used to fail the tier (its breaker opened for everyone) and stay.
    url = with_query(redis_url, prefix=prefix)
    with Cache.from_urls([url], single_flight_timeout=5 if single_flight else None) as cache:
        tier = cache.tiers[0]
        assert isinstance(tier, RedisTier)
        broken, neighbour = req("broken"), req("neighbour")
        cache.set(neighbour, "fine")
        name = tier.entry_key(request_key(broken))
        for lookup in (cache.get, cache.aget):
            {"hash": raw.hset, "list": raw.rpush, "set": raw.sadd}[kind](name, "v", "w")
            found = lookup(broken)
            assert (await found if lookup == cache.aget else found) is None
            assert raw.exists(name) == 0
        stats = cache.stats()
        assert stats["decode_errors"] == 2 and stats["errors_by_tier"] == {}
        hit = cache.get(neighbour)  # the tier still serves
        assert hit is not None and hit.entry.value == "fine"
        cache.set(broken, "stored anew")
        hit = await cache.aget(broken)
        assert hit is not None and hit.entry.value == "stored anew"
