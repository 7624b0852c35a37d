"""Entries already decoded from a store tier's bytes, kept for the next hit on the same bytes.

A hit from SQL or Redis costs a round trip, then the CPU work of turning the stored bytes into
an answer: the codec, and the adapter's rebuild of its objects (LangChain's pydantic messages
cost more than the SQLite read itself). Hot entries are read again and again with the same
bytes, so the decoded ``CacheEntry`` is kept here, keyed by the entry's digest *and* the exact
bytes read: every hit still reads the tier (expiry, invalidation and other processes' stores
stay exact), and only identical bytes under the same key reuse the decoded entry, which is the
entry the codec would build again. The adapter keeps its rebuilt objects on it
(``CacheEntry.memo``) as it does for memory-tier entries, and hands out copies.

Not used for sealed entries (encryption at rest): opening them again checks that the key
ring still holds their key.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from llmcache.entry import CacheEntry

#: Bounds: how many entries, how many stored bytes in all, and the largest entry kept.
MAX_ENTRIES = 2048
MAX_BYTES = 16 * 1024 * 1024
MAX_ENTRY_BYTES = 256 * 1024


class DecodedEntries:
    """A bounded, thread-safe LRU of (digest, stored bytes) -> decoded entry."""

    def __init__(
        self,
        max_entries: int = MAX_ENTRIES,
        max_bytes: int = MAX_BYTES,
        max_entry_bytes: int = MAX_ENTRY_BYTES,
    ) -> None:
        self._entries: OrderedDict[tuple[bytes, bytes], CacheEntry] = OrderedDict()
        self._lock = threading.Lock()
        self._bytes = 0
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._max_entry_bytes = max_entry_bytes

    def get(self, digest: bytes, payload: bytes) -> CacheEntry | None:
        key = (digest, payload)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, digest: bytes, payload: bytes, entry: CacheEntry) -> None:
        size = len(payload)
        if size > self._max_entry_bytes:
            return
        key = (digest, payload)
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = entry
            self._bytes += size
            while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
                (_, old), _ = self._entries.popitem(last=False)
                self._bytes -= len(old)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)
