"""``sqlite:///path``, ``mysql+pymysql://...``, ``postgresql+psycopg://...``: the SQL tier.

SQLAlchemy Core with statements built once (``sql_schema.Statements``). Each primitive is a
small generator "plan" that yields ``Step``s (statement, parameters, what to read) and receives
what was read; ``sql_engine``'s executors run a plan in one transaction, the sync one on the
sync engine's pool, the async one on the async engine's (psycopg's async mode; aiomysql). So
the SQL is written once and the executors stay thin. The sync lookup and the tagless store,
one statement each and most calls, run that statement directly (``SyncExecutor.run_step``:
the same connection handling, retries and errors, without the generator). SQLite's async path
is a thread (its I/O is in-process file I/O), as is MySQL's when aiomysql can't be used (see
``sql_url``) and any server's when greenlet is not installed.

URL: ``?table_prefix=`` (default ``llmcache``) names the tables, ``?ttl=`` is the tier's default
TTL for entries stored with ``ttl=None``, ``?write_behind=on|off`` queues stores for a writer
thread instead of waiting for the server's commit (``write_behind.py``; on by default for
MySQL/MariaDB and PostgreSQL, off for SQLite); other options go to the driver (``sql_url``).

SQLite runs in WAL mode (readers never wait for the writer) with ``synchronous=NORMAL``: in WAL
that still never corrupts the file, it only may lose the last commits on power loss, and losing
a few cached answers costs a few LLM calls; ``FULL`` would add an fsync to every store. Several
processes may share one file; writers wait up to ``timeout`` (5 s default, a URL option).

Stores are single-statement upserts, never read-then-insert, so concurrent stores of one key
can't collide; MySQL/PostgreSQL deadlock or serialization errors are retried a few times.
Expired rows are filtered in the SELECT and purged in bounded batches through the expires_at
index, every ``purge_every`` writes or ``purge_interval`` seconds, on the write path only.

The schema is created (or migrated) at construction when the database is reachable, else on
first use, so an unreachable server fails open through the cache instead of at start-up. A
store with a newer schema raises SchemaVersionError (see sql_schema.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

import sqlalchemy as sa

from llmcache.entry import CacheEntry
from llmcache.errors import ConfigError, SchemaVersionError, TierError
from llmcache.fork_safety import renew_after_fork
from llmcache.keys import CacheKey, label_digest
from llmcache.redact import describe_error
from llmcache.savings import Buckets
from llmcache.tiers.base import Found, ThreadedAsync, effective_expiry
from llmcache.tiers.listing import ListPage
from llmcache.tiers.selector import Selector
from llmcache.tiers.sql_engine import (
    AsyncExecutor,
    Plan,
    Step,
    SyncExecutor,
    begin_mode,
    create_native_async_engine,
    create_sync_engine,
)
from llmcache.tiers.sql_invalidate import invalidate_batch
from llmcache.tiers.sql_listing import list_page_plan
from llmcache.tiers.sql_savings import SavingsStatements, oldest_kept, publish_plan, read_plan
from llmcache.tiers.sql_schema import (
    MIGRATIONS,
    Migration,
    Statements,
    Tables,
    build_tables,
    ensure_schema,
    read_row,
)
from llmcache.tiers.sql_url import SqlTarget, check_sqlite_file, parse_sql_url
from llmcache.tiers.write_behind import Queued, WriteBehind

logger = logging.getLogger("llmcache")
T = TypeVar("T")

PURGE_EVERY_WRITES = 1000
PURGE_INTERVAL_SECONDS = 60.0
PURGE_BATCH = 500
WRITE_ATTEMPTS = 5
#: Deadlock / lock-wait / serialization failures: the transaction can simply run again.
_RETRY_MYSQL_CODES = frozenset({1205, 1213})
_RETRY_PG_STATES = frozenset({"40001", "40P01"})
_PG_ENDED = frozenset({"57P01", "57P02"})


#: Room left in a MySQL packet for the rest of a row's statement (key, digests, times).
ROW_ROOM = 64 * 1024


def live_value(row: Any, now: float) -> bytes | None:
    """The value of a ``(value, expires_at)`` row, or None when there is none or it expired
    (an expired row is never returned; the purge removes it later)."""
    if row is None:
        return None
    value, expires_at = row
    # The hot path: what we write, read back (bytes, and a float or no expiry).
    if type(value) is not bytes or (expires_at is not None and type(expires_at) is not float):
        value, expires_at = read_row(value, expires_at)
    return None if expires_at is not None and expires_at <= now else value


class SqlTier(ThreadedAsync):
    def __init__(
        self,
        target: SqlTarget,
        *,
        migrations: Sequence[Migration] = MIGRATIONS,
        purge_every: int = PURGE_EVERY_WRITES,
        purge_interval: float = PURGE_INTERVAL_SECONDS,
        purge_batch: int = PURGE_BATCH,
    ) -> None:
        check_sqlite_file(target)
        self.name = target.name
        self.target = target
        self.default_ttl = target.ttl
        self.tables: Tables = build_tables(target.table_prefix)
        self._migrations = tuple(migrations)
        self._purge_every = purge_every
        self._purge_interval = purge_interval
        self._purge_batch = purge_batch
        self._sql = Statements(self.tables, target.name, purge_batch)
        self._savings_sql = SavingsStatements(self.tables, target.name)
        self._history_hour: int | None = None  # the newest hour a history batch held
        self.engine: sa.Engine = create_sync_engine(target)
        self._executor = SyncExecutor(self.engine, begin_mode(target))
        self._db_errors: tuple[type[BaseException], ...] = (
            sa.exc.SQLAlchemyError,
            self.engine.dialect.loaded_dbapi.Error,
        )
        # An sqlite :memory: database is one shared connection: one user at a time.
        self._one_user = threading.Lock() if target.in_memory else None
        self._serial: AbstractContextManager[Any] = self._one_user or nullcontext()
        self._state_lock = threading.Lock()
        renew_after_fork(self, "_one_user", "_state_lock")
        self._schema_ready = False
        self._max_payload: int | None = None  # known once the schema is (``_refuses``)
        self._writes = 0
        self._last_purge: float | None = None
        self._aexecutor: AsyncExecutor | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None
        self.write_behind: WriteBehind | None = (
            WriteBehind(self._write_queued, name=target.where) if target.write_behind else None
        )
        try:
            self._ensure_schema()
        except SchemaVersionError:
            self.engine.dispose()
            raise
        except TierError as exc:  # unreachable or broken now: retried on first use (fail-open)
            refused = _refused_option(exc)
            if refused is not None:
                self.engine.dispose()
                raise ConfigError(
                    f"sql tier: {target.where}: the driver refused an option of the URL: {refused}"
                ) from None
            logger.debug("llmcache: %s", exc)
        except (TypeError, AttributeError, LookupError) as exc:
            # The driver refused an option of the URL (pymysql: an unknown keyword, or an
            # unknown charset): no later connect would succeed either.
            self.engine.dispose()
            raise ConfigError(
                f"sql tier: {target.where}: the driver refused the URL's options (a misspelt "
                f"or unknown option?): {type(exc).__name__}: {exc}"
            ) from None

    @classmethod
    def from_url(cls, url: str) -> SqlTier:
        return cls(parse_sql_url(url))

    @property
    def async_mode(self) -> str:
        """ "native" (an async driver) or "thread" (the sync driver in a worker thread)."""
        return "native" if self.target.async_url is not None else "thread"

    def __repr__(self) -> str:
        return f"SqlTier({self.target.where}, table_prefix={self.target.table_prefix!r})"

    # ------------------------------------------------------------------ plans (SQL, once)
    def _get_plan(self, key: CacheKey, now: float) -> Plan[Found]:
        row = yield Step(self._sql.get, {"key": key.digest}, "first")
        return live_value(row, now)

    def _entry_row(
        self, key: CacheKey, entry: CacheEntry, payload: bytes, now: float
    ) -> dict[str, Any]:
        """The upsert's parameters for one entry."""
        return {
            "key": key.digest,
            "scope": key.scope,
            "model": key.model,
            "namespace": key.namespace,
            "created_at": entry.created_at,
            "expires_at": effective_expiry(entry.expires_at, now, self.default_ttl),
            "value": payload,
        }

    def _set_plan(self, key: CacheKey, entry: CacheEntry, payload: bytes, now: float) -> Plan[None]:
        yield Step(self._sql.upsert, self._entry_row(key, entry, payload, now))
        if entry.tags:
            # In the entry's transaction, after it: its row lock orders concurrent stores of
            # one key, so their tag statements never interleave (nor deadlock).
            yield Step(self._sql.delete_tags, {"key": key.digest})
            tags = dict.fromkeys(label_digest("tag", t) for t in entry.tags)
            yield Step(self._sql.add_tags, [{"tag": tag, "key": key.digest} for tag in tags])
        # Without tags a store is this one upsert, run without BEGIN/COMMIT: one round trip.
        # Tag rows of an earlier store of the same key stay behind; invalidating by them
        # removes this entry too, which costs a recomputation, never a wrong answer.

    def _delete_plan(self, key: CacheKey) -> Plan[None]:
        yield Step(self._sql.delete_tags, {"key": key.digest})
        yield Step(self._sql.delete, {"key": key.digest})

    def _clear_plan(self, scope: bytes | None) -> Plan[int]:
        if scope is None:
            yield Step(self._sql.clear_tags, {})
            count = yield Step(self._sql.clear, {}, "rowcount")
        else:
            yield Step(self._sql.clear_scope_tags, {"scope": scope})
            count = yield Step(self._sql.clear_scope, {"scope": scope}, "rowcount")
        return int(count)

    def _purge_plan(self, now: float) -> Plan[int]:
        """One bounded batch: expired keys found through the expires_at index, deleted by key."""
        keys = yield Step(self._sql.expired_keys, {"now": now}, "column")
        if keys:
            yield Step(self._sql.purge(keys, now))
            yield Step(self._sql.purge_tags(keys))
        return len(keys)

    def _purge_due(self, now: float, writes: int = 1) -> bool:
        """Count writes; True when this write should run a purge batch."""
        with self._state_lock:
            self._writes += writes
            last = self._last_purge
            if (
                self._writes < self._purge_every
                and last is not None
                and now - last < self._purge_interval
            ):
                return False
            self._writes = 0
            self._last_purge = now
            return True

    def _purged(self, count: int) -> None:
        if count >= self._purge_batch:  # more are waiting: purge again on the next write
            with self._state_lock:
                self._writes = self._purge_every

    # ------------------------------------------------------------------ write-behind
    def _queued(self, key: CacheKey, now: float) -> bytes | None:
        """The payload of a store of this key still waiting for the writer (write-behind)."""
        behind = self.write_behind
        if behind is None:
            return None
        queued = behind.queued(key.digest, now)
        return None if queued is None else queued.payload

    def _queue(self, key: CacheKey, entry: CacheEntry, payload: bytes, now: float) -> bool:
        """Hand a store to the writer (write-behind); False: store it now."""
        behind = self.write_behind
        if behind is None:
            return False
        expires = effective_expiry(entry.expires_at, now, self.default_ttl)
        return behind.submit(Queued(key, entry, payload, now, expires))

    def _drain(self) -> None:
        """Before a delete, clear, invalidation or listing: queued stores are written first,
        so none lands after (and undoes) the removal, and listings include them."""
        if self.write_behind is not None and not self.write_behind.idle:
            self.write_behind.flush()

    async def _adrain(self) -> None:
        if self.write_behind is not None and not self.write_behind.idle:
            await asyncio.to_thread(self.write_behind.flush)

    def _batch_plan(self, items: Sequence[Queued]) -> Plan[None]:
        """The queued stores, tagless ones as one executemany upsert (one statement per row
        made the writer about five times slower on the servers: pymysql sends them as one
        multi-row INSERT, psycopg pipelines them). A batch holds each key once (the queue is
        keyed by digest), so the rows never upsert one another."""
        untagged = [item for item in items if not item.entry.tags]
        if untagged:
            rows = [self._entry_row(i.key, i.entry, i.payload, i.now) for i in untagged]
            yield Step(self._sql.upsert, rows)
        for item in items:
            if item.entry.tags:
                yield from self._set_plan(item.key, item.entry, item.payload, item.now)

    def _write_queued(self, items: Sequence[Queued]) -> None:
        """The writer thread's batch: every store in one transaction (one commit)."""
        many = len(items) > 1 or any(item.entry.tags for item in items)
        self._run(lambda: self._batch_plan(items), write=True, transaction=many)
        self._purge_if_due(items[-1].now, len(items))

    def _stored(self, now: float) -> None:
        """After a synchronous store: the writer may queue again; purge when due."""
        if self.write_behind is not None:
            self.write_behind.stored_directly()
        self._purge_if_due(now, 1)

    def _purge_if_due(self, now: float, writes: int) -> None:
        if self._purge_due(now, writes):
            try:
                self._purged(self._run(lambda: self._purge_plan(now), write=True))
            except TierError as exc:  # the store itself succeeded; the next purge retries
                logger.debug("llmcache: purging expired rows failed: %s", exc)

    # ------------------------------------------------------------------ sync primitives
    def get(self, key: CacheKey, now: float) -> Found:
        if self.write_behind is not None and (queued := self._queued(key, now)) is not None:
            return queued
        # _get_plan's one statement, run directly (the hot path; the async side runs the plan).
        row = self._run_step(Step(self._sql.get, {"key": key.digest}, "first"), write=False)
        return live_value(row, now)

    def set(self, key: CacheKey, entry: CacheEntry, payload: bytes, now: float) -> None:
        if self._refuses(payload) or self._queue(key, entry, payload, now):
            return
        if entry.tags:
            self._run(lambda: self._set_plan(key, entry, payload, now), write=True)
        else:  # _set_plan without tags is its one upsert, without BEGIN/COMMIT: run directly
            row = self._entry_row(key, entry, payload, now)
            self._run_step(Step(self._sql.upsert, row), write=True)
        self._stored(now)

    def delete(self, key: CacheKey) -> None:
        self._drain()
        self._run(lambda: self._delete_plan(key), write=True)

    def clear(self, scope: bytes | None) -> int:
        self._drain()
        return self._run(lambda: self._clear_plan(scope), write=True)

    def invalidate(self, selector: Selector, now: float) -> int:
        """Delete the rows ``selector`` matches, in batches of ``purge_batch`` (one
        transaction each); returns how many entries were removed."""
        self._drain()
        cutoff, size, removed = selector.cutoff(now), self._purge_batch, 0
        while True:
            plan = lambda: invalidate_batch(self.tables, selector, cutoff, size)  # noqa: E731
            batch = self._run(plan, write=True)
            removed += batch.removed
            if batch.found < size or not batch.removed:
                return removed

    def list_page(self, selector: Selector, now: float, cursor: Any, limit: int) -> ListPage:
        self._drain()
        plan = lambda: list_page_plan(self.tables, selector, now, cursor, limit)  # noqa: E731
        return self._run(plan, write=False)

    # ------------------------------------------------------------------ savings history
    def publish_history(self, buckets: Buckets) -> None:
        """Add these (hour, model) counts to the table (``Cache``'s publisher thread)."""
        newest = max(hour for hour, _ in buckets)
        with self._state_lock:
            opens_hour = self._history_hour is None or newest > self._history_hour
            if opens_hour:
                self._history_hour = newest
        forget = oldest_kept(newest) if opens_hour else None
        self._run(lambda: publish_plan(self._savings_sql, buckets, forget), write=True)

    def read_history(self, since_hour: int) -> Buckets:
        return self._run(lambda: read_plan(self._savings_sql, since_hour), write=False)

    def close(self) -> None:
        if self.write_behind is not None:  # what is queued is written first
            self.write_behind.close()
        executor, self._aexecutor = self._aexecutor, None
        if executor is not None:  # async connections close on their own loop (aclose); drop
            executor.engine.sync_engine.dispose(close=False)
        self._executor.release()  # connections it keeps between plans go back to the pool
        self.engine.dispose()

    # ------------------------------------------------------------------ async primitives
    async def aget(self, key: CacheKey, now: float) -> Found:
        queued = self._queued(key, now)
        if queued is not None:
            return queued
        if self.target.async_url is None:
            return await super().aget(key, now)
        return await self._arun(lambda: self._get_plan(key, now), write=False)

    async def aset(self, key: CacheKey, entry: CacheEntry, payload: bytes, now: float) -> None:
        if self._refuses(payload) or self._queue(key, entry, payload, now):  # no thread hop
            return
        if self.target.async_url is None:
            return await super().aset(key, entry, payload, now)
        plan = lambda: self._set_plan(key, entry, payload, now)  # noqa: E731
        await self._arun(plan, write=True, transaction=bool(entry.tags))
        if self.write_behind is not None:
            self.write_behind.stored_directly()
        if self._purge_due(now):
            try:
                self._purged(await self._arun(lambda: self._purge_plan(now), write=True))
            except TierError as exc:
                logger.debug("llmcache: purging expired rows failed: %s", exc)

    async def adelete(self, key: CacheKey) -> None:
        await self._adrain()
        if self.target.async_url is None:
            return await super().adelete(key)
        await self._arun(lambda: self._delete_plan(key), write=True)

    async def aclear(self, scope: bytes | None) -> int:
        await self._adrain()
        if self.target.async_url is None:
            return await super().aclear(scope)
        return await self._arun(lambda: self._clear_plan(scope), write=True)

    async def ainvalidate(self, selector: Selector, now: float) -> int:
        await self._adrain()
        if self.target.async_url is None:
            return await super().ainvalidate(selector, now)
        cutoff, size, removed = selector.cutoff(now), self._purge_batch, 0
        while True:
            plan = lambda: invalidate_batch(self.tables, selector, cutoff, size)  # noqa: E731
            batch = await self._arun(plan, write=True)
            removed += batch.removed
            if batch.found < size or not batch.removed:
                return removed

    async def alist_page(self, selector: Selector, now: float, cursor: Any, limit: int) -> ListPage:
        await self._adrain()
        if self.target.async_url is None:
            return await super().alist_page(selector, now, cursor, limit)
        plan = lambda: list_page_plan(self.tables, selector, now, cursor, limit)  # noqa: E731
        return await self._arun(plan, write=False)

    async def aclose(self) -> None:
        if self.write_behind is not None:
            await asyncio.to_thread(self.write_behind.close)
        executor, self._aexecutor = self._aexecutor, None
        if executor is not None:
            if self._aloop is asyncio.get_running_loop():
                await executor.engine.dispose()
            else:
                executor.engine.sync_engine.dispose(close=False)
        self._executor.release()
        await asyncio.to_thread(self.engine.dispose)

    # ------------------------------------------------------------------ running plans
    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._state_lock, self._serial:
            if self._schema_ready:
                return
            try:
                ensure_schema(self.engine, self.tables, self._migrations, self.target.where)
                self._max_payload = self._read_max_payload()
            except self._db_errors as exc:
                raise self._error(exc) from exc
            self._schema_ready = True

    def _read_max_payload(self) -> int | None:
        """The largest stored value the server takes in one statement (MySQL/MariaDB:
        ``max_allowed_packet``, less room for the rest of the row); None: no such bound."""
        if self.name != "mysql":
            return None
        with self.engine.connect() as conn:
            packet = conn.execute(sa.text("SELECT @@max_allowed_packet")).scalar()
        return int(packet) - ROW_ROOM if isinstance(packet, int) else None

    def _refuses(self, payload: bytes) -> bool:
        """A value over the server's packet size is not stored (a warning says so): it failed
        its statement, and with write-behind the whole batch, losing other users' stores,
        and the breaker then skipped the tier, with "server has gone away" in the log."""
        limit = self._max_payload
        if limit is None or len(payload) <= limit:
            return False
        logger.warning(
            "llmcache: %s does not store an answer of %d bytes: over the server's "
            "max_allowed_packet (%d bytes); raise it, or lower max_entry_bytes",
            self.target.where,
            len(payload),
            limit + ROW_ROOM,
        )
        return True

    def _retry(self, exc: BaseException, attempt: int, *, write: bool) -> bool:
        """May a failed plan run again? Once on a fresh connection when the pooled one was
        dead (idle connections are pinged, busy ones are not); writes also on deadlocks."""
        if attempt == 1 and self.name != "sqlite":
            # SQLAlchemy marks an error it saw end the connection (psycopg: the server closed
            # it in an executemany, whose error carries no sqlstate): the store was lost.
            if getattr(exc, "connection_invalidated", False):
                return True
            orig = getattr(exc, "orig", None) or exc
            sqlstate = getattr(orig, "sqlstate", None)
            if _lost_connection(sqlstate):
                return True
            # psycopg's pipeline (an executemany) raises its own OperationalError, past
            # SQLAlchemy, with no sqlstate when the server had closed the connection.
            dbapi = getattr(self.engine.dialect, "dbapi", None)
            lost = getattr(dbapi, "OperationalError", None)
            if sqlstate is None and lost is not None and isinstance(orig, lost):
                return True
            with contextlib.suppress(Exception):  # a dialect that can't tell: not a disconnect
                if self.engine.dialect.is_disconnect(exc, None, None):  # type: ignore[arg-type]
                    return True
        return write and attempt < WRITE_ATTEMPTS and _retryable(exc)

    def _run(
        self, make_plan: Callable[[], Plan[T]], *, write: bool, transaction: bool | None = None
    ) -> T:
        """Run a plan on the sync engine, in one transaction when ``transaction`` (default:
        when ``write``), again when ``_retry`` allows."""
        self._ensure_schema()
        in_transaction = write if transaction is None else transaction
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._serial:
                    return self._executor.run(make_plan(), transaction=in_transaction)
            except self._db_errors as exc:
                if not self._retry(exc, attempt, write=write):
                    raise self._error(exc) from exc

    def _run_step(self, step: Step, *, write: bool) -> Any:
        """``_run`` of a one-statement plan outside a transaction (``SyncExecutor.run_step``)."""
        if not self._schema_ready:
            self._ensure_schema()
        attempt = 0
        while True:
            attempt += 1
            try:
                if self._one_user is None:  # no context manager to enter: the hot path
                    return self._executor.run_step(step)
                with self._one_user:
                    return self._executor.run_step(step)
            except self._db_errors as exc:
                if not self._retry(exc, attempt, write=write):
                    raise self._error(exc) from exc

    async def _arun(
        self, make_plan: Callable[[], Plan[T]], *, write: bool, transaction: bool | None = None
    ) -> T:
        """``_run`` on the async engine."""
        if not self._schema_ready:
            await asyncio.to_thread(self._ensure_schema)
        executor = self._async_executor()
        in_transaction = write if transaction is None else transaction
        attempt = 0
        while True:
            attempt += 1
            try:
                return await executor.run(make_plan(), transaction=in_transaction)
            except self._db_errors as exc:
                if not self._retry(exc, attempt, write=write):
                    raise self._error(exc) from exc

    def _async_executor(self) -> AsyncExecutor:
        """The async executor of the running loop (async connections belong to one loop)."""
        loop = asyncio.get_running_loop()
        if self._aexecutor is None or self._aloop is not loop:
            if self._aexecutor is not None:
                self._aexecutor.engine.sync_engine.dispose(close=False)
            engine = create_native_async_engine(self.target)
            self._aexecutor = AsyncExecutor(engine, begin_mode(self.target))
            self._aloop = loop
        return self._aexecutor

    def _error(self, exc: BaseException) -> TierError:
        """A TierError naming the store and the cause, never SQL parameters (prompts)."""
        if self.write_behind is not None:  # the server may be down: stop queueing stores
            self.write_behind.suspend()
        hint = ""
        if self.name != "sqlite" and isinstance(exc, sa.exc.OperationalError):
            hint = "; is the server running and reachable?"
        return TierError(f"{self.target.where}: {describe_error(exc)}{hint}")


def _lost_connection(sqlstate: object) -> bool:
    """PostgreSQL: a connection exception (class 08) or the server ending the session
    (57P01 admin shutdown, 57P02 crash shutdown). psycopg's dialect only recognizes these
    with the connection object in hand, which our executors have already given back."""
    return isinstance(sqlstate, str) and (sqlstate.startswith("08") or sqlstate in _PG_ENDED)


def _retryable(exc: BaseException | None) -> bool:
    """A deadlock or serialization failure (MySQL/PostgreSQL): the transaction may rerun."""
    orig = getattr(exc, "orig", None) or exc
    if getattr(orig, "sqlstate", None) in _RETRY_PG_STATES:
        return True
    args: tuple[Any, ...] = getattr(orig, "args", ())
    return len(args) > 0 and args[0] in _RETRY_MYSQL_CODES


def _refused_option(exc: TierError) -> str | None:
    """What PostgreSQL's driver said when it refused a connection option of the URL
    (psycopg: "invalid connection option"): a misspelt option, not a server that is down."""
    said = str(getattr(exc.__cause__, "orig", "")).strip()
    return said if "invalid connection option" in said else None
