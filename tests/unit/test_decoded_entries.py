"""Store tiers' hits are decoded once per (key, stored bytes), and stay exact.

The decoded entry is reused only for the very bytes it came from: a row rewritten behind the
cache's back, a deleted row and an expired row are seen at once, and LangChain hits of a
reused entry are still private copies.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration

from langchain_llmcache import LangChainCache
from llmcache import Cache, CacheRequest
from llmcache.clock import FakeClock
from llmcache.decoded import DecodedEntries
from llmcache.entry import CacheEntry

REQUEST = CacheRequest(model="m", prompt="p")


def _entry(value: str) -> CacheEntry:
    return CacheEntry(value=value, created_at=0.0)


def test_only_the_same_key_and_the_same_bytes_find_an_entry() -> None:
    decoded = DecodedEntries()
    first = _entry("a")
    decoded.put(b"k1", b"bytes", first)
    assert decoded.get(b"k1", b"bytes") is first
    assert decoded.get(b"k1", b"other bytes") is None
    assert decoded.get(b"k2", b"bytes") is None  # the same bytes under another key


def test_bounded_by_count_bytes_and_entry_size() -> None:
    decoded = DecodedEntries(max_entries=2, max_bytes=10, max_entry_bytes=6)
    decoded.put(b"k", b"1234567", _entry("too big"))
    assert len(decoded) == 0
    decoded.put(b"a", b"1111", _entry("a"))
    decoded.put(b"b", b"2222", _entry("b"))
    decoded.get(b"a", b"1111")  # a is now the most recently used
    decoded.put(b"c", b"3333", _entry("c"))  # over two entries: b goes
    assert decoded.get(b"b", b"2222") is None
    assert decoded.get(b"a", b"1111") is not None
    # Now c is the least recently used (a was just read): c + a + d is 14 bytes > 10.
    decoded.put(b"d", b"444444", _entry("d"))
    assert decoded.get(b"c", b"3333") is None
    assert decoded.get(b"a", b"1111") is not None and decoded.get(b"d", b"444444") is not None


def test_new_bytes_under_a_key_replace_its_entry_and_its_bytes() -> None:
    decoded = DecodedEntries(max_bytes=6)
    old, new = _entry("old"), _entry("new")
    decoded.put(b"k1", b"aaaa", old)
    decoded.put(b"k1", b"bb", new)
    assert decoded.get(b"k1", b"aaaa") is None
    assert decoded.get(b"k1", b"bb") is new
    assert len(decoded) == 1
    # k1's old 4 bytes no longer count: 2 + 4 fits in 6, nothing is evicted.
    decoded.put(b"k2", b"cccc", _entry("k2"))
    assert decoded.get(b"k1", b"bb") is new and decoded.get(b"k2", b"cccc") is not None


def test_a_sqlite_hit_follows_the_stored_bytes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    clock = FakeClock(1000.0)
    with Cache.from_urls([url], clock=clock) as cache:
        cache.set(REQUEST, {"answer": "old"}, ttl=60)
        first, again = cache.get(REQUEST), cache.get(REQUEST)
        assert first is not None and again is not None
        assert again.entry is first.entry  # decoded once
        engine = sa.create_engine(url)
        with engine.begin() as conn:  # another writer replaces the row's bytes
            conn.execute(sa.text("UPDATE llmcache_entries SET value = :v"), {"v": b"{}"})
        assert cache.get(REQUEST) is None  # undecodable now: a miss, and deleted
        cache.set(REQUEST, {"answer": "new"}, ttl=60)
        hit = cache.get(REQUEST)
        assert hit is not None and hit.entry.value == {"answer": "new"}
        clock.advance(60 * 1.1 + 1)  # past the TTL and its jitter
        assert cache.get(REQUEST) is None  # expired, though its decoded entry is still kept
        engine.dispose()


def test_langchain_hits_of_a_reused_entry_are_private_copies(tmp_path: Path) -> None:
    adapter = LangChainCache(Cache.from_urls([f"sqlite:///{tmp_path}/c.db"]))
    message = AIMessage(content="Paris", response_metadata={"model_name": "m"})
    adapter.update("prompt", "llm", [ChatGeneration(message=message)])
    hits = [adapter.lookup("prompt", "llm") for _ in range(3)]
    messages = [h[0].message for h in hits if h is not None]
    assert [m.content for m in messages] == ["Paris"] * 3
    assert len({id(m) for m in messages}) == 3
    assert len({m.id for m in messages}) == 3  # a fresh id each
    messages[0].response_metadata["changed"] = True  # a caller writes into its answer
    later = adapter.lookup("prompt", "llm")
    assert later is not None and "changed" not in later[0].message.response_metadata
    adapter.cache.close()
