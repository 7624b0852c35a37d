"""The Redis tier's invalidation: entries found through its index sets, removed in batches.

Every stored entry is listed in its partition set ``<prefix>:{<scope>}:p:<model>:<namespace>``
and in one set per tag ``<prefix>:{<scope>}:t:<tag>`` (written atomically with the entry; see
redis.py). An invalidation

1. finds the index sets to read: named directly when the selector fixes every part of their
   name, else by SCAN with this prefix (never KEYS; a Cluster client scans every primary), with
   a pattern of hex digests and ``*``, which can match no other prefix's keys;
2. reads the tag sets (or, without tags, the partition sets) a page at a time (SSCAN,
   pipelined over many scopes); with tags and a model/namespace too, keeps the entries one of
   their scope's selected partitions lists (SMISMEMBER);
3. for ``older_than``, reads those entries (GET, pipelined) and keeps the ones created at or
   before the cutoff (a value that does not decode is left alone: its next ``get`` deletes it);
4. per scope, one Lua script per batch UNLINKs the entries and SREMs them from the sets it
   reads, atomically (the store script can't interleave: an entry stored again meanwhile is
   either removed with its index records or kept with them). It counts the entries removed;
   names in a set whose entry is already gone are removed from the set and not counted.

A set not read keeps the names of entries removed through another one (removing an entry by
tag leaves it in its partition set) until that set is read by an invalidation or expires (a
set lives as long as its longest-lived entry). Those names cost memory only: a name without
its entry is never served and never counted.

Selecting only a scope is ``clear(scope)``, which needs no index (the tier calls it).

Bounds: index sets are read for ``SCOPES_PER_ROUND`` scopes at a time, a page of about
``BATCH`` names per set per round trip, and each page is removed before the next is read, so
memory stays bounded however large a set is. (SSCAN may return a name twice, or a name it
already removed: UNLINK then returns 0 and nothing is counted twice.)

The logic is one generator plan, written once; ``run_sync`` and ``run_async`` only do I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, NamedTuple, TypeVar

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


class Primaries(NamedTuple):
    """The driver sends back the names of the primaries to SCAN ([""]: not a Cluster)."""


class ScanNode(NamedTuple):
    """One SCAN call on one primary; the driver sends back (next cursor, names). A listing
    walks a store one bounded call at a time (redis_listing.py)."""

    node: str
    cursor: int
    pattern: str
    batch: int


#: The kinds of key written under a scope's tag (redis.py): entry, tag set, partition set,
#: flight lock.
KEY_KINDS = "etpf"
#: A glob of a scope digest in hex (16 bytes): patterns match our keys, not an app's
#: "<prefix>:{session-42}:cart" beside them.
ANY_SCOPE_HEX = "[0-9a-f]" * _SCOPE_HEX

T = TypeVar("T")
Plan = Generator[Scan | Pipe, list[Any], int]
AnyPlan = Generator[Scan | Pipe | Primaries | ScanNode, Any, T]
#: The encoded entry of a stored value (header removed, opened when sealed) from its key
#: name and value, or None when it is not one the tier can read: see RedisTier._aged.
PayloadOf = Callable[[bytes, bytes], bytes | None]


class _Scope(NamedTuple):
    partitions: list[str]  # partition sets to read (empty in tag mode)
    tag_sets: list[str]

    @property
    def index_sets(self) -> list[str]:
        return [*self.partitions, *self.tag_sets]


Doomed = list[tuple[list[bytes], _Scope]]  # entry keys to remove, and their scope's index sets


def invalidate_plan(prefix: str, selector: Selector, now: float, payload_of: PayloadOf) -> Plan:
    """Remove what ``selector`` matches under ``prefix``; returns the entries removed."""
    scopes = yield from _index_sets(prefix, selector)
    cutoff = selector.cutoff(now)
    by_tags = selector.tags is not None
    both = by_tags and _by_partition(selector)
    removed = 0
    items = sorted(scopes.items())
    for start in range(0, len(items), SCOPES_PER_ROUND):
        # The sets being read, a page (SSCAN) at a time: (set, its scope's sets, cursor).
        reading = [
            (name, sets, 0)
            for _, sets in items[start : start + SCOPES_PER_ROUND]
            for name in (sets.tag_sets if by_tags else sets.partitions)
        ]
        while reading:
            pages = yield Pipe(
                [("SSCAN", name, cursor, "COUNT", BATCH) for name, _, cursor in reading]
            )
            doomed: Doomed = []
            following = []
            for (name, sets, _), (cursor, members) in zip(reading, pages, strict=True):
                if int(cursor):
                    following.append((name, sets, int(cursor)))
                if members:
                    doomed.append((sorted(members), sets))
            reading = following
            if both:  # listed by a tag set: kept if its partition is selected too
                doomed = yield from _in_partitions(doomed)
            if cutoff is not None:
                doomed = yield from _old_enough(doomed, cutoff, payload_of)
            scripts = [
                ("EVAL", _UNLINK_INDEXED, len(batch) + len(sets.index_sets), *batch,
                 *sets.index_sets, len(batch))
                for names, sets in doomed
                for batch in _chunks(names)
            ]  # fmt: skip
            if scripts:
                removed += sum(int(r) for r in (yield Pipe(scripts)))
    return removed


def _in_partitions(doomed: Doomed) -> Generator[Scan | Pipe, list[Any], Doomed]:
    """Keep the entries that one of their scope's selected partition sets lists."""
    checks = [(i, p) for i, (_, sets) in enumerate(doomed) for p in sets.partitions]
    if not checks:
        return []
    answers = yield Pipe([("SMISMEMBER", p, *doomed[i][0]) for i, p in checks])
    listed: list[set[bytes]] = [set() for _ in doomed]
    for (i, _), flags in zip(checks, answers, strict=True):
        names = doomed[i][0]
        listed[i].update(name for name, flag in zip(names, flags, strict=True) if int(flag))
    return [
        (kept, sets)
        for (names, sets), found in zip(doomed, listed, strict=True)
        if (kept := [n for n in names if n in found])
    ]


def partition_pattern(prefix: str, selector: Selector) -> str:
    """The partition sets ``selector`` reads: a SCAN pattern of hex digests and ``*``, or one
    set's name when ``names_one_set``."""
    scope = ANY_SCOPE_HEX if selector.scope is None else selector.scope.hex()
    model = "*" if selector.model is None else selector.model.hex()
    namespace = "*" if selector.namespace is None else selector.namespace.hex()
    return f"{prefix}:{{{scope}}}:p:{model}:{namespace}"


def names_one_set(selector: Selector) -> bool:
    """Whether ``partition_pattern`` is a set's name (scope, model and namespace all fixed)."""
    return None not in (selector.scope, selector.model, selector.namespace)


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
        pattern = partition_pattern(prefix, selector)
        found = [pattern] if names_one_set(selector) else (yield Scan(pattern))
        for name in _names(found):
            of(_scope_of(prefix, name)).partitions.append(name)
    elif scope is not None:  # tags in one scope: their sets are named
        of(scope)
    else:
        wanted = set(tags)
        for name in _names((yield Scan(f"{prefix}:{{{ANY_SCOPE_HEX}}}:t:*"))):
            if name.rsplit(":", 1)[-1] in wanted:
                of(_scope_of(prefix, name))
    return scopes


def _old_enough(
    doomed: Doomed, cutoff: float, payload_of: PayloadOf
) -> Generator[Scan | Pipe, list[Any], Doomed]:
    """Keep the entries created at or before ``cutoff``, and the names whose entry is gone
    (so the script removes them from the sets); leave younger and undecodable ones."""
    names = [name for batch, _ in doomed for name in batch]
    values: list[Any] = []
    for chunk in _chunks(names):
        values.extend((yield Pipe([("GET", name) for name in chunk])))
    found = zip(names, values, strict=True)
    old = {name for name, raw in found if _older(name, raw, cutoff, payload_of)}
    return [(kept, sets) for batch, sets in doomed if (kept := [n for n in batch if n in old])]


def _older(name: bytes, raw: bytes | None, cutoff: float, payload_of: PayloadOf) -> bool:
    if raw is None:
        return True  # gone: only its stale index records go
    payload = payload_of(name, raw)
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


def _chunks(names: list[bytes]) -> list[list[bytes]]:
    return [names[i : i + BATCH] for i in range(0, len(names), BATCH)]


# ---------------------------------------------------------------------------- drivers (I/O)
def run_sync(client: Any, plan: AnyPlan[T]) -> T:
    try:
        op = next(plan)
        while True:
            if isinstance(op, Scan):
                result: Any = list(client.scan_iter(match=op.pattern, count=BATCH))
            elif isinstance(op, ScanNode):
                result = _scanned(op, client.scan(**_scan_node_args(client, op)))
            elif isinstance(op, Primaries):
                result = _primaries(client)
            else:
                pipe = client.pipeline(transaction=False)
                for command in op.commands:
                    pipe.execute_command(*command)
                result = pipe.execute()
            op = plan.send(result)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def run_async(client: Any, plan: AnyPlan[T]) -> T:
    try:
        op = next(plan)
        while True:
            if isinstance(op, Scan):
                result: Any = [n async for n in client.scan_iter(match=op.pattern, count=BATCH)]
            elif isinstance(op, ScanNode):
                result = _scanned(op, await client.scan(**_scan_node_args(client, op)))
            elif isinstance(op, Primaries):
                if hasattr(client, "get_primaries"):  # an async Cluster learns its nodes here
                    await client.initialize()
                result = _primaries(client)
            else:
                pipe = client.pipeline(transaction=False)
                for command in op.commands:
                    pipe.execute_command(*command)
                result = await pipe.execute()
            op = plan.send(result)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


# One SCAN call on one primary: a Cluster client's is aimed at the node by name and answers
# ({node name: cursor}, names); a plain client's (node "") answers (cursor, names).
def _scan_node_args(client: Any, op: ScanNode) -> dict[str, Any]:
    args: dict[str, Any] = {"cursor": op.cursor, "match": op.pattern, "count": op.batch}
    if op.node:
        args["target_nodes"] = client.get_node(node_name=op.node)
    return args


def _scanned(op: ScanNode, reply: Any) -> tuple[int, list[Any]]:
    cursor, names = reply
    if isinstance(cursor, dict):
        cursor = cursor.get(op.node, 0)
    return int(cursor), list(names)


def _primaries(client: Any) -> list[str]:
    """The names of the primaries to SCAN: a Cluster's, or [""] for a plain client."""
    if not hasattr(client, "get_primaries"):
        return [""]
    return [str(node.name) for node in client.get_primaries()]
