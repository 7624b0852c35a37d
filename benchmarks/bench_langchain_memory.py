"""LangChainCache over a memory tier vs LangChain's InMemoryCache, through ``llm.invoke``.

One process, interleaved rounds (contender order shuffled each round), a zero-cost fake chat
model, so what differs is the cache. Reports µs per invoke (median of rounds) for a hit and
for a miss that stores, and the ratios ours / InMemoryCache (target for a hit: <= 1.10).

    python benchmarks/bench_langchain_memory.py [--rounds 25] [--calls 300]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fake_models import ZeroCostChat
from langchain_core.caches import BaseCache, InMemoryCache

from langchain_llmcache import LangChainCache
from llmcache import Cache


def per_call_us(model: ZeroCostChat, prompts: list[str]) -> float:
    gc.collect()
    start = time.perf_counter_ns()
    for prompt in prompts:
        model.invoke(prompt)
    return (time.perf_counter_ns() - start) / len(prompts) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    caches: dict[str, BaseCache | bool] = {
        "no cache": False,
        "InMemoryCache": InMemoryCache(),
        "llmcache memory": LangChainCache(Cache.from_urls(["memory://?maxsize=1000000"])),
    }
    models = {name: ZeroCostChat(cache=cache) for name, cache in caches.items()}
    hits: dict[str, list[float]] = {name: [] for name in models}
    misses: dict[str, list[float]] = {name: [] for name in models}
    hit_prompts = [f"Question {i}: what is {i} squared, briefly?" for i in range(args.calls)]
    for model in models.values():  # warm: store every hit prompt, load every code path
        for prompt in hit_prompts:
            model.invoke(prompt)
    rng = random.Random(7)
    for rnd in range(args.rounds):
        order = list(models)
        rng.shuffle(order)
        fresh = [f"Round {rnd} question {i} {uuid.uuid4().hex}" for i in range(args.calls)]
        for name in order:
            hits[name].append(per_call_us(models[name], hit_prompts))
            misses[name].append(per_call_us(models[name], fresh))
    print(f"{args.rounds} interleaved rounds x {args.calls} invokes; median µs per invoke")
    print(f"{'contender':<18} {'hit':>8} {'miss+store':>11}")
    for name in models:
        hit, miss = statistics.median(hits[name]), statistics.median(misses[name])
        print(f"{name:<18} {hit:>8.1f} {miss:>11.1f}")
    ours, theirs = "llmcache memory", "InMemoryCache"
    hit_ratio = statistics.median(hits[ours]) / statistics.median(hits[theirs])
    miss_ratio = statistics.median(misses[ours]) / statistics.median(misses[theirs])
    print(f"ours / InMemoryCache: hit {hit_ratio:.3f}x (target <= 1.10)")
    print(f"ours / InMemoryCache: miss+store {miss_ratio:.3f}x")


if __name__ == "__main__":
    main()
