"""``redisvl://``: the vector index on Redis with the search module (Redis Stack), via redisvl.

URL::

    redisvl://host:port[/db]?prefix=llmcache&index=semantic&algorithm=hnsw
    redisvls://...                     the same over TLS

``prefix`` (default ``llmcache``) and ``index`` (default ``semantic``) name every key and the
index; ``algorithm`` is ``hnsw`` (default) or ``flat`` (exact, brute force);
``socket_timeout``/``socket_connect_timeout`` go to redis-py. The semantic tier's own options
(``threshold``, ``k``, ``embedder``, ``verify``) are ignored here; anything else is an error.

Layout (HASH documents; the redisvl ``SearchIndex`` schema covers them)::

    <prefix>:vec:<index>                 the FT index (its own name under our prefix)
    <prefix>:vec:<index>:<digest hex>    one vector: partition, scope, model, namespace (tags,
                                         hex), digest, text, vector (float32), expires_at, and
                                         ref (scope+model+namespace hex, then the text: what a
                                         lookup reads back, in one field)
    <prefix>:vecstamp:<index>            the name of the embedder whose vectors the index
                                         holds (``bind_embedder``; ``reembed`` rewrites it)

A bound index reads the stamp again every ``STAMP_RECHECK`` seconds (with the index's info,
as on first use), so a running process follows ``llmcache reindex`` without a restart: one
refused for another embedder's vectors serves again once the index holds its own, and one
whose index was re-embedded for another embedder stops searching and adding (its calls fail
open) instead of mixing two embedders' vectors.

The partition filter is inside the KNN query
(``(@partition:{hex} @expires_at:[(now +inf])=>[KNN k @vector $vec ...]``), never applied to a
top-k afterwards, so a closer vector of another partition can neither be returned nor push a
valid one out. Expiry is native (PEXPIRE, relative to the caller's clock: the ``clock``
given, else the one learned from the ``now`` of its searches) and also checked in the query
against the caller's ``now``, so a fake clock or a skewed host never serves an expired vector
nor loses a live one. ``delete`` and ``clear`` UNLINK only keys under
``<prefix>:vec:<index>:`` (found by the index query or by SCAN): never FLUSHDB, never a
foreign key.

Query policy: RediSearch picks brute force over the filtered documents (ADHOC_BF) or HNSW in
batches. Its estimate picks brute force even when a partition is the whole index, which costs
several times an HNSW search at 10k vectors (benchmarks/results/semantic_lookup.md). We count
each partition now and then (one count per partition per ``SIZE_REFRESH`` seconds, in the same
round trip as a search) and ask for BATCHES when a partition holds more than ``ADHOC_MAX``
vectors and at least ``1 / BATCH_SHARE`` of the index (a small share would make HNSW walk
through many batches of other partitions' vectors; RediSearch's own choice is right there).

redisvl's ``SearchIndex``/``AsyncSearchIndex`` create and check the index; the lookup itself
sends one prebuilt FT.SEARCH on the redis tier's own connections (``redis_direct``, as its
GETs) and reads the reply directly: the same query through redisvl's ``VectorQuery`` and
``SearchIndex.query`` took about 1.5x the client CPU per lookup here (its query building,
filter objects and result processing), and through redis-py's ``execute_command`` about 40
µs more.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from llmcache._optional import require
from llmcache.clock import Clock, wall_clock
from llmcache.errors import ConfigError, TierError
from llmcache.fork_safety import renew_after_fork
from llmcache.keys import CacheKey
from llmcache.redact import redact_url
from llmcache.semantic.index import Candidate, IndexedEntry, Vector, wrong_embedder
from llmcache.tiers.loop_timeout import again_if_late
from llmcache.tiers.redis import RedisTier
from llmcache.tiers.redis_url import DEFAULT_PREFIX, check_prefix, parse_redis_url

DEFAULT_INDEX = "semantic"
ALGORITHMS = ("hnsw", "flat")
#: Options of the semantic tier, parsed from the same URL by llmcache.semantic.url.
TIER_OPTIONS = frozenset({"threshold", "k", "embedder", "verify"})
INDEX_OPTIONS = frozenset({"prefix", "index", "algorithm"})
REDIS_OPTIONS = frozenset({"socket_timeout", "socket_connect_timeout"})
#: A partition up to this size is searched by brute force over its own vectors; above it,
#: HNSW in batches. Brute force costs about 0.35 us per vector here; HNSW about 0.4 ms at 10k.
ADHOC_MAX = 1024
BATCH_SHARE = 10
#: How long a partition's counted size is trusted (seconds, monotonic).
SIZE_REFRESH = 30.0
#: Seconds between two checks of a bound index's embedder stamp (see the module docstring).
STAMP_RECHECK = 30.0
MAX_SIZES = 4096
CLEAR_BATCH = 500
#: Keys per UNLINK: removing a vector repairs the HNSW graph (about a millisecond each), so
#: a batch must finish well inside the client's socket timeout.
UNLINK_BATCH = 50
HNSW = {"m": 16, "ef_construction": 200, "ef_runtime": 32}
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
#: A lookup returns two fields per candidate: every field more is about ten more RESP
#: elements to parse per reply, which is most of the client-side cost of a lookup.
_RETURN = ("dist", "ref")
_REF_HEX = 96  # scope, model, namespace: 16 bytes each, as hex


class RedisVLIndex:
    """A partitioned vector index in Redis (search module), for fleets sharing one Redis.

    Build it with ``RedisVLIndex.from_url('redisvl://host:port', dim=384)`` or pass a redis-py
    client: ``RedisVLIndex(dim=384, client=redis.Redis(...))`` (and ``async_client=`` for a
    redis.asyncio one, else one is derived). Only clients this index created or derived are
    closed by ``close``/``aclose``. ``clock`` (the cache's) turns an entry's ``expires_at`` into
    a native TTL; without one, the offset of the ``now`` passed to the last search from the wall
    clock is used (the cache looks up before it stores), so a fake clock still works.
    """

    name = "redisvl"

    def __init__(
        self,
        *,
        dim: int,
        url: str | None = None,
        client: Any = None,
        async_client: Any = None,
        prefix: str = DEFAULT_PREFIX,
        index: str = DEFAULT_INDEX,
        algorithm: str = "hnsw",
        clock: Clock | None = None,
    ) -> None:
        require("redisvl", extra="redisvl", feature="the redisvl index")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ConfigError(f"redisvl index: dim must be a positive integer, got {dim!r}")
        if algorithm not in ALGORITHMS:
            raise ConfigError(
                f"redisvl index: algorithm must be one of {list(ALGORITHMS)}, got {algorithm!r}"
            )
        if (url is None) == (client is None):
            raise ConfigError(
                "redisvl index needs a URL or a client (not both): "
                "RedisVLIndex.from_url('redisvl://127.0.0.1:6380', dim=384) or "
                "RedisVLIndex(dim=384, client=redis.Redis(...))"
            )
        self.dim = dim
        self.prefix = check_prefix(prefix)
        if not isinstance(index, str) or not _NAME_RE.fullmatch(index):
            raise ConfigError(
                f"redisvl index: index name {index!r} is not allowed; use 1 to 32 letters, "
                "digits, '_' or '-'"
            )
        self.index_name = f"{self.prefix}:vec:{index}"
        self.key_prefix = f"{self.index_name}:"
        # Outside key_prefix: not a document, and clear() leaves it (an empty index takes
        # any embedder anyway).
        self.stamp_key = f"{self.prefix}:vecstamp:{index}"
        self._embedder: str | None = None  # bind_embedder's; checked with the index
        self._mismatch: ConfigError | None = None  # found once, raised without a round trip
        self._recheck_at = 0.0  # monotonic time after which a bound index is checked again
        self.algorithm = algorithm
        self.clock: Clock | None = clock
        # Without a clock, the caller's clock is learned from the ``now`` of its lookups (the
        # cache always looks up before it stores): caller's now - wall time, seconds.
        self._offset = 0.0
        if client is not None:
            _reject_cluster(client)
            # The Redis tier's connection handling: ownership, per-event-loop async clients
            # (derived from a borrowed sync client when none is given), closing, error text.
            self._conn = RedisTier(client=client, async_client=async_client, prefix=self.prefix)
        else:
            assert url is not None
            self._conn = RedisTier(parse_redis_url(url))
        self.where = self._conn.target.where
        self._ready = False
        self._ready_lock = threading.Lock()
        self._sizes: OrderedDict[bytes, tuple[int, float]] = OrderedDict()
        self._total: tuple[int, float] | None = None  # (documents in the index, counted at)
        self._sizes_lock = threading.Lock()
        renew_after_fork(self, "_ready_lock", "_sizes_lock")
        self._watch = _IndexWatch(self)

    @classmethod
    def from_url(cls, url: str, *, dim: int, clock: Clock | None = None) -> RedisVLIndex:
        redis_url, options = parse_redisvl_url(url)
        return cls(
            dim=dim,
            url=redis_url,
            prefix=options.get("prefix", DEFAULT_PREFIX),
            index=options.get("index", DEFAULT_INDEX),
            algorithm=options.get("algorithm", "hnsw").lower(),
            clock=clock,
        )

    def __repr__(self) -> str:
        return f"RedisVLIndex({self.where}, index={self.index_name!r}, dim={self.dim})"

    # ------------------------------------------------------------------ schema (redisvl)
    def schema(self) -> Any:
        """The redisvl ``IndexSchema`` of this index."""
        from redisvl.schema import IndexSchema  # type: ignore[import-untyped]

        attrs: dict[str, Any] = {
            "dims": self.dim,
            "algorithm": self.algorithm,
            "distance_metric": "cosine",
            "datatype": "float32",
        }
        if self.algorithm == "hnsw":
            attrs.update(HNSW)
        tags = [{"name": n, "type": "tag"} for n in ("partition", "scope", "model", "namespace")]
        return IndexSchema.from_dict(
            {
                "index": {
                    "name": self.index_name,
                    "prefix": self.key_prefix,
                    "storage_type": "hash",
                },
                "fields": [
                    *tags,
                    {"name": "expires_at", "type": "numeric"},
                    {"name": "vector", "type": "vector", "attrs": attrs},
                ],
            }
        )

    def _ensure(self) -> None:
        """Create the index on first use, or check that the existing one fits (its dim and
        its embedder)."""
        if self._checked():
            return
        from redisvl.index import SearchIndex  # type: ignore[import-untyped]

        with self._ready_lock:
            if self._checked():
                return
            client = self._conn._sync()
            index = SearchIndex(self.schema(), redis_client=client)
            with self._module_errors():
                if not index.exists():
                    try:
                        index.create(overwrite=False)
                    except Exception:
                        if not index.exists():  # not another process creating it first
                            raise
                info = index.info()
                self._check_existing(info)
                if self._embedder is not None and self._stamp_needed(
                    client.get(self.stamp_key), info
                ):
                    client.set(self.stamp_key, self._embedder)
            self._checked_now()

    async def _aensure(self) -> None:
        if self._checked():
            return
        from redisvl.index import AsyncSearchIndex

        client = self._conn._async()
        index = AsyncSearchIndex(self.schema(), redis_client=client)
        with self._module_errors():
            if not await index.exists():
                try:
                    await index.create(overwrite=False)
                except Exception:
                    if not await index.exists():
                        raise
            info = await index.info()
            self._check_existing(info)
            if self._embedder is not None and self._stamp_needed(
                await client.get(self.stamp_key), info
            ):
                await client.set(self.stamp_key, self._embedder)
        self._checked_now()

    def _checked(self) -> bool:
        """Whether the last check of the index still stands (True: use it; raises the
        embedder mismatch it found). False: check the index (first use, a dropped index, or a
        bound index's ``STAMP_RECHECK`` seconds are up)."""
        if not self._ready and self._mismatch is None:
            return False
        if self._embedder is not None and time.monotonic() >= self._recheck_at:
            self._ready, self._mismatch = False, None
            return False
        if self._mismatch is not None:
            raise self._mismatch
        return True

    def _checked_now(self) -> None:
        self._recheck_at = time.monotonic() + STAMP_RECHECK
        self._ready = True

    def _stamp_needed(self, stored: Any, info: dict[str, Any]) -> bool:
        """Whether to write our embedder's name: the index holds none yet and no vectors.
        Raises (and remembers) ``wrong_embedder`` when it holds another embedder's."""
        assert self._embedder is not None
        named = None if stored is None else _text(stored)
        if named == self._embedder:
            return False
        if int(info.get("num_docs", 0) or 0) > 0:
            self._mismatch = wrong_embedder(
                f"redisvl index {self.index_name!r} on {self.where}", named, self._embedder
            )
            self._recheck_at = time.monotonic() + STAMP_RECHECK
            raise self._mismatch
        return True

    def bind_embedder(self, identity: str) -> None:
        """Checked with the index, on first use (no round trip while the app starts)."""
        self._embedder, self._mismatch, self._ready = identity, None, False

    def reembed(
        self,
        embed: Callable[[list[str]], Vector],
        identity: str,
        *,
        batch: int = 256,
        progress: Callable[[int], None] | None = None,
        read: Callable[[bytes, str], str | None] | None = None,
    ) -> int:
        done = 0
        with self._conn._errors():
            client = self._conn._sync()
            replace = client.register_script(_REPLACE_VECTOR)
            names: list[bytes] = []
            for name in client.scan_iter(match=f"{self.key_prefix}*", count=CLEAR_BATCH):
                names.append(name)
                if len(names) >= batch:
                    done += self._reembed_batch(client, replace, names, embed, progress, read)
                    names = []
            if names:
                done += self._reembed_batch(client, replace, names, embed, progress, read)
            client.set(self.stamp_key, identity)
        self._embedder, self._mismatch, self._ready = identity, None, False
        return done

    def _check_existing(self, info: dict[str, Any]) -> None:
        for attribute in info.get("attributes", ()):
            fields = _pairs(attribute)
            if _text(fields.get("identifier")) != "vector":
                continue
            dim = fields.get("dim")
            if dim is not None and int(dim) != self.dim:
                raise ConfigError(
                    f"redisvl index {self.index_name!r} on {self.where} holds {int(dim)}-d "
                    f"vectors, but this embedder makes {self.dim}-d ones; use another "
                    "index=... in the URL (or drop that index)"
                )
            return
        raise ConfigError(
            f"redisvl index: {self.index_name!r} on {self.where} exists but has no 'vector' "
            "field: it is not an llmcache index; use another index=... in the URL"
        )

    def _module_errors(self) -> _ModuleErrors:
        return _ModuleErrors(self.where)

    def _reembed_batch(
        self,
        client: Any,
        replace: Any,
        names: list[bytes],
        embed: Callable[[list[str]], Vector],
        progress: Callable[[int], None] | None,
        read: Callable[[bytes, str], str | None] | None = None,
    ) -> int:
        np = require("numpy", extra="redisvl", feature="the redisvl index")
        pipe = client.pipeline(transaction=False)
        for key in names:
            pipe.hget(key, "text")
        texts = pipe.execute(raise_on_error=False)  # a key of another type: not a vector
        found = [
            (k, _text(t))
            for k, t in zip(names, texts, strict=True)
            if t is not None and not isinstance(t, Exception)
        ]
        if read is not None:  # the text each vector stands for (a sealed one opened)
            digests = [self._digest_of(k) for k, _ in found]
            opened = [
                (k, read(d, t)) for (k, t), d in zip(found, digests, strict=True) if d is not None
            ]
            dropped = [k for k, t in opened if t is None]
            if dropped:  # cannot be opened: no cache would serve it
                _unlink(client, dropped)
            found = [(k, t) for k, t in opened if t is not None]
        if not found:  # expired or deleted since the scan, or not ours
            return 0
        vectors = np.ascontiguousarray(embed([t for _, t in found]), np.float32)
        if vectors.shape != (len(found), self.dim):
            raise ConfigError(
                f"redisvl index {self.index_name!r} holds {self.dim}-d vectors, the embedder "
                f"made shape {vectors.shape}: use another index=..."
            )
        pipe = client.pipeline(transaction=False)
        for (key, _), vector in zip(found, vectors, strict=True):
            replace(keys=[key], args=[vector.tobytes()], client=pipe)
        pipe.execute()
        if progress is not None:
            progress(len(found))
        return len(found)

    # ------------------------------------------------------------------ keys and commands
    def key_of(self, digest: bytes) -> str:
        return f"{self.key_prefix}{digest.hex()}"

    def _digest_of(self, name: Any) -> bytes | None:
        """The digest a document's key names; None for a key that is not one of ours."""
        try:
            return bytes.fromhex(_text(name)[len(self.key_prefix) :])
        except ValueError:
            return None

    def _document(self, entry: IndexedEntry) -> tuple[str, dict[str, Any], int | None]:
        """(key, fields, PEXPIRE ms or None for no expiry; ms <= 0: already expired)."""
        np = require("numpy", extra="redisvl", feature="the redisvl index")
        vector = np.ascontiguousarray(entry.vector, dtype=np.float32)
        if vector.shape != (self.dim,):
            raise ConfigError(
                f"redisvl index: vector of shape {vector.shape}, expected ({self.dim},)"
            )
        if not np.isfinite(vector).all():
            raise ConfigError("redisvl index: vector holds NaN or infinity")
        if len(entry.partition) != 16:
            raise ConfigError(
                f"redisvl index: partition must be 16 bytes, got {len(entry.partition)}"
            )
        key = entry.key
        fields = {
            "partition": entry.partition.hex(),
            "scope": key.scope.hex(),
            "model": key.model.hex(),
            "namespace": key.namespace.hex(),
            "digest": key.digest.hex(),
            "text": entry.text,
            # What a lookup needs back, in one field: the key's other digests, then the text.
            "ref": key.scope.hex() + key.model.hex() + key.namespace.hex() + entry.text,
            "vector": vector.tobytes(),
            "expires_at": "inf" if entry.expires_at is None else repr(float(entry.expires_at)),
        }
        ms = None
        if entry.expires_at is not None:
            now = self.clock() if self.clock is not None else wall_clock() + self._offset
            ms = math.ceil((entry.expires_at - now) * 1000)
        return self.key_of(key.digest), fields, ms

    def _search_command(
        self, partition: bytes, vector: Vector, k: int, now: float, batches: bool
    ) -> tuple[Any, ...]:
        np = require("numpy", extra="redisvl", feature="the redisvl index")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"redisvl index: k must be a positive integer, got {k!r}")
        blob = np.ascontiguousarray(vector, dtype=np.float32)
        if blob.shape != (self.dim,):
            raise ConfigError(f"redisvl index: query of shape {blob.shape}, expected ({self.dim},)")
        policy = ""
        if batches and self.algorithm == "hnsw":
            policy = " HYBRID_POLICY BATCHES"
        query = (
            f"(@partition:{{{partition.hex()}}} @expires_at:[({float(now)!r} +inf])"
            f"=>[KNN {k} @vector $vec{policy} AS dist]"
        )
        return ("FT.SEARCH", self.index_name, query, "PARAMS", 2, "vec", blob.tobytes(),
                "SORTBY", "dist", "RETURN", len(_RETURN), *_RETURN,
                "LIMIT", 0, k, "DIALECT", 2)  # fmt: skip

    def _count_command(self, partition: bytes | None) -> tuple[Any, ...]:
        query = "*" if partition is None else f"@partition:{{{partition.hex()}}}"
        return ("FT.SEARCH", self.index_name, query, "LIMIT", 0, 0, "DIALECT", 2)

    def _scope_command(self, scope: bytes) -> tuple[Any, ...]:
        query = f"@scope:{{{scope.hex()}}}"
        return ("FT.SEARCH", self.index_name, query, "NOCONTENT",
                "LIMIT", 0, CLEAR_BATCH, "DIALECT", 2)  # fmt: skip

    def _candidates(self, reply: Any) -> list[Candidate]:
        out: list[Candidate] = []
        for key, fields in _documents(reply):
            ref = _text(fields.get(b"ref", b""))
            if len(ref) < _REF_HEX:  # not written by this version: not a candidate
                continue
            cache_key = CacheKey(
                bytes.fromhex(key[len(self.key_prefix) :]),
                bytes.fromhex(ref[:32]),
                bytes.fromhex(ref[32:64]),
                bytes.fromhex(ref[64:_REF_HEX]),
            )
            similarity = 1.0 - float(fields[b"dist"])  # COSINE distance = 1 - cosine
            out.append(Candidate(cache_key, similarity, ref[_REF_HEX:]))
        return out

    # ------------------------------------------------------------------ partition sizes
    def _batches(self, partition: bytes) -> tuple[bool, list[tuple[Any, ...]]]:
        """(ask for HNSW batches?, the counts to send first when a size is unknown or old)."""
        now = time.monotonic()
        with self._sizes_lock:
            known = self._sizes.get(partition)
            total = self._total
        counts: list[tuple[Any, ...]] = []
        if known is None or now - known[1] > SIZE_REFRESH:
            counts.append(self._count_command(partition))
        if total is None or now - total[1] > SIZE_REFRESH:
            counts.append(self._count_command(None))
        if counts or known is None or total is None:
            return False, counts
        return known[0] > ADHOC_MAX and known[0] * BATCH_SHARE >= total[0], counts

    def _remember(self, partition: bytes, counts: list[tuple[Any, ...]], replies: Any) -> None:
        now = time.monotonic()
        with self._sizes_lock:
            for command, reply in zip(counts, replies, strict=True):
                if command[2] == "*":
                    self._total = (_total(reply), now)
                    continue
                self._sizes[partition] = (_total(reply), now)
                self._sizes.move_to_end(partition)
                while len(self._sizes) > MAX_SIZES:
                    self._sizes.popitem(last=False)

    def _forget_sizes(self) -> None:
        with self._sizes_lock:
            self._sizes.clear()
            self._total = None

    # ------------------------------------------------------------------ sync
    def add(self, entry: IndexedEntry) -> None:
        key, fields, ms = self._document(entry)
        self._ensure()
        with self._conn._errors():
            client = self._conn._sync()
            if ms is not None and ms <= 0:  # expired already: an older version must go too
                client.unlink(key)
                return
            pipe = client.pipeline(transaction=True)  # the TTL lands with the fields
            pipe.hset(key, mapping=fields)
            if ms is None:  # a re-add without expiry drops an older TTL
                pipe.persist(key)
            else:
                pipe.pexpire(key, ms)
            pipe.execute()

    def search(self, partition: bytes, vector: Vector, k: int, now: float) -> list[Candidate]:
        self._ensure()
        if self.clock is None:
            self._offset = now - wall_clock()
        batches, counts = self._batches(partition)
        command = self._search_command(partition, vector, k, now, batches)
        with self._conn._errors(), self._watch:
            # On the redis tier's own connections (redis_direct), not execute_command: about
            # 40 µs less client CPU per lookup here. The counts ride along in the same write.
            *counted, reply = self._conn._cmd().run((*counts, command))
        if counts:
            self._remember(partition, counts, counted)
        return self._candidates(reply)

    def delete(self, digests: Sequence[bytes]) -> int:
        keys = [self.key_of(d) for d in digests]
        with self._conn._errors():
            return _unlink(self._conn._sync(), keys)

    def sample_keys(self, limit: int) -> list[CacheKey]:
        with self._conn._errors():
            client = self._conn._sync()
            names: list[bytes] = []
            for name in client.scan_iter(match=f"{self.key_prefix}*", count=CLEAR_BATCH):
                names.append(name)
                if len(names) >= limit:
                    break
            pipe = client.pipeline(transaction=False)
            for name in names:
                pipe.hmget(name, "digest", "scope", "model", "namespace")
            replies = pipe.execute()
        return [
            CacheKey(*(bytes.fromhex(part.decode()) for part in reply))
            for reply in replies
            if all(part is not None for part in reply)  # gone since the scan
        ]

    def texts(self, digests: Sequence[bytes]) -> dict[bytes, tuple[bytes, str]]:
        with self._conn._errors():
            pipe = self._conn._sync().pipeline(transaction=False)
            for digest in digests:
                pipe.hmget(self.key_of(digest), "partition", "text")
            return _texts(digests, pipe.execute())

    def clear(self, scope: bytes | None) -> int:
        removed = 0
        with self._conn._errors(), self._watch:
            client = self._conn._sync()
            if scope is None:  # SCAN our key prefix: works even where the index is gone
                batch: list[bytes] = []
                for name in client.scan_iter(match=f"{self.key_prefix}*", count=CLEAR_BATCH):
                    batch.append(name)
                    if len(batch) >= CLEAR_BATCH:
                        removed += _unlink(client, batch)
                        batch = []
                if batch:
                    removed += _unlink(client, batch)
            else:
                self._ensure()
                while True:  # the index drops a document as its key goes: query again
                    keys = self._own_keys(client.execute_command(*self._scope_command(scope)))
                    gone = _unlink(client, keys)
                    removed += gone
                    if gone == 0:
                        break
        self._forget_sizes()
        return removed

    def close(self) -> None:
        self._conn.close()

    # ------------------------------------------------------------------ async
    async def aadd(self, entry: IndexedEntry) -> None:
        key, fields, ms = self._document(entry)
        await self._aensure()
        with self._conn._errors():
            client = self._conn._async()
            if ms is not None and ms <= 0:
                await _on_server(client, lambda: client.unlink(key))
                return

            def add() -> Any:  # the pipeline's execute(), awaited by _on_server
                pipe = client.pipeline(transaction=True)
                pipe.hset(key, mapping=fields)
                if ms is None:  # a re-add without expiry drops an older TTL
                    pipe.persist(key)
                else:
                    pipe.pexpire(key, ms)
                return pipe.execute()

            await _on_server(client, add)

    async def atexts(self, digests: Sequence[bytes]) -> dict[bytes, tuple[bytes, str]]:
        with self._conn._errors():
            client = self._conn._async()

            def read() -> Any:
                pipe = client.pipeline(transaction=False)
                for digest in digests:
                    pipe.hmget(self.key_of(digest), "partition", "text")
                return pipe.execute()

            return _texts(digests, await _on_server(client, read))

    async def asearch(
        self, partition: bytes, vector: Vector, k: int, now: float
    ) -> list[Candidate]:
        await self._aensure()
        if self.clock is None:
            self._offset = now - wall_clock()
        batches, counts = self._batches(partition)
        command = self._search_command(partition, vector, k, now, batches)
        with self._conn._errors(), self._watch:
            client, commands = self._conn._async(), self._conn._acmd()
            *counted, reply = await _on_server(client, lambda: commands.run((*counts, command)))
        if counts:
            self._remember(partition, counts, counted)
        return self._candidates(reply)

    async def adelete(self, digests: Sequence[bytes]) -> int:
        keys = [self.key_of(d) for d in digests]
        with self._conn._errors():
            return await _aunlink(self._conn._async(), keys)

    async def aclear(self, scope: bytes | None) -> int:
        removed = 0
        with self._conn._errors(), self._watch:
            client = self._conn._async()
            if scope is None:
                batch: list[bytes] = []
                async for name in client.scan_iter(match=f"{self.key_prefix}*", count=CLEAR_BATCH):
                    batch.append(name)
                    if len(batch) >= CLEAR_BATCH:
                        removed += await _aunlink(client, batch)
                        batch = []
                if batch:
                    removed += await _aunlink(client, batch)
            else:
                await self._aensure()
                while True:
                    reply = await client.execute_command(*self._scope_command(scope))
                    keys = self._own_keys(reply)
                    gone = await _aunlink(client, keys)
                    removed += gone
                    if gone == 0:
                        break
        self._forget_sizes()
        return removed

    async def aclose(self) -> None:
        await self._conn.aclose()

    # ------------------------------------------------------------------ helpers
    def _own_keys(self, reply: Any) -> list[str]:
        # The index only covers our key prefix; checked anyway, since we are about to UNLINK.
        return [key for key, _ in _documents(reply) if key.startswith(self.key_prefix)]


def parse_redisvl_url(url: str) -> tuple[str, dict[str, str]]:
    """(the redis:// URL for redis-py, this index's options) from a ``redisvl://`` URL."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (urllib checks the port when it is read)
    except ValueError as exc:  # "Port out of range 0-65535", "Invalid IPv6 URL"
        raise ConfigError(f"redisvl index: cannot parse {shown!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("redisvl", "redisvls"):
        raise ConfigError(
            f"redisvl index: unsupported scheme {scheme!r} in {shown!r}; use redisvl:// "
            "(or redisvls:// for TLS)"
        )
    if not parts.hostname:
        raise ConfigError(f"redisvl index: {shown!r} names no host; e.g. redisvl://127.0.0.1:6380")
    options: dict[str, str] = {}
    passed: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in TIER_OPTIONS:
            continue
        if name not in INDEX_OPTIONS | REDIS_OPTIONS:
            raise ConfigError(
                f"redisvl index: unknown option {name!r} in {shown!r}; it takes "
                f"{sorted(INDEX_OPTIONS | REDIS_OPTIONS)} (and the semantic tier's "
                f"{sorted(TIER_OPTIONS)})"
            )
        if name in options or any(name == n for n, _ in passed):
            raise ConfigError(f"redisvl index: option {name!r} is given twice in {shown!r}")
        if name in INDEX_OPTIONS:
            options[name] = value
        else:
            passed.append((name, value))
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ConfigError(f"redisvl index: {shown!r}: the path must be a database number, e.g. /0")
    query = "&".join(f"{n}={v}" for n, v in passed)
    redis_scheme = "rediss" if scheme == "redisvls" else "redis"
    redis_url = f"{redis_scheme}://{parts.netloc}/{path or 0}" + (f"?{query}" if query else "")
    return redis_url, options


class _IndexWatch:
    """An index dropped under us (FT.DROPINDEX, a restarted server without persistence):
    the failing call is a TierError as usual, and the next call creates the index again."""

    __slots__ = ("owner",)

    def __init__(self, owner: RedisVLIndex) -> None:
        self.owner = owner

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None and any(t in str(exc).lower() for t in _NO_INDEX):
            self.owner._ready = False


_NO_INDEX = ("no such index", "unknown index name")
#: Replace a document's vector only while it exists: an HSET on a key deleted meanwhile
#: would leave a document with a vector and nothing else (no partition, no expiry).
_REPLACE_VECTOR = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('HSET', KEYS[1], 'vector', ARGV[1])
end
return 0
"""


class _ModuleErrors:
    """A server without the search module is a configuration error (it will never work),
    named with the fix; other failures stay TierErrors (the cache skips the tier)."""

    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or isinstance(exc, ConfigError) or not isinstance(exc, Exception):
            return
        text = str(exc)
        if "unknown command" in text.lower() and "FT." in text.upper():
            raise ConfigError(
                f"redisvl index: {self.where} has no search module ({text.strip()}); use "
                "Redis Stack or Redis 8 with the Query Engine (scripts/services.sh starts "
                "Redis Stack on 127.0.0.1:6380)"
            ) from exc
        if isinstance(exc, TierError):
            return
        raise TierError(f"redisvl index on {self.where}: {type(exc).__name__}: {text}") from exc


def _texts(digests: Sequence[bytes], replies: list[Any]) -> dict[bytes, tuple[bytes, str]]:
    """HMGET partition/text replies: the documents that exist and read back whole."""
    found: dict[bytes, tuple[bytes, str]] = {}
    for digest, (partition, text) in zip(digests, replies, strict=True):
        if partition is None or text is None:
            continue
        try:
            found[bytes(digest)] = (bytes.fromhex(_text(partition)), _text(text))
        except (ValueError, UnicodeDecodeError):  # not a document of ours: not exported
            continue
    return found


def _unlink(client: Any, keys: Sequence[Any]) -> int:
    removed = 0
    for start in range(0, len(keys), UNLINK_BATCH):
        removed += int(client.unlink(*keys[start : start + UNLINK_BATCH]))
    return removed


T = TypeVar("T")


async def _on_server(client: Any, attempt: Callable[[], Awaitable[T]]) -> T:
    """``attempt()`` on the async ``client``, once more if redis-py's read timed out while the
    event loop was busy at its deadline (``loop_timeout.again_if_late``): redisvl's queries go
    through redis-py, whose timeout also counts the time the loop spent on other work, so a
    busy app would read a slow turn of its own loop as Redis failing. Every attempt here is
    safe to repeat (a search, a read, an upsert of the same document)."""
    from redis.exceptions import TimeoutError as RedisTimeoutError

    pool = getattr(client, "connection_pool", None)
    timeout = getattr(pool, "connection_kwargs", {}).get("socket_timeout")
    return await again_if_late(attempt, timeout, RedisTimeoutError)


async def _aunlink(client: Any, keys: Sequence[Any]) -> int:
    removed = 0
    for start in range(0, len(keys), UNLINK_BATCH):
        removed += int(await client.unlink(*keys[start : start + UNLINK_BATCH]))
    return removed


def _reject_cluster(client: Any) -> None:
    from redis.asyncio import Redis as AsyncRedis
    from redis.cluster import RedisCluster

    if isinstance(client, RedisCluster):
        raise ConfigError(
            "redisvl index: a Redis Cluster client is not supported (the search module's "
            "queries run on one node); pass a standalone or Sentinel client"
        )
    if isinstance(client, AsyncRedis):
        raise ConfigError(
            "redisvl index: client= takes a sync redis-py client; pass a redis.asyncio "
            "client as async_client= next to it"
        )


# ---------------------------------------------------------------------- FT.SEARCH replies
# redis-py 8 speaks RESP3 by default (a map per reply); a client built with protocol=2 gets
# the flat RESP2 list. Both shapes are read here, without redis-py's Result objects.
def _documents(reply: Any) -> list[tuple[str, dict[bytes, Any]]]:
    if isinstance(reply, dict):
        docs = []
        for row in _get(reply, "results") or ():
            key = _text(_get(row, "id"))
            extra = _get(row, "extra_attributes") or {}
            docs.append((key, {_bytes(k): v for k, v in extra.items()}))
        return docs
    rows = list(reply[1:])
    docs = []
    step = 2 if len(rows) > 1 and isinstance(rows[1], list) else 1
    for i in range(0, len(rows), step):
        fields = _pairs(rows[i + 1]) if step == 2 else {}
        docs.append((_text(rows[i]), {_bytes(k): v for k, v in fields.items()}))
    return docs


def _total(reply: Any) -> int:
    if isinstance(reply, dict):
        return int(_get(reply, "total_results") or 0)
    return int(reply[0])


def _get(mapping: dict[Any, Any], name: str) -> Any:
    """A RESP3 map's field (bytes keys; str keys when the client decodes responses)."""
    value = mapping.get(name.encode())
    return mapping.get(name) if value is None else value


def _pairs(flat: Any) -> dict[Any, Any]:
    if isinstance(flat, dict):
        return {_text(k): v for k, v in flat.items()}
    items = list(flat)
    return {_text(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


__all__ = ["RedisVLIndex", "parse_redisvl_url"]
