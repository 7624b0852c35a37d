"""Parsing an SQL tier URL: which database, which drivers, and llmcache's own options.

Accepted schemes (each mapped to the one driver llmcache supports for it)::

    sqlite:///path/to/file.db                     the embedded default (sqlite3, stdlib)
    mysql://, mysql+pymysql://, mariadb://, mariadb+pymysql://    -> PyMySQL (+ aiomysql)
    postgresql://, postgres://, postgresql+psycopg://              -> psycopg 3

llmcache's options are removed from the query before the URL reaches SQLAlchemy:
``table_prefix`` (default ``llmcache``), ``ttl`` (the tier's default TTL in seconds, for
entries stored with ``ttl=None``) and ``write_behind`` (``on``/``off``: stores are queued for
a writer thread instead of waiting for the commit; ``write_behind.py``). It is on by default
for MySQL/MariaDB and PostgreSQL, whose commit waits for a log flush to disk (an fsync on the
path of every miss), and off for SQLite, whose WAL commit with ``synchronous=NORMAL`` does not
fsync. Every other query option goes to the driver unchanged.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import sqlalchemy as sa

from llmcache._optional import require
from llmcache.errors import ConfigError
from llmcache.redact import redact_url
from llmcache.tiers.options import ttl_option

DEFAULT_TABLE_PREFIX = "llmcache"
_PREFIX_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,40}")
OUR_OPTIONS = ("table_prefix", "ttl", "write_behind")
_SWITCH = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}


@dataclass(frozen=True, slots=True)
class _Driver:
    name: str  # the tier's name: sqlite, mysql, postgresql
    sync: str  # SQLAlchemy drivername for the sync engine
    native_async: str | None  # drivername for create_async_engine, if any
    module: str | None  # the DB-API module to import (None: stdlib)
    async_modules: tuple[str, ...]
    extra: str


_SQLITE = _Driver("sqlite", "sqlite+pysqlite", None, None, (), "")
_MYSQL = _Driver("mysql", "mysql+pymysql", "mysql+aiomysql", "pymysql", ("aiomysql",), "mysql")
_POSTGRES = _Driver(
    "postgresql", "postgresql+psycopg", "postgresql+psycopg", "psycopg", (), "postgres"
)
_DRIVERS = {
    "sqlite": _SQLITE,
    "sqlite+pysqlite": _SQLITE,
    "mysql": _MYSQL,
    "mysql+pymysql": _MYSQL,
    "mariadb": _MYSQL,
    "mariadb+pymysql": _MYSQL,
    "postgresql": _POSTGRES,
    "postgres": _POSTGRES,
    "postgresql+psycopg": _POSTGRES,
}


@dataclass(frozen=True, slots=True)
class SqlTarget:
    """A parsed SQL tier URL."""

    name: str  # sqlite | mysql | postgresql
    url: sa.URL  # for the sync engine; llmcache's options removed
    async_url: sa.URL | None  # for a native async engine; None: async runs in threads
    table_prefix: str
    ttl: float | None
    where: str  # what to call this store in messages: a file, or host:port/db (no secrets)
    write_behind: bool = False

    @property
    def in_memory(self) -> bool:
        return self.name == "sqlite" and self.url.database in (None, "", ":memory:")


def parse_sql_url(raw: str) -> SqlTarget:
    """Parse ``raw`` or raise ConfigError (MissingExtraError for a missing driver)."""
    shown = redact_url(raw)
    try:
        url = sa.make_url(raw)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise ConfigError(f"sql tier: cannot parse {shown!r}: {exc}") from None
    driver = _DRIVERS.get(url.drivername.lower())
    if driver is None:
        raise ConfigError(
            f"sql tier: unsupported driver {url.drivername!r} in {shown!r}; use sqlite:///path, "
            "mysql+pymysql://user:pw@host:port/db or postgresql+psycopg://user:pw@host:port/db"
        )
    if driver.module is not None:
        require(driver.module, extra=driver.extra, feature=f"the {driver.name} tier")
    # SQLAlchemy drops a query option without a value (table_prefix=): the default would
    # then be used in silence.
    try:
        query = urlsplit(raw).query
    except ValueError as exc:  # urllib's own errors ("Invalid IPv6 URL")
        raise ConfigError(f"sql tier: cannot parse {shown!r}: {exc}") from None
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in OUR_OPTIONS and not value:
            raise ConfigError(f"sql tier: option {name!r} in {shown!r} has no value")
    if driver.name == "sqlite":
        _check_sqlite_options(url, shown)
    prefix = _one(url, "table_prefix", shown)
    if prefix is None:
        prefix = DEFAULT_TABLE_PREFIX
    if not _PREFIX_RE.fullmatch(prefix):
        raise ConfigError(
            f"sql tier: table_prefix {prefix!r} in {shown!r} is not allowed; use a letter "
            "followed by up to 40 letters, digits or underscores"
        )
    ttl = ttl_option("sql", _one(url, "ttl", shown), shown)
    write_behind = _switch(url, "write_behind", shown, default=driver.name != "sqlite")
    url = url.difference_update_query(OUR_OPTIONS).set(drivername=driver.sync)
    if driver.name != "sqlite" and not url.database:
        raise ConfigError(
            f"sql tier: {shown!r} names no database; add one, e.g. "
            f"{driver.sync}://user@127.0.0.1/llmcache"
        )
    return SqlTarget(
        name=driver.name,
        url=url,
        async_url=_native_async_url(url, driver),
        table_prefix=prefix,
        ttl=ttl,
        where=_where(url, driver.name),
        write_behind=write_behind,
    )


#: What SQLite's driver takes from a URL's query (SQLAlchemy's pysqlite dialect); with
#: uri=true, other options go into an SQLite URI, which SQLite itself checks.
_SQLITE_DRIVER_OPTIONS = frozenset(
    ("uri", "timeout", "isolation_level", "detect_types", "check_same_thread", "cached_statements")
)


def _check_sqlite_options(url: sa.URL, shown: str) -> None:
    """An option neither ours nor the driver's is a mistake: SQLAlchemy only warns and drops
    it, so ``?tabel_prefix=app2`` wrote into the default tables, perhaps another app's."""
    if str(url.query.get("uri", "")).lower() in ("true", "1"):
        return
    unknown = sorted(set(url.query) - set(OUR_OPTIONS) - _SQLITE_DRIVER_OPTIONS)
    if unknown:
        raise ConfigError(
            f"sql tier: unknown option {unknown[0]!r} in {shown!r}; llmcache's are "
            f"{', '.join(OUR_OPTIONS)}, SQLite's {', '.join(sorted(_SQLITE_DRIVER_OPTIONS))}"
        )


def sqlite_file(target: SqlTarget) -> Path | None:
    """The file an SQLite tier opens, as SQLite reads the path (no "~" expansion); None for
    a server, ``:memory:`` and SQLite URIs (``file:...``), whose paths SQLite resolves."""
    if target.name != "sqlite" or target.in_memory or "uri" in target.url.query:
        return None
    database = target.url.database or ""
    return None if database.startswith("file:") else Path(database)


def check_sqlite_file(target: SqlTarget) -> None:
    """Raise ConfigError when an SQLite tier's path cannot be a database file: its directory
    does not exist, or it is a directory.

    The tier would otherwise fail open on every call (a logged error, no caching), so a path
    with a typo in it is a configuration error, named when the cache is built. Directories are
    not created for the user: a wrong path would then cache somewhere unexpected. (A file
    that is there but holds no database fails open instead, logged once: it may be a
    database damaged on disk, and a cache must never stop its app from starting.)
    """
    file = sqlite_file(target)
    if file is None:
        return
    if not file.parent.is_dir():
        raise ConfigError(
            f"sql tier: cannot open the SQLite file {file}: its directory {file.parent} "
            f"does not exist; create it, or name a file in an existing directory{_hint(file)}"
        )
    if file.is_dir():
        raise ConfigError(f"sql tier: {file} is a directory; name a database file in it")


def _hint(file: Path) -> str:
    """What was probably meant by a path whose directory is missing."""
    if str(file).startswith("~"):
        return " (SQLite does not expand ~: give the full path)"
    if not file.is_absolute() and Path("/", file).parent.is_dir():
        return (
            f" (sqlite:///{file} is relative to the working directory; an absolute path "
            f"takes four slashes: sqlite:////{file})"
        )
    return ""


def _one(url: sa.URL, option: str, shown: str) -> str | None:
    value = url.query.get(option)
    if isinstance(value, tuple):
        raise ConfigError(f"sql tier: option {option!r} is given twice in {shown!r}")
    return value


def _switch(url: sa.URL, option: str, shown: str, *, default: bool) -> bool:
    raw = _one(url, option, shown)
    if raw is None:
        return default
    try:
        return _SWITCH[raw.lower()]
    except KeyError:
        raise ConfigError(f"sql tier: {option}={raw!r} in {shown!r} must be on or off") from None


def _native_async_url(url: sa.URL, driver: _Driver) -> sa.URL | None:
    """The async engine's URL when its driver (and greenlet, which SQLAlchemy's asyncio layer
    runs on) are installed; otherwise None and async calls go through a thread."""
    if driver.native_async is None:
        return None
    for module in ("greenlet", *driver.async_modules):
        if importlib.util.find_spec(module) is None:
            return None
    if driver is _MYSQL and not _aiomysql_binds_bytes():
        return None
    return url.set(drivername=driver.native_async)


def _aiomysql_binds_bytes() -> bool:
    """aiomysql (0.3.2) escapes bytes with a PyMySQL helper that PyMySQL 1.2 replaced by a
    string: every binary parameter (all our keys) then fails. Use threads with that pair."""
    import aiomysql.connection  # type: ignore[import-untyped,unused-ignore]

    return callable(getattr(aiomysql.connection, "escape_bytes_prefixed", None))


def _where(url: sa.URL, name: str) -> str:
    if name == "sqlite":
        return f"sqlite file {url.database}" if url.database else "sqlite :memory:"
    port = f":{url.port}" if url.port else ""
    return f"{name} {url.host or 'localhost'}{port}/{url.database}"
