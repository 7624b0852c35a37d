"""The Redis tier's listing: one bounded page of the entries a ``Selector`` matches.

Entries are found through their partition sets ``<prefix>:{<scope>}:p:<model>:<namespace>``
(see redis.py): a set's name carries the digests an entry key lacks (its model and namespace),
so each listed entry comes back with its whole ``CacheKey``. A page is one step of a walk:

1. SCAN every primary (a Cluster's each on its own cursor; never KEYS) for the selected
   partition sets, a round at a time, with a pattern of hex digests and ``*`` (no other
   prefix's keys can match; a selector that fixes scope, model and namespace names its one
   set and needs no SCAN);
2. SSCAN one set at a time, about ``limit`` names per page; with tags, keep the names one of
   the scope's selected tag sets lists (SMISMEMBER);
3. GET those entries (pipelined): a name whose entry is gone (expired, invalidated) is skipped.

The cursor (``RedisCursor``) holds the SCAN cursors, the sets found and not read yet (at most
one SCAN round's worth) and the SSCAN position: every page is bounded, whatever the size of
the store. SCAN and SSCAN may return a name twice, so may a listing (an import upserts: a
duplicate is harmless).

The walk is one generator plan; ``redis_invalidate.run_sync``/``run_async`` drive it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from typing import Any, NamedTuple

from llmcache.keys import CacheKey
from llmcache.tiers.listing import LAST_PAGE, Listed, ListPage
from llmcache.tiers.redis_invalidate import (
    BATCH,
    Pipe,
    Primaries,
    ScanNode,
    names_one_set,
    partition_pattern,
)
from llmcache.tiers.selector import Selector

#: The stored payload of a raw value and its expiry, or None once expired (redis._stored).
StoredOf = Callable[[bytes | None, float], tuple[bytes, float | None] | None]
_HEX = re.compile(rb"[0-9a-f]+")


class RedisCursor(NamedTuple):
    scan: dict[str, int] | None  # SCAN cursor per primary not done; None: not started
    queue: tuple[str, ...]  # partition sets found and not read yet
    reading: tuple[str, int] | None  # the set being read and its SSCAN cursor

    @property
    def done(self) -> bool:
        return self.scan == {} and not self.queue and self.reading is None


def list_page_plan(
    prefix: str,
    selector: Selector,
    now: float,
    cursor: RedisCursor | None,
    limit: int,
    stored_of: StoredOf,
) -> Generator[Primaries | ScanNode | Pipe, Any, ListPage]:
    state = cursor if cursor is not None else _start(prefix, selector)
    while True:
        if state.reading is not None:
            name, position = state.reading
            ((after, members),) = yield Pipe([("SSCAN", name, position, "COUNT", limit)])
            state = state._replace(reading=(name, int(after)) if int(after) else None)
            items = yield from _read(prefix, selector, name, members, now, stored_of)
            return ListPage(items, None if state.done else state)
        if state.queue:
            state = state._replace(queue=state.queue[1:], reading=(state.queue[0], 0))
            continue
        scan = state.scan
        if scan is None:  # every primary, from 0
            scan = dict.fromkeys((yield Primaries()), 0)
        if not scan:
            return LAST_PAGE
        node, at = next(iter(scan.items()))
        pattern = partition_pattern(prefix, selector)
        after, names = yield ScanNode(node, at, pattern, BATCH)
        scan = {**scan, node: after} if after else {n: c for n, c in scan.items() if n != node}
        found = (n.decode() if isinstance(n, bytes) else str(n) for n in names)
        state = state._replace(scan=scan, queue=tuple(dict.fromkeys(found)))


def _start(prefix: str, selector: Selector) -> RedisCursor:
    if not names_one_set(selector):
        return RedisCursor(None, (), None)
    return RedisCursor({}, (partition_pattern(prefix, selector),), None)  # named: no SCAN


def _digests_of_set(prefix: str, name: str) -> tuple[str, bytes, bytes] | None:
    """(scope hex, model, namespace) of a partition set's name; None if it is not one."""
    head = f"{prefix}:{{"
    rest = name[len(head) :] if name.startswith(head) else ""
    scope, _, parts = rest.partition("}:p:")
    model, _, namespace = parts.partition(":")
    if not all(len(x) == 32 and _HEX.fullmatch(x.encode()) for x in (scope, model, namespace)):
        return None
    return scope, bytes.fromhex(model), bytes.fromhex(namespace)


def _read(
    prefix: str,
    selector: Selector,
    set_name: str,
    members: list[Any],
    now: float,
    stored_of: StoredOf,
) -> Generator[Primaries | ScanNode | Pipe, Any, list[Listed]]:
    parsed = _digests_of_set(prefix, set_name)
    if parsed is None:
        return []
    scope_hex, model, namespace = parsed
    entry_head = f"{prefix}:{{{scope_hex}}}:e:".encode()
    names = [
        bytes(m)
        for m in dict.fromkeys(members)
        if isinstance(m, bytes)
        and m.startswith(entry_head)
        and len(m) == len(entry_head) + 64
        and _HEX.fullmatch(m, len(entry_head))
    ]
    if names and selector.tags is not None:
        tag_sets = [f"{prefix}:{{{scope_hex}}}:t:{t.hex()}" for t in sorted(selector.tags)]
        flags = yield Pipe([("SMISMEMBER", tag_set, *names) for tag_set in tag_sets])
        tagged = {n for row in flags for n, flag in zip(names, row, strict=True) if int(flag)}
        names = [n for n in names if n in tagged]
    if not names:
        return []
    values = yield Pipe([("GET", n) for n in names])
    scope = bytes.fromhex(scope_hex)
    items = []
    for name, raw in zip(names, values, strict=True):
        stored = stored_of(raw, now)
        if stored is not None:
            key = CacheKey(bytes.fromhex(name[len(entry_head) :].decode()), scope, model, namespace)
            items.append(Listed(key, stored[0], stored[1]))
    return items
