"""The redis tier's commands, sent on connections of the client's own pool.

Why: redis-py's ``execute_command`` costs about 50 µs of CPU per command on this machine
(a pool lock and a "has unread data" ``select`` per checkout, observability hooks, the retry
wrapper, response callbacks), three times what packing the command, sending it and reading
the reply cost. A cache hit is one GET, so that overhead was most of our hit time, and under
16 threads it is GIL time every thread waits for. ``Commands`` keeps the connections it
borrowed from the pool (``get_connection``: the pool still counts and closes them) on a
free list, and pipelines callers that arrive while an exchange is on the wire: one thread
writes what they queued in one write and hands each its replies (so 16 threads share a few
writes, and two connections). ``ACommands`` does the same for one event loop's
redis.asyncio client: no executor hop, no task per command.

Both send several commands in one write and read every reply (one round trip: a store and
the release of its fleet lock); a reply that is an error is raised after all replies are read,
so the connection stays in step. ``post`` sends a store without waiting for its replies: they
are read, in order, by the next exchange on that connection (a miss that stores then waits
for one round trip, not two); an error reply read that way is raised by the next ``post``.
A connection error on a socket that was open is retried once on the same connection (it
reconnects: a pooled socket the server closed); a failed connect
is not retried again (redis-py's connect already retries once), a timeout never, as
``redis_url`` sets for redis-py's own retries (except on the async side when the event
loop itself was busy at the deadline: ``loop_timeout``). redis-py disconnects a connection on any
error but an error reply, so a connection goes back on the list in a usable state either way.

Only plain clients take this path (standalone or Sentinel-managed, without client-side
caching); a Cluster client, or a subclass that may override commands, gets ``ClientCommands``:
the same interface on redis-py's public API.

The list is dropped, not reused, in a forked child (a child must never share its parent's
sockets: ``llmcache.fork_safety`` calls ``Commands._forget``) and when the pool was reset or
closed.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import math
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from llmcache.fork_safety import call_after_fork
from llmcache.tiers.loop_timeout import ServerTimeout, again_if_late

Command = tuple[Any, ...]

_hiredis_pack: Callable[[Command], bytes] | None
try:  # the `redis` extra installs hiredis; without it, redis-py's own packer
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - exercised only without hiredis
    _hiredis_pack = None

try:  # the redis extra; this module is imported without it only to be type-checked
    from redis import exceptions as _errors
except ImportError:  # pragma: no cover - nothing here runs without redis-py
    _errors = None  # type: ignore[assignment]

_socket_connections: tuple[type, ...] = ()
_Hiredis: type | None = None
_NOT_ENOUGH_DATA: object = object()
try:  # the sync connections and parser whose socket and reader Commands drives itself
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as _NOT_ENOUGH_DATA
    from redis._parsers.hiredis import _HiredisParser as _Hiredis
    from redis.connection import Connection as _Connection
    from redis.connection import SSLConnection as _SSLConnection
    from redis.connection import UnixDomainSocketConnection as _UnixConnection

    # Exactly these classes, as for the async side below.
    _socket_connections = (_Connection, _SSLConnection, _UnixConnection)
except ImportError:  # pragma: no cover - another redis-py layout, or no hiredis: redis-py reads
    pass

_streamed_connections: tuple[type, ...] = ()
try:  # the redis.asyncio connections whose stream ACommands reads itself (see _exchange_on_stream)
    from redis.asyncio.connection import Connection as _AConnection
    from redis.asyncio.connection import SSLConnection as _ASSLConnection
    from redis.asyncio.connection import UnixDomainSocketConnection as _AUnixConnection

    # Exactly these classes: a Sentinel-managed connection reads replies its own way (a
    # READONLY reply from a demoted primary drops it). asyncio.timeout: Python 3.11+.
    if hasattr(asyncio, "timeout"):
        _streamed_connections = (_AConnection, _ASSLConnection, _AUnixConnection)
except ImportError:  # pragma: no cover - without redis-py (or another layout): redis-py reads
    pass


def _pack(conn: Any, commands: Sequence[Command]) -> Any:
    """``commands`` in the wire protocol, for one write.

    Our commands hold only str (ASCII: names, keys, scripts, tokens), bytes and int, which
    hiredis packs in C as redis-py would; redis-py's own packer first runs every argument
    through its encoder in Python (about a quarter of a store's client CPU here)."""
    if _hiredis_pack is not None:  # a list of chunks, as send_packed_command takes them
        if len(commands) == 1:
            return [_hiredis_pack(commands[0])]
        # One chunk: the sync send makes a syscall (and, with TCP_NODELAY, a packet) per chunk.
        return [b"".join([_hiredis_pack(command) for command in commands])]
    if len(commands) == 1:
        return conn.pack_command(*commands[0])
    return conn.pack_commands(commands)


def _fast_capable(client: Any) -> bool:
    """Whether ``client``'s connections may be driven directly (see the module docstring)."""
    from redis import Redis
    from redis.asyncio import Redis as AsyncRedis

    if type(client) not in (Redis, AsyncRedis):  # a subclass may override execute_command
        return False
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if kwargs is None:
        return False
    # Client-side caching (RESP3 tracking) would push invalidations onto our connections.
    return getattr(pool, "cache", None) is None and not kwargs.get("cache")


def _raise_first(replies: list[Any]) -> list[Any]:
    for reply in replies:
        if isinstance(reply, _errors.ResponseError):
            raise reply
    return replies


class _Waiter:
    """A caller queued behind the wire (``Commands``). It blocks on ``done``, which the
    sending thread releases once its replies (or the error that ended the exchange) are in,
    or earlier to hand it the sending of the queue (``sends``)."""

    __slots__ = ("commands", "done", "error", "replies", "sends")

    def __init__(self, commands: Sequence[Command]) -> None:
        self.commands = commands
        self.done = threading.Lock()
        self.done.acquire()  # released by the sender: a wait without polling
        self.replies: list[Any] = []
        self.error: BaseException | None = None
        self.sends = False


class _Owed:
    """Replies that connections owe for commands posted on them (``post``), and the first
    error reply read among them, for the next ``post`` to raise. A connection owes replies
    on the socket (or stream writer) they were posted on: a reconnected one owes nothing."""

    __slots__ = ("by_conn", "late")

    def __init__(self) -> None:
        self.by_conn: dict[int, tuple[Any, int]] = {}  # id(conn) -> (socket or writer, count)
        self.late: BaseException | None = None

    def of(self, conn: Any, handle: Any) -> int:
        owed = self.by_conn.get(id(conn))
        return owed[1] if owed is not None and owed[0] is handle else 0

    def drop(self, conn: Any, handle: Any) -> int:
        """What ``conn`` owes on ``handle``, forgotten (its caller reads it now)."""
        owed = self.of(conn, handle)
        self.by_conn.pop(id(conn), None)
        return owed

    def posted(self, conn: Any, handle: Any, owed: int, count: int) -> None:
        self.by_conn[id(conn)] = (handle, owed + count)

    def read(self, conn: Any, replies: list[Any], owed: int) -> list[Any]:
        """The exchange's own replies, once the ``owed`` ones before them are accounted for."""
        self.by_conn.pop(id(conn), None)
        if not owed:
            return replies
        if self.late is None:
            self.late = next((r for r in replies[:owed] if isinstance(r, Exception)), None)
        return replies[owed:]

    def take_late(self) -> BaseException | None:
        late, self.late = self.late, None
        return late


class Commands:
    """Sync commands on borrowed connections of a plain redis-py client, pipelined while busy.

    As ``ACommands`` does for tasks: a call made when nothing is on the wire goes straight to
    a connection; a call made while another exchange is on the wire joins a queue. The queued
    thread that finds no sender sends everything queued in one write, reads the replies in
    order and hands each caller its own; then the first caller queued meanwhile sends the
    next batch (no thread sends for others for long). Why: with threads the GIL makes a
    call's CPU the limit, and on loopback the ``sendall`` and ``recv`` of a round trip (and
    the server's read and write) cost more CPU than the rest of a cache hit's client work; 16
    threads hitting the cache then share a few writes instead of making 16, and hold two
    connections instead of 16. A queued caller waits on a lock of its own (one wake-up).
    """

    __slots__ = (
        "__weakref__",
        "_busy",
        "_epoch",
        "_free",
        "_owed",
        "_pool",
        "_queue",
        "_sending",
        "_state",
    )

    def __init__(self, client: Any) -> None:
        self._pool = client.connection_pool
        self._epoch = self._in_use()
        self._reset()
        call_after_fork(self, "_forget")
        _LIVE.add(self)

    def _reset(self) -> None:
        self._free: list[Any] = []
        self._state = threading.Lock()  # guards _busy, _queue and _sending
        self._busy = 0  # exchanges on the wire: a caller alone, and the queue's sender
        self._queue: list[_Waiter] = []
        self._sending = False  # a thread sends the queue (always, while it is not empty)
        self._owed = _Owed()  # replies of posted commands, still to be read

    def _in_use(self) -> object:
        # The pool's in-use set is replaced by reset() (a caller resetting it): our borrowed
        # connections then belong to no pool any more.
        return getattr(self._pool, "_in_use_connections", None)

    def _forget(self) -> None:
        """In a forked child: the borrowed connections are the parent's sockets (never used
        nor closed here); the pool opens new ones (redis-py resets it after a fork). Callers
        queued in the parent do not exist in the child."""
        self._reset()

    def run(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` in one write; their raw replies in order (error replies raised)."""
        with self._state:
            alone = not self._busy
            if alone:
                self._busy += 1
            else:
                waiter = _Waiter(commands)
                self._queue.append(waiter)
                first = not self._sending  # the queue was empty: this caller sends it
                if first:
                    self._sending = True
                    self._busy += 1
        if alone:
            try:
                (replies,) = self._exchange([commands])
            finally:
                with self._state:
                    self._busy -= 1
            return _raise_first(replies)
        if not first:
            # Its replies, or the sending handed over to it (``sends`` is set before the
            # release, so it is read after the wait, never before).
            waiter.done.acquire()
        if first or waiter.sends:
            self._send_queued()  # its own request is in the batch
            waiter.done.acquire()  # released with the batch's replies
        if waiter.error is not None:
            raise waiter.error
        return _raise_first(waiter.replies)

    def post(self, commands: Sequence[Command]) -> None:
        """Send ``commands`` without waiting for their replies (a store: nothing is read back).

        The replies are read by the next exchange on the same connection, in the same round
        trip as its own; the connections are a stack, so that is usually the next call. Why:
        a miss that stores otherwise waits for two round trips (the lookup's and the store's)
        where it needs one and a send. Redis runs one connection's commands in the order
        sent, so a read on the same connection sees the store; one sent on another connection
        after the post sees it in practice (the store was on its way first), by no guarantee:
        a reader that must see it uses ``run`` (``Cache.set``'s default). An error reply to a
        posted command (OOM, READONLY), once an exchange has read it, is raised by the next
        ``post``, which then sends nothing (the tier counts a failed store, a store late); a
        connection error is raised at once, as by ``run``; a store sent on a socket the
        server had closed is lost (a later miss). A caller that finds another exchange on
        the wire queues as ``run`` does and waits for its replies.
        """
        late = self._owed.take_late()
        if late is not None:
            raise late
        with self._state:
            queued = bool(self._busy)
            if not queued:
                self._busy += 1
        if queued:
            self.run(commands)
            return
        try:
            (replies,) = self._exchange([commands], wait=False)
        finally:
            with self._state:
                self._busy -= 1
        _raise_first(replies)

    def _send_queued(self) -> None:
        """Send what is queued in one exchange; then hand the sending to the first caller
        queued since, or stop sending (under the lock callers queue under: none is left
        unsent)."""
        with self._state:
            batch, self._queue = self._queue, []
        try:
            outcomes = self._exchange([waiter.commands for waiter in batch])
        except BaseException as exc:  # the connection failed: every caller learns it
            for waiter in batch:
                waiter.error = exc
                waiter.done.release()
        else:
            for waiter, replies in zip(batch, outcomes, strict=True):
                waiter.replies = replies
                waiter.done.release()
        finally:
            following = None
            with self._state:
                if self._queue:
                    following = self._queue[0]
                    following.sends = True
                else:
                    self._sending = False
                    self._busy -= 1
            if following is not None:
                following.done.release()

    def _exchange(self, groups: list[Sequence[Command]], wait: bool = True) -> list[list[Any]]:
        """Every group's commands in one write on a connection of ours; each group's replies
        (error replies as values). Without ``wait`` (one group, from ``post``), on a socket we
        read ourselves, nothing is read: the group's replies are ``[]``."""
        if self._epoch is not self._in_use():
            self._free = []
            self._owed = _Owed()
            self._epoch = self._in_use()
        free = self._free
        try:
            conn = free.pop()
        except IndexError:
            conn = None
        commands = groups[0] if len(groups) == 1 else [c for group in groups for c in group]
        try:
            if conn is None:  # connects now (a failed connect is retried by redis-py)
                conn = self._pool.get_connection()
            while True:
                # Only a socket that was open may have gone stale: retry on it once. A
                # connect that fails was retried already.
                stale = conn.is_connected
                if not stale:  # connect(), not send's own: Sentinel asks for the master there
                    conn.connect()
                try:
                    if type(conn) in _socket_connections and type(conn._parser) is _Hiredis:
                        replies = self._on_socket(conn, commands, wait)
                    else:
                        replies = _exchange_by_connection(conn, commands)
                    if len(groups) == 1:
                        return [replies]
                    read = iter(replies)
                    return [[next(read) for _ in group] for group in groups]
                except _errors.ConnectionError:
                    if not stale:
                        raise
        finally:
            if conn is not None:
                free.append(conn)

    def _on_socket(self, conn: Any, commands: Sequence[Command], wait: bool) -> list[Any]:
        """``_exchange_on_socket``, first reading the replies ``conn`` owes for posted
        commands (an error among them is kept for the next ``post``)."""
        sock = conn._sock
        owed = self._owed.of(conn, sock)
        if not wait:
            _exchange_on_socket(conn, commands, 0, wait=False)
            self._owed.posted(conn, sock, owed, len(commands))
            return []
        return self._owed.read(conn, _exchange_on_socket(conn, commands, owed), owed)

    def _settle(self, conn: Any) -> None:
        """Read the replies ``conn`` owes for posted commands: once they are in, the server
        has run the stores (a socket closed with replies unread is reset, and what the
        server had not read yet may be lost with it)."""
        owed = self._owed.drop(conn, conn._sock)
        if owed:
            # A failed read drops the connection: nothing is left to read on it then.
            with contextlib.suppress(Exception):
                _exchange_on_socket(conn, (), owed)

    def settle(self) -> None:
        """``_settle`` every idle connection (at interpreter exit: stores posted last are run
        before the process's sockets close)."""
        free = self._free
        for _ in range(len(free)):  # each idle connection once, round the list
            try:
                conn = free.pop()
            except IndexError:  # taken meanwhile by a thread still running
                return
            try:
                self._settle(conn)
            finally:
                free.insert(0, conn)

    def close(self) -> None:
        """Give the borrowed connections back to the pool (a borrowed client stays usable),
        once the replies they owe are read (the pool must find nothing left to read)."""
        free, self._free = self._free, []
        for conn in free:
            self._settle(conn)
            self._pool.release(conn)
        self._owed = _Owed()


_LIVE: weakref.WeakSet[Commands] = weakref.WeakSet()


@atexit.register
def _settle_at_exit() -> None:
    for commands in list(_LIVE):
        commands.settle()


class ACommands:
    """``Commands`` for one event loop's plain redis.asyncio client, pipelined while busy.

    A call made while another is on the wire does not take a connection of its own: it
    joins a queue, and one sender task writes everything queued in one write and reads the
    replies in order (64 tasks hitting the cache: a few writes per loop pass instead of 64,
    and no connection per task). A call made when nothing is in flight goes straight to a
    connection, so a lone caller waits for no batch.
    """

    __slots__ = ("_busy", "_epoch", "_free", "_owed", "_pool", "_queue", "_sender", "client")

    def __init__(self, client: Any) -> None:
        self.client = client
        self._pool = client.connection_pool
        self._free: list[Any] = []
        self._epoch = self._in_use()
        self._busy = 0  # exchanges on the wire
        self._queue: list[tuple[Sequence[Command], asyncio.Future[list[Any]]]] = []
        self._sender: asyncio.Task[None] | None = None
        self._owed = _Owed()  # as Commands: replies of posted commands, still to be read

    def _in_use(self) -> object:
        return getattr(self._pool, "_in_use_connections", None)

    async def post(self, commands: Sequence[Command]) -> None:
        """``Commands.post`` for this loop: sent, replies read by the next exchange."""
        late = self._owed.take_late()
        if late is not None:
            raise late
        if self._busy:
            await self.run(commands)
            return
        self._busy += 1
        try:
            (replies,) = await self._exchange([commands], wait=False)
        finally:
            self._busy -= 1
        _raise_first(replies)

    async def run(self, commands: Sequence[Command]) -> list[Any]:
        if self._busy:
            future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
            self._queue.append((commands, future))
            if self._sender is None:
                self._sender = asyncio.get_running_loop().create_task(self._send_queued())
            return await future
        self._busy += 1
        try:
            (replies,) = await self._exchange([commands])
        finally:
            self._busy -= 1
        return _raise_first(replies)

    async def _send_queued(self) -> None:
        self._busy += 1
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    outcomes = await self._exchange([commands for commands, _ in batch])
                except Exception as exc:  # the connection failed: every caller learns it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                except BaseException:  # cancelled (the loop is closing): so are the callers
                    for _, future in batch:
                        future.cancel()
                    raise
                for (_, future), replies in zip(batch, outcomes, strict=True):
                    if future.done():  # its caller was cancelled meanwhile
                        continue
                    error = next((r for r in replies if isinstance(r, Exception)), None)
                    if error is None:
                        future.set_result(replies)
                    else:
                        future.set_exception(error)
        finally:
            self._busy -= 1
            self._sender = None

    async def _exchange(
        self, groups: list[Sequence[Command]], wait: bool = True
    ) -> list[list[Any]]:
        """Send every group's commands in one write; each group's replies (errors as values).
        Without ``wait`` (``post``), on a stream we read ourselves, the replies are ``[]``."""
        if self._epoch is not self._in_use():
            self._free = []
            self._owed = _Owed()
            self._epoch = self._in_use()
        free = self._free
        conn: Any = free.pop() if free else None
        flat = [command for group in groups for command in group]
        try:
            if conn is None:  # connects it; a busy loop is not a dead server (loop_timeout)
                pool = self._pool
                timeout = pool.connection_kwargs.get("socket_connect_timeout")
                conn = await again_if_late(pool.get_connection, timeout, _errors.TimeoutError)
            while True:
                stale = conn.is_connected
                if not stale:
                    timeout = conn.socket_connect_timeout
                    await again_if_late(conn.connect, timeout, _errors.TimeoutError)
                try:
                    if type(conn) in _streamed_connections:
                        replies = iter(await self._on_stream(conn, flat, wait))
                    else:
                        replies = iter(await _exchange_by_redis_py(conn, flat))
                    if not wait:
                        return [list(replies)]
                    return [[next(replies) for _ in group] for group in groups]
                except _errors.ConnectionError:
                    if not stale:
                        raise
        finally:
            if conn is not None:
                free.append(conn)

    async def _on_stream(self, conn: Any, commands: list[Command], wait: bool) -> list[Any]:
        """``_exchange_on_stream``, first reading the replies ``conn`` owes (``_on_socket``)."""
        writer = conn._writer
        owed = self._owed.of(conn, writer)
        if not wait:
            await _exchange_on_stream(conn, commands, 0, wait=False)
            self._owed.posted(conn, writer, owed, len(commands))
            return []
        return self._owed.read(conn, await _exchange_on_stream(conn, commands, owed), owed)

    def close(self) -> None:
        """Forget the borrowed connections: they stay in the pool's in-use set, so the pool's
        ``disconnect`` (``aclose`` of the client) closes them; releasing takes an await. What
        was posted on them was sent already (closing a socket delivers what it sent)."""
        self._free = []
        self._owed = _Owed()


async def _exchange_on_stream(
    conn: Any, commands: list[Command], owed: int = 0, wait: bool = True
) -> list[Any]:
    """``commands`` written on ``conn``'s stream in one write and the replies read: ``owed``
    replies to commands posted earlier, then theirs (error replies as values; none read
    without ``wait``), all under one timeout of the connection's ``socket_timeout`` (a
    ``ServerTimeout``: a stall of the event loop itself at the deadline does not count).

    Why not ``send_packed_command`` and ``read_response``: the first runs every write in
    ``asyncio.wait_for`` (a new task, and a turn of the loop, per command) and the second
    sets a timer per reply: a GET cost 91 µs of CPU that way here, 72 this way. Failures are
    handled as those two handle them: the connection is dropped (a reply half read must
    never be taken for the next command's), a timeout raises TimeoutError, a socket error
    ConnectionError; the parser itself raises a connection error reply (LOADING) and hands
    push frames to redis-py's handler.
    """
    replies: list[Any] = []
    try:
        writer = conn._writer
        if writer is None or writer.transport.is_closing():
            raise _errors.ConnectionError("Connection closed by the server before write")
        if commands:  # never blocks: what the socket does not take now waits in the transport
            writer.writelines(_pack(conn, commands))
        if not wait and not writer.transport.get_write_buffer_size():
            return replies  # a post all in the socket: no drain, so no timer to arm
        async with asyncio.timeout(None) as timeout:
            watch = ServerTimeout(timeout, conn.socket_timeout)  # a busy loop is not a stall
            try:
                if commands:
                    await writer.drain()
                if wait:
                    for _ in range(owed + len(commands)):  # as redis-py 5 to 8 read them
                        replies.append(await conn._parser.read_response())
            finally:
                watch.cancel()
    except TimeoutError as exc:  # the watch's, or ETIMEDOUT from the OS
        raise await _timed_out(conn, exc) from None
    except OSError as exc:
        await conn.disconnect(nowait=True)
        raise _errors.ConnectionError(f"Error talking to {_address(conn)}: {exc}") from exc
    except BaseException:
        await conn.disconnect(nowait=True)
        raise
    return replies


async def _exchange_by_redis_py(conn: Any, commands: list[Command]) -> list[Any]:
    """The same through redis-py's send and reads (a Sentinel-managed connection, whose reads
    handle a demoted primary; any connection on Python 3.10).

    On Python 3.11+ the reads run under a ``ServerTimeout`` too, and redis-py's own per-read
    wall-time timeout is off (``math.inf``); on 3.10 (no ``asyncio.timeout``) redis-py's stays.
    """
    if not hasattr(asyncio, "timeout"):
        return await _send_and_read(conn, commands, None)
    try:
        async with asyncio.timeout(None) as timeout:
            watch = ServerTimeout(timeout, conn.socket_timeout)  # a busy loop is not a stall
            try:
                return await _send_and_read(conn, commands, math.inf)
            finally:
                watch.cancel()
    except TimeoutError as exc:  # the watch's (redis-py raises its own TimeoutError class)
        raise await _timed_out(conn, exc) from None


def _exchange_on_socket(
    conn: Any, commands: Sequence[Command], owed: int = 0, wait: bool = True
) -> list[Any]:
    """``commands`` sent on ``conn``'s socket in one write and the replies read with its
    hiredis reader: ``owed`` replies to commands posted earlier, then theirs (error replies
    as values; none read without ``wait``).

    Why not ``send_packed_command`` and ``read_response``: per reply, redis-py runs three
    Python frames around hiredis (the connection's, the parser's, its socket read), formats
    the address for a message it may need, and raises an error reply that the caller then
    catches; about a tenth of a Redis hit's instructions here. Failures are handled as those
    do: the connection is dropped (a reply half read must never be taken for the next
    command's), a timeout raises TimeoutError (ETIMEDOUT from the OS: ConnectionError),
    another socket error ConnectionError; a reply the reader turns into a connection error
    (LOADING) is raised; push frames go to the parser's handler, as redis-py sends them.
    """
    parser = conn._parser
    reader, buffer = parser._reader, parser._buffer
    push = parser._hiredis_PushNotificationType
    sock = conn._sock
    replies: list[Any] = []
    try:
        if reader is None or sock is None:
            raise _errors.ConnectionError("Connection closed by the server before write")
        if commands:
            for chunk in _pack(conn, commands):
                sock.sendall(chunk)
        if not wait:
            return replies
        for _ in range(owed + len(commands)) if owed else commands:
            while True:
                reply = reader.gets()
                while reply is _NOT_ENOUGH_DATA:
                    read = sock.recv_into(buffer)
                    if not read:
                        raise _errors.ConnectionError("Connection closed by server.")
                    reader.feed(buffer, 0, read)
                    reply = reader.gets()
                if push is None or type(reply) is not push:
                    break
                parser.handle_push_response(reply)
            if isinstance(reply, _errors.ConnectionError):
                raise reply
            replies.append(reply)
    except TimeoutError as exc:  # socket.timeout, or ETIMEDOUT from the OS
        conn.disconnect()
        if exc.errno is not None:
            raise _errors.ConnectionError(f"Error talking to {_address(conn)}: {exc}") from exc
        raise _errors.TimeoutError(f"Timeout talking to {_address(conn)}") from None
    except OSError as exc:
        conn.disconnect()
        raise _errors.ConnectionError(f"Error talking to {_address(conn)}: {exc}") from exc
    except BaseException:
        conn.disconnect()
        raise
    return replies


def _exchange_by_connection(conn: Any, commands: Sequence[Command]) -> list[Any]:
    """The same through redis-py's send and reads (a Sentinel-managed connection, whose reads
    handle a demoted primary; redis-py's own parser when hiredis is missing)."""
    conn.send_packed_command(_pack(conn, commands), check_health=False)
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(conn.read_response())
        except _errors.ResponseError as exc:  # keep reading: stay in step
            replies.append(exc)
    return replies


async def _timed_out(conn: Any, exc: TimeoutError) -> Exception:
    """The redis-py error for a timed-out exchange, ``conn`` dropped (a reply half read must
    never be taken for the next command's)."""
    await conn.disconnect(nowait=True)
    if exc.errno is not None:  # ETIMEDOUT from the OS: a dead connection, not a slow one
        return _errors.ConnectionError(f"Error talking to {_address(conn)}: {exc}")
    return _errors.TimeoutError(f"Timeout talking to {_address(conn)}")


async def _send_and_read(conn: Any, commands: list[Command], timeout: float | None) -> list[Any]:
    """``commands`` sent in one write, their replies read (error replies as values)."""
    await conn.send_packed_command(_pack(conn, commands), check_health=False)
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(await conn.read_response(timeout=timeout))
        except _errors.ResponseError as exc:  # keep reading: stay in step
            replies.append(exc)
    return replies


def _address(conn: Any) -> str:
    path = getattr(conn, "path", None)  # a unix socket
    return str(path) if path else f"{conn.host}:{conn.port}"


class ClientCommands:
    """The same interface on redis-py's public API (a Cluster, or a client subclass), one
    ``execute_command`` per command. Not a pipeline: a Cluster pipeline asks its default
    node for the keys of every EVAL (``COMMAND GETKEYS``), so a store would fail whenever
    that one node is down, whichever node owns the key; ``execute_command`` reads an EVAL's
    keys itself. Every command runs even if one gets an error reply; the first is raised."""

    __slots__ = ("client",)

    def __init__(self, client: Any) -> None:
        self.client = client

    def run(self, commands: Sequence[Command]) -> list[Any]:
        replies: list[Any] = []
        for command in commands:
            try:
                replies.append(self.client.execute_command(*command))
            except _errors.ResponseError as exc:
                replies.append(exc)
        return _raise_first(replies)

    def post(self, commands: Sequence[Command]) -> None:
        """No deferred replies here: ``run``."""
        self.run(commands)

    def close(self) -> None:
        return None


class AClientCommands:
    """``ClientCommands`` for a redis.asyncio client."""

    __slots__ = ("client",)

    def __init__(self, client: Any) -> None:
        self.client = client

    async def run(self, commands: Sequence[Command]) -> list[Any]:
        replies: list[Any] = []
        for command in commands:
            try:
                replies.append(await self.client.execute_command(*command))
            except _errors.ResponseError as exc:
                replies.append(exc)
        return _raise_first(replies)

    async def post(self, commands: Sequence[Command]) -> None:
        await self.run(commands)

    def close(self) -> None:
        return None


def commands_for(client: Any) -> Commands | ClientCommands:
    return Commands(client) if _fast_capable(client) else ClientCommands(client)


def acommands_for(client: Any) -> ACommands | AClientCommands:
    return ACommands(client) if _fast_capable(client) else AClientCommands(client)
