"""Invalidation that reaches every process's memory tier, over Redis pub/sub.

A memory tier in front of Redis is each process's own. Without this, ``invalidate`` and
``clear`` reach Redis and the calling process's memory tier, and every other process keeps
serving what it had in memory until the entry's TTL: the answers a changed knowledge base made
wrong. With it, each ``Cache`` that has a memory tier and a Redis tier subscribes to one
channel per prefix (``<prefix>:invalidations``); an ``invalidate``/``clear`` publishes what it
removed (the criteria as digests, never the user's strings; an age as a wall-clock cutoff),
and every other cache on the channel removes the same from its memory tier, within a round trip.

Pub/sub delivers to whoever is connected at the time. A listener that lost its connection may
have missed messages, so when it subscribes again it clears its memory tier (the entries are
still in Redis: the next lookups refill it from there). A message can only remove entries from
a memory tier, never add or change one, so a forged one costs hits, not wrong answers; a
malformed one is logged at debug level and ignored.

A cache without a memory tier (Redis alone, as ``llmcache invalidate --url redis://...`` builds)
publishes its removals and listens to nothing. One daemon thread per cache with a memory tier,
started with the cache, stopped by ``close``. A process forked after the cache was made (a
pre-forking server: gunicorn ``--preload``, Celery's prefork pool) starts a listener of its own
and takes a sender id of its own (threads do not survive ``fork``, and a shared id would make
parent and child ignore each other's messages); its memory tier, inherited from the parent,
is cleared once the child's listener has subscribed (messages sent meanwhile reached nobody).
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from llmcache.fork_safety import call_after_fork
from llmcache.redact import describe_error
from llmcache.request import MAX_TAGS
from llmcache.tiers.selector import Selector

logger = logging.getLogger("llmcache")

FORMAT_VERSION = 1
#: A message longer than this is not ours (MAX_TAGS digests fit well within it).
MAX_MESSAGE_BYTES = 128 * 1024
#: Longest digest a message may carry, in bytes (ours are 16).
MAX_DIGEST_BYTES = 64
#: How long the listener waits for a message before it checks whether it should stop.
POLL_SECONDS = 0.25
#: A quiet channel is PINGed this often, and a connection that does not answer a PING (or
#: the SUBSCRIBE) within REPLY_SECONDS is replaced: a subscriber only reads, so without this a
#: connection that died silently (a NAT or load balancer dropping idle flows) would leave the
#: listener deaf for good.
PING_EVERY_SECONDS = 30.0
REPLY_SECONDS = 10.0
RETRY_FIRST, RETRY_MOST = 0.1, 5.0
_NOT_PUBLISHED = (
    "llmcache: could not tell other processes about an invalidation (%s); their memory tiers "
    "drop those entries at their TTL"
)


class Broadcaster(Protocol):
    """A tier that carries the messages (Redis)."""

    name: str
    prefix: str

    def publish(self, channel: str, message: bytes) -> None: ...
    async def apublish(self, channel: str, message: bytes) -> None: ...
    def pubsub(self) -> Any: ...


class LocalTier(Protocol):
    """What a message is applied to: the cache's in-process tier."""

    def invalidate(self, selector: Selector, now: float) -> int: ...
    def clear(self, scope: bytes | None) -> int: ...


@dataclass(frozen=True, slots=True)
class Removal:
    """What one ``invalidate`` (``selector`` and the wall-clock ``cutoff`` of its age
    criterion) or ``clear`` (``scope``, None for everything) removed."""

    sender: str
    clear: bool
    selector: Selector | None = None
    cutoff: float | None = None
    scope: bytes | None = None


def encode_invalidate(sender: str, selector: Selector, now: float) -> bytes:
    doc = {
        "v": FORMAT_VERSION,
        "from": sender,
        "op": "invalidate",
        "scope": _hex(selector.scope),
        "model": _hex(selector.model),
        "namespace": _hex(selector.namespace),
        "tags": None if selector.tags is None else sorted(t.hex() for t in selector.tags),
        "cutoff": selector.cutoff(now),
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def encode_clear(sender: str, scope: bytes | None) -> bytes:
    doc = {"v": FORMAT_VERSION, "from": sender, "op": "clear", "scope": _hex(scope)}
    return json.dumps(doc, separators=(",", ":")).encode()


def decode(raw: bytes) -> Removal:
    """The removal a message describes; ValueError naming what is wrong with it."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ValueError(f"message of {len(raw)} bytes, more than {MAX_MESSAGE_BYTES}")
    try:
        doc = json.loads(raw)
    except RecursionError:  # "[[[[...": malformed like any other, not a lost connection
        raise ValueError("JSON nested too deeply") from None
    if type(doc) is not dict or doc.get("v") != FORMAT_VERSION:
        raise ValueError("not a version-1 invalidation message")
    sender, op = doc.get("from"), doc.get("op")
    if type(sender) is not str:
        raise ValueError("no sender")
    if op == "clear":
        return Removal(sender, clear=True, scope=_digest(doc.get("scope")))
    if op != "invalidate":
        raise ValueError(f"unknown op {op!r}")
    tags = doc.get("tags")
    if tags is not None and (type(tags) is not list or len(tags) > MAX_TAGS):
        raise ValueError("tags must be a list of at most MAX_TAGS digests")
    cutoff = doc.get("cutoff")
    if cutoff is not None and type(cutoff) not in (int, float):
        raise ValueError("cutoff must be a number")
    selector = Selector(
        scope=_digest(doc.get("scope")),
        model=_digest(doc.get("model")),
        namespace=_digest(doc.get("namespace")),
        tags=None if tags is None else frozenset(_required(_digest(t)) for t in tags),
    )
    if selector == Selector() and cutoff is None:
        raise ValueError("an invalidation without criteria")  # clear() has its own op
    return Removal(sender, clear=False, selector=selector, cutoff=cutoff)


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def _digest(value: object) -> bytes | None:
    if value is None:
        return None
    if type(value) is not str or len(value) > 2 * MAX_DIGEST_BYTES:
        raise ValueError("a digest must be a short hex string")
    return bytes.fromhex(value)


def _required(value: bytes | None) -> bytes:
    if value is None:
        raise ValueError("a tag digest is missing")
    return value


class FleetInvalidation:
    """Publishes this cache's removals and applies the other caches' to its memory tier."""

    def __init__(
        self, broadcaster: Broadcaster, local: LocalTier | None, clock: Callable[[], float]
    ) -> None:
        """``local``: the memory tier to apply the others' removals to; None for a cache
        without one (``llmcache invalidate`` from a shell): it only publishes."""
        self._broadcaster = broadcaster
        self._local = local
        self._clock = clock
        self.channel = f"{broadcaster.prefix}:invalidations"
        #: Tells this cache's own messages apart: it removed those entries already.
        self.sender = secrets.token_hex(8)
        self.subscribed = threading.Event()  # set while the listener is subscribed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_listener(inherited=False)
        call_after_fork(self, "_after_fork_in_child")

    def _start_listener(self, *, inherited: bool) -> None:
        if self._local is None:
            return
        self._thread = threading.Thread(
            target=self._listen,
            args=(inherited,),
            name=f"llmcache-invalidations-{self._broadcaster.name}",
            daemon=True,
        )
        self._thread.start()

    def _after_fork_in_child(self) -> None:
        """In a forked child: an id and a listener of its own (see the module docstring)."""
        closed = self._stop.is_set()
        self.sender = secrets.token_hex(8)
        # New events: the parent's listener may have been inside one of them at the fork.
        self.subscribed, self._stop = threading.Event(), threading.Event()
        self._thread = None
        if closed:
            self._stop.set()
        else:
            self._start_listener(inherited=True)

    # ------------------------------------------------------------------ this cache's removals
    def invalidated(self, selector: Selector, now: float) -> None:
        self._publish(encode_invalidate(self.sender, selector, now))

    def cleared(self, scope: bytes | None) -> None:
        self._publish(encode_clear(self.sender, scope))

    async def ainvalidated(self, selector: Selector, now: float) -> None:
        await self._apublish(encode_invalidate(self.sender, selector, now))

    async def acleared(self, scope: bytes | None) -> None:
        await self._apublish(encode_clear(self.sender, scope))

    def _publish(self, message: bytes) -> None:
        try:
            self._broadcaster.publish(self.channel, message)
        except Exception as exc:  # the removal itself is done; other processes rely on TTLs
            logger.warning(_NOT_PUBLISHED, describe_error(exc))

    async def _apublish(self, message: bytes) -> None:
        try:
            await self._broadcaster.apublish(self.channel, message)
        except Exception as exc:
            logger.warning(_NOT_PUBLISHED, describe_error(exc))

    # ------------------------------------------------------------------ the others'
    def apply(self, raw: bytes) -> None:
        """Apply one message from the channel to the memory tier (the listener's job)."""
        try:
            removal = decode(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            logger.debug("llmcache: ignored a malformed invalidation message: %s", exc)
            return
        local = self._local
        if removal.sender == self.sender or local is None:
            return
        if removal.clear:
            local.clear(removal.scope)
            return
        assert removal.selector is not None
        now = self._clock()
        older = None if removal.cutoff is None else now - removal.cutoff
        local.invalidate(removal.selector._replace(older_than=older), now)

    def _listen(self, inherited: bool) -> None:
        """``inherited``: the memory tier came from a parent process (``fork``), and may hold
        entries removed before this listener subscribed: cleared once it has."""
        delay, lost = RETRY_FIRST, inherited
        while not self._stop.is_set():
            pubsub: Any = None
            try:
                pubsub = self._broadcaster.pubsub()
                pubsub.subscribe(self.channel)
                heard = time.monotonic()
                awaiting: float | None = heard  # since when a reply is due (None: none is)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=POLL_SECONDS)
                    now = time.monotonic()
                    if message is None:
                        if awaiting is not None and now - awaiting > REPLY_SECONDS:
                            raise ConnectionError(f"no reply within {REPLY_SECONDS:g} s")
                        if awaiting is None and now - heard > PING_EVERY_SECONDS:
                            pubsub.ping()
                            awaiting = now
                        continue
                    heard, awaiting = now, None
                    if message["type"] == "subscribe":
                        # After a failure, or again on one subscription (redis-py reconnected
                        # and subscribed again by itself): messages sent meanwhile are lost.
                        if (lost or self.subscribed.is_set()) and self._local is not None:
                            self._local.clear(None)
                            logger.log(
                                logging.DEBUG if inherited else logging.INFO,
                                "llmcache: invalidation channel %s on %s; cleared the "
                                "memory tier (it refills from %s)",
                                "subscribed after a fork" if inherited else "back",
                                self._broadcaster.name,
                                self._broadcaster.name,
                            )
                        lost, delay, inherited = False, RETRY_FIRST, False
                        self.subscribed.set()
                    elif message["type"] == "message":
                        self.apply(message["data"])
            except Exception as exc:
                if not lost:
                    logger.debug(
                        "llmcache: invalidation channel on %s lost: %s",
                        self._broadcaster.name,
                        describe_error(exc),
                    )
                lost = True
                self.subscribed.clear()
                self._stop.wait(delay)
                delay = min(delay * 2, RETRY_MOST)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # a dead connection: nothing to close
                        pubsub.close()

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(POLL_SECONDS * 8)
