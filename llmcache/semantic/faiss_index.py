"""FaissIndex: per-partition FAISS search over vectors kept durable in an SQLite file.

The file (``faiss://path``) is the source of truth, shared by every process that opens it:
one row per entry (digest, scope, model, namespace, partition, float32 vector bytes, text,
expiry), written in WAL mode, and the name of the embedder that made the vectors (a tier
with another embedder refuses the file; ``reembed`` rewrites them; a process whose file is
re-embedded for another embedder while it runs stops adding to it at once and searching it
on its next refresh, and serves again once the file holds its embedder's vectors). Each
process keeps in memory, per partition it has searched, a FAISS index loaded from those
rows: inner product on unit vectors (= cosine), exact (``IndexFlatIP``) while the partition
is small and HNSW above ``hnsw_above`` entries (the size measured by
``benchmarks/bench_semantic_faiss.py`` where HNSW gets faster than exact).

Seeing other processes' writes: at most every ``refresh`` seconds (default 1 s) a search reads
the rows added since the last rowid it saw (a store elsewhere is seen at the latest ``refresh``
seconds later), and a generation counter that ``clear`` bumps: a changed generation drops the
loaded partitions, which reload on their next search. A single delete elsewhere is not
broadcast (it would force reloads, and an HNSW build of a large partition takes seconds): a
vector another process deleted may still come back as a candidate here, and the cache then
finds its entry gone from the exact tiers, skips it and deletes it ("dangling").

Removals are tombstones in memory (FAISS HNSW cannot remove); a partition is rebuilt when a
quarter of it is dead. Expired vectors are skipped on load and removed when a search meets
them. The first search of a partition in a process loads it from the file; a large one is
searched exactly at first while its HNSW index is built in a background thread (seconds to
minutes at 10k+ vectors, see the benchmark), then swapped in. Thread-safe (one lock); the
async methods run the same code in a thread (``asyncio.to_thread``: the event loop never
waits on SQLite or FAISS).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from llmcache._optional import require
from llmcache.errors import ConfigError
from llmcache.fork_safety import call_after_fork, renew_after_fork
from llmcache.keys import CacheKey
from llmcache.semantic.index import Candidate, IndexedEntry, Vector, wrong_embedder

#: Above this many live vectors a partition switches from exact search to HNSW. Measured by
#: benchmarks/bench_semantic_faiss.py (384-d vectors, one FAISS thread, a shared 2-core
#: machine): at 5k both take about 0.35 ms a query; at 10k exact takes 0.9 ms, HNSW 0.4 ms.
DEFAULT_HNSW_ABOVE = 5_000
DEFAULT_REFRESH_SECONDS = 1.0
#: Partitions kept loaded in memory per process (least recently searched go first).
DEFAULT_MAX_PARTITIONS = 4096
HNSW_M = 32
#: FAISS's default. Measured at 20k: recall@1 1.0 as with 80, and a build (the first search
#: of a large partition in a process) a third faster.
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 64

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS llmcache_vectors (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        digest BLOB NOT NULL UNIQUE,
        scope BLOB NOT NULL,
        model BLOB NOT NULL,
        namespace BLOB NOT NULL,
        partition BLOB NOT NULL,
        vector BLOB NOT NULL,
        text TEXT NOT NULL,
        expires_at REAL
    )""",
    "CREATE INDEX IF NOT EXISTS llmcache_vectors_partition ON llmcache_vectors (partition)",
    "CREATE INDEX IF NOT EXISTS llmcache_vectors_scope ON llmcache_vectors (scope)",
    "CREATE TABLE IF NOT EXISTS llmcache_vector_meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO llmcache_vector_meta (k, v) VALUES ('generation', 0)",
    # Which embedder made the vectors (embedders.identity_of); no row: none stored yet, or
    # stored by a version before this table.
    "CREATE TABLE IF NOT EXISTS llmcache_vector_stamp (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
)
_STAMP = "SELECT v FROM llmcache_vector_stamp WHERE k = 'embedder'"
_RESTAMP = (
    "INSERT INTO llmcache_vector_stamp (k, v) VALUES ('embedder', ?)"
    " ON CONFLICT (k) DO UPDATE SET v = excluded.v"
)
logger = logging.getLogger("llmcache.semantic")

_COLUMNS = "id, digest, scope, model, namespace, partition, vector, text, expires_at"
_NEW_ROWS = f"SELECT {_COLUMNS} FROM llmcache_vectors WHERE id > ? AND id <= ? ORDER BY id"  # noqa: S608 (constant)
_PARTITION_ROWS = (
    f"SELECT {_COLUMNS} FROM llmcache_vectors WHERE partition = ?"  # noqa: S608 (constant)
    " AND (expires_at IS NULL OR expires_at > ?) ORDER BY id"
)


class _Row(NamedTuple):
    id: int
    key: CacheKey
    text: str
    expires_at: float | None


@dataclass(slots=True)
class _Partition:
    index: Any  # a faiss index over the rows' vectors, positions = list positions
    rows: list[_Row | None] = field(default_factory=list)  # None = removed (tombstone)
    where: dict[bytes, int] = field(default_factory=dict)  # digest -> position
    dead: int = 0
    version: int = 0  # bumped when positions change (compaction): a pending build is stale
    upgrading: bool = False  # an HNSW build of this partition is running in the background

    @property
    def alive(self) -> int:
        return len(self.rows) - self.dead


class FaissIndex:
    """A ``VectorIndex`` in process. ``path=':memory:'`` keeps nothing on disk."""

    name = "faiss"

    def __init__(
        self,
        path: str,
        *,
        dim: int,
        hnsw_above: int = DEFAULT_HNSW_ABOVE,
        refresh: float = DEFAULT_REFRESH_SECONDS,
        max_partitions: int = DEFAULT_MAX_PARTITIONS,
    ) -> None:
        if dim < 1 or hnsw_above < 1 or max_partitions < 1 or not refresh >= 0:
            raise ConfigError(
                f"faiss index: dim, hnsw_above and max_partitions must be >= 1 and refresh "
                f">= 0 seconds, got dim={dim}, hnsw_above={hnsw_above}, "
                f"max_partitions={max_partitions}, refresh={refresh}"
            )
        self._faiss = require("faiss", extra="semantic", feature="the FAISS semantic index")
        self._np = require("numpy", extra="semantic", feature="the FAISS semantic index")
        self.dim = dim
        self.path = path
        self._hnsw_above = hnsw_above
        self._refresh_every = refresh
        self._lock = threading.RLock()
        renew_after_fork(self, "_lock")
        if path != ":memory:":
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise ConfigError(f"faiss index: folder {folder!r} does not exist")
        self._closed = False
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:
            raise _not_ours(path, exc) from None
        try:
            self._setup()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            if "locked" in str(exc) or "busy" in str(exc):
                raise  # another process holds the file: not a wrong path
            raise _not_ours(path, exc) from None
        # Loaded partitions, least recently searched first; bounded: a chat app makes a new
        # partition per conversation turn (earlier turns are part of it).
        self._parts: OrderedDict[bytes, _Partition] = OrderedDict()
        self._max_partitions = max_partitions
        self._where: dict[bytes, bytes] = {}  # digest -> partition, for loaded partitions
        self._builds: list[threading.Thread] = []
        self.ef_search = HNSW_EF_SEARCH  # HNSW's breadth per query: recall against time
        self._generation, self._last_id = self._position()
        self._refreshed = time.monotonic()
        self._embedder: str | None = None  # bind_embedder's
        # Found when the file was re-embedded for another embedder under us (_refresh):
        # raised by every search until the file holds our embedder's vectors again.
        self._mismatch: ConfigError | None = None
        call_after_fork(self, "_after_fork_in_child")

    # ------------------------------------------------------------------ storage
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        # As the SQL tier's: a writer holding the file longer than this is a failure (the
        # cache fails open), not a reason to keep the user's call waiting.
        db.execute("PRAGMA busy_timeout = 5000")
        return db

    def _after_fork_in_child(self) -> None:
        """A forked child (a pre-forking server) opens the file anew: SQLite forbids using a
        connection across ``fork`` (its locks belong to the process that took them), and the
        parent's connection is neither used nor closed here (closing could release the
        parent's locks). The parent's background HNSW builds do not run here: a partition
        waiting for one stays exact until its next append tries again."""
        self._builds = []
        for part in self._parts.values():
            part.upgrading = False
        if self.path != ":memory:" and not self._closed:  # :memory: is the child's own copy
            _INHERITED.append(self._db)
            self._db = self._connect()

    def _setup(self) -> None:
        for attempt in range(50):  # another opener of a fresh file may hold its lock
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError:
                if attempt == 49:
                    raise
                time.sleep(0.05)
        with self._write():
            for statement in _SCHEMA:
                self._db.execute(statement)
            self._db.execute(
                "INSERT OR IGNORE INTO llmcache_vector_meta (k, v) VALUES ('dim', ?)", (self.dim,)
            )
            (stored,) = self._db.execute(
                "SELECT v FROM llmcache_vector_meta WHERE k = 'dim'"
            ).fetchone()
        if stored != self.dim:
            raise ConfigError(
                f"faiss index {self.path!r} holds {stored}-d vectors but the embedder makes "
                f"{self.dim}-d ones; use another path (or the embedder it was built with)"
            )

    def _write(self) -> _Transaction:
        return _Transaction(self._db)

    def _position(self) -> tuple[int, int]:
        (generation,) = self._db.execute(
            "SELECT v FROM llmcache_vector_meta WHERE k = 'generation'"
        ).fetchone()
        (last,) = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM llmcache_vectors").fetchone()
        return int(generation), int(last)

    def _expire(self, digests: list[bytes], now: float) -> None:
        """Remove expired vectors; a row stored again since (by another process) stays."""
        with self._write():
            for digest in digests:
                self._db.execute(
                    "DELETE FROM llmcache_vectors WHERE digest = ? AND expires_at <= ?",
                    (digest, now),
                )
        for digest in digests:
            self._forget(digest)

    def _bump(self) -> None:
        """Tell other processes to reload (after a clear); keep our own view if it was
        current."""
        (new,) = self._db.execute(
            "UPDATE llmcache_vector_meta SET v = v + 1 WHERE k = 'generation' RETURNING v"
        ).fetchone()
        if new == self._generation + 1:
            self._generation = new

    def _row(self, r: tuple[Any, ...]) -> tuple[bytes, _Row, Vector]:
        key = CacheKey(bytes(r[1]), bytes(r[2]), bytes(r[3]), bytes(r[4]))
        vector = self._np.frombuffer(r[6], dtype=self._np.float32)
        return bytes(r[5]), _Row(int(r[0]), key, str(r[7]), r[8]), vector

    # ------------------------------------------------------------------ VectorIndex
    def bind_embedder(self, identity: str) -> None:
        with self._lock, self._write():
            stored = self._stamp()
            if stored != identity:
                if self._db.execute("SELECT 1 FROM llmcache_vectors LIMIT 1").fetchone():
                    raise wrong_embedder(f"faiss index {self.path!r}", stored, identity)
                self._db.execute(_RESTAMP, (identity,))
                if stored is not None:  # other processes bound to it check the stamp again
                    self._bump()
            self._embedder, self._mismatch = identity, None

    def _stamp(self) -> str | None:
        row = self._db.execute(_STAMP).fetchone()
        return None if row is None else str(row[0])

    def _check_stamp(self) -> None:
        """A bound index: raise ``wrong_embedder`` if the file now names another embedder
        (re-embedded under us). Checked in the transaction of every add, and by a search
        when the file's generation changed (``reembed`` bumps it)."""
        if self._embedder is None:
            return
        stored = self._stamp()
        if stored != self._embedder:
            raise wrong_embedder(f"faiss index {self.path!r}", stored, self._embedder)

    def reembed(
        self,
        embed: Callable[[list[str]], Vector],
        identity: str,
        *,
        batch: int = 256,
        progress: Callable[[int], None] | None = None,
        read: Callable[[bytes, str], str | None] | None = None,
    ) -> int:
        done, last = 0, 0
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT id, digest, text FROM llmcache_vectors WHERE id > ? ORDER BY id"
                    " LIMIT ?",
                    (last, batch),
                ).fetchall()
            if not rows:
                break
            last = int(rows[-1][0])
            # The text each vector stands for: a sealed one opened (None: drop the vector).
            texts = [
                (r[0], str(r[2]) if read is None else read(bytes(r[1]), str(r[2]))) for r in rows
            ]
            kept = [(row_id, text) for row_id, text in texts if text is not None]
            dropped = [(row_id,) for row_id, text in texts if text is None]
            # Embedding takes the time; the file is locked only to write each batch.
            vectors = self._np.ascontiguousarray(
                embed([text for _, text in kept]) if kept else self._np.zeros((0, self.dim)),
                self._np.float32,
            )
            if vectors.shape != (len(kept), self.dim):
                raise ConfigError(
                    f"faiss index {self.path!r} holds {self.dim}-d vectors, the embedder "
                    f"made shape {vectors.shape}: use another path for a wider embedder"
                )
            with self._lock, self._write():
                self._db.executemany(
                    "UPDATE llmcache_vectors SET vector = ? WHERE id = ?",
                    [(v.tobytes(), r[0]) for r, v in zip(kept, vectors, strict=True)],
                )
                self._db.executemany("DELETE FROM llmcache_vectors WHERE id = ?", dropped)
            done += len(kept)
            if progress is not None:
                progress(len(kept))
        with self._lock:
            with self._write():
                self._db.execute(_RESTAMP, (identity,))
                self._bump()  # other processes reload the new vectors
            self._parts.clear()
            self._where.clear()
            self._embedder, self._mismatch = identity, None
        return done

    def add(self, entry: IndexedEntry) -> None:
        vector = self._np.ascontiguousarray(entry.vector, dtype=self._np.float32).reshape(-1)
        if vector.shape != (self.dim,):
            raise ValueError(f"faiss index: vector has {vector.size} floats, expected {self.dim}")
        key = entry.key
        with self._lock:
            with self._write():
                self._check_stamp()
                # Stored again: the new row (new id) replaces the old one, also for others.
                self._db.execute("DELETE FROM llmcache_vectors WHERE digest = ?", (key.digest,))
                cursor = self._db.execute(
                    "INSERT INTO llmcache_vectors (digest, scope, model, namespace, partition,"
                    " vector, text, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        key.digest,
                        key.scope,
                        key.model,
                        key.namespace,
                        entry.partition,
                        vector.tobytes(),
                        entry.text,
                        entry.expires_at,
                    ),
                )
            self._forget(key.digest)
            part = self._parts.get(entry.partition)
            if part is not None:
                row = _Row(int(cursor.lastrowid or 0), key, entry.text, entry.expires_at)
                self._append(entry.partition, part, [row], vector.reshape(1, -1))

    def add_many(self, entries: Sequence[IndexedEntry]) -> None:
        """Bulk load (warm-up, rebuild from the exact tiers): one transaction; the loaded
        partitions are dropped and reload, in one batch, on their next search."""
        rows = []
        for entry in entries:
            vector = self._np.ascontiguousarray(entry.vector, dtype=self._np.float32).reshape(-1)
            if vector.shape != (self.dim,):
                raise ValueError(
                    f"faiss index: vector has {vector.size} floats, expected {self.dim}"
                )
            key = entry.key
            blob = vector.tobytes()
            row = (key.digest, key.scope, key.model, key.namespace, entry.partition, blob)
            rows.append((*row, entry.text, entry.expires_at))
        with self._lock:
            with self._write():
                self._check_stamp()
                self._db.executemany(
                    "DELETE FROM llmcache_vectors WHERE digest = ?", [(r[0],) for r in rows]
                )
                self._db.executemany(
                    "INSERT INTO llmcache_vectors (digest, scope, model, namespace, partition,"
                    " vector, text, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
            self._parts.clear()
            self._where.clear()

    def search(self, partition: bytes, vector: Vector, k: int, now: float) -> list[Candidate]:
        query = self._np.ascontiguousarray(vector, dtype=self._np.float32).reshape(1, -1)
        if query.shape[1] != self.dim:
            raise ValueError(f"faiss index: query has {query.shape[1]} floats, expected {self.dim}")
        with self._lock:
            self._refresh()
            if self._mismatch is not None:
                raise self._mismatch
            part = self._parts.get(partition)
            if part is None:
                part = self._load(partition, now)
                if not part.rows:
                    return []  # not kept: most partitions searched are new and stay empty
                self._parts[partition] = part
                self._evict()
            else:
                self._parts.move_to_end(partition)
            if not part.alive or k < 1:
                return []
            wanted = min(len(part.rows), 2 * k + part.dead)
            while True:
                found, expired = self._nearest(part, query, k, wanted, now)
                if not expired:
                    return found
                read_all = wanted >= len(part.rows)
                self._expire(expired, now)  # tombstones (or a compaction) from here on
                # Vectors that expired while loaded came first: they must not hide the live
                # ones behind them (a search returns the k best unexpired). Search again,
                # wider, until k are found or the whole partition was read.
                if len(found) == k or read_all or not part.alive:
                    return found
                wanted = min(len(part.rows), max(2 * wanted, 2 * k + part.dead))

    def _nearest(
        self, part: _Partition, query: Vector, k: int, wanted: int, now: float
    ) -> tuple[list[Candidate], list[bytes]]:
        """The ``k`` best unexpired rows among the ``wanted`` nearest positions, and the
        expired rows met before them."""
        if hasattr(part.index, "hnsw"):
            part.index.hnsw.efSearch = max(self.ef_search, wanted)
        scores, positions = part.index.search(query, wanted)
        found: list[Candidate] = []
        expired: list[bytes] = []
        for score, pos in zip(scores[0], positions[0], strict=True):
            row = part.rows[pos] if pos >= 0 else None
            if row is None:
                continue
            if row.expires_at is not None and row.expires_at <= now:
                expired.append(row.key.digest)
                continue
            found.append(Candidate(row.key, float(score), row.text))
            if len(found) == k:
                break
        return found, expired

    def delete(self, digests: Sequence[bytes]) -> int:
        if not digests:
            return 0
        with self._lock:
            with self._write():
                removed = sum(
                    self._db.execute(
                        "DELETE FROM llmcache_vectors WHERE digest = ?", (bytes(d),)
                    ).rowcount
                    for d in digests
                )
            for digest in digests:
                self._forget(bytes(digest))
            return removed

    def sample_keys(self, limit: int) -> list[CacheKey]:
        with self._lock:
            rows = self._db.execute(
                "SELECT digest, scope, model, namespace FROM llmcache_vectors LIMIT ?", (limit,)
            ).fetchall()
        return [CacheKey(*(bytes(part) for part in row)) for row in rows]

    def texts(self, digests: Sequence[bytes]) -> dict[bytes, tuple[bytes, str]]:
        found: dict[bytes, tuple[bytes, str]] = {}
        with self._lock:
            for digest in digests:
                row = self._db.execute(
                    "SELECT partition, text FROM llmcache_vectors WHERE digest = ?", (digest,)
                ).fetchone()
                if row is not None:
                    found[bytes(digest)] = (bytes(row[0]), str(row[1]))
        return found

    def clear(self, scope: bytes | None) -> int:
        with self._lock:
            with self._write():
                if scope is None:
                    removed = self._db.execute("DELETE FROM llmcache_vectors").rowcount
                else:
                    removed = self._db.execute(
                        "DELETE FROM llmcache_vectors WHERE scope = ?", (scope,)
                    ).rowcount
                self._bump()
            self._parts.clear()  # reload lazily: cheaper than finding the scope's partitions
            self._where.clear()
            return removed

    def close(self) -> None:
        with self._lock:
            self._parts.clear()
            self._where.clear()
            self._db.close()
            self._closed = True

    async def aadd(self, entry: IndexedEntry) -> None:
        await asyncio.to_thread(self.add, entry)

    async def asearch(
        self, partition: bytes, vector: Vector, k: int, now: float
    ) -> list[Candidate]:
        return await asyncio.to_thread(self.search, partition, vector, k, now)

    async def adelete(self, digests: Sequence[bytes]) -> int:
        return await asyncio.to_thread(self.delete, digests)

    async def atexts(self, digests: Sequence[bytes]) -> dict[bytes, tuple[bytes, str]]:
        return await asyncio.to_thread(self.texts, digests)

    async def aclear(self, scope: bytes | None) -> int:
        return await asyncio.to_thread(self.clear, scope)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM llmcache_vectors").fetchone()
            return int(count)

    # ------------------------------------------------------------------ memory
    def _refresh(self) -> None:
        """Pick up other processes' writes, at most every ``refresh`` seconds."""
        if time.monotonic() - self._refreshed < self._refresh_every:
            return
        self._refreshed = time.monotonic()
        generation, last = self._position()
        if generation != self._generation:  # something was removed elsewhere: reload
            self._parts.clear()
            self._where.clear()
            self._generation, self._last_id = generation, last
            try:  # or re-embedded (reembed bumps the generation too)
                self._check_stamp()
                self._mismatch = None
            except ConfigError as exc:
                self._mismatch = exc
            return
        if last <= self._last_id:
            return
        rows = self._db.execute(_NEW_ROWS, (self._last_id, last)).fetchall()
        self._last_id = last
        for raw in rows:
            partition, row, vector = self._row(raw)
            part = self._parts.get(partition)
            if part is None:
                continue  # loads with it when first searched
            pos = part.where.get(row.key.digest)
            known = part.rows[pos] if pos is not None else None
            if known is not None and known.id == row.id:
                continue  # loaded already (its own store, or a load after the last refresh)
            self._forget(row.key.digest)  # stored again elsewhere: the new row replaces it
            self._append(partition, part, [row], vector.reshape(1, -1))

    def _load(self, partition: bytes, now: float) -> _Partition:
        raw = self._db.execute(_PARTITION_ROWS, (partition, now)).fetchall()
        rows: list[_Row | None] = [
            _Row(
                int(r[0]), CacheKey(bytes(r[1]), bytes(r[2]), bytes(r[3]), bytes(r[4])), r[7], r[8]
            )
            for r in raw
        ]
        blob = b"".join(r[6] for r in raw)  # one copy into one matrix, not a row at a time
        vectors = self._np.frombuffer(blob, dtype=self._np.float32).reshape(len(raw), self.dim)
        part = _Partition(self._faiss.IndexFlatIP(self.dim))
        self._fill(partition, part, rows, vectors)
        self._upgrade_later(partition, part)
        return part

    def _evict(self) -> None:
        while len(self._parts) > self._max_partitions:
            _, part = self._parts.popitem(last=False)  # reloads from the file if searched
            for digest in part.where:
                self._where.pop(digest, None)

    def _upgrade_later(self, partition: bytes, part: _Partition) -> None:
        """Past ``hnsw_above`` live vectors, build HNSW in a background thread and swap it
        in when done. Searches meanwhile stay exact (correct, slower): an HNSW build of a
        large partition takes seconds to minutes, and must not hold every lookup."""
        if part.upgrading or part.alive <= self._hnsw_above or hasattr(part.index, "hnsw"):
            return
        part.upgrading = True
        size, version = len(part.rows), part.version
        vectors = part.index.reconstruct_n(0, size)  # a copy: the build runs off the lock

        def build() -> None:
            try:
                index = self._faiss.IndexHNSWFlat(
                    self.dim, HNSW_M, self._faiss.METRIC_INNER_PRODUCT
                )
                index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
                index.add(vectors)
            except Exception as exc:  # stay exact; a later append or load tries again
                logger.warning("llmcache: building an HNSW index failed: %r", exc)
                part.upgrading = False
                return
            with self._lock:
                part.upgrading = False
                if self._parts.get(partition) is not part:
                    return  # dropped meanwhile (clear, reload)
                if part.version != version:  # compacted meanwhile: positions differ
                    self._upgrade_later(partition, part)
                    return
                if len(part.rows) > size:  # vectors appended during the build
                    index.add(part.index.reconstruct_n(size, len(part.rows) - size))
                part.index = index

        thread = threading.Thread(target=build, name="llmcache-faiss-hnsw", daemon=True)
        self._builds.append(thread)
        thread.start()

    def wait_for_builds(self, timeout: float | None = None) -> None:
        """Wait for background HNSW builds (tests and benchmarks)."""
        while self._builds:
            self._builds.pop().join(timeout)

    def _fill(
        self, partition: bytes, part: _Partition, rows: list[_Row | None], vectors: Any
    ) -> None:
        start = len(part.rows)
        part.index.add(vectors)
        part.rows.extend(rows)
        for offset, row in enumerate(rows):
            if row is not None:
                part.where[row.key.digest] = start + offset
                self._where[row.key.digest] = partition

    def _append(self, partition: bytes, part: _Partition, rows: list[_Row], vectors: Any) -> None:
        self._fill(partition, part, list(rows), vectors)
        self._upgrade_later(partition, part)

    def _forget(self, digest: bytes) -> None:
        partition = self._where.pop(digest, None)
        part = None if partition is None else self._parts.get(partition)
        if part is None or partition is None:
            return
        pos = part.where.pop(digest, None)
        if pos is None:
            return
        part.rows[pos] = None
        part.dead += 1
        if part.dead > max(32, part.alive // 4):
            self._rebuild(partition, part)

    def _rebuild(self, partition: bytes, part: _Partition) -> None:
        """Compact a partition (drop tombstones): exact at once, HNSW later if large."""
        keep = [i for i, row in enumerate(part.rows) if row is not None]
        vectors = part.index.reconstruct_n(0, len(part.rows))[keep] if part.rows else None
        rows = [part.rows[i] for i in keep]
        part.index = self._faiss.IndexFlatIP(self.dim)
        part.rows, part.where, part.dead = [], {}, 0
        part.version += 1
        if rows:
            self._fill(partition, part, rows, vectors)
        self._upgrade_later(partition, part)


def _not_ours(path: str, exc: sqlite3.DatabaseError) -> ConfigError:
    return ConfigError(
        f"faiss index {path!r} cannot be used as llmcache's vector file ({exc}): faiss:// "
        "keeps its vectors in an SQLite file of its own (not a FAISS index file written by "
        "another tool, not a folder); give it a path of its own"
    )


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if kind is not None else "COMMIT")


#: Connections a forked child inherited: kept referenced, so that they are never closed there.
_INHERITED: list[sqlite3.Connection] = []
