"""Engines and the two thin executors that run the SQL tier's plans.

A *plan* is a generator that yields ``Step``s (a statement, its parameters, and what to read
from the result) and receives the value read. Plans hold all the SQL logic; an executor only
runs one plan in one transaction:

* ``SyncExecutor`` runs it on a pooled DB-API connection with statements compiled once per
  dialect. SQLAlchemy builds and compiles the SQL and owns the pool (pinging connections that
  sat idle); we skip its per-call Connection/Result machinery, which costs several times the SQLite
  lookup itself (about 30 µs against 4 µs here) and an extra COMMIT/ROLLBACK round trip on
  a server. Between plans it keeps a few connections it just used (see ``_Held``): a pool
  checkout and checkin cost about 7 µs, a sixth of a MariaDB lookup.
* ``AsyncExecutor`` does the same on the async engine's pooled native async connections.

Transactions are explicit on every engine: connections are in autocommit mode, so a read is
one statement (no BEGIN/ROLLBACK round trips, no stale snapshot left open), and a write runs
``BEGIN`` (SQLite: ``BEGIN IMMEDIATE``) ... ``COMMIT``. Because every transaction is ended
here, the pool does not roll back connections it takes back (one round trip saved per call).
"""

from __future__ import annotations

import inspect
import operator
import sqlite3
import time
from collections.abc import Callable, Generator
from typing import Any, Literal, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from llmcache.fork_safety import call_after_fork
from llmcache.tiers.sql_schema import Statement
from llmcache.tiers.sql_url import SqlTarget

T = TypeVar("T")

#: What a step reads from its result: nothing, the first row (or None), the first column of
#: every row, every row, or the number of rows affected.
Want = Literal["none", "first", "column", "rows", "rowcount"]


class Step(NamedTuple):
    """One statement of a plan. ``params`` None: the values are bound in ``stmt`` itself
    (rare statements with variable-length IN lists, compiled per call)."""

    stmt: Statement
    params: dict[str, Any] | list[dict[str, Any]] | None = None
    want: Want = "none"


Plan = Generator[Step, Any, T]

SQLITE_BUSY_TIMEOUT = 5.0
CONNECT_TIMEOUT = 5  # seconds: a cache must not hang a request on a dead server
POOL_RECYCLE = 1800  # below MySQL's wait_timeout (8 h by default) and proxies' idle cut-offs
PING_IDLE_AFTER = 1.0  # seconds a pooled server connection may idle before it is pinged
#: Seconds a sync executor may keep a connection out of the pool between two checkouts, so
#: the pool still recycles it (``POOL_RECYCLE``) and a ``dispose`` reaches it soon.
HOLD_AT_MOST = 60.0
_LAST_USED = "llmcache_last_used"
#: Set by an executor on a connection it gives back after holding it idle: its real idle start.
_IDLE_SINCE = "llmcache_idle_since"
#: The begin hook reads this execution option: None means "no BEGIN" (autocommit).
BEGIN_OPTION = "llmcache_begin"


# ---------------------------------------------------------------------------- engines
def create_sync_engine(target: SqlTarget) -> sa.Engine:
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None}
    connect_args: dict[str, Any] = {}
    if target.name == "sqlite":
        connect_args["check_same_thread"] = False  # pooled: used by one thread at a time
        if "timeout" not in target.url.query:
            connect_args["timeout"] = SQLITE_BUSY_TIMEOUT  # sqlite3's busy timeout
        if target.in_memory:
            options["poolclass"] = sa.pool.StaticPool  # one connection, or each gets its own DB
    else:
        options.update(pool_recycle=POOL_RECYCLE)
        if "connect_timeout" not in target.url.query:  # same name in PyMySQL and psycopg
            connect_args["connect_timeout"] = CONNECT_TIMEOUT
    engine = sa.create_engine(target.url, connect_args=connect_args, **options)
    if target.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas(target.in_memory))
    else:
        ping_idle_connections(engine)
    sa.event.listen(engine, "begin", _explicit_begin)
    return engine


def create_native_async_engine(target: SqlTarget) -> AsyncEngine:
    from sqlalchemy.ext.asyncio import create_async_engine

    assert target.async_url is not None
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in target.url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT
    engine = create_async_engine(
        target.async_url,
        isolation_level="AUTOCOMMIT",
        pool_reset_on_return=None,
        pool_recycle=POOL_RECYCLE,
        connect_args=connect_args,
    )
    ping_idle_connections(engine.sync_engine)
    sa.event.listen(engine.sync_engine, "begin", _explicit_begin)
    return engine


def ping_idle_connections(engine: sa.Engine, idle: float = PING_IDLE_AFTER) -> None:
    """Pre-ping pooled server connections that sat idle for more than ``idle`` seconds.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: one more round trip on every
    lookup (as much as the SELECT itself). A connection idle for a while is the one a server
    restart, ``wait_timeout`` or a proxy may have cut, so it is pinged and, if dead, replaced
    before use (the pool retries the checkout on ``DisconnectionError``). A busy connection
    that dies fails its one call, is discarded, and the cache serves that call as a miss.
    """
    dialect = engine.dialect

    def on_checkin(_dbapi_conn: Any, record: Any) -> None:
        # A connection an executor held idle (``SyncExecutor``) keeps its idle start, so the
        # next checkout still pings it.
        idle_since = record.info.pop(_IDLE_SINCE, None)
        record.info[_LAST_USED] = time.monotonic() if idle_since is None else idle_since

    def on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        last = record.info.get(_LAST_USED)
        if last is not None and time.monotonic() - last <= idle:
            return
        try:
            alive = dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise sa.exc.DisconnectionError(str(exc)) from exc
        if not alive:
            raise sa.exc.DisconnectionError("ping failed")

    sa.event.listen(engine.pool, "checkin", on_checkin)
    sa.event.listen(engine.pool, "checkout", on_checkout)


SQLITE_PAGE_SIZE = 2048
SQLITE_CHECKPOINT_PAGES = 4000


def _switch_to_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode=WAL``, again while another connection holds the lock it needs.

    Switching a fresh file to WAL takes an exclusive lock and SQLite may answer "database is
    locked" at once, without its busy handler, when several connections open the file at the
    same moment (measured: about one run in ten with six openers). Bounded by the busy timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def _sqlite_pragmas(in_memory: bool) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        try:
            # A new file gets 2 KB pages (an existing one keeps its own): a store rewrites a
            # page of the table and of each of its six B-trees, and each goes to the WAL
            # whole, so smaller pages halve what a store writes (measured: a raw upsert and
            # commit 42 against 52 µs on average; a read by key costs about 0.5 µs more).
            cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            if not in_memory:
                # WAL: readers never wait for the writer, and several processes share a file.
                _switch_to_wal(cursor)
            # NORMAL in WAL never corrupts the file; power loss may drop the last commits,
            # which for a cache costs a few repeated LLM calls. FULL fsyncs every store.
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Checkpoint the WAL into the file every 4,000 pages (8 MB with 2 KB pages)
            # instead of 1,000: a page stored again meanwhile is copied once, and fewer
            # stores pay for a checkpoint.
            cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_PAGES}")
        finally:
            cursor.close()

    return on_connect


def _explicit_begin(conn: sa.Connection) -> None:
    """Connections are in autocommit mode; a write transaction asks for BEGIN by option."""
    mode = conn.get_execution_options().get(BEGIN_OPTION)
    if mode is not None:
        conn.exec_driver_sql(f"BEGIN {mode}".strip())


def begin_mode(target: SqlTarget) -> str:
    # SQLite: take the write lock at BEGIN, waiting up to the busy timeout. A deferred
    # transaction that upgrades to writing later can fail at once with SQLITE_BUSY.
    return "IMMEDIATE" if target.name == "sqlite" else ""


# ---------------------------------------------------------------------------- executors
class _Compiled(NamedTuple):
    sql: str
    #: A step's named parameters as the driver takes them (qmark/format: a tuple in order).
    arrange: Callable[[dict[str, Any]], Any]


class Compiler:
    """SQL text and driver arguments for a step, compiled once per statement and dialect."""

    def __init__(self, dialect: sa.Dialect) -> None:
        self.dialect = dialect
        self._cache: dict[int, _Compiled] = {}

    def _compile(self, stmt: Statement, bound: bool) -> tuple[_Compiled, dict[str, Any]]:
        compiled = stmt.compile(dialect=self.dialect, compile_kwargs={"render_postcompile": bound})
        positions = tuple(compiled.positiontup or ()) if compiled.positional else None
        defaults = {
            name: bind.value for bind, name in compiled.bind_names.items() if not bind.required
        }
        params = dict(compiled.construct_params()) if bound else {}
        return _Compiled(compiled.string, _arranger(positions, defaults)), params

    def args(self, step: Step) -> tuple[str, Any]:
        """``(sql, parameters)``; parameters is a list for an executemany."""
        params = step.params
        if params is None:  # values bound in the statement: compile this one call
            compiled, bound = self._compile(step.stmt, bound=True)
            return compiled.sql, compiled.arrange(bound)
        cached = self._cache.get(id(step.stmt))
        if cached is None:  # statements live as long as the tier: id() is stable
            cached = self._cache[id(step.stmt)] = self._compile(step.stmt, bound=False)[0]
        if type(params) is list:
            return cached.sql, [cached.arrange(p) for p in params]
        return cached.sql, cached.arrange(params)  # type: ignore[arg-type]


def _arranger(
    positions: tuple[str, ...] | None, defaults: dict[str, Any]
) -> Callable[[dict[str, Any]], Any]:
    """Built once per statement: named parameters as the driver takes them (a dict, or a
    tuple in ``positions`` order), with ``defaults`` under them. ``itemgetter`` builds the
    tuple in C: this runs for every statement of every call."""
    if positions is None:
        if not defaults:
            return lambda params: params
        return lambda params: {**defaults, **params}
    if len(positions) == 1:
        name = positions[0]
        pick: Callable[[dict[str, Any]], Any] = lambda params: (params[name],)  # noqa: E731
    elif positions:
        pick = operator.itemgetter(*positions)
    else:
        pick = lambda params: ()  # noqa: E731
    if not defaults:
        return pick
    return lambda params: pick({**defaults, **params})


class _Held(NamedTuple):
    """A connection a ``SyncExecutor`` keeps checked out between plans."""

    conn: Any  # the pool's connection proxy (_ConnectionFairy)
    since: float  # monotonic time it came out of the pool
    used: float  # monotonic time its last plan ended


class SyncExecutor:
    """Runs plans on the sync engine's pooled DB-API connections.

    A connection that just ran a plan is kept (up to the pool's size, last used first) for
    the next plan instead of going back through the pool: the checkout/checkin pair and its
    events cost about 7 µs per statement. The pool's rules still hold: one that idled more
    than ``idle`` seconds, or was kept ``HOLD_AT_MOST`` seconds, goes back to the pool and the
    next plan checks one out as usual (pinged when idle, recycled when old); one that failed
    is never kept.
    """

    def __init__(self, engine: sa.Engine, begin: str, idle: float = PING_IDLE_AFTER) -> None:
        self.engine = engine
        self._begin = f"BEGIN {begin}".strip()
        self._sql = Compiler(engine.dialect)
        # A server connection that failed may be broken: drop it. Never an SQLite one: an
        # error does not break it, and dropping ``:memory:``'s only connection drops the data.
        self._discard_on_error = engine.dialect.name != "sqlite"
        self._idle = idle
        pool = engine.pool
        # StaticPool (sqlite :memory:) hands out its one connection anyway: nothing to keep.
        size = pool.size() if isinstance(pool, sa.pool.QueuePool) else 0
        self._keep = max(0, size)
        # list.append/pop are atomic: threads share the list without a lock.
        self._held: list[_Held] = []
        call_after_fork(self, "_forget_after_fork")

    def run(self, plan: Plan[T], *, transaction: bool) -> T:
        conn, since = self._take()
        done = False
        try:
            cursor = conn.cursor()
            try:
                if transaction:
                    cursor.execute(self._begin)
                result = _drive(plan, lambda step: self._execute(cursor, step))
                if transaction:
                    conn.commit()
            finally:
                cursor.close()
            done = True
            return result
        except BaseException:
            if transaction:
                _rollback_or_discard(conn)
            elif self._discard_on_error:
                conn.invalidate()
            raise
        finally:
            self._put_back(conn, since, done)

    def run_step(self, step: Step) -> Any:
        """One statement outside a transaction: ``run`` of a one-step plan without the
        generator and its frames. The lookup and the tagless store, most calls, run this way:
        the plan machinery was about a third of an SQLite hit's cost in the tier."""
        conn, since = self._take()
        done = False
        try:
            cursor = conn.dbapi_connection.cursor()  # the pool proxy's cursor(), one call less
            try:
                result = self._execute(cursor, step)
            finally:
                cursor.close()
            done = True
            return result
        except BaseException:
            if self._discard_on_error:
                conn.invalidate()
            raise
        finally:
            self._put_back(conn, since, done)

    def _put_back(self, conn: Any, since: float, done: bool) -> None:
        """After a plan: keep the connection for the next one, or give it back to the pool
        (always after a failure)."""
        if done and len(self._held) < self._keep:
            self._held.append(_Held(conn, since, time.monotonic()))
        else:
            conn.close()  # back to the pool

    def _take(self) -> tuple[Any, float]:
        """A connection for one plan: a kept one still fresh, else one from the pool."""
        now = time.monotonic()
        try:
            held = self._held.pop()
        except IndexError:
            return self.engine.raw_connection(), now  # pool checkout (idle ones pinged)
        if now - held.used <= self._idle and now - held.since <= HOLD_AT_MOST:
            return held.conn, held.since
        self._give_back(held)
        return self.engine.raw_connection(), now

    @staticmethod
    def _give_back(held: _Held) -> None:
        held.conn.info[_IDLE_SINCE] = held.used  # so the pool pings it if it idled
        held.conn.close()

    def release(self) -> None:
        """Give every kept connection back to the pool (before ``engine.dispose()``)."""
        while True:
            try:
                held = self._held.pop()
            except IndexError:
                return
            self._give_back(held)

    def _forget_after_fork(self) -> None:
        # A forked child must not use the parent's connections (nor close them): drop the
        # ones held, and the pool's idle ones, as SQLAlchemy's docs prescribe for fork
        # (``dispose(close=False)``). Before this, a pre-forked worker checked out the
        # connection the parent had used last: on PostgreSQL the two processes' replies
        # interleaved on one socket (measured: 178 of the parent's 200 lookups failed).
        self._held = []
        _drop_pool_after_fork(self.engine)

    def _execute(self, cursor: Any, step: Step) -> Any:
        sql, args = self._sql.args(step)
        if isinstance(args, list):
            cursor.executemany(sql, args)
        else:
            cursor.execute(sql, args)
        if step.want == "first":
            return cursor.fetchone()
        if step.want == "column":
            return [row[0] for row in cursor.fetchall()]
        if step.want == "rows":
            return list(cursor.fetchall())
        if step.want == "rowcount":
            return cursor.rowcount
        return None


def _drop_pool_after_fork(engine: sa.Engine) -> None:
    """Forget the pool's connections without closing them (they are the parent's). sqlite's
    ``:memory:`` (StaticPool) keeps its one connection: the child's copy of that database lives
    in the child's own memory."""
    if not isinstance(engine.pool, sa.pool.StaticPool):
        engine.dispose(close=False)


def _rollback_or_discard(conn: Any) -> None:
    try:
        conn.rollback()
    except Exception:  # a connection that can't roll back is not put back in the pool
        conn.invalidate()


def _drive(plan: Plan[T], execute: Callable[[Step], Any]) -> T:
    try:
        step = next(plan)
        while True:
            step = plan.send(execute(step))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


class AsyncExecutor:
    """Runs plans on the async engine's pooled native async connections (psycopg's
    AsyncConnection, aiomysql's Connection), with the same compiled SQL as the sync side.

    SQLAlchemy's AsyncConnection/Result layer costs a greenlet switch and its result
    machinery per statement: measured, it made a PostgreSQL ``aset`` twice as slow as the sync
    ``set`` in a thread. So, as on the sync side, SQLAlchemy owns the pool and the SQL, and the
    driver runs it.
    """

    def __init__(self, engine: AsyncEngine, begin: str) -> None:
        self.engine = engine
        self._begin = f"BEGIN {begin}".strip()
        self._sql = Compiler(engine.sync_engine.dialect)
        call_after_fork(self, "_forget_after_fork")

    def _forget_after_fork(self) -> None:
        # As SyncExecutor's: a child opens connections of its own.
        _drop_pool_after_fork(self.engine.sync_engine)

    async def run(self, plan: Plan[T], *, transaction: bool) -> T:
        async with self.engine.connect() as pooled:  # checkout (idle ones pinged)
            fairy = await pooled.get_raw_connection()
            conn: Any = fairy.driver_connection
            try:
                cursor = await _maybe_await(conn.cursor())  # aiomysql: a coroutine
                if transaction:
                    await cursor.execute(self._begin)
                try:
                    step = next(plan)
                    while True:
                        step = plan.send(await self._execute(cursor, step))
                except StopIteration as done:
                    result: T = done.value
                if transaction:
                    await conn.commit()
                await _maybe_await(cursor.close())
                return result
            except BaseException:
                try:
                    await conn.rollback()
                except Exception:  # dead: never back into the pool (closed on the loop)
                    await pooled.invalidate()
                raise

    async def _execute(self, cursor: Any, step: Step) -> Any:
        sql, args = self._sql.args(step)
        if isinstance(args, list):
            await cursor.executemany(sql, args)
        else:
            await cursor.execute(sql, args)
        if step.want == "first":
            return await cursor.fetchone()
        if step.want == "column":
            return [row[0] for row in await cursor.fetchall()]
        if step.want == "rows":
            return list(await cursor.fetchall())
        if step.want == "rowcount":
            return cursor.rowcount
        return None


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
