"""A broken Redis Cluster never fails a call. Each test starts its own cluster (3 primaries,
3 replicas, on spare loopback ports, in a temp dir: the shared one on 7101-7103 has no
replicas and other tests use it) and breaks it for real:

- a primary killed while its replica may not take over: its slots are unavailable. Calls on
  keys there still return the model's answer, the fault is logged once and counted, the
  breaker skips the tier, and once it probes again the tier serves keys of the other slots
  (the nodes run with ``cluster-require-full-coverage no``, as a cache's cluster should);
- a primary killed and its replica promoted: the tier serves again, the entries stored
  before included, without a new Cache.

An entry's key carries its scope's hash tag, so each scope lives in one slot: the tests pick
scopes whose slots are on the primary they kill, or on another one. Nodes detect a failure
after ``cluster-node-timeout`` (1 s); everything waits by polling, bounded.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot
from test_redis_faults import Answering, record_outage  # the same model and figures

from langchain_llmcache import LangChainCache
from llmcache import Cache, CacheRequest, FakeClock, scope
from llmcache.keys import request_key
from llmcache.request import Scope
from llmcache.tiers.redis import RedisTier

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None or shutil.which("redis-cli") is None,
    reason="redis-server / redis-cli are not installed",
)

TIER = "redis-cluster"
START_SECONDS = 20.0  # six nodes up, slots assigned, replicas in sync: a few seconds
FAILOVER_SECONDS = 20.0  # node timeout 1 s, then an election: a few seconds
RECOVERY_SECONDS = 5.0  # the bound, from the promotion to the tier serving again


def spare_cluster_port(taken: set[int]) -> int:
    """A free port whose cluster bus port (+10000) is free too, neither of them among
    ``taken`` (the ports of nodes just started, which may not have bound them yet)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + 10000 > 65535 or {port, port + 10000} & taken:
            continue
        try:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no spare port pair for a cluster node")


def wait_for(condition: Any, what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if condition():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


@dataclass
class Node:
    port: int
    proc: subprocess.Popen[bytes] | None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, decode_responses=True)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


class OwnCluster:
    """Six redis-server nodes this test owns, made a cluster with one replica per primary."""

    def __init__(self, workdir: Path) -> None:
        self.nodes: list[Node] = []
        taken: set[int] = set()
        try:
            for _ in range(6):
                port = spare_cluster_port(taken)
                taken |= {port, port + 10000}
                node_dir = workdir / str(port)
                node_dir.mkdir()
                proc = subprocess.Popen(
                    ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                     "--dir", str(node_dir), "--save", "", "--appendonly", "no",
                     "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--cluster-node-timeout", "1000",
                     "--cluster-require-full-coverage", "no",
                     "--cluster-replica-validity-factor", "0",
                     "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
                self.nodes.append(Node(port, proc))
            for node in self.nodes:
                wait_for(lambda n=node: n.client().ping(), f"node {node.port}", START_SECONDS)
            subprocess.run(
                ["redis-cli", "--cluster", "create",
                 *(f"127.0.0.1:{n.port}" for n in self.nodes),
                 "--cluster-replicas", "1", "--cluster-yes"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
            )  # fmt: skip
            wait_for(self.healthy, "the cluster to be ok with every replica in sync", START_SECONDS)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.proc is not None]

    def node(self, port: int) -> Node:
        return next(n for n in self.nodes if n.port == port)

    def healthy(self) -> bool:
        for node in self.live():
            with node.client() as client:
                if client.cluster("info")["cluster_state"] != "ok":
                    return False
                info = client.info("replication")
                if info["role"] == "slave" and info["master_link_status"] != "up":
                    return False
        return len(self.primaries()) == 3

    def primaries(self) -> set[int]:
        """The ports of the primaries that own slots, as a live node sees them."""
        with self.live()[0].client() as client:
            slots = client.execute_command("CLUSTER", "SLOTS")
        return {int(row[2][1]) for row in slots}

    def primary_of(self, slot: int) -> int:
        with self.live()[0].client() as client:
            for row in client.execute_command("CLUSTER", "SLOTS"):
                if int(row[0]) <= slot <= int(row[1]):
                    return int(row[2][1])
        raise AssertionError(f"slot {slot} has no primary")

    def replica_of(self, primary: int) -> int:
        with self.node(primary).client() as client:
            replicas = client.info("replication")
        return int(replicas["slave0"]["port"])

    def role(self, port: int) -> str:
        with self.node(port).client() as client:
            return str(client.execute_command("ROLE")[0])

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[OwnCluster]:
    own = OwnCluster(tmp_path)
    yield own
    own.stop()


def slot_of(tier: RedisTier, request: CacheRequest) -> int:
    return key_slot(tier.entry_key(request_key(request)).encode())


def scope_on(tier: RedisTier, cluster: OwnCluster, *, on: int | None, off: int | None) -> str:
    """A user id whose entries live on primary ``on`` (or on any primary but ``off``)."""
    for i in range(10_000):
        user = f"user-{i}"
        slot = slot_of(tier, CacheRequest(model="m", prompt="p", scope=Scope.of(user=user)))
        primary = cluster.primary_of(slot)
        if (on is None or primary == on) and primary != off:
            return user
    raise AssertionError("no scope found on the wanted primary")


def failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "llmcache" and f"tier {TIER} failed" in r.getMessage()
    ]


def stored_in_redis(cache: Cache, request: CacheRequest) -> bool:
    found = cache.get(request)
    return found is not None and found.tier == TIER


# ---------------------------------------------------------------------------- a primary down
def test_a_primary_down_fails_open_and_the_other_slots_are_served(
    cluster: OwnCluster, caplog: pytest.LogCaptureFixture
) -> None:
    tier = RedisTier.from_url(cluster.url)
    breaker_clock = FakeClock()  # the breaker's cool-down passes when the test says so
    cache = Cache([tier], monotonic=breaker_clock)
    llm = Answering(cache=LangChainCache(cache))
    victim = cluster.primary_of(0)
    dead_user = scope_on(tier, cluster, on=victim, off=None)
    live_user = scope_on(tier, cluster, on=None, off=victim)
    live_request = CacheRequest(model="m", prompt="kept", scope=Scope.of(user=live_user))
    cache.set(live_request, "kept answer")
    with scope(user=dead_user):
        assert llm.invoke("before") == "answer to before"
    assert stored_in_redis(cache, live_request)
    # The victim's replica may not take over: its slots stay unavailable.
    with cluster.node(cluster.replica_of(victim)).client() as replica:
        replica.config_set("cluster-replica-no-failover", "yes")
    cluster.node(victim).stop()

    with caplog.at_level(logging.WARNING, logger="llmcache"), scope(user=dead_user):
        answers = [llm.invoke(f"q{i}") for i in range(10)]
        unreachable = llm.invoke("before")
        assert unreachable == "answer to before"  # its entry is unreachable
    assert answers == [f"answer to q{i}" for i in range(10)]
    assert llm.calls == 1 + 10 + 1
    assert len(failures(caplog)) == 1, failures(caplog)  # once per outage, not per call
    log_lines = len(failures(caplog))  # the "still down" below is a second outage
    stats = cache.stats()
    assert stats["errors_by_tier"][TIER] >= 1
    assert stats["breakers"][TIER] == "open"

    # The breaker probes after its cool-down; keys in the other slots are served again.
    def live_slot_served() -> bool:
        breaker_clock.advance(5)
        return stored_in_redis(cache, live_request)

    probing = time.monotonic()
    wait_for(live_slot_served, "a key of a live primary to be served", RECOVERY_SECONDS)
    other_slots_after = round(time.monotonic() - probing, 2)
    assert stored_in_redis(cache, live_request)
    with scope(user=live_user):
        assert llm.invoke("on a live primary") == "answer to on a live primary"
        assert llm.invoke("on a live primary") == "answer to on a live primary"
    assert llm.calls == 13  # the second one was a hit
    with scope(user=dead_user):
        assert llm.invoke("still down") == "answer to still down"  # fails open again
    record_outage(
        "Cluster primary down, no failover (LangChain invoke)",
        [*answers, unreachable],
        [*(f"q{i}" for i in range(10)), "before"],
        log_lines_per_outage=log_lines,
        seconds_until_other_slots_hit=other_slots_after,
    )
    cache.close()


async def test_a_primary_down_fails_open_through_ainvoke(
    cluster: OwnCluster, caplog: pytest.LogCaptureFixture
) -> None:
    tier = RedisTier.from_url(cluster.url)
    cache = Cache([tier], monotonic=FakeClock())
    llm = Answering(cache=LangChainCache(cache))
    victim = cluster.primary_of(0)
    dead_user = scope_on(tier, cluster, on=victim, off=None)
    with scope(user=dead_user):
        assert await llm.ainvoke("before") == "answer to before"
        assert await llm.ainvoke("before") == "answer to before"
    assert llm.calls == 1  # served by the cluster (async path)
    with cluster.node(cluster.replica_of(victim)).client() as replica:
        replica.config_set("cluster-replica-no-failover", "yes")
    cluster.node(victim).stop()
    with caplog.at_level(logging.WARNING, logger="llmcache"), scope(user=dead_user):
        answers = [await llm.ainvoke(f"q{i}") for i in range(10)]
    assert answers == [f"answer to q{i}" for i in range(10)]
    assert len(failures(caplog)) == 1, failures(caplog)
    assert cache.stats()["errors_by_tier"][TIER] >= 1
    record_outage(
        "Cluster primary down, no failover (LangChain ainvoke)",
        answers,
        [f"q{i}" for i in range(10)],
        log_lines_per_outage=len(failures(caplog)),
    )
    await cache.aclose()


# ---------------------------------------------------------------------------- failover
def test_a_failover_is_survived_without_a_new_cache(
    cluster: OwnCluster, caplog: pytest.LogCaptureFixture
) -> None:
    tier = RedisTier.from_url(cluster.url)
    cache = Cache([tier])  # real clocks: the breaker probes for real
    llm = Answering(cache=LangChainCache(cache))
    victim = cluster.primary_of(0)
    user = scope_on(tier, cluster, on=victim, off=None)
    before = CacheRequest(model="m", prompt="stored before", scope=Scope.of(user=user))
    cache.set(before, "kept across the failover")
    with cluster.node(victim).client() as primary:
        assert primary.execute_command("WAIT", 1, 2000) == 1  # the replica has it
    replica = cluster.replica_of(victim)
    killed_at = time.monotonic()
    cluster.node(victim).stop()

    with caplog.at_level(logging.WARNING, logger="llmcache"):
        with scope(user=user):
            during = llm.invoke("during")
            assert during == "answer to during"  # fails open meanwhile
        wait_for(lambda: cluster.role(replica) == "master", "the replica's promotion",
                 FAILOVER_SECONDS)  # fmt: skip
        promoted_at = time.monotonic()
        wait_for(lambda: stored_in_redis(cache, before), "the tier to serve again",
                 RECOVERY_SECONDS)  # fmt: skip
        served_at = time.monotonic()
    found = cache.get(before)
    assert found is not None and found.entry.value == "kept across the failover"
    with scope(user=user):
        assert llm.invoke("after") == "answer to after"
        assert llm.invoke("after") == "answer to after"
    assert llm.calls == 2  # "during" and the first "after": the second was a hit
    with cluster.node(replica).client() as promoted:
        assert promoted.dbsize() >= 2  # the new primary holds the stores
    assert cache.stats()["breakers"][TIER] == "closed"
    record_outage(
        "Cluster primary killed, replica promoted (same Cache)",
        [during],
        ["during"],
        log_lines_per_outage=len(failures(caplog)),
        entries_lost=0 if found.entry.value == "kept across the failover" else 1,
        seconds_until_promotion=round(promoted_at - killed_at, 2),
        seconds_until_hits_after_promotion=round(served_at - promoted_at, 2),
    )
    cache.close()
