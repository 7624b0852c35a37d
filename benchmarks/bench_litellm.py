"""Side by side through ``litellm.completion`` / ``acompletion``: no cache, LiteLLM's own
caches, and llmcache's tiers, every one installed the same way (``litellm.cache = ...``).

One process, interleaved rounds (the order of the contenders is shuffled every round),
``mock_response`` (no network), so what differs between contenders is the cache. For each:
µs per call on a hit and on a miss that stores, sync and async; then ours/theirs.

    python benchmarks/bench_litellm.py                       # local + Redis on 127.0.0.1:6379
    python benchmarks/bench_litellm.py --rounds 15 --calls 100 --markdown out.md

Like with like: LiteLLM's local cache holds 200 entries by default, so ours gets
``memory://?maxsize=200``. LiteLLM stores an async answer, and logs every async call, in
background tasks and threads; after each timed call the benchmark lets every task and
logging thread that call started finish *outside* the timer, for every contender alike
(otherwise a lookup that waits for I/O is charged with the previous call's logging, which
takes the GIL or the event loop meanwhile, while an in-process lookup is not).

LiteLLM's ``Cache(type="redis")`` puts a process-wide in-memory cache in front of Redis on
the async path (its DualCache): its async "Redis" hit makes no Redis call, so the like-for-like
row there is ``llmcache memory+redis``. Their Redis keys live under a random namespace and
ours under a random prefix; both are deleted at the end (never FLUSHALL).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map download

import litellm
from litellm.caching.caching import Cache as LiteLLMOwnCache
from litellm.caching.caching import LiteLLMCacheType
from litellm.litellm_core_utils.thread_pool_executor import executor as logging_executor

from litellm_llmcache import LiteLLMCache
from llmcache import Cache

MODEL = "gpt-4o-mini"
CAPACITY = 200  # LiteLLM's local cache default (DEFAULT_MAX_SIZE_IN_MEMORY)
HOT_PROMPTS = 20  # distinct prompts the hit loop cycles through (well under the capacity)
KINDS = ("sync hit", "sync miss+store", "async hit", "async miss+store")


# LiteLLM logs every call in threads of one executor as well as in tasks. A logging thread
# still busy when the next call starts takes the GIL whenever that call waits for I/O (up
# to the 5 ms switch interval), so a cache that does I/O (Redis) would be charged with the
# previous call's logging and an in-process one not. The benchmark tracks those futures and
# lets them finish outside the timer, for every contender alike.
_LOGGING_FUTURES: list[concurrent.futures.Future[Any]] = []
_submit = logging_executor.submit


def _tracked_submit(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    future = _submit(fn, *args, **kwargs)
    _LOGGING_FUTURES.append(future)
    return future


logging_executor.submit = _tracked_submit  # type: ignore[method-assign]


async def _await_logging_threads() -> bool:
    """Wait for the logging jobs submitted so far, without blocking the loop (a logging job
    may need it to finish); True if there were any."""
    if not _LOGGING_FUTURES:
        return False
    futures = [asyncio.wrap_future(f) for f in _LOGGING_FUTURES]
    _LOGGING_FUTURES.clear()
    await asyncio.wait(futures, timeout=5)
    return True


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@dataclass
class Contender:
    name: str
    cache: Any  # what is assigned to litellm.cache (None: no cache)
    close: Callable[[], None] = lambda: None
    samples: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})


def build(redis_url: str | None) -> tuple[list[Contender], Callable[[], None]]:
    ours_memory = Cache.from_urls([f"memory://?maxsize={CAPACITY}"], fleet_stats=False)
    contenders = [
        Contender("no cache", None),
        Contender("LiteLLM Cache(type='local')", LiteLLMOwnCache(type=LiteLLMCacheType.LOCAL)),
        Contender("llmcache memory", LiteLLMCache(ours_memory), ours_memory.close),
    ]
    cleanups: list[Callable[[], None]] = []
    if redis_url:
        from urllib.parse import urlsplit

        parts = urlsplit(redis_url)
        namespace = f"bench-litellm-{uuid.uuid4().hex[:8]}"
        theirs = LiteLLMOwnCache(
            type=LiteLLMCacheType.REDIS,
            host=parts.hostname or "127.0.0.1",
            port=str(parts.port or 6379),
            namespace=namespace,
            ttl=3600,
        )
        prefix = f"benchll{uuid.uuid4().hex[:8]}"
        ours_redis = Cache.from_urls([f"{redis_url}?prefix={prefix}"], fleet_stats=False)
        ours_both = Cache.from_urls(
            [f"memory://?maxsize={CAPACITY}", f"{redis_url}?prefix={prefix}2"], fleet_stats=False
        )
        contenders += [
            Contender("LiteLLM Cache(type='redis')", theirs),
            Contender("llmcache redis", LiteLLMCache(ours_redis), ours_redis.close),
            Contender("llmcache memory+redis", LiteLLMCache(ours_both), ours_both.close),
        ]

        def delete_keys() -> None:
            import redis

            client = redis.Redis.from_url(redis_url)
            for pattern in (f"{namespace}:*", f"{prefix}:*", f"{prefix}2:*"):
                for key in client.scan_iter(match=pattern, count=1000):
                    client.unlink(key)
            client.close()

        cleanups.append(delete_keys)

    def cleanup() -> None:
        for contender in contenders:
            contender.close()
        for step in cleanups:
            step()

    return contenders, cleanup


async def _drain(before: set[asyncio.Task[Any]]) -> None:
    """Let every task started since ``before`` (and the tasks and logging threads those
    start) finish."""
    me = asyncio.current_task()
    for _ in range(50):
        for _turn in range(3):  # LiteLLM's logging worker picks queued jobs up on its turns
            await asyncio.sleep(0)
        new = [t for t in asyncio.all_tasks() if t is not me and t not in before and not t.done()]
        if new:
            await asyncio.wait(new, timeout=5)
        if not await _await_logging_threads() and not new:
            return


async def _acall(text: str, reply: str) -> tuple[float, Any]:
    before = asyncio.all_tasks()
    start = time.perf_counter()
    response = await litellm.acompletion(model=MODEL, messages=ask(text), mock_response=reply)
    elapsed = time.perf_counter() - start
    await _drain(before)
    return elapsed, response


async def _call(text: str, reply: str) -> tuple[float, Any]:
    """A sync ``completion`` (made from the loop's thread, as an app inside a loop would)."""
    before = asyncio.all_tasks()
    start = time.perf_counter()
    response = litellm.completion(model=MODEL, messages=ask(text), mock_response=reply)
    elapsed = time.perf_counter() - start
    await _drain(before)
    return elapsed, response


def _check_hit(contender: Contender, response: Any, expected: str) -> None:
    if contender.cache is None:
        return
    got = response.choices[0].message.content
    if got != expected or response._hidden_params.get("cache_hit") is not True:
        raise SystemExit(f"{contender.name}: a warmed prompt was not a hit ({got!r})")


async def run_round(contender: Contender, calls: int, tag: str) -> None:
    litellm.cache = contender.cache
    hot = [f"{tag} hot {i}" for i in range(HOT_PROMPTS)]
    for text in hot:  # warm: store every hot prompt (not timed)
        await _acall(text, f"answer {text}")
    for mode in ("sync", "async"):
        hit = miss = 0.0
        for i in range(calls):
            text = hot[i % HOT_PROMPTS]
            if mode == "sync":
                elapsed, response = await _call(text, "other")
            else:
                elapsed, response = await _acall(text, "other")
            _check_hit(contender, response, f"answer {text}")
            hit += elapsed
        for i in range(calls):
            text = f"{tag} {mode} miss {i} {uuid.uuid4().hex}"
            if mode == "sync":
                elapsed, _ = await _call(text, "fresh")
            else:
                elapsed, _ = await _acall(text, "fresh")
            miss += elapsed
        contender.samples[f"{mode} hit"].append(hit / calls * 1e6)
        contender.samples[f"{mode} miss+store"].append(miss / calls * 1e6)
        if mode == "sync":
            for text in hot:  # the misses may have evicted them (capacity 200): warm again
                await _acall(text, f"answer {text}")


# (ours, theirs, kind, target): the rows the issue sets targets for, and extra rows.
def comparisons(names: set[str]) -> list[tuple[str, str, str, float | None]]:
    rows: list[tuple[str, str, str, float | None]] = []
    pairs = [
        ("llmcache memory", "LiteLLM Cache(type='local')", 1.0, 1.0),
        ("llmcache redis", "LiteLLM Cache(type='redis')", 0.6, 1.0),
        ("llmcache memory+redis", "LiteLLM Cache(type='redis')", None, None),
    ]
    for ours, theirs, hit_target, miss_target in pairs:
        if ours in names and theirs in names:
            for mode in ("sync", "async"):
                rows.append((ours, theirs, f"{mode} hit", hit_target))
                rows.append((ours, theirs, f"{mode} miss+store", miss_target))
    return rows


def report(contenders: list[Contender], args: argparse.Namespace) -> str:
    median = {c.name: {k: statistics.median(v) for k, v in c.samples.items()} for c in contenders}
    lines = [
        f"`python benchmarks/bench_litellm.py --rounds {args.rounds} --calls {args.calls}` "
        f"(median of {args.rounds} interleaved rounds of {args.calls} calls; µs per call, "
        "`mock_response`; LiteLLM's background tasks of each async call finish outside the "
        'timer, for every contender; "no cache" hit and miss are both plain calls)',
        "",
        "| contender | " + " | ".join(f"{k} µs" for k in KINDS) + " |",
        "|---|" + "---:|" * len(KINDS),
    ]
    for c in contenders:
        lines.append(
            f"| {c.name} | " + " | ".join(f"{median[c.name][k]:,.0f}" for k in KINDS) + " |"
        )
    lines += ["", "| ours / theirs | kind | ratio | target |", "|---|---|---:|---|"]
    for ours, theirs, kind, target in comparisons({c.name for c in contenders}):
        ratio = median[ours][kind] / median[theirs][kind]
        verdict = "" if target is None else f"≤ {target:.2f} {'✅' if ratio <= target else '❌'}"
        lines.append(f"| {ours} / {theirs} | {kind} | {ratio:.3f}x | {verdict} |")
    return "\n".join(lines) + "\n"


async def _start_litellm_workers() -> None:
    """One call first: it starts LiteLLM's long-lived logging worker task, which every later
    call's drain then counts as already running (it never finishes)."""
    litellm.cache = None
    await litellm.acompletion(model=MODEL, messages=ask("start"), mock_response="ok")
    litellm.completion(model=MODEL, messages=ask("start"), mock_response="ok")
    await asyncio.sleep(0.5)
    await _await_logging_threads()


async def main_async(args: argparse.Namespace) -> str:
    contenders, cleanup = build(None if args.no_redis else args.redis_url)
    before = litellm.cache
    try:
        await _start_litellm_workers()
        for index in range(args.warmup_rounds + args.rounds):
            order = contenders[:]
            random.shuffle(order)
            for contender in order:
                gc.collect()
                await run_round(contender, args.calls, f"r{index}")
            if index < args.warmup_rounds:  # imports and first-call costs are not measured
                for contender in contenders:
                    contender.samples = {k: [] for k in KINDS}
            print(f"round {index + 1}/{args.warmup_rounds + args.rounds}", file=sys.stderr)
    finally:
        litellm.cache = before
        cleanup()
    return report(contenders, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--warmup-rounds", type=int, default=1)
    parser.add_argument(
        "--redis-url", default=os.environ.get("LLMCACHE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--no-redis", action="store_true", help="local caches only")
    parser.add_argument("--markdown", help="also write the tables to this file")
    args = parser.parse_args()
    text = asyncio.run(main_async(args))
    print(text)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as out:
            out.write(text)


if __name__ == "__main__":
    main()
