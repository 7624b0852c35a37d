"""The Redis tier's invalidation: entries found through its index sets, removed in batches.

Every stored entry is listed in its partition set ``<prefix>:{<scope>}:p:<model>:<namespace>``
and in one set per tag ``<prefix>:{<scope>}:t:<tag>`` (written atomically with the entry; see
redis.py). An invalidation

1. finds the index sets to read: named directly when the selector fixes every part of their
   name, else by SCAN with this prefix (never KEYS; a Cluster client scans every primary), with
   a pattern of hex digests and ``*``, which can match no other prefix's keys;
2. reads their members (SMEMBERS, pipelined) and, per scope, keeps the entries every criterion
   selects: the union of the tag sets' members, intersected with the partitions' members;
3. for ``older_than``, reads those entries (GET, pipelined) and keeps the ones created at or
   before the cutoff (a value that does not decode is left alone: its next ``get`` deletes it);
4. per scope, one Lua script per batch UNLINKs the entries and SREMs them from the sets it
   read, atomically (the store script can't interleave: an entry stored again meanwhile is
   either removed with its index records or kept with them). It counts the entries removed;
   names in a set whose entry is already gone are removed from the set and not counted.

A set not read keeps the names of entries removed through another one (removing an entry by
tag leaves it in its partition set) until that set is read by an invalidation or expires (a
set lives as long as its longest-lived entry). Those names cost memory only: a name without
its entry is never served and never counted.

Selecting only a scope is ``clear(scope)``, which needs no index (the tier calls it).

Bounds: removal runs in batches of ``BATCH`` entries, and index sets are read for
``SCOPES_PER_ROUND`` scopes at a time; one set is read whole (SMEMBERS), so a single partition
or tag set of millions of entries is held in this process's memory while it is processed.

The logic is one generator plan, written once; ``run_sync`` and ``run_async`` only do I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, NamedTuple

from llmcache.entry import decode
from llmcache.errors import CodecError
from llmcache.tiers.selector import Selector

#: SCAN's COUNT hint, entries per UNLINK script and GETs per pipeline.
BATCH = 500
#: Scopes whose index sets one pipeline reads.
SCOPES_PER_ROUND = 100
_SCOPE_HEX = 32  # a 16-byte scope digest in hex

# KEYS[1..ARGV[1]]: entry keys to remove; KEYS[ARGV[1]+1..]: index sets to remove them from.
# All keys are of one scope, so they share its hash tag (one Cluster slot).
_UNLINK_INDEXED = """
local n = tonumber(ARGV[1])
local removed = 0
for i = 1, n do
  removed = removed + redis.call('UNLINK', KEYS[i])
end
for j = n + 1, #KEYS do
  redis.call('SREM', KEYS[j], unpack(KEYS, 1, n))
end
return removed
"""


class Scan(NamedTuple):
    """SCAN every primary for ``pattern``; the driver sends back the names found."""

    pattern: str


class Pipe(NamedTuple):
    """Run these commands in one non-transactional pipeline; the driver sends back results."""

    commands: list[tuple[Any, ...]]


Plan = Generator[Scan | Pipe, list[Any], int]
#: The payload of a stored value (the tier's header removed), or None: see redis._payload.
PayloadOf = Callable[[bytes], bytes | None]


class _Scope(NamedTuple):
    partitions: list[str]  # partition sets to read (empty in tag mode)
    tag_sets: list[str]


def invalidate_plan(prefix: str, selector: Selector, now: float, payload_of: PayloadOf) -> Plan:
    """Remove what ``selector`` matches under ``prefix``; returns the entries removed."""
    scopes = yield from _index_sets(prefix, selector)
    cutoff = selector.cutoff(now)
    by_partition = _by_partition(selector)
    removed = 0
    items = sorted(scopes.items())
    for start in range(0, len(items), SCOPES_PER_ROUND):
        chunk = items[start : start + SCOPES_PER_ROUND]
        read = [name for _, sets in chunk for name in (*sets.partitions, *sets.tag_sets)]
        members = dict(zip(read, (yield Pipe([("SMEMBERS", name) for name in read])), strict=True))
        doomed: list[tuple[list[bytes], list[str]]] = []
        for _, sets in chunk:
            names = _union(members, sets.tag_sets) if selector.tags is not None else None
            if by_partition:
                in_partitions = _union(members, sets.partitions)
                names = in_partitions if names is None else names & in_partitions
            if names:
                doomed.append((sorted(names), [*sets.partitions, *sets.tag_sets]))
        if cutoff is not None:
            doomed = yield from _old_enough(doomed, cutoff, payload_of)
        scripts = [
            ("EVAL", _UNLINK_INDEXED, len(batch) + len(sets), *batch, *sets, len(batch))
            for names, sets in doomed
            for batch in _chunks(names)
        ]
        if scripts:
            removed += sum(int(r) for r in (yield Pipe(scripts)))
    return removed


def _by_partition(selector: Selector) -> bool:
    """Find entries through partition sets (by model/namespace, or all of them for an age or
    scope-and-age selection); through tag sets when tags are the only index criterion."""
    return selector.model is not None or selector.namespace is not None or selector.tags is None


def _index_sets(
    prefix: str, selector: Selector
) -> Generator[Scan | Pipe, list[Any], dict[str, _Scope]]:
    """The index sets to read, by scope hex: named directly, or found by SCAN."""
    scope = None if selector.scope is None else selector.scope.hex()
    tags = sorted(t.hex() for t in selector.tags) if selector.tags is not None else []
    scopes: dict[str, _Scope] = {}

    def of(scope_hex: str) -> _Scope:
        sets = scopes.get(scope_hex)
        if sets is None:
            tag_sets = [f"{prefix}:{{{scope_hex}}}:t:{t}" for t in tags]
            sets = scopes[scope_hex] = _Scope([], tag_sets)
        return sets

    if _by_partition(selector):
        model = "*" if selector.model is None else selector.model.hex()
        namespace = "*" if selector.namespace is None else selector.namespace.hex()
        pattern = f"{prefix}:{{{scope or '*'}}}:p:{model}:{namespace}"
        found = [pattern] if "*" not in pattern else (yield Scan(pattern))
        for name in _names(found):
            of(_scope_of(prefix, name)).partitions.append(name)
    elif scope is not None:  # tags in one scope: their sets are named
        of(scope)
    else:
        wanted = set(tags)
        for name in _names((yield Scan(f"{prefix}:{{*}}:t:*"))):
            if name.rsplit(":", 1)[-1] in wanted:
                of(_scope_of(prefix, name))
    return scopes


def _old_enough(
    doomed: list[tuple[list[bytes], list[str]]], cutoff: float, payload_of: PayloadOf
) -> Generator[Scan | Pipe, list[Any], list[tuple[list[bytes], list[str]]]]:
    """Keep the entries created at or before ``cutoff``, and the names whose entry is gone
    (so the script removes them from the sets); leave younger and undecodable ones."""
    kept: list[tuple[list[bytes], list[str]]] = []
    for names, sets in doomed:
        old: list[bytes] = []
        for batch in _chunks(names):
            values = yield Pipe([("GET", name) for name in batch])
            old.extend(
                name
                for name, raw in zip(batch, values, strict=True)
                if _older(raw, cutoff, payload_of)
            )
        if old:
            kept.append((old, sets))
    return kept


def _older(raw: bytes | None, cutoff: float, payload_of: PayloadOf) -> bool:
    if raw is None:
        return True  # gone: only its stale index records go
    payload = payload_of(raw)
    if payload is None:  # not our layout: left for ``get`` to judge
        return False
    try:
        return decode(payload).created_at <= cutoff
    except CodecError:
        return False


def _names(found: list[Any]) -> list[str]:
    """Decoded, without the duplicates SCAN may return."""
    return list(dict.fromkeys(n.decode() if isinstance(n, bytes) else str(n) for n in found))


def _scope_of(prefix: str, name: str) -> str:
    start = len(prefix) + 2  # "<prefix>:{"
    return name[start : start + _SCOPE_HEX]


def _union(members: dict[str, Any], names: list[str]) -> set[bytes]:
    out: set[bytes] = set()
    for name in names:
        out.update(members[name])
    return out


def _chunks(names: list[bytes]) -> list[list[bytes]]:
    return [names[i : i + BATCH] for i in range(0, len(names), BATCH)]


# ---------------------------------------------------------------------------- drivers (I/O)
def run_sync(client: Any, plan: Plan) -> int:
    try:
        op = next(plan)
        while True:
            if isinstance(op, Scan):
                result = list(client.scan_iter(match=op.pattern, count=BATCH))
            else:
                pipe = client.pipeline(transaction=False)
                for command in op.commands:
                    pipe.execute_command(*command)
                result = pipe.execute()
            op = plan.send(result)
    except StopIteration as done:
        return int(done.value)


async def run_async(client: Any, plan: Plan) -> int:
    try:
        op = next(plan)
        while True:
            if isinstance(op, Scan):
                result = [name async for name in client.scan_iter(match=op.pattern, count=BATCH)]
            else:
                pipe = client.pipeline(transaction=False)
                for command in op.commands:
                    pipe.execute_command(*command)
                result = await pipe.execute()
            op = plan.send(result)
    except StopIteration as done:
        return int(done.value)
