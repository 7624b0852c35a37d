"""What ``llmcache doctor`` checks on each configured tier, beyond reachability and latency.

Per kind of tier: an SQL store's schema version against the newest this llmcache knows
(and whether it must be migrated), a Redis server's version, role and modules (redisvl's
semantic tier needs the search and JSON modules), a memory tier's size. Each check returns
plain data; a check that fails says why in ``problem`` instead of raising.
"""

from __future__ import annotations

from typing import Any

from llmcache.redact import describe_error
from llmcache.tiers.base import Tier
from llmcache.tiers.memory import MemoryTier


def describe_tier(tier: Tier) -> dict[str, Any]:
    """Facts about ``tier`` for the doctor (never raises: a failed check is a ``problem``)."""
    try:
        if isinstance(tier, MemoryTier):
            return {"kind": "memory", "entries": len(tier)}
        kind = type(tier).__name__
        if kind == "SqlTier":
            return _describe_sql(tier)
        if kind == "RedisTier":
            return _describe_redis(tier)
        return {"kind": kind}
    except Exception as exc:
        return {"kind": type(tier).__name__, "problem": describe_error(exc)}


def _describe_sql(tier: Any) -> dict[str, Any]:
    from llmcache.tiers.sql_schema import MIGRATIONS, read_version

    latest = MIGRATIONS[-1].version
    with tier.engine.connect() as conn:
        version = read_version(conn, tier.tables)
    facts: dict[str, Any] = {
        "kind": "sql",
        "dialect": tier.engine.dialect.name,
        "schema_version": version,
        "schema_supported": latest,
    }
    if version > latest:
        facts["problem"] = (
            f"schema {version} was written by a newer llmcache (this one reads up to {latest}): "
            "upgrade llmcache"
        )
    elif version < latest:
        facts["note"] = f"schema {version} will be migrated to {latest} on first use"
    return facts


def _describe_redis(tier: Any) -> dict[str, Any]:
    client = tier._sync()  # the tier's own client (same URL, options and credentials)
    info = client.info("server")
    if isinstance(info, dict) and "redis_version" not in info:  # Cluster: per node
        info = next(iter(info.values()))
    replication = client.info("replication")
    if isinstance(replication, dict) and "role" not in replication:
        replication = next(iter(replication.values()))
    modules = client.module_list() or []
    if isinstance(modules, dict):  # Cluster: per node
        modules = next(iter(modules.values()), [])
    names = sorted(_text(m.get(b"name", m.get("name", ""))) for m in modules)
    return {
        "kind": tier.target.kind,
        "server_version": info.get("redis_version"),
        "role": replication.get("role"),
        "modules": names,
        "semantic_ready": {"search", "ReJSON"} <= set(names),
        "prefix": tier.prefix,
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
