"""Parsing a Redis tier URL, and building the redis-py clients it names.

Accepted URLs::

    redis://[user:pw@]host:port/db      rediss://...  (TLS)      unix:///path/to/redis.sock?db=0
    redis+cluster://host:port           a Redis Cluster; host:port is one startup node
    redis+sentinel://host:port[,host:port...]/service_name[?db=N]   Sentinel -> master_for(service)

llmcache's options are removed from the query before redis-py sees it: ``prefix`` (default
``llmcache``; the first part of every key, ``[A-Za-z0-9_-]{1,32}`` so a key pattern built from
it can contain no glob character) and ``ttl`` (the tier's default TTL in seconds for entries
stored with ``ttl=None``). Every other option goes to redis-py (``socket_timeout=2`` ...).

Timeouts default small (connect 0.25 s, socket 0.5 s) so a dead or stalled Redis costs a call
at most about half a second before the cache's breaker skips the tier; a connection error is
retried once at once (a pooled connection the server closed), a timeout never (it would only
double the stall), unless the async side's event loop was itself busy at the deadline
(``loop_timeout``: the reply, or the connect, may have been there all along).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from llmcache._optional import require
from llmcache.errors import ConfigError
from llmcache.policy import MAX_TTL
from llmcache.redact import redact_url
from llmcache.tiers.options import seconds_option, ttl_option

DEFAULT_PREFIX = "llmcache"
PREFIX_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
OUR_OPTIONS = ("prefix", "ttl")
CONNECT_TIMEOUT = 0.25
SOCKET_TIMEOUT = 0.5
_SENTINEL_OPTIONS = frozenset(
    {"db", "password", "username", "socket_timeout", "socket_connect_timeout", "sentinel_password"}
)

Kind = Literal["redis", "redis-cluster", "redis-sentinel"]
_KINDS: dict[str, Kind] = {
    "redis": "redis",
    "rediss": "redis",
    "unix": "redis",
    "redis+cluster": "redis-cluster",
    "rediss+cluster": "redis-cluster",
    "redis+sentinel": "redis-sentinel",
}


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """A parsed Redis tier URL."""

    kind: Kind  # also the tier's name
    url: str  # for redis-py: our options removed, ``+cluster`` dropped from the scheme
    prefix: str
    ttl: float | None
    where: str  # what to call this Redis in messages (no password)
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = ""
    sentinel_options: dict[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------------ clients
    def sync_client(self) -> Any:
        """A new redis-py client (lazy: it connects on first command, except a cluster's)."""
        redis = require("redis", extra="redis", feature="the redis tier")
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        retry = Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))
        if self.kind == "redis-sentinel":
            from redis.sentinel import Sentinel as SyncSentinel

            master, sentinel = self._sentinel_kwargs()
            Sentinel: Any = SyncSentinel  # redis-py leaves it untyped
            return Sentinel(self.sentinels, sentinel_kwargs=sentinel).master_for(
                self.service, retry=retry, **master
            )
        options: dict[str, Any] = {**_timeouts(), "retry": retry}
        if self.kind == "redis-cluster":
            from redis.cluster import RedisCluster

            return RedisCluster.from_url(self.url, **options)
        client = redis.Redis.from_url(self.url, **options)
        # redis-py hands URL options to the connection class only when it first connects:
        # build one (no I/O) so an option it does not take is a ConfigError now.
        pool = client.connection_pool
        pool.connection_class(**pool.connection_kwargs)
        return client

    def async_client(self) -> Any:
        """A new redis.asyncio client: native async I/O, no thread hops."""
        require("redis", extra="redis", feature="the redis tier")
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError

        retry = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
        if self.kind == "redis-sentinel":
            from redis.asyncio.sentinel import Sentinel as AsyncSentinel

            master, sentinel = self._sentinel_kwargs()
            Sentinel: Any = AsyncSentinel  # redis-py leaves it untyped
            return Sentinel(self.sentinels, sentinel_kwargs=sentinel).master_for(
                self.service, retry=retry, **master
            )
        options: dict[str, Any] = {**_timeouts(), "retry": retry}
        if self.kind == "redis-cluster":
            from redis.asyncio.cluster import RedisCluster

            return RedisCluster.from_url(self.url, **options)
        return aioredis.Redis.from_url(self.url, **options)

    def _sentinel_kwargs(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(master's connection kwargs, sentinels' connection kwargs)."""
        opts = self.sentinel_options
        timeouts = {
            "socket_timeout": float(opts.get("socket_timeout", SOCKET_TIMEOUT)),
            "socket_connect_timeout": float(opts.get("socket_connect_timeout", CONNECT_TIMEOUT)),
        }
        master: dict[str, Any] = {**timeouts, "db": int(opts.get("db", 0))}
        for name in ("username", "password"):
            if name in opts:
                master[name] = opts[name]
        sentinel: dict[str, Any] = dict(timeouts)
        if "sentinel_password" in opts:
            sentinel["password"] = opts["sentinel_password"]
        return master, sentinel


def _timeouts() -> dict[str, float]:
    # Keyword defaults: redis-py lets the URL's own query options win over them.
    return {"socket_connect_timeout": CONNECT_TIMEOUT, "socket_timeout": SOCKET_TIMEOUT}


def parse_redis_url(raw: str) -> RedisTarget:
    """Parse ``raw`` or raise ConfigError (MissingExtraError without the redis package)."""
    shown = redact_url(raw)
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    kind = _KINDS.get(scheme)
    if kind is None:
        raise ConfigError(
            f"redis tier: unsupported scheme {scheme!r} in {shown!r}; use redis://, rediss://, "
            "unix://, redis+cluster:// or redis+sentinel://"
        )
    require("redis", extra="redis", feature="the redis tier")
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = _our_options(query, shown)
    prefix = check_prefix(ours.get("prefix", DEFAULT_PREFIX), f" in {shown!r}")
    ttl = ttl_option("redis", ours.get("ttl"), shown)
    rest = [(k, v) for k, v in query if k not in OUR_OPTIONS]
    _check_timeouts(rest, shown)
    db_option = _db_option(rest, kind, shown)
    if kind == "redis-sentinel":
        return _sentinel_target(parts, rest, prefix, ttl, shown)
    redis_scheme = scheme.split("+", 1)[0]
    # Not urlunsplit: it drops the empty authority of unix:///path (redis-py needs "unix://").
    query_text = f"?{urlencode(rest)}" if rest else ""
    url = f"{redis_scheme}://{parts.netloc}{parts.path}{query_text}"
    if scheme != "unix" and not parts.hostname:
        raise ConfigError(f"redis tier: {shown!r} names no host; e.g. redis://127.0.0.1:6379/0")
    if scheme == "unix":
        where = f"{kind} unix:{parts.path}"
        if db_option is not None:
            where += f" db {db_option}"
    else:
        _check_db(parts.path, kind, shown)
        path_db = unquote(parts.path).strip("/")
        if db_option is not None and path_db and int(path_db) != db_option:
            raise ConfigError(
                f"redis tier: {shown!r} names database {int(path_db)} in its path and "
                f"{db_option} in ?db=; name it once"
            )
        where = f"{kind} {parts.hostname}:{parts.port or 6379}"
        if kind == "redis" and (path_db or db_option is not None):
            where += f"/{path_db or db_option}"
    return RedisTarget(kind=kind, url=url, prefix=prefix, ttl=ttl, where=where)


def _check_timeouts(options: list[tuple[str, str]], shown: str) -> None:
    """Timeouts must be positive seconds: redis-py takes 0 as a non-blocking socket (every
    command fails at once) and fails every connect on a negative or NaN one, so the tier
    would never work while its errors blamed the server."""
    for name, raw in options:
        if name in ("socket_timeout", "socket_connect_timeout"):
            seconds_option("redis", name, raw, shown)


def _db_option(options: list[tuple[str, str]], kind: str, shown: str) -> int | None:
    """The ``?db=`` option, checked: redis-py lets it win over the path's database, so
    ``redis://host/13?db=5`` wrote to and cleared database 5 while the tier said 13."""
    given = [value for name, value in options if name == "db"]
    if not given:
        return None
    if len(given) > 1:
        raise ConfigError(f"redis tier: option 'db' is given twice in {shown!r}")
    if not given[0].isdigit():
        raise ConfigError(
            f"redis tier: db={given[0]!r} in {shown!r} must be a database number, e.g. db=0"
        )
    db = int(given[0])
    if kind == "redis-cluster" and db != 0:
        raise ConfigError(f"redis tier: a Redis Cluster has database 0 only; {shown!r} names {db}")
    return db


def _check_db(path: str, kind: str, shown: str) -> None:
    """The URL's database number, checked: redis-py ignores a path that is not a number and
    silently uses database 0, where another app's keys may be."""
    db = unquote(path).strip("/")
    if not db:
        return
    if not db.isdigit():
        raise ConfigError(
            f"redis tier: the database in {shown!r} must be a number, e.g. "
            f"redis://127.0.0.1:6379/0; got {db!r}"
        )
    if kind == "redis-cluster" and int(db) != 0:
        raise ConfigError(f"redis tier: a Redis Cluster has database 0 only; {shown!r} names {db}")


def _sentinel_target(
    parts: Any, rest: list[tuple[str, str]], prefix: str, ttl: float | None, shown: str
) -> RedisTarget:
    service = unquote(parts.path.strip("/"))
    if not service or "/" in service:
        raise ConfigError(
            f"redis tier: {shown!r} names no service; use redis+sentinel://host:port/service_name"
        )
    hosts = parts.netloc.rsplit("@", 1)[-1]
    sentinels: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "26379")
        try:
            sentinels.append((host or "127.0.0.1", int(port)))
        except ValueError:
            raise ConfigError(f"redis tier: bad sentinel address {item!r} in {shown!r}") from None
    options = dict(rest)
    if parts.password is not None:
        options.setdefault("password", unquote(parts.password))
    if parts.username:
        options.setdefault("username", unquote(parts.username))
    unknown = set(options) - _SENTINEL_OPTIONS
    if unknown:
        raise ConfigError(
            f"redis tier: unknown option(s) {sorted(unknown)} in {shown!r}; a sentinel URL takes "
            f"{sorted(_SENTINEL_OPTIONS | set(OUR_OPTIONS))}"
        )
    try:
        int(options.get("db", 0))
    except ValueError as exc:
        raise ConfigError(f"redis tier: bad option in {shown!r}: {exc}") from None
    where = f"redis-sentinel {hosts}/{service}"
    return RedisTarget(
        kind="redis-sentinel",
        url="",
        prefix=prefix,
        ttl=ttl,
        where=where,
        sentinels=tuple(sentinels),
        service=service,
        sentinel_options=options,
    )


def check_prefix(prefix: str, where: str = "") -> str:
    """``prefix`` if it may start our keys, else ConfigError: it goes into SCAN patterns."""
    if not isinstance(prefix, str) or not PREFIX_RE.fullmatch(prefix):
        raise ConfigError(
            f"redis tier: prefix {prefix!r}{where} is not allowed; use 1 to 32 letters, "
            "digits, '_' or '-'"
        )
    return prefix


def check_tier_ttl(ttl: float | None) -> float | None:
    """A tier default TTL given in code: None, or a positive finite number of seconds."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl):
        raise ConfigError(f"redis tier: ttl must be a number of seconds or None, got {ttl!r}")
    if ttl <= 0:
        raise ConfigError(
            f"redis tier: ttl={ttl!r} must be positive; use None for no expiry "
            "(ttl=0 would store nothing)"
        )
    if ttl > MAX_TTL:
        raise ConfigError(
            f"redis tier: ttl={ttl!r} is over {MAX_TTL:.0f} seconds (100 years); "
            "use None for no expiry"
        )
    return float(ttl)


def _our_options(query: list[tuple[str, str]], shown: str) -> dict[str, str]:
    ours: dict[str, str] = {}
    for key, value in query:
        if key in OUR_OPTIONS:
            if key in ours:
                raise ConfigError(f"redis tier: option {key!r} is given twice in {shown!r}")
            ours[key] = value
    return ours
