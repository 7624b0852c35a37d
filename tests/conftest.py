"""Shared fixtures: real servers (never fakes), temp SQLite files, a fake clock.

Server URLs can be overridden with LLMCACHE_TEST_MYSQL_URL / _POSTGRES_URL / _REDIS_URL.
A test that needs a server skips when the server is unreachable on a developer's machine,
and FAILS under CI (CI=true): there, scripts/services.sh must have started it.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from llmcache.clock import FakeClock
from llmcache.policy import CachePolicy

if TYPE_CHECKING:
    from click.testing import Result

MYSQL_URL = os.environ.get("LLMCACHE_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
POSTGRES_URL = os.environ.get(
    "LLMCACHE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("LLMCACHE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def reachable(url: str, timeout: float = 1.0) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout):
            return True
    except OSError:
        return False


def require_server(name: str, url: str) -> str:
    if not reachable(url):
        message = f"{name} is not reachable at {urlsplit(url).netloc}; run scripts/services.sh"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def mysql_url() -> str:
    return require_server("MariaDB/MySQL", MYSQL_URL)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return require_server("PostgreSQL", POSTGRES_URL)


@pytest.fixture(scope="session")
def redis_url() -> str:
    return require_server("Redis", REDIS_URL)


REDIS_CLUSTER_URL = os.environ.get(
    "LLMCACHE_TEST_REDIS_CLUSTER_URL", "redis+cluster://127.0.0.1:7101"
)
REDIS_SENTINEL_URL = os.environ.get(
    "LLMCACHE_TEST_REDIS_SENTINEL_URL", "redis+sentinel://127.0.0.1:7301/llmcache"
)


@pytest.fixture(scope="session")
def redis_cluster_url() -> str:
    """A 3-primary Redis Cluster (scripts/services.sh starts it on 127.0.0.1:7101-7103)."""
    return require_server("Redis Cluster", REDIS_CLUSTER_URL)


@pytest.fixture(scope="session")
def redis_sentinel_url() -> str:
    """A Sentinel (127.0.0.1:7301) watching primary 7201 and replica 7202 (services.sh)."""
    return require_server("Redis Sentinel", REDIS_SENTINEL_URL)


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    return f"sqlite:///{tmp_path}/llmcache.db"


@pytest.fixture
def table_prefix() -> str:
    """A unique SQL table prefix, so tests sharing one server database never meet."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


def exact_ttl(**rules: object) -> CachePolicy:
    """A policy without TTL jitter (the default spreads TTLs by ±10%): for tests whose point
    is the exact second an entry expires."""
    return CachePolicy(ttl_jitter=0, **rules)  # type: ignore[arg-type]


# ------------------------------------------------------------------ the llmcache command
def closed_port() -> int:
    """A loopback port nothing listens on (a server that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_one_error_line(result: Result, code: int, *fragments: str) -> None:
    """A command that failed as the CLI promises: ``code``, one line on stderr naming the
    problem (every fragment), no traceback, nothing on stdout."""
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("llmcache: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""


def with_query(url: str, **options: str) -> str:
    sep = "&" if "?" in url else "?"
    return url + sep + "&".join(f"{k}={v}" for k, v in options.items())


TIER_KINDS = ["memory", "sqlite", "mysql", "postgres", "redis", "redis_cluster", "redis_sentinel"]


#: The server SQL tiers store through write-behind by default (a writer thread); these kinds
#: are the same servers with ``?write_behind=off`` (each store waits for its commit): the
#: contract suites run on both.
SYNC_STORE_KINDS = ["mysql_sync_stores", "postgres_sync_stores"]


@pytest.fixture(params=TIER_KINDS)
def tier_url(request: pytest.FixtureRequest, tmp_path: object, table_prefix: str) -> Iterator[str]:
    """One URL per tier kind; SQL tiers get a private table prefix, dropped afterwards, and
    Redis tiers a private key prefix, whose keys are deleted afterwards."""
    yield from tier_url_of(request.param, request, tmp_path, table_prefix)


def tier_url_of(
    kind: str, request: pytest.FixtureRequest, tmp_path: object, table_prefix: str
) -> Iterator[str]:
    """``tier_url``'s body, for modules that parametrize it over more kinds."""
    if kind.endswith("_sync_stores"):
        for url in tier_url_of(kind.removesuffix("_sync_stores"), request, tmp_path, table_prefix):
            yield with_query(url, write_behind="off")
        return
    if kind == "memory":
        yield "memory://?maxsize=1000"
        return
    if kind.startswith("redis"):
        fixture = "redis_url" if kind == "redis" else f"{kind}_url"
        base = request.getfixturevalue(fixture)
        yield with_query(base, prefix=table_prefix)
        delete_redis_keys(base, table_prefix)
        return
    if kind == "sqlite":
        base = f"sqlite:///{tmp_path}/llmcache.db"
    elif kind == "mysql":
        base = request.getfixturevalue("mysql_url")
    else:
        base = request.getfixturevalue("postgres_url")
    yield with_query(base, table_prefix=table_prefix)
    if kind in ("mysql", "postgres"):
        drop_tables(base, table_prefix)


def delete_redis_keys(url: str, prefix: str) -> None:
    """Remove every key under ``prefix`` (random per test: only this test's keys): entries,
    tag sets and flight locks, and also what ``clear()`` rightly leaves alone (the fleet
    stats hash) or a test wrote itself."""
    from llmcache.tiers.redis import RedisTier

    tier = RedisTier.from_url(with_query(url, prefix=prefix))
    try:
        client = tier._sync()
        for name in client.scan_iter(match=f"{prefix}:*"):  # every primary on a Cluster
            client.unlink(name)
    except Exception:
        pass
    finally:
        tier.close()


def drop_redis_stack_prefix(url: str, prefix: str) -> None:
    """Drop every search index and unlink every key whose name starts with ``prefix`` (random
    per test): a redisvl index is named ``<prefix>:vec:<index>``, its stamp key
    ``<prefix>:vecstamp:<index>``."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        for name in client.execute_command("FT._LIST"):
            text = name.decode() if isinstance(name, bytes) else str(name)
            if text.startswith(prefix):
                client.execute_command("FT.DROPINDEX", text)
        for key in client.scan_iter(match=f"{prefix}*"):
            client.unlink(key)
    finally:
        client.close()


@pytest.fixture
def redis_prefix_url(redis_url: str, table_prefix: str) -> Iterator[str]:
    """Standalone Redis under a private key prefix; every key under it is deleted after."""
    yield with_query(redis_url, prefix=table_prefix)
    delete_redis_keys(redis_url, table_prefix)


def drop_tables(url: str, prefix: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for name in sa.inspect(conn).get_table_names():
                if name.startswith(prefix):  # prefixes are random: only ours match
                    quoted = engine.dialect.identifier_preparer.quote(name)
                    conn.execute(sa.text(f"DROP TABLE IF EXISTS {quoted}"))
    except Exception:
        pass
    finally:
        engine.dispose()


# ------------------------------------------------------------------ LangChain adapter
# Fixtures of tests/langchain live here, not in a tests/langchain/conftest.py: a second module
# named "conftest" on sys.path would shadow this one for `from conftest import with_query`.
@pytest.fixture
def lc_cache(fake_clock: FakeClock) -> Iterator[object]:
    """A LangChainCache over one memory tier, on the fake clock."""
    from langchain_llmcache import LangChainCache
    from llmcache import Cache

    cache = Cache.from_urls(["memory://?maxsize=1000"], clock=fake_clock, policy=exact_ttl())
    yield LangChainCache(cache)
    cache.close()


@pytest.fixture
def lc_tier_cache(tier_url: str, fake_clock: FakeClock) -> Iterator[object]:
    """A LangChainCache over one tier of each kind (memory, SQLite, MariaDB, PostgreSQL, Redis
    standalone, Cluster and Sentinel)."""
    from langchain_llmcache import LangChainCache
    from llmcache import Cache

    cache = Cache.from_urls([tier_url], clock=fake_clock, policy=exact_ttl())
    yield LangChainCache(cache)
    cache.close()


# ------------------------------------------------------------------ LiteLLM adapter
# Fixtures of tests/litellm live here too (no tests/litellm/conftest.py, same reason as above).
# Importing litellm first tries to download its price map (retries, seconds; no internet in
# CI) unless this is set, so it is set before any test module imports litellm.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture(params=["memory", "sqlite", "memory+redis"])
def ll_cache(
    request: pytest.FixtureRequest, tmp_path: object, fake_clock: FakeClock
) -> Iterator[object]:
    """An llmcache Cache on memory only, on SQLite only (so SQLite really serves), or on
    memory over standalone Redis (a private key prefix, its keys deleted after)."""
    from llmcache import Cache

    if request.param == "memory+redis":
        urls = ["memory://", request.getfixturevalue("redis_prefix_url")]
    else:
        urls = ["memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/llm.db"]
    cache = Cache.from_urls(urls, clock=fake_clock, policy=exact_ttl())
    yield cache
    cache.close()


@pytest.fixture
def ll_install() -> Iterator[object]:
    """``ll_install(cache, **opts)`` sets ``litellm.cache`` to a LiteLLMCache; restored after."""
    import litellm

    from litellm_llmcache import LiteLLMCache

    before = litellm.cache

    def _install(cache: object, **opts: object) -> LiteLLMCache:
        adapter = LiteLLMCache(cache, **opts)  # type: ignore[arg-type]
        litellm.cache = adapter
        return adapter

    yield _install
    litellm.cache = before


@pytest.fixture
def ll_adapter(ll_cache: object, ll_install: object) -> object:
    """``litellm.cache`` = a LiteLLMCache over ``ll_cache``."""
    return ll_install(ll_cache)  # type: ignore[operator]


# ------------------------------------------------------------------ Redis Stack (redisvl)
# scripts/services.sh starts Redis Stack (search + JSON modules) on 127.0.0.1:6380. A plain
# Redis answering there is treated like a missing server: redisvl tests cannot run on it.
REDIS_STACK_URL = os.environ.get("LLMCACHE_TEST_REDIS_STACK_URL", "redis://127.0.0.1:6380/0")


@pytest.fixture(scope="session")
def redis_stack_url() -> str:
    """A ``redis://`` URL of Redis Stack with the search and JSON modules loaded."""
    import redis

    url = require_server("Redis Stack", REDIS_STACK_URL)
    client = redis.Redis.from_url(url)
    try:
        modules = {m[b"name"].decode().lower() for m in client.module_list()}
    finally:
        client.close()
    if not {"search", "rejson"} <= modules:
        message = (
            f"the server at {urlsplit(url).netloc} is not Redis Stack (modules: "
            f"{sorted(modules) or 'none'}); run scripts/services.sh"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return url


# ------------------------------------------------------------------ semantic tier (FAISS)
# One real MiniLM per test session (loading it takes seconds); each test gets its own
# FAISS file. Tests pass a verifier explicitly (AcceptAll unless they test verification), so
# they assert the tier's plumbing, not the trained verifier's decisions.
@pytest.fixture(scope="session")
def minilm() -> object:
    """The default embedder (all-MiniLM-L6-v2, offline), shared by the session."""
    from llmcache.semantic.embedders import MiniLMEmbedder

    embedder = MiniLMEmbedder()
    embedder.embed(["warm up"])  # load the model once, here
    return embedder


@pytest.fixture
def semantic_cache(tmp_path: object, minilm: object, fake_clock: FakeClock) -> Iterator[object]:
    """``semantic_cache(**opts)``: a Cache (memory + SQLite) with a FAISS semantic tier in
    ``tmp_path``, MiniLM, plain cosine at 0.8 unless ``semantic=``/``verifier=`` say otherwise;
    on the fake clock. Every cache it built is closed after the test."""
    from llmcache import Cache
    from llmcache.semantic.verifier import AcceptAll

    built: list[Cache] = []

    def _build(**opts: object) -> Cache:
        options: dict[str, object] = {
            "semantic": f"faiss://{tmp_path}/vectors.faiss?threshold=0.8&refresh=0",
            "embedder": minilm,
            "verifier": AcceptAll(),
            "clock": fake_clock,
            "policy": exact_ttl(),
        }
        options.update(opts)
        urls = options.pop("urls", ["memory://", f"sqlite:///{tmp_path}/entries.db"])
        cache = Cache.from_urls(urls, **options)  # type: ignore[arg-type]
        built.append(cache)
        return cache

    yield _build
    for cache in built:
        cache.close()


# ------------------------------------------------------------------ reliability figures
@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Tests of a module marked ``figures(area)`` (fuzzing, properties) record the inputs
    they tried and their failures, one row per test (parametrized cases merged)."""
    from figures import counting_inputs

    marker = item.get_closest_marker("figures")
    if marker is None or not isinstance(item, pytest.Function):
        return (yield)
    row = f"{marker.args[0]}: {item.path.name}::{item.originalname}"
    with counting_inputs(item.obj, row):
        return (yield)
