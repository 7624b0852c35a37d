"""The SQL tier's tables, its pre-built statements and its schema migrations.

Three tables per ``table_prefix`` (so several caches, or a foreign app, can share a database):

* ``{prefix}_entries``: one row per cached answer. ``key`` is the 32-byte digest (binary: MariaDB's
  default collation would compare text keys case- and trailing-space-insensitively); ``scope``,
  ``model`` and ``namespace`` are 16-byte digests, indexed for scoped clears and invalidation;
  ``expires_at`` is indexed so expired rows are found without a full scan, and ``created_at``
  (schema 2) so invalidating by age is too.
* ``{prefix}_tags``: (tag digest, key) pairs, written with the entry, so invalidating by tag
  needs no migration later.
* ``{prefix}_meta``: (name, value) rows; ``schema_version`` is the version of the tables.
* ``{prefix}_savings`` (schema 3): what hits saved per (hour, model), added to by every process
  using the database (``sql_savings``), read by ``llmcache report``.

Migrations are a list of numbered steps. Opening a store applies the steps newer than its
version, under a lock (SQLite's write lock, PostgreSQL's advisory lock, MySQL's GET_LOCK) and in
one transaction where the database allows transactional DDL (SQLite, PostgreSQL; MySQL commits
each DDL statement implicitly, and every step here is idempotent for that reason). A store newer
than the code raises SchemaVersionError instead of being touched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from llmcache.errors import SchemaVersionError
from llmcache.savings import COUNTERS
from llmcache.tiers.base import NOT_OURS

#: Any statement the tier runs (all compile, and all execute).
Statement = sa.UpdateBase | sa.Select[Any]

SCHEMA_VERSION_ROW = "schema_version"
#: How long opening a store waits for another process that is migrating it.
SCHEMA_LOCK_SECONDS = 30


def _binary(length: int) -> sa.types.TypeEngine[bytes]:
    """Fixed-size binary: BINARY(n) on MySQL (a BLOB can't be a key), BLOB/BYTEA elsewhere."""
    return sa.LargeBinary(length).with_variant(mysql.BINARY(length), "mysql", "mariadb")


#: Stored values can be large: MySQL's plain BLOB stops at 64 KiB, so LONGBLOB there.
_VALUE_TYPE = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


def read_row(value: Any, expires_at: Any) -> tuple[bytes, float | None]:
    """The stored bytes and expiry of an entries row, as a driver returns them.

    SQLite keeps any type in any column, so a row written by another tool (a restore script,
    a hand edit) can hold text or a number where we write bytes, or no number where we write
    an expiry: such a row reads as ``NOT_OURS`` (it used to raise into the user's call, or
    fail the tier for every caller, and stay). Text is read as its UTF-8 bytes, which the
    codec then checks like any other."""
    if expires_at is not None and (
        isinstance(expires_at, bool) or not isinstance(expires_at, (int, float))
    ):
        return NOT_OURS, None
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass"), expires_at
    if not isinstance(value, (bytes, bytearray, memoryview)):  # psycopg: memoryview for BYTEA
        return NOT_OURS, expires_at
    return bytes(value), expires_at


@dataclass(frozen=True, slots=True)
class Tables:
    prefix: str
    metadata: sa.MetaData
    entries: sa.Table
    tags: sa.Table
    meta: sa.Table
    savings: sa.Table


def build_tables(prefix: str, *, version: int | None = None) -> Tables:
    """The table objects for ``prefix`` (validated by the caller), as of schema ``version``
    (default: the newest; a migration step builds the layout it creates, no more)."""
    md = sa.MetaData()
    entries = sa.Table(
        f"{prefix}_entries",
        md,
        sa.Column("key", _binary(32), primary_key=True),
        sa.Column("scope", _binary(16), nullable=False),
        sa.Column("model", _binary(16), nullable=False),
        sa.Column("namespace", _binary(16), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=True),
        sa.Column("value", _VALUE_TYPE, nullable=False),
        # Index names are per schema on PostgreSQL: prefix them too.
        sa.Index(f"{prefix}_entries_scope", "scope"),
        sa.Index(f"{prefix}_entries_model", "model"),
        sa.Index(f"{prefix}_entries_namespace", "namespace"),
        sa.Index(f"{prefix}_entries_expires", "expires_at"),
    )
    if version is None or version >= 2:
        sa.Index(created_index_name(prefix), entries.c.created_at)  # attaches to the table
    tags = sa.Table(
        f"{prefix}_tags",
        md,
        sa.Column("tag", _binary(16), primary_key=True),
        sa.Column("key", _binary(32), primary_key=True),
        sa.Index(f"{prefix}_tags_key", "key"),  # deleting an entry deletes its tags by key
    )
    meta = sa.Table(
        f"{prefix}_meta",
        md,
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
    )
    savings = sa.Table(
        f"{prefix}_savings",
        md,
        sa.Column("hour", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("model_key", _binary(16), primary_key=True),  # label_digest of the model
        sa.Column("model", sa.String(255), nullable=False),  # for reading (may be truncated)
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTERS),
    )
    if version is not None and version < 3:
        md.remove(savings)
    return Tables(prefix, md, entries, tags, meta, savings)


# ---------------------------------------------------------------------------- statements
class Statements:
    """Every statement the tier runs, built once per tier (SQLAlchemy caches their compiled
    form, so a call pays for binding parameters only)."""

    def __init__(self, tables: Tables, dialect: str, purge_batch: int) -> None:
        e, t = tables.entries, tables.tags
        key: sa.BindParameter[bytes] = sa.bindparam("key")
        now: sa.BindParameter[float] = sa.bindparam("now")
        # The expiry is checked by the caller (``live_value``), not in the WHERE clause: the
        # OR costs the server a plan it need not make (MariaDB: ~10 µs of a ~115 µs lookup).
        self.get = sa.select(e.c.value, e.c.expires_at).where(e.c.key == key)
        self.upsert = _upsert(e, dialect)
        self.add_tags = _insert_ignore(t, dialect)
        self.delete_tags = sa.delete(t).where(t.c.key == key)
        self.delete = sa.delete(e).where(e.c.key == key)
        self.clear_tags = sa.delete(t)
        self.clear = sa.delete(e)
        scope: sa.BindParameter[bytes] = sa.bindparam("scope")
        self.clear_scope_tags = sa.delete(t).where(
            t.c.key.in_(sa.select(e.c.key).where(e.c.scope == scope))
        )
        self.clear_scope = sa.delete(e).where(e.c.scope == scope)
        # Purge: a bounded batch found through the expires_at index, then deleted by key. The
        # expiry is checked again in the DELETE: a key re-set meanwhile is not expired any more.
        self.expired_keys = (
            sa.select(e.c.key)
            .where(e.c.expires_at.is_not(None), e.c.expires_at <= now)
            .limit(purge_batch)
        )
        self._tables = tables

    def purge(self, keys: list[bytes], now: float) -> Statement:
        """Delete these expired keys (the IN list is bound: compiled per call, rare)."""
        e = self._tables.entries
        return sa.delete(e).where(e.c.key.in_(keys), e.c.expires_at <= now)

    def purge_tags(self, keys: list[bytes]) -> Statement:
        """Delete the tags of these keys unless the entry exists again (re-set meanwhile)."""
        e, t = self._tables.entries, self._tables.tags
        return sa.delete(t).where(t.c.key.in_(keys), ~sa.exists().where(e.c.key == t.c.key))


def _values(table: sa.Table) -> dict[str, sa.BindParameter[Any]]:
    """VALUES for every column, bound by column name (compiled once, for any parameters)."""
    return {c.name: sa.bindparam(c.name) for c in table.columns}


def _upsert(table: sa.Table, dialect: str) -> Statement:
    """INSERT .. ON CONFLICT/ON DUPLICATE KEY UPDATE of every non-key column."""
    columns = [c.name for c in table.columns if not c.primary_key]
    if dialect == "mysql":
        my = mysql.insert(table).values(_values(table))
        return my.on_duplicate_key_update({name: my.inserted[name] for name in columns})
    ins = _on_conflict_insert(table, dialect)
    return ins.on_conflict_do_update(
        index_elements=[c.name for c in table.primary_key.columns],
        set_={name: ins.excluded[name] for name in columns},
    )


def _insert_ignore(table: sa.Table, dialect: str) -> Statement:
    """INSERT that leaves an existing row alone (the row already says the same thing)."""
    if dialect == "mysql":
        my = mysql.insert(table).values(_values(table))
        first = table.primary_key.columns.values()[0].name
        return my.on_duplicate_key_update({first: my.inserted[first]})
    return _on_conflict_insert(table, dialect).on_conflict_do_nothing()


def _on_conflict_insert(table: sa.Table, dialect: str) -> sqlite.Insert | postgresql.Insert:
    """SQLite's and PostgreSQL's INSERT, which both have ON CONFLICT."""
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    return insert(table).values(_values(table))


# ---------------------------------------------------------------------------- migrations
@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step. ``apply`` must be idempotent (MySQL can't roll DDL back)."""

    version: int
    description: str
    apply: Callable[[sa.Connection, Tables], None]


def _create_v1(conn: sa.Connection, tables: Tables) -> None:
    build_tables(tables.prefix, version=1).metadata.create_all(conn, checkfirst=True)


def created_index_name(prefix: str) -> str:
    return f"{prefix}_entries_created"


def _index_created_at(conn: sa.Connection, tables: Tables) -> None:
    """Schema 2: an index on created_at, for ``invalidate(older_than=...)`` (idempotent: MySQL
    commits DDL at once, so a step interrupted there may have created the index already)."""
    name = created_index_name(tables.prefix)
    existing = {ix["name"] for ix in sa.inspect(conn).get_indexes(tables.entries.name)}
    if name not in existing:
        index = next(ix for ix in tables.entries.indexes if ix.name == name)
        index.create(conn)


def _create_savings(conn: sa.Connection, tables: Tables) -> None:
    """Schema 3: the savings history table (``checkfirst``: idempotent)."""
    tables.savings.create(conn, checkfirst=True)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "entries, tags and meta tables", _create_v1),
    Migration(2, "index entries by created_at", _index_created_at),
    Migration(3, "savings history per hour and model", _create_savings),
)


def newer_schema_error(where: str, found: int, supported: int) -> SchemaVersionError:
    return SchemaVersionError(
        f"{where} has llmcache schema version {found}, but this llmcache understands up to "
        f"version {supported}; upgrade llmcache, or point this cache at another "
        "file/table_prefix"
    )


def read_version(conn: sa.Connection, tables: Tables) -> int:
    """The store's schema version; 0 for a store without our tables."""
    if not sa.inspect(conn).has_table(tables.meta.name):
        return 0
    meta = tables.meta
    raw = conn.execute(
        sa.select(meta.c.value).where(meta.c.name == SCHEMA_VERSION_ROW)
    ).scalar_one_or_none()
    return int(raw) if raw is not None else 0


def _write_version(conn: sa.Connection, tables: Tables, version: int) -> None:
    meta = tables.meta
    conn.execute(sa.delete(meta).where(meta.c.name == SCHEMA_VERSION_ROW))
    conn.execute(sa.insert(meta).values(name=SCHEMA_VERSION_ROW, value=str(version)))


def ensure_schema(
    engine: sa.Engine, tables: Tables, migrations: Sequence[Migration], where: str
) -> int:
    """Bring the store to the newest version in ``migrations``; return that version.

    Race-safe: a quick unlocked read answers the common case (already current); otherwise the
    version is read again under a lock before any step runs, so of several processes opening
    a fresh store at once, one creates it and the others find it done.
    """
    latest = migrations[-1].version
    with engine.connect() as conn:
        current = read_version(conn, tables)
    if current == latest:
        return current
    if current > latest:
        raise newer_schema_error(where, current, latest)
    with _schema_lock(engine, tables.prefix) as conn:
        current = read_version(conn, tables)
        if current > latest:
            raise newer_schema_error(where, current, latest)
        for step in migrations:
            if step.version > current:
                step.apply(conn, tables)
                _write_version(conn, tables, step.version)
    return latest


@contextmanager
def _schema_lock(engine: sa.Engine, prefix: str) -> Iterator[sa.Connection]:
    """A connection inside a transaction that holds the schema lock for ``prefix``."""
    name = engine.dialect.name
    with engine.connect() as conn:
        # Connections are in autocommit mode; this option makes the begin hook of
        # sql_engine.py send BEGIN (SQLite: BEGIN IMMEDIATE, which takes the write lock).
        conn.execution_options(llmcache_begin="IMMEDIATE" if name == "sqlite" else "")
        if name == "sqlite":
            with conn.begin():
                yield conn
        elif name == "postgresql":
            with conn.begin():
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_id(prefix))))
                yield conn
        else:  # mysql / mariadb: a named lock held by this session, across implicit commits
            lock = f"llmcache_schema_{prefix}"
            with conn.begin():
                got = conn.execute(sa.select(sa.func.get_lock(lock, SCHEMA_LOCK_SECONDS))).scalar()
            if got != 1:
                raise TimeoutError(f"timed out waiting for the schema lock {lock!r}")
            try:
                with conn.begin():
                    yield conn
            finally:
                with conn.begin():
                    conn.execute(sa.select(sa.func.release_lock(lock)))


def _lock_id(prefix: str) -> int:
    """A stable signed 64-bit advisory-lock id for ``prefix``."""
    digest = hashlib.blake2b(f"llmcache-schema:{prefix}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
