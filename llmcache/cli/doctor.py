"""``llmcache doctor``: check each configured tier (reachable, latency, schema, modules)."""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from llmcache.cache import Cache
from llmcache.cli.existing import check_exists, open_existing
from llmcache.diagnose import describe_tier
from llmcache.keys import CacheKey
from llmcache.redact import describe_error
from llmcache.semantic.embedders import identity_of

PROBES = 5
_SQL_SCHEMES = ("sqlite", "mysql", "mariadb", "postgresql", "postgres")
#: Vectors whose entries the consistency check looks up (one lookup each, per tier).
CONSISTENCY_SAMPLE = 200


def run_doctor(urls: Sequence[str], semantic: str | None) -> dict[str, Any]:
    """The doctor's findings; ``ok`` is False when a tier is unreachable or has a problem."""
    # The findings carry each failure's reason; the cache's own outage warnings would repeat
    # them on stderr (restored afterwards: the doctor may run inside another program).
    logger = logging.getLogger("llmcache")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return _examine(urls, semantic)
    finally:
        logger.setLevel(level)


def _examine(urls: Sequence[str], semantic: str | None) -> dict[str, Any]:
    check_exists(urls, semantic)  # before reading a version: SQLite creates a missing file
    found = _schema_versions(urls)  # before opening: an SQL tier migrates its store on open
    cache = open_existing(urls, semantic=semantic, encryption=False)
    try:
        rounds = [cache.health(probe=True)["tiers"] for _ in range(PROBES)]
        tiers = []
        for tier in cache.tiers:
            probes = [r[tier.name] for r in rounds]
            reachable = all(p["reachable"] for p in probes)
            tiers.append(
                {
                    "tier": tier.name,
                    "reachable": reachable,
                    "latency_ms": statistics.median(p["latency_ms"] for p in probes),
                    **describe_tier(tier),  # an unreachable tier says why in "problem"
                }
            )
            if tiers[-1].get("kind") == "sql" and found.get(len(tiers) - 1) is not None:
                _opened(tiers[-1], found[len(tiers) - 1])
        if cache.semantic is not None:
            tiers.append(_check_semantic(cache))
    finally:
        cache.close()
    ok = all(t["reachable"] and "problem" not in t for t in tiers)
    return {"ok": ok, "tiers": tiers}


def _schema_versions(urls: Sequence[str]) -> dict[int, int]:
    """The schema version of each SQL store among ``urls`` (by position) as it is before the
    doctor opens the cache; a store that cannot be read now is left out (its row says why)."""
    from llmcache.tiers.sql_engine import create_sync_engine
    from llmcache.tiers.sql_schema import build_tables, read_version
    from llmcache.tiers.sql_url import parse_sql_url

    versions: dict[int, int] = {}
    for position, url in enumerate(urls):
        scheme = url.strip().split(":", 1)[0].split("+", 1)[0].lower()
        if scheme not in _SQL_SCHEMES:
            continue
        try:
            target = parse_sql_url(url.strip())
            engine = create_sync_engine(target)
            try:
                with engine.connect() as conn:
                    versions[position] = read_version(conn, build_tables(target.table_prefix))
            finally:
                engine.dispose()
        except Exception:  # noqa: S112 - opening the cache reports it on the tier's row
            continue
    return versions


def _opened(facts: dict[str, Any], before: int) -> None:
    """Report an SQL store as the doctor found it, not as opening it left it."""
    latest = facts["schema_supported"]
    if before >= facts["schema_version"]:
        return
    facts["schema_version"] = before
    facts.pop("note", None)
    if before == 0:
        facts["note"] = f"held no llmcache tables: opening it created them (schema {latest})"
    else:
        facts["note"] = f"schema {before} was migrated to {latest} when the doctor opened it"


def _check_semantic(cache: Cache) -> dict[str, Any]:
    """Is the semantic index consistent with the exact tiers? Samples indexed vectors and
    checks that each one's entry is still held by some exact tier: a vector whose entry is
    gone (a memory-only cache restarted over a persistent index, entries removed behind the
    index's back) is never served, but it is an index out of step with its cache."""
    semantic = cache.semantic
    assert semantic is not None
    found: dict[str, Any] = {"tier": f"semantic ({semantic.index.name})"}
    started = time.perf_counter()
    try:
        keys = semantic.sample_keys(CONSISTENCY_SAMPLE)
    except Exception as exc:  # an unreachable index is what the doctor reports
        return {**found, "reachable": False, "latency_ms": 0.0, "problem": describe_error(exc)}
    found.update(reachable=True, latency_ms=(time.perf_counter() - started) * 1000)
    found["embedder"] = identity_of(semantic.embedder)
    now = cache.clock()
    try:  # what only a search checks (redisvl: that the index holds this embedder's vectors)
        semantic.search(bytes(16), _probe_vector(semantic.index.dim), 1, now)
    except Exception as exc:
        return {**found, "problem": describe_error(exc)}
    orphans = sum(1 for key in keys if not _held(cache, key, now))
    found.update(vectors_checked=len(keys), vectors_without_entry=orphans)
    if orphans:
        found["problem"] = (
            f"{orphans} of {len(keys)} sampled vectors point at entries no exact tier holds "
            "(the index is out of step with the cache: expired or removed entries, or a "
            "memory-only cache over a persistent index); they are never served"
        )
    return found


def _probe_vector(dim: int) -> Any:
    import numpy as np

    vector = np.zeros(dim, dtype=np.float32)
    vector[0] = 1.0
    return vector


def _held(cache: Cache, key: CacheKey, now: float) -> bool:
    for tier in cache.tiers:
        try:
            if tier.get(key, now) is not None:
                return True
        except Exception:  # noqa: S112 - an unreachable tier is reported on its own row
            continue
    return False


def show_doctor(report: dict[str, Any], console: Console) -> None:
    table = Table(title="llmcache doctor")
    for column in ("tier", "reachable", "latency", "details"):
        table.add_column(column)
    for tier in report["tiers"]:
        details = {k: v for k, v in tier.items() if k not in ("tier", "reachable", "latency_ms")}
        table.add_row(
            tier["tier"],
            "yes" if tier["reachable"] else "[red]NO[/red]",
            f"{tier['latency_ms']:.2f} ms",
            ", ".join(f"{k}={v}" for k, v in details.items()),
        )
    console.print(table)
    console.print("all good" if report["ok"] else "[red]problems found[/red]")
