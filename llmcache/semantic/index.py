"""The vector index protocol: what the semantic tier needs from FAISS or redisvl.

An index stores, per cached entry, its unit-norm embedding and the text that was embedded,
inside a *partition*: a digest of everything about the request that must match exactly for a
semantic hit (scope, model and parameters, namespace, system prompt, earlier turns, tools).
The search runs inside one partition (a filter in the query, never a filter after a top-k),
so a closer entry from another user or model can neither be returned nor hide a valid match.

Entries themselves live in the exact tiers; a candidate carries the entry's ``CacheKey`` so
the cache fetches it from there (and an index can be rebuilt from the exact tiers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from llmcache.errors import ConfigError
from llmcache.keys import CacheKey

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]
else:
    Vector = Any


class IndexedEntry(NamedTuple):
    """One vector to add: the entry it points at and where it may be found."""

    key: CacheKey
    partition: bytes  # 16 bytes
    vector: Vector  # float32, shape (dim,), unit norm
    text: str  # what was embedded (the verifier compares it with the query)
    expires_at: float | None  # wall-clock seconds; None = no expiry
    tags: tuple[str, ...] = ()


class Candidate(NamedTuple):
    """A search result, best first: the entry's key, cosine similarity and embedded text."""

    key: CacheKey
    similarity: float
    text: str


@runtime_checkable
class VectorIndex(Protocol):
    """A partitioned vector index. Methods may raise on I/O failure; the cache fails open."""

    name: str
    dim: int

    def bind_embedder(self, identity: str) -> None:
        """Record that this index holds the vectors of the embedder named ``identity``
        (``embedders.identity_of``), or raise ``wrong_embedder`` when it holds another's.
        An empty index takes any. A remote index may check on first use instead."""
        ...

    def reembed(
        self,
        embed: Callable[[list[str]], Vector],
        identity: str,
        *,
        batch: int = 256,
        progress: Callable[[int], None] | None = None,
        read: Callable[[bytes, str], str | None] | None = None,
    ) -> int:
        """Replace every stored vector by ``embed`` of its stored text and bind the index to
        ``identity``; returns how many (``llmcache reindex``). ``progress`` gets each
        batch's size. ``read(digest, stored text)`` gives the text to embed (a sealed text
        opened, see encryption at rest), or None to remove that vector (a text that cannot
        be opened, which no cache would serve); it may raise to stop before the batch is
        written. Sync only: an operator's job, never on a request's path."""
        ...

    def add(self, entry: IndexedEntry) -> None: ...
    def search(self, partition: bytes, vector: Vector, k: int, now: float) -> list[Candidate]:
        """Up to ``k`` unexpired candidates of ``partition``, most similar first."""
        ...

    def delete(self, digests: Sequence[bytes]) -> int: ...
    def texts(self, digests: Sequence[bytes]) -> dict[bytes, tuple[bytes, str]]:
        """The (partition, stored text) of each of these entries the index holds (export)."""
        ...

    def sample_keys(self, limit: int) -> list[CacheKey]:
        """The keys of up to ``limit`` indexed vectors, any of them (``llmcache doctor``
        checks that their entries are still in the exact tiers). Sync only: an operator's
        check, never on a request's path."""
        ...

    def clear(self, scope: bytes | None) -> int:
        """Remove every vector (only ``scope``'s when given); returns how many."""
        ...

    def close(self) -> None: ...

    async def aadd(self, entry: IndexedEntry) -> None: ...
    async def asearch(
        self, partition: bytes, vector: Vector, k: int, now: float
    ) -> list[Candidate]: ...
    async def adelete(self, digests: Sequence[bytes]) -> int: ...
    async def atexts(self, digests: Sequence[bytes]) -> dict[bytes, tuple[bytes, str]]: ...
    async def aclear(self, scope: bytes | None) -> int: ...
    async def aclose(self) -> None: ...


def wrong_embedder(where: str, stored: str | None, identity: str) -> ConfigError:
    """The error for an index that holds another embedder's vectors: cosines between two
    embedders' vectors mean nothing, so serving from them would serve wrong answers."""
    held = (
        f"the vectors of embedder {stored!r}"
        if stored
        else "vectors of an unnamed embedder (stored before llmcache named each index's embedder)"
    )
    return ConfigError(
        f"{where} holds {held}, but this semantic tier embeds with {identity!r}: their "
        "similarities would mean nothing. Re-embed the index's texts with "
        "`llmcache reindex --semantic URL` (stop the apps writing to it first), open it "
        "with the embedder it was built with, or use another index"
    )
