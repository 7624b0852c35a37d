"""The cache's operations on sets of stored entries, picked by a ``Selector``: invalidation,
listing (``entries``, ``llmcache inspect``), export and import.

A mixin of ``Cache``: written as plans like the rest of the walk, and run by the cache's own
drivers, so every tier and the semantic index take part with the same fail-open rules. Kept
apart from ``cache.py``, whose job is the per-call walk (lookup, store, single-flight).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

from llmcache.crypto import Sealer, UnknownKeyError
from llmcache.entry import CacheEntry, decode, encode
from llmcache.errors import CodecError, ConfigError, TierError
from llmcache.keys import CacheKey
from llmcache.plan import UNAVAILABLE, Op, Plan
from llmcache.request import Scope
from llmcache.semantic.index import IndexedEntry
from llmcache.stored import PutOutcome, StoredEntry
from llmcache.tiers import Tier
from llmcache.tiers.listing import DEFAULT_PAGE, MAX_PAGE, Listed, ListPage
from llmcache.tiers.selector import Selector, build_list_selector, build_selector

if TYPE_CHECKING:
    from llmcache.cache import Cache
    from llmcache.clock import Clock
    from llmcache.fleet_invalidation import FleetInvalidation
    from llmcache.semantic.tier import SemanticTier
    from llmcache.transfer import ExportReport, ImportReport

T = TypeVar("T")


class EntryOperations:
    """Invalidation, listing, export and import (``Cache`` inherits them)."""

    if TYPE_CHECKING:  # provided by Cache
        _tiers: tuple[Tier, ...]
        _semantic: SemanticTier | None
        _sealer: Sealer | None
        _fleet_invalidation: FleetInvalidation | None
        clock: Clock

        def _run(self, plan: Plan[T]) -> T: ...
        async def _arun(self, plan: Plan[T]) -> T: ...
        def _seal(self, payload: bytes, key: CacheKey) -> bytes: ...
        def _unseal(self, payload: bytes, key: CacheKey) -> bytes: ...
        def _seal_text(self, text: str, key: CacheKey) -> str: ...
        def _open_text(self, text: str, key: CacheKey) -> str | None: ...

    # ------------------------------------------------------------------ invalidation
    def invalidate(
        self,
        *,
        tags: Iterable[str] | None = None,
        scope: Scope | None = None,
        model: str | None = None,
        namespace: str | None = None,
        older_than: float | None = None,
    ) -> int:
        """Remove llmcache's entries that match every criterion given, from every tier.

        ``tags``: entries carrying any of these tags (``CacheRequest.tags``, or the ambient
        ``llmcache.tags(...)`` block of the call that stored them); ``scope``: entries of
        exactly this ``Scope``; ``model``: of this ``CacheRequest.model_name``; ``namespace``:
        of this namespace (e.g. a prompt-template version); ``older_than``: created at least
        this many seconds ago by the cache's clock. At least one is required (``clear()``
        removes everything). Only llmcache's own rows and keys are touched.

        Returns the entries removed, counted once per tier that held them, as ``clear`` does
        (an entry in memory and in SQLite counts 2). The semantic index loses the vectors of
        the removed entries too (not counted). With a Redis tier, the other processes' memory
        tiers drop them as well (``llmcache.fleet_invalidation``).
        Raises ConfigError for bad criteria, and TierError naming the tiers that failed
        (the other tiers are invalidated; call it again once they are back).
        """
        selector = build_selector(
            tags=tags, scope=scope, model=model, namespace=namespace, older_than=older_than
        )
        try:
            return self._run(self._invalidate_plan(selector))
        finally:  # even when a tier failed: the memory tiers of other processes still drop them
            if self._fleet_invalidation is not None:
                self._fleet_invalidation.invalidated(selector, self.clock())

    async def ainvalidate(
        self,
        *,
        tags: Iterable[str] | None = None,
        scope: Scope | None = None,
        model: str | None = None,
        namespace: str | None = None,
        older_than: float | None = None,
    ) -> int:
        """``invalidate`` on the tiers' async primitives."""
        selector = build_selector(
            tags=tags, scope=scope, model=model, namespace=namespace, older_than=older_than
        )
        try:
            return await self._arun(self._invalidate_plan(selector))
        finally:
            if self._fleet_invalidation is not None:
                await self._fleet_invalidation.ainvalidated(selector, self.clock())

    def _invalidate_plan(self, selector: Selector) -> Plan[int]:
        now = self.clock()
        if self._semantic is not None:
            yield from self._unindex_plan(selector, now)
        removed, failed = 0, []
        for tier in self._tiers:
            count = yield Op(tier, "invalidate", (selector, now))
            if isinstance(count, int):
                removed += count
            else:  # an invalidation that silently missed a tier would serve stale answers
                failed.append(tier.name)
        if failed:
            raise TierError(
                f"invalidate removed {removed} entries but could not reach tier(s) "
                f"{', '.join(failed)} (see the logged error); their entries may still be "
                "served: run it again once they are back"
            )
        return removed

    def _unindex_plan(self, selector: Selector, now: float) -> Plan[None]:
        """Remove the semantic index's vectors of the entries ``selector`` matches, a page of
        the bottom tier's listing at a time (before the entries go: the listing finds them).
        A vector whose entry is gone is never served, but it may crowd a live entry out of a
        search's top k. Best effort: a tier or index that fails leaves vectors behind, which
        are skipped when found."""
        semantic, source = self._semantic, self._tiers[-1]
        assert semantic is not None
        cutoff = selector.cutoff(now)
        listing = selector._replace(older_than=None)  # listing filters by index, not by age
        cursor: Any = None
        while True:
            page = yield Op(source, "list_page", (listing, now, cursor, MAX_PAGE))
            if page is UNAVAILABLE:
                return
            digests = [
                item.key.digest
                for item in page.items
                if cutoff is None or self._created_by(item, source.name, cutoff)
            ]
            if digests and (yield Op(semantic, "delete", (digests,))) is UNAVAILABLE:
                return
            cursor = page.cursor
            if cursor is None:
                return

    def _created_by(self, item: Listed, tier: str, cutoff: float) -> bool:
        """Whether a listed entry was created at or before ``cutoff``, opened the way a
        listing opens it (sealed entries too). One that cannot be read counts as matching:
        losing its vector is harmless."""
        entry = self._open_listed(item, tier).entry
        return entry is None or entry.created_at <= cutoff

    # ------------------------------------------------------------------ listing, import
    def entries(
        self,
        *,
        tags: Iterable[str] | None = None,
        scope: Scope | None = None,
        model: str | None = None,
        namespace: str | None = None,
        tier: str | None = None,
        page_size: int = DEFAULT_PAGE,
        with_semantic: bool = False,
    ) -> Iterator[StoredEntry]:
        """The stored entries that match every criterion given (none: all of them), read a
        page at a time from one tier: ``tier`` (a name in ``cache.tiers``), by default the
        bottom one, which holds the most (memory above it keeps a subset). Entries this
        process cannot read (sealed under keys it lacks, undecodable) come with
        ``entry=None`` and the reason. ``with_semantic``: each entry also carries the
        (partition, text) the semantic index holds for it. Raises TierError naming the
        tier when it cannot be read (listing is an operator's call: it does not fail open).
        """
        source, selector, limit = self._listing(tier, tags, scope, model, namespace, page_size)
        cursor = None
        while True:
            page, cursor = self._run(
                self._page_plan(source, selector, cursor, limit, with_semantic)
            )
            yield from page
            if cursor is None:
                return

    async def aentries(
        self,
        *,
        tags: Iterable[str] | None = None,
        scope: Scope | None = None,
        model: str | None = None,
        namespace: str | None = None,
        tier: str | None = None,
        page_size: int = DEFAULT_PAGE,
        with_semantic: bool = False,
    ) -> AsyncIterator[StoredEntry]:
        """``entries`` on the tiers' async primitives."""
        source, selector, limit = self._listing(tier, tags, scope, model, namespace, page_size)
        cursor = None
        while True:
            plan = self._page_plan(source, selector, cursor, limit, with_semantic)
            page, cursor = await self._arun(plan)
            for stored in page:
                yield stored
            if cursor is None:
                return

    def export_entries(
        self,
        out: IO[bytes],
        *,
        tags: Iterable[str] | None = None,
        scope: Scope | None = None,
        model: str | None = None,
        namespace: str | None = None,
        tier: str | None = None,
    ) -> ExportReport:
        """Write the entries ``entries(...)`` lists to a binary file as JSON Lines (a header,
        then one entry a line; the format is described in ``llmcache.transfer``)."""
        from llmcache.transfer import export_entries

        return export_entries(
            cast("Cache", self),
            out,
            tags=tags,
            scope=scope,
            model=model,
            namespace=namespace,
            tier=tier,
        )

    def import_entries(self, source: IO[bytes]) -> ImportReport:
        """Store the entries of an export (``export_entries``) in every tier: invalid lines
        are skipped and reported with their line number, expired entries skipped, existing
        keys replaced; texts for the semantic tier are embedded with this cache's embedder.
        Raises ExportFileError when the file is not an export, TierError when a tier fails."""
        from llmcache.transfer import import_entries

        return import_entries(cast("Cache", self), source)

    def put_entries(self, entries: Iterable[StoredEntry]) -> PutOutcome:
        """Store entries under their own keys, as they are (created time, expiry, usage,
        tags kept; an existing entry of the same key is replaced): what an import does.
        Entries carrying ``semantic`` (partition, text) are embedded with this cache's
        embedder and indexed. Sealed again with this cache's keys when encryption is on.
        A tier that fails is skipped and named in the outcome."""
        return self._run(self._put_plan(list(entries)))

    async def aput_entries(self, entries: Iterable[StoredEntry]) -> PutOutcome:
        return await self._arun(self._put_plan(list(entries)))

    def _listing(
        self,
        tier: str | None,
        tags: Iterable[str] | None,
        scope: Scope | None,
        model: str | None,
        namespace: str | None,
        page_size: int,
    ) -> tuple[Tier, Selector, int]:
        selector = build_list_selector(tags=tags, scope=scope, model=model, namespace=namespace)
        if isinstance(page_size, bool) or not isinstance(page_size, int):
            raise ConfigError(f"page_size must be an integer, got {page_size!r}")
        if not 1 <= page_size <= MAX_PAGE:
            raise ConfigError(f"page_size must be between 1 and {MAX_PAGE}, got {page_size}")
        if tier is None:
            return self._tiers[-1], selector, page_size
        for candidate in self._tiers:
            if candidate.name == tier:
                return candidate, selector, page_size
        names = ", ".join(t.name for t in self._tiers)
        raise ConfigError(f"no tier named {tier!r} in this cache (its tiers: {names})")

    def _page_plan(
        self, tier: Tier, selector: Selector, cursor: Any, limit: int, with_semantic: bool
    ) -> Plan[tuple[list[StoredEntry], Any]]:
        now = self.clock()
        page: ListPage = yield Op(tier, "list_page", (selector, now, cursor, limit), strict=True)
        listed = [self._open_listed(item, tier.name) for item in page.items]
        if with_semantic and self._semantic is not None and listed:
            digests = [stored.key.digest for stored in listed]
            texts = yield Op(self._semantic, "texts", (digests,), strict=True)
            listed = [self._with_text(stored, texts.get(stored.key.digest)) for stored in listed]
        return listed, page.cursor

    def _open_listed(self, item: Listed, tier: str) -> StoredEntry:
        found = item.found
        if isinstance(found, CacheEntry):  # an in-process tier keeps the entry itself
            return StoredEntry(item.key, found, len(encode(found)), item.expires_at, tier)
        try:
            entry = decode(self._unseal(found, item.key))
        except UnknownKeyError:
            reason = "sealed under an encryption key this process does not have"
            return StoredEntry(item.key, None, len(found), item.expires_at, tier, reason)
        except CodecError as exc:
            reason = f"does not decode: {exc}"
            return StoredEntry(item.key, None, len(found), item.expires_at, tier, reason)
        return StoredEntry(item.key, entry, len(found), item.expires_at, tier)

    def _with_text(self, stored: StoredEntry, found: tuple[bytes, str] | None) -> StoredEntry:
        if found is None:
            return stored
        text = self._open_text(found[1], stored.key)
        return stored if text is None else stored._replace(semantic=(found[0], text))

    def _put_plan(self, entries: list[StoredEntry]) -> Plan[PutOutcome]:
        now = self.clock()
        failed: dict[str, None] = {}
        stored = 0
        kept = []
        for item in entries:
            if item.entry is None or item.entry.is_expired(now):
                continue
            payload = self._seal(encode(item.entry), item.key)
            took = False
            for tier in self._tiers:
                result = yield Op(tier, "set", (item.key, item.entry, payload, now))
                if result is UNAVAILABLE:
                    failed[tier.name] = None
                else:
                    took = True
            if took:
                stored += 1
                kept.append(item)
        if self._semantic is not None:
            indexed = [(i.key, i.entry, i.semantic) for i in kept if i.semantic is not None]
            if indexed and not (yield from self._reindex_plan(self._semantic, indexed)):
                failed[self._semantic.name] = None
        return PutOutcome(stored, tuple(failed))

    def _reindex_plan(
        self,
        semantic: SemanticTier,
        rows: list[tuple[CacheKey, CacheEntry | None, tuple[bytes, str]]],
    ) -> Plan[bool]:
        """Embed imported texts with this cache's embedder (one call) and index them; False
        when the semantic tier failed."""
        vectors = yield Op(semantic, "embed_many", ([text for _, _, (_, text) in rows],))
        if vectors is UNAVAILABLE:
            return False
        ok = True
        for (key, entry, (partition, text)), vector in zip(rows, vectors, strict=True):
            assert entry is not None
            if vector is None:  # the embedder cannot read it: matched exactly only
                continue
            stored_text = text if self._sealer is None else self._seal_text(text, key)
            item = IndexedEntry(key, partition, vector, stored_text, entry.expires_at, entry.tags)
            ok = (yield Op(semantic, "add", (item,))) is not UNAVAILABLE and ok
        return ok
