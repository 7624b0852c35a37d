"""Side by side on Redis through ``llm.invoke``/``ainvoke``: LangChain's Redis caches and ours.

One process, one run, the same prompts for every contender, interleaved rounds (the order of
the contenders is shuffled every round), a zero-cost fake chat model so what is measured is
the cache. Every anchor is paired with our redis tier (alone, no memory tier in front) on the
same server:

- plain Redis (default ``redis://127.0.0.1:6379/9``): LangChain-community ``RedisCache`` (sync
  client; ``ainvoke`` runs it in LangChain's executor) and ``AsyncRedisCache`` (redis.asyncio);
- Redis Stack (default ``redis://127.0.0.1:6380/0``, skipped with a note when unreachable):
  langchain-redis ``RedisCache`` (RedisJSON; sync client, executor for ``ainvoke``).

For each contender: µs per call on a hit and on a miss that stores, through ``invoke`` and
``ainvoke``; hit throughput (calls/s) with 16 threads calling ``invoke`` and with 64 asyncio
tasks calling ``ainvoke``; then the ratios ours/theirs against the issue's targets.

A "floor" contender shows what any Redis cache must cost here: LangChain's InMemoryCache
plus one Redis round trip per lookup and one per store (a GET and a SET of a fixed small key,
on the same server), so no serialization and no key of its own. Under it no cache that reads
Redis on a hit can go.

    python benchmarks/bench_redis.py
    python benchmarks/bench_redis.py --rounds 15 --calls 200 --markdown benchmarks/results/redis.md

Only keys the run wrote are deleted afterwards (ours by prefix, langchain-redis by prefix,
LangChain-community's, which have no prefix, one by one from the names it was given).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import socket
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis
import redis.asyncio as aioredis
from _fake_models import ZeroCostChat
from langchain_core.caches import BaseCache

from langchain_llmcache import LangChainCache
from llmcache import Cache

THREADS = 16
TASKS = 64


@dataclass
class Contender:
    name: str
    server: str
    cache: BaseCache | bool
    sync: bool = True  # False: this cache has no sync path (AsyncRedisCache)
    model: ZeroCostChat = field(init=False)
    hit_us: list[float] = field(default_factory=list)
    miss_us: list[float] = field(default_factory=list)
    ahit_us: list[float] = field(default_factory=list)
    amiss_us: list[float] = field(default_factory=list)
    threads_cps: list[float] = field(default_factory=list)
    tasks_cps: list[float] = field(default_factory=list)
    # CPU time of this process per call (excludes waiting for Redis and for a busy CPU).
    hit_cpu: list[float] = field(default_factory=list)
    miss_cpu: list[float] = field(default_factory=list)
    ahit_cpu: list[float] = field(default_factory=list)
    amiss_cpu: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.model = ZeroCostChat(cache=self.cache)


def reachable(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=0.5) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def community_caches(url: str, written: set[str]) -> tuple[BaseCache, BaseCache]:
    """LangChain-community's RedisCache and AsyncRedisCache; the keys they store are recorded
    (a set add per store) so that only those are deleted afterwards."""
    from langchain_community.cache import AsyncRedisCache, RedisCache

    class Recorded(RedisCache):
        def update(self, prompt: str, llm_string: str, return_val: Any) -> None:
            written.add(self._key(prompt, llm_string))
            super().update(prompt, llm_string, return_val)

    class ARecorded(AsyncRedisCache):
        async def aupdate(self, prompt: str, llm_string: str, return_val: Any) -> None:
            written.add(self._key(prompt, llm_string))
            await super().aupdate(prompt, llm_string, return_val)

    return Recorded(redis.Redis.from_url(url)), ARecorded(aioredis.Redis.from_url(url))


def _resp(*parts: bytes) -> bytes:
    """One command in Redis's wire protocol (RESP), packed once."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def _reply_done(buffer: bytes) -> bool:
    """Whether ``buffer`` holds a whole simple reply (+OK, -ERR, :n, or a bulk $n string)."""
    head, sep, rest = buffer.partition(b"\r\n")
    if not sep:
        return False
    if head[:1] != b"$" or head == b"$-1":
        return True
    return len(rest) >= int(head[1:]) + 2


class OneRoundTripFloor(BaseCache):
    """InMemoryCache's dict plus one round trip to Redis per lookup and per store, on raw
    sockets with pre-packed commands (a GET and a SET of one small key): the least a cache
    that reads Redis on every hit and writes it on every store can cost (see the module
    docstring). Not a cache anyone should use: it only measures the wire."""

    def __init__(self, url: str, probe: str) -> None:
        parts = urlsplit(url)
        self._address = (parts.hostname or "127.0.0.1", parts.port or 6379)
        db = (parts.path or "/0").strip("/") or "0"
        self._hello = _resp(b"SELECT", db.encode())
        self._get = _resp(b"GET", probe.encode())
        self._set = _resp(b"SET", probe.encode(), b"1")
        self._store: dict[tuple[str, str], Any] = {}
        self._local = threading.local()  # a socket per thread
        self._streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    def _round_trip(self, packed: bytes) -> None:
        sock = getattr(self._local, "sock", None)
        if sock is None:
            sock = self._local.sock = socket.create_connection(self._address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._exchange(sock, self._hello)
        self._exchange(sock, packed)

    @staticmethod
    def _exchange(sock: socket.socket, packed: bytes) -> None:
        sock.sendall(packed)
        buffer = sock.recv(65536)
        while not _reply_done(buffer):
            buffer += sock.recv(65536)

    async def _around_trip(self, packed: bytes) -> None:
        # A stream per concurrent task, kept for the next call (list pop/append: one loop).
        if self._streams:
            reader, writer = self._streams.pop()
        else:
            reader, writer = await asyncio.open_connection(*self._address)
            writer.write(self._hello)
            await self._aread(reader)
        writer.write(packed)
        await self._aread(reader)
        self._streams.append((reader, writer))

    @staticmethod
    async def _aread(reader: asyncio.StreamReader) -> None:
        buffer = await reader.read(65536)
        while not _reply_done(buffer):
            buffer += await reader.read(65536)

    def lookup(self, prompt: str, llm_string: str) -> Any:
        self._round_trip(self._get)
        return self._store.get((prompt, llm_string))

    def update(self, prompt: str, llm_string: str, return_val: Any) -> None:
        self._round_trip(self._set)
        self._store[(prompt, llm_string)] = return_val

    async def alookup(self, prompt: str, llm_string: str) -> Any:
        await self._around_trip(self._get)
        return self._store.get((prompt, llm_string))

    async def aupdate(self, prompt: str, llm_string: str, return_val: Any) -> None:
        await self._around_trip(self._set)
        self._store[(prompt, llm_string)] = return_val

    def clear(self, **kwargs: Any) -> None:
        self._store.clear()

    async def aclose(self) -> None:
        for _, writer in self._streams:
            writer.close()
        self._streams.clear()


def build(args: argparse.Namespace) -> tuple[list[Contender], list[Callable[[], None]], str]:
    run_id = uuid.uuid4().hex[:8]
    contenders = [Contender("no cache", "-", False)]
    cleanups: list[Callable[[], None]] = []
    note = ""

    written: set[str] = set()
    sync_theirs, async_theirs = community_caches(args.redis_url, written)
    ours = Cache.from_urls([f"{args.redis_url}?prefix=bench{run_id}"])
    floor = OneRoundTripFloor(args.redis_url, f"bench{run_id}:floor")
    contenders += [
        Contender("floor: InMemoryCache + 1 round trip", "Redis", floor),
        Contender("LangChain-community RedisCache", "Redis", sync_theirs),
        Contender("LangChain-community AsyncRedisCache", "Redis", async_theirs, sync=False),
        Contender("llmcache redis", "Redis", LangChainCache(ours)),
    ]

    def drop_plain() -> None:
        ours.clear()
        ours.close()
        with redis.Redis.from_url(args.redis_url) as client:
            client.unlink(f"bench{run_id}:stats", f"bench{run_id}:floor")
            names = list(written)
            for start in range(0, len(names), 500):
                client.unlink(*names[start : start + 500])

    cleanups.append(drop_plain)

    if args.stack_url and reachable(args.stack_url):
        from langchain_redis import RedisCache as LangChainRedisCache

        stack_prefix = f"lcr{run_id}"
        theirs = LangChainRedisCache(redis_url=args.stack_url, prefix=stack_prefix)
        ours_stack = Cache.from_urls([f"{args.stack_url}?prefix=bench{run_id}"])
        contenders += [
            Contender("langchain-redis RedisCache", "Redis Stack", theirs),
            Contender("llmcache redis", "Redis Stack", LangChainCache(ours_stack)),
        ]

        def drop_stack() -> None:
            ours_stack.clear()
            ours_stack.close()
            with redis.Redis.from_url(args.stack_url) as client:
                client.unlink(f"bench{run_id}:stats")
                for name in client.scan_iter(match=f"{stack_prefix}:*", count=1000):
                    client.unlink(name)

        cleanups.append(drop_stack)
    else:
        note = f"Redis Stack not reachable at {args.stack_url!r}: langchain-redis not measured."
    return contenders, cleanups, note


# ---------------------------------------------------------------------------- measurements
def per_call_us(model: ZeroCostChat, prompts: list[str]) -> tuple[float, float]:
    """(wall µs, CPU µs) per ``invoke``."""
    gc.collect()
    cpu, start = time.process_time_ns(), time.perf_counter_ns()
    for prompt in prompts:
        model.invoke(prompt)
    wall, cpu = time.perf_counter_ns() - start, time.process_time_ns() - cpu
    return wall / len(prompts) / 1000, cpu / len(prompts) / 1000


async def aper_call_us(model: ZeroCostChat, prompts: list[str]) -> tuple[float, float]:
    gc.collect()
    cpu, start = time.process_time_ns(), time.perf_counter_ns()
    for prompt in prompts:
        await model.ainvoke(prompt)
    wall, cpu = time.perf_counter_ns() - start, time.process_time_ns() - cpu
    return wall / len(prompts) / 1000, cpu / len(prompts) / 1000


def record(wall: list[float], cpu: list[float], measured: tuple[float, float]) -> None:
    wall.append(measured[0])
    cpu.append(measured[1])


def threads_cps(model: ZeroCostChat, prompts: list[str], per_thread: int) -> float:
    """Hit throughput of ``THREADS`` threads calling ``invoke`` at once (calls/s)."""
    barrier = threading.Barrier(THREADS + 1)

    def work(offset: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            model.invoke(prompts[(offset + i) % len(prompts)])

    workers = [threading.Thread(target=work, args=(n * 7,)) for n in range(THREADS)]
    for worker in workers:
        worker.start()
    gc.collect()
    barrier.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    return THREADS * per_thread / (time.perf_counter() - start)


async def tasks_cps(model: ZeroCostChat, prompts: list[str], per_task: int) -> float:
    """Hit throughput of ``TASKS`` asyncio tasks calling ``ainvoke`` at once (calls/s)."""

    async def work(offset: int) -> None:
        for i in range(per_task):
            await model.ainvoke(prompts[(offset + i) % len(prompts)])

    gc.collect()
    start = time.perf_counter()
    await asyncio.gather(*(work(n * 7) for n in range(TASKS)))
    return TASKS * per_task / (time.perf_counter() - start)


async def warm(contenders: list[Contender], prompts: list[str]) -> None:
    """Every hit prompt stored once, and every code path (sync, async, pools) loaded."""
    for c in contenders:
        for p in prompts:
            if c.sync:
                c.model.invoke(p)
            await c.model.ainvoke(p)
        await tasks_cps(c.model, prompts, 2)
        if c.sync:
            threads_cps(c.model, prompts, 2)


def run(args: argparse.Namespace) -> str:
    rng = random.Random(args.seed)
    loop = asyncio.new_event_loop()  # one loop for the whole run: async pools stay warm
    contenders, cleanups, note = build(args)
    hit_prompts = [f"Question {i}: what is {i} squared, briefly?" for i in range(args.calls)]
    per_thread = max(1, args.calls * 4 // THREADS)
    per_task = max(1, args.calls * 4 // TASKS)
    try:
        loop.run_until_complete(warm(contenders, hit_prompts))
        for rnd in range(args.rounds):
            order = contenders[:]
            rng.shuffle(order)
            for c in order:
                fresh = [f"Round {rnd} {c.name} {c.server} {i} {uuid.uuid4().hex}"
                         for i in range(args.calls)]  # fmt: skip
                if c.sync:
                    record(c.hit_us, c.hit_cpu, per_call_us(c.model, hit_prompts))
                    record(c.miss_us, c.miss_cpu, per_call_us(c.model, fresh[: args.calls // 2]))
                    c.threads_cps.append(threads_cps(c.model, hit_prompts, per_thread))
                run_async = loop.run_until_complete
                record(c.ahit_us, c.ahit_cpu, run_async(aper_call_us(c.model, hit_prompts)))
                record(
                    c.amiss_us,
                    c.amiss_cpu,
                    run_async(aper_call_us(c.model, fresh[args.calls // 2 :])),
                )
                c.tasks_cps.append(
                    loop.run_until_complete(tasks_cps(c.model, hit_prompts, per_task))
                )
            print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        for cleanup in cleanups:
            cleanup()
        loop.run_until_complete(_close_async(contenders))
        loop.close()
    return render(contenders, args, note)


async def _close_async(contenders: list[Contender]) -> None:
    for c in contenders:
        if isinstance(c.cache, OneRoundTripFloor):
            await c.cache.aclose()
        client = getattr(c.cache, "redis", None)
        if isinstance(client, aioredis.Redis):
            await client.aclose()


# ---------------------------------------------------------------------------- report
def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def cell(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


# (ours, theirs, column, target, kind): kind "lower" (µs: ours/theirs <= target) or
# "higher" (calls/s: ours/theirs >= target). Names are (contender, server).
PLAIN = ("llmcache redis", "Redis")
COMMUNITY = ("LangChain-community RedisCache", "Redis")
ASYNC_COMMUNITY = ("LangChain-community AsyncRedisCache", "Redis")
STACK = ("llmcache redis", "Redis Stack")
FLOOR = ("floor: InMemoryCache + 1 round trip", "Redis")
LC_REDIS = ("langchain-redis RedisCache", "Redis Stack")
RATIOS: list[tuple[tuple[str, str], tuple[str, str], str, float, str]] = [
    (PLAIN, COMMUNITY, "hit_us", 0.7, "lower"),
    (PLAIN, COMMUNITY, "miss_us", 0.7, "lower"),
    (PLAIN, ASYNC_COMMUNITY, "ahit_us", 0.7, "lower"),
    (PLAIN, ASYNC_COMMUNITY, "amiss_us", 0.7, "lower"),
    (PLAIN, COMMUNITY, "threads_cps", 1.5, "higher"),
    (PLAIN, ASYNC_COMMUNITY, "tasks_cps", 1.5, "higher"),
    (STACK, LC_REDIS, "hit_us", 0.7, "lower"),
    (STACK, LC_REDIS, "miss_us", 0.7, "lower"),
    (STACK, LC_REDIS, "ahit_us", 0.7, "lower"),
    (STACK, LC_REDIS, "amiss_us", 0.7, "lower"),
    (STACK, LC_REDIS, "threads_cps", None, "higher"),  # type: ignore[list-item]
    (STACK, LC_REDIS, "tasks_cps", None, "higher"),  # type: ignore[list-item]
    (FLOOR, COMMUNITY, "hit_us", 0.7, "lower"),
    (FLOOR, COMMUNITY, "miss_us", 0.7, "lower"),
    (FLOOR, ASYNC_COMMUNITY, "ahit_us", 0.7, "lower"),
    (FLOOR, ASYNC_COMMUNITY, "amiss_us", 0.7, "lower"),
]
CPU_LABELS = {
    "hit_cpu": "hit, invoke, CPU",
    "miss_cpu": "miss+store, invoke, CPU",
    "ahit_cpu": "hit, ainvoke, CPU",
    "amiss_cpu": "miss+store, ainvoke, CPU",
}
CPU_RATIOS = [
    (PLAIN, COMMUNITY, "hit_cpu"),
    (PLAIN, COMMUNITY, "miss_cpu"),
    (PLAIN, ASYNC_COMMUNITY, "ahit_cpu"),
    (PLAIN, ASYNC_COMMUNITY, "amiss_cpu"),
    (STACK, LC_REDIS, "hit_cpu"),
    (STACK, LC_REDIS, "miss_cpu"),
    (STACK, LC_REDIS, "ahit_cpu"),
    (STACK, LC_REDIS, "amiss_cpu"),
]
LABELS = {
    "hit_us": "hit, invoke",
    "miss_us": "miss+store, invoke",
    "ahit_us": "hit, ainvoke",
    "amiss_us": "miss+store, ainvoke",
    "threads_cps": f"hits/s, {THREADS} threads",
    "tasks_cps": f"hits/s, {TASKS} tasks",
}


def render(contenders: list[Contender], args: argparse.Namespace, note: str) -> str:
    medians = {
        (c.name, c.server): {column: med(getattr(c, column)) for column in (*LABELS, *CPU_LABELS)}
        for c in contenders
    }
    lines = [
        f"`python benchmarks/bench_redis.py --rounds {args.rounds} --calls {args.calls}` "
        f"(median of {args.rounds} interleaved rounds; µs per call through `llm.invoke` / "
        f"`await llm.ainvoke` with a zero-cost fake chat model, {args.calls} hits and "
        f"{args.calls // 2} miss+stores per round and path; throughput: hits only, "
        f"{THREADS} threads calling `invoke`, {TASKS} asyncio tasks calling `ainvoke`; "
        "ours is the redis tier alone, on the same server as the anchor of its row)",
        "",
        "| contender | server | hit µs | miss+store µs | async hit µs | async miss+store µs "
        f"| {THREADS} threads hits/s | {TASKS} tasks hits/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in contenders:
        m = medians[(c.name, c.server)]
        lines.append(
            f"| {c.name} | {c.server} | " + " | ".join(cell(m[column]) for column in LABELS) + " |"
        )
    lines += [
        "",
        "CPU time of the benchmark process per call (µs; what the client itself spends, "
        "without the waits for Redis or for a busy CPU):",
        "",
        "| contender | server | hit | miss+store | async hit | async miss+store |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for c in contenders:
        m = medians[(c.name, c.server)]
        lines.append(
            f"| {c.name} | {c.server} | "
            + " | ".join(cell(m[column]) for column in CPU_LABELS)
            + " |"
        )
    lines += ["", "| ours / theirs | measure | ratio | target |", "|---|---|---:|---|"]
    for ours, theirs, column, target, kind in RATIOS:
        mine, other = medians.get(ours, {}).get(column), medians.get(theirs, {}).get(column)
        if mine is None or other is None:
            continue
        ratio = mine / other
        if target is None:
            verdict = ""
        elif kind == "lower":
            verdict = f"≤ {target:.2f} " + ("✅" if ratio <= target else "❌")
        else:
            verdict = f"≥ {target:.2f} " + ("✅" if ratio >= target else "❌")
        lines.append(
            f"| {ours[0]} ({ours[1]}) / {theirs[0]} | {LABELS[column]} | {ratio:.3f}x | {verdict} |"
        )
    for ours, theirs, column in CPU_RATIOS:
        mine, other = medians.get(ours, {}).get(column), medians.get(theirs, {}).get(column)
        if mine is None or other is None:
            continue
        lines.append(
            f"| {ours[0]} ({ours[1]}) / {theirs[0]} | {CPU_LABELS[column]} | "
            f"{mine / other:.3f}x | |"
        )
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument(
        "--stack-url", default="redis://127.0.0.1:6380/0", help="'' to skip langchain-redis"
    )
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = parser.parse_args()
    if not urlsplit(args.redis_url).hostname:
        parser.error("--redis-url needs a host")
    table = run(args)
    print(table)
    if args.markdown:
        args.markdown.write_text(table, encoding="utf-8")


if __name__ == "__main__":
    main()
