"""SemanticTier: the embedder, the vector index and the verifier, as the cache drives them.

The cache's plans call its I/O primitives (``embed``, ``search``, ``add``, ``delete``,
``clear`` and their async twins) through the same driver and circuit breaker as the exact
tiers, so a failing embedder or index is skipped and never fails the user's call. The
decision (which candidates may be served) is ``judge``: pure, no I/O.

A request is embedded once: the lookup keeps its vector under the request's key digest
(``remember``), and the store after the miss takes it back (``recall``), bounded so that
lookups that never get a store cannot grow it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence

from llmcache.errors import ConfigError
from llmcache.fork_safety import renew_after_fork
from llmcache.keys import CacheKey
from llmcache.request import is_cosine
from llmcache.semantic.embedders import Embedder, identity_of
from llmcache.semantic.index import Candidate, IndexedEntry, Vector, VectorIndex
from llmcache.semantic.reading import (
    INVALID_UNICODE,
    cannot_read_of,
    invalid_unicode,
    unread_parts_of,
)
from llmcache.semantic.verifier import Verifier, default_verifier

logger = logging.getLogger("llmcache.semantic")

#: Plain cosine's default (no verifier): on QQP dev, the default embedder serves 44% of the
#: duplicates their own entry at 10% wrong hits here (MiniLM as published: 38% at 0.90, the
#: same wrong-hit rate). The adapter pulls every question closer, so 0.90 would be loose.
DEFAULT_THRESHOLD = 0.95
DEFAULT_K = 4
#: Lookup vectors waiting for their store (one per miss in flight).
MAX_PENDING_VECTORS = 4096


def check_threshold(value: float, what: str = "threshold") -> float:
    if not is_cosine(value):
        raise ConfigError(f"semantic {what} must be a number in [-1, 1] (a cosine), got {value!r}")
    return float(value)


class SemanticTier:
    """What ``Cache(semantic=...)`` takes. ``threshold``: the lowest cosine a candidate may
    have; ``k``: candidates fetched per lookup (the verifier may reject the first ones)."""

    def __init__(
        self,
        index: VectorIndex,
        embedder: Embedder,
        *,
        verifier: Verifier | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        k: int = DEFAULT_K,
    ) -> None:
        if index.dim != embedder.dim:
            raise ConfigError(
                f"semantic tier: the index holds {index.dim}-d vectors but the embedder "
                f"{embedder.name} makes {embedder.dim}-d ones"
            )
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"semantic k must be a positive integer, got {k!r}")
        # Same width is not enough: two embedders' vectors of one text differ, and a cosine
        # between them would judge candidates wrongly. The index refuses another's.
        index.bind_embedder(identity_of(embedder))
        self.index = index
        self.embedder = embedder
        self.verifier = verifier if verifier is not None else default_verifier()
        self.threshold = check_threshold(threshold)
        self.k = k
        self.name = f"semantic:{index.name}"
        self._pending: OrderedDict[bytes, Vector] = OrderedDict()
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")
        self._rejected: Counter[str] = Counter()
        self._skipped: Counter[str] = Counter()
        self._cannot_read = cannot_read_of(embedder)
        self._unread_parts = unread_parts_of(embedder)

    # ------------------------------------------------------------------ pure decisions
    def judge(
        self, query: str, candidates: Sequence[Candidate], threshold: float
    ) -> list[Candidate]:
        """The candidates that may be served, best first: at or above ``threshold``, read
        by the embedder (its ``cannot_read`` and ``unread_parts``: the vector stands for the
        text) and accepted by the verifier. Rejections are counted and logged at debug."""
        accepted: list[Candidate] = []
        unread: tuple[str, ...] | None = None  # the query's unread parts, read once
        for i, candidate in enumerate(candidates):
            if candidate.similarity < threshold:
                self.reject("below_threshold", query, candidate)
                break  # best first: the rest are lower still
            problem = self.cannot_read(candidate.text)
            if problem:  # indexed before texts were checked
                self.reject(problem, query, candidate)
                continue
            if self._unread_parts is not None:
                if unread is None:
                    unread = self._unread_parts(query)
                if self._unread_parts(candidate.text) != unread:  # the vector cannot tell
                    self.reject("unknown_words_differ", query, candidate)
                    continue
            others = [c.similarity for j, c in enumerate(candidates) if j != i]
            runner_up = max(others) if others else None
            try:
                verdict = self.verifier.verify(
                    query, candidate.text, candidate.similarity, runner_up
                )
            except Exception as exc:  # a verifier fault must not fail the call: no hit
                logger.warning("llmcache: the semantic verifier failed: %r", exc)
                self.reject("verifier_error", query, candidate)
                continue
            if verdict.accepted:
                accepted.append(candidate)
            else:
                self.reject(verdict.reason or "verifier", query, candidate)
        return accepted

    def reject(self, reason: str, query: str, candidate: Candidate) -> None:
        with self._lock:
            self._rejected[reason] += 1
        # Never the texts: logs carry no prompts (with encryption at rest, the candidate's
        # text is the opened one). The entry's digest is enough to find it.
        logger.debug(
            "llmcache: semantic candidate rejected (%s): similarity %.4f, entry %s",
            reason,
            candidate.similarity,
            candidate.key.digest.hex()[:16],
        )

    def rejected(self) -> dict[str, int]:
        with self._lock:
            return dict(self._rejected)

    def skipped(self) -> dict[str, int]:
        """``{reason: n}`` lookups that did not search: the embedder cannot read the question
        (``too_long``, ``unknown_words``, ``no_words``); it is not indexed either."""
        with self._lock:
            return dict(self._skipped)

    def reset_stats(self) -> None:
        with self._lock:
            self._rejected.clear()
            self._skipped.clear()

    def cannot_read(self, text: str) -> str | None:
        """Why the embedder's vector would not stand for ``text`` (``invalid_unicode``, for
        any embedder: a lone surrogate fails every one, and once failed the tier would be
        skipped for every caller; then the embedder's ``too_long``, ``unknown_words``,
        ``no_words``), or None (``reading.cannot_read_of``)."""
        if invalid_unicode(text):
            return INVALID_UNICODE
        return None if self._cannot_read is None else self._cannot_read(text)

    # ------------------------------------------------------------------ lookup -> store
    def remember(self, digest: bytes, vector: Vector) -> None:
        with self._lock:
            self._pending[digest] = vector
            self._pending.move_to_end(digest)
            while len(self._pending) > MAX_PENDING_VECTORS:
                self._pending.popitem(last=False)

    def recall(self, digest: bytes) -> Vector | None:
        with self._lock:
            return self._pending.pop(digest, None)

    # ------------------------------------------------------------------ I/O primitives
    def embed(self, text: str) -> Vector | str:
        """The text's vector; or, for a text the embedder cannot read (``cannot_read``), the
        reason (its vector would not stand for it: such a question is matched exactly or not
        at all)."""
        problem = self.cannot_read(text)
        if problem:
            return problem
        row: Vector = self.embedder.embed([text])[0]
        return row

    async def aembed(self, text: str) -> Vector | str:
        if self._cannot_read is not None:
            # Read and embedded in one thread: a long text takes a millisecond or so to read.
            return await asyncio.to_thread(self.embed, text)
        problem = self.cannot_read(text)  # without the embedder's own reading: no I/O
        if problem:
            return problem
        row: Vector = (await self.embedder.aembed([text]))[0]
        return row

    def skip(self, reason: str, text: str) -> None:
        """Count a question the tier did not search (``stats()["semantic_skipped"]``)."""
        with self._lock:
            self._skipped[reason] += 1
        logger.debug(
            "llmcache: semantic tier skipped a question (%s) of %d characters", reason, len(text)
        )

    def embed_many(self, texts: Sequence[str]) -> list[Vector | None]:
        """One call for many texts (an import re-embeds a page of rows at once); None for
        each text the embedder cannot read (as ``embed``)."""
        read, readable = self._readable(texts)
        vectors = list(self.embedder.embed(readable)) if readable else []
        return self._placed(read, vectors)

    async def aembed_many(self, texts: Sequence[str]) -> list[Vector | None]:
        read, readable = await asyncio.to_thread(self._readable, texts)
        vectors = list(await self.embedder.aembed(readable)) if readable else []
        return self._placed(read, vectors)

    def _readable(self, texts: Sequence[str]) -> tuple[list[bool], list[str]]:
        """Whether the embedder reads each text, and the texts it reads."""
        read = [not self.cannot_read(text) for text in texts]
        return read, [text for text, ok in zip(texts, read, strict=True) if ok]

    @staticmethod
    def _placed(read: list[bool], vectors: Sequence[Vector]) -> list[Vector | None]:
        """The readable texts' vectors in their texts' places; None elsewhere."""
        rows = iter(vectors)
        return [next(rows) if ok else None for ok in read]

    def texts(self, digests: Sequence[bytes]) -> dict[bytes, tuple[bytes, str]]:
        return self.index.texts(digests)

    def sample_keys(self, limit: int) -> list[CacheKey]:
        return self.index.sample_keys(limit)

    async def atexts(self, digests: Sequence[bytes]) -> dict[bytes, tuple[bytes, str]]:
        return await self.index.atexts(digests)

    def search(self, partition: bytes, vector: Vector, k: int, now: float) -> list[Candidate]:
        return self.index.search(partition, vector, k, now)

    async def asearch(
        self, partition: bytes, vector: Vector, k: int, now: float
    ) -> list[Candidate]:
        return await self.index.asearch(partition, vector, k, now)

    def add(self, entry: IndexedEntry) -> None:
        self.index.add(entry)

    async def aadd(self, entry: IndexedEntry) -> None:
        await self.index.aadd(entry)

    def delete(self, digests: Sequence[bytes]) -> int:
        return self.index.delete(digests)

    async def adelete(self, digests: Sequence[bytes]) -> int:
        return await self.index.adelete(digests)

    def clear(self, scope: bytes | None) -> int:
        return self.index.clear(scope)

    async def aclear(self, scope: bytes | None) -> int:
        return await self.index.aclear(scope)

    def close(self) -> None:
        self.index.close()

    async def aclose(self) -> None:
        await self.index.aclose()

    def __repr__(self) -> str:
        return (
            f"SemanticTier({self.name}, embedder={self.embedder.name}, "
            f"threshold={self.threshold}, k={self.k})"
        )


__all__ = ["DEFAULT_K", "DEFAULT_THRESHOLD", "SemanticTier", "check_threshold"]
