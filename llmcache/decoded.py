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
from llmcache.fork_safety import renew_after_fork

#: Bounds: how many entries, how many stored bytes in all, and the largest entry kept.
MAX_ENTRIES = 2048
MAX_BYTES = 16 * 1024 * 1024
MAX_ENTRY_BYTES = 256 * 1024


class DecodedEntries:
    """A bounded, thread-safe LRU of digest -> (stored bytes, decoded entry).

    Keyed by the digest alone, the bytes compared on a lookup: comparing equal bytes is a
    memcmp, where hashing them (a (digest, bytes) key) costs SipHash over every byte of the
    value on every hit. A key holds the last bytes decoded for it: new bytes replace them.
    """

    def __init__(
        self,
        max_entries: int = MAX_ENTRIES,
        max_bytes: int = MAX_BYTES,
        max_entry_bytes: int = MAX_ENTRY_BYTES,
    ) -> None:
        self._entries: OrderedDict[bytes, tuple[bytes, CacheEntry]] = OrderedDict()
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")
        self._bytes = 0
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._max_entry_bytes = max_entry_bytes

    def get(self, digest: bytes, payload: bytes) -> CacheEntry | None:
        with self._lock:
            kept = self._entries.get(digest)
            if kept is None or kept[0] != payload:
                return None
            self._entries.move_to_end(digest)
            return kept[1]

    def put(self, digest: bytes, payload: bytes, entry: CacheEntry) -> None:
        size = len(payload)
        if size > self._max_entry_bytes:
            return
        with self._lock:
            kept = self._entries.pop(digest, None)
            if kept is not None:
                self._bytes -= len(kept[0])
            self._entries[digest] = (payload, entry)
            self._bytes += size
            while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
                _, (old, _) = self._entries.popitem(last=False)
                self._bytes -= len(old)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)
