"""Load workloads of the reliability campaign, shared by the CI tests and the long runs
(``python scripts/reliability.py load``).

Each worker stores answers under keys of its own and reads keys at random; it records every
store the cache acknowledged (``set`` returned True) and every exception that reached it.
Afterwards a fresh cache reads every acknowledged entry back and compares it with what was
stored, value for value. A reliable cache ends with zero caller errors and zero lost or
altered entries.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from llmcache import Cache, CacheRequest, Scope, Usage


@dataclass
class LoadResult:
    """What a run did and what went wrong (the figures RELIABILITY.md reports)."""

    workers: int = 0
    stores: int = 0
    reads: int = 0
    caller_errors: list[str] = field(default_factory=list)
    # prompt -> fingerprint of the value: a long run acknowledges hundreds of thousands of
    # answers, and keeping them whole made the test itself run out of memory.
    acknowledged: dict[str, bytes] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def merge(self, other: LoadResult) -> None:
        self.workers += other.workers
        self.stores += other.stores
        self.reads += other.reads
        self.caller_errors += other.caller_errors
        self.altered += other.altered
        self.acknowledged.update(other.acknowledged)

    def summary(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "stores_acknowledged": len(self.acknowledged),
            "store_calls": self.stores,
            "reads": self.reads,
            "caller_errors": len(self.caller_errors),
            "entries_lost": len(self.lost),
            "altered": len(self.altered),
            "seconds": round(self.seconds, 1),
        }


def request_for(prompt: str) -> CacheRequest:
    # A few scopes, so scoped keys and indexes are part of the load too.
    user = f"user-{int(hashlib.sha1(prompt.encode()).hexdigest(), 16) % 5}"
    return CacheRequest(model="load-model", prompt=prompt, scope=Scope.of(user=user, tenant="t"))


def value_for(prompt: str, rng: random.Random) -> str:
    # Sizes from a few bytes to ~5 KB (a long LLM answer), with non-ASCII text in it.
    return f"{prompt}:" + "é✓ answer " * rng.randint(0, 400)


def fingerprint(value: object) -> bytes:
    """What is kept of an acknowledged value: a digest, compared with what is read back."""
    text = value if isinstance(value, str) else repr(value)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _one_worker(cache: Cache, name: str, deadline: float, seed: int) -> LoadResult:
    rng = random.Random(seed)
    result = LoadResult(workers=1)
    written: list[str] = []
    while time.monotonic() < deadline:
        try:
            if not written or rng.random() < 0.5:
                prompt = f"{name}-{len(written)}"
                value = value_for(prompt, rng)
                result.stores += 1
                if cache.set(request_for(prompt), value, usage=Usage(10, 5)):
                    result.acknowledged[prompt] = fingerprint(value)
                written.append(prompt)
            else:
                result.reads += 1
                prompt = rng.choice(written)
                hit = cache.get(request_for(prompt))
                if hit is not None and fingerprint(hit.entry.value) != result.acknowledged.get(
                    prompt
                ):
                    result.altered.append(prompt)  # served something other than was stored
        except Exception as exc:  # the point: count anything that reaches the caller
            result.caller_errors.append(f"{type(exc).__name__}: {exc}")
    return result


def threads_load(urls: list[str], name: str, threads: int, seconds: float) -> LoadResult:
    """``threads`` threads sharing one Cache in this process, for ``seconds``."""
    cache = Cache.from_urls(urls, fleet_stats=False)
    deadline = time.monotonic() + seconds
    results: list[LoadResult] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        outcome = _one_worker(cache, f"{name}-t{index}", deadline, seed=hash((name, index)))
        with lock:
            results.append(outcome)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    cache.close()
    total = LoadResult()
    for outcome in results:
        total.merge(outcome)
    return total


def _process_main(urls: list[str], name: str, threads: int, seconds: float) -> dict[str, Any]:
    outcome = threads_load(urls, name, threads, seconds)
    return {
        "workers": outcome.workers,
        "stores": outcome.stores,
        "reads": outcome.reads,
        "caller_errors": outcome.caller_errors,
        "altered": outcome.altered,
        "acknowledged": outcome.acknowledged,
    }


def processes_load(urls: list[str], processes: int, threads: int, seconds: float) -> LoadResult:
    """``processes`` spawned processes with ``threads`` threads each, on the same tiers."""
    started = time.monotonic()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes) as pool:
        parts = pool.starmap(
            _process_main, [(urls, f"p{i}", threads, seconds) for i in range(processes)]
        )
    total = LoadResult()
    for part in parts:
        total.merge(LoadResult(**part))
    total.seconds = time.monotonic() - started
    return total


async def tasks_load(urls: list[str], tasks: int, seconds: float) -> LoadResult:
    """``tasks`` asyncio tasks sharing one Cache, on the async path, for ``seconds``."""
    started = time.monotonic()
    cache = Cache.from_urls(urls, fleet_stats=False)
    deadline = started + seconds

    async def run(index: int) -> LoadResult:
        rng = random.Random(index)
        result = LoadResult(workers=1)
        written: list[str] = []
        while time.monotonic() < deadline:
            try:
                if not written or rng.random() < 0.5:
                    prompt = f"task{index}-{len(written)}"
                    value = value_for(prompt, rng)
                    result.stores += 1
                    if await cache.aset(request_for(prompt), value):
                        result.acknowledged[prompt] = fingerprint(value)
                    written.append(prompt)
                else:
                    result.reads += 1
                    prompt = rng.choice(written)
                    hit = await cache.aget(request_for(prompt))
                    if hit is not None and fingerprint(hit.entry.value) != (
                        result.acknowledged.get(prompt)
                    ):
                        result.altered.append(prompt)
            except Exception as exc:
                result.caller_errors.append(f"{type(exc).__name__}: {exc}")
        return result

    total = LoadResult()
    for outcome in await asyncio.gather(*(run(i) for i in range(tasks))):
        total.merge(outcome)
    await cache.aclose()
    total.seconds = time.monotonic() - started
    return total


def verify(urls: list[str], result: LoadResult) -> LoadResult:
    """Read every acknowledged entry back through a fresh cache and compare it."""
    cache = Cache.from_urls(urls, fleet_stats=False, single_flight_timeout=None)
    try:
        for prompt, acknowledged in result.acknowledged.items():
            hit = cache.get(request_for(prompt))
            if hit is None:
                result.lost.append(prompt)
            elif fingerprint(hit.entry.value) != acknowledged:
                result.altered.append(prompt)
    finally:
        cache.close()
    return result
