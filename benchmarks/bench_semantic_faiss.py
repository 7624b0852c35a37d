"""FAISS semantic index: where HNSW beats exact search, and the lookup cost at 100k entries.

Two parts, one process, 384-d unit vectors (MiniLM's width):

1. ``crossover``: for each partition size, the median µs of one query (k=8, what the tier
   asks for k=4 with no tombstones) on an exact ``IndexFlatIP`` and on ``IndexHNSWFlat``
   (M=32, efConstruction=80, efSearch=64), on one FAISS thread (a server answers many
   requests at once; one thread each is the honest cost), plus HNSW's recall@1. The size
   above which HNSW is faster is what ``faiss_index.DEFAULT_HNSW_ABOVE`` should be.
2. ``lookup``: ``--entries`` (default 100,000) vectors in ONE partition of a ``FaissIndex``
   (SQLite file in a temp folder, bulk loaded); the first search loads it and searches
   exactly while HNSW builds in the background (both timed); then the time the semantic tier
   spends beyond the embedding, on HNSW: ``index.search`` (k=4) plus ``SemanticTier.judge``
   (threshold 0.9, the default verifier on every candidate above it). Queries are stored
   vectors plus noise (cosine about 0.95: every query has candidates for the verifier).
   Texts are QQP dev questions, so the verifier sees real question pairs.

    python benchmarks/bench_semantic_faiss.py
    python benchmarks/bench_semantic_faiss.py --sizes 1000,5000,20000 --entries 20000

Times are wall-clock medians; the machine is shared, so compare within one run.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from llmcache.keys import CacheKey
from llmcache.semantic.faiss_index import (
    HNSW_EF_CONSTRUCTION,
    HNSW_EF_SEARCH,
    HNSW_M,
    FaissIndex,
)
from llmcache.semantic.index import IndexedEntry
from llmcache.semantic.tier import SemanticTier
from llmcache.semantic.verifier import AcceptAll, Verifier, default_verifier

DIM = 384
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "semantic" / "qqp_dev_pairs.csv"


def unit_vectors(n: int, seed: int) -> Any:
    vectors = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def near(vectors: Any, seed: int, noise: float = 0.33) -> Any:
    moved = vectors + noise * unit_vectors(len(vectors), seed)
    return (moved / np.linalg.norm(moved, axis=1, keepdims=True)).astype(np.float32)


def median_us(index: Any, queries: Any) -> float:
    """Median µs of one k=8 search (the tier's k=4 with no tombstones) per query."""
    times = []
    for q in queries:
        start = time.perf_counter()
        index.search(q.reshape(1, -1), 8)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def crossover(sizes: list[int], queries: int) -> int | None:
    faiss.omp_set_num_threads(1)
    print("| entries | exact µs | HNSW µs | HNSW recall@1 | HNSW build s |")
    print("|---:|---:|---:|---:|---:|")
    first_faster: int | None = None
    for size in sizes:
        data = unit_vectors(size, 1)
        asked = near(data[: min(queries, size)], 2)
        flat = faiss.IndexFlatIP(DIM)
        flat.add(data)
        start = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(DIM, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        hnsw.add(data)
        build = time.perf_counter() - start
        hnsw.hnsw.efSearch = HNSW_EF_SEARCH
        exact_us = median_us(flat, asked)
        hnsw_us = median_us(hnsw, asked)
        _, truth = flat.search(asked, 1)
        _, approx = hnsw.search(asked, 1)
        recall = float(np.mean(truth[:, 0] == approx[:, 0]))
        print(f"| {size:,} | {exact_us:.0f} | {hnsw_us:.0f} | {recall:.3f} | {build:.1f} |")
        if first_faster is None and hnsw_us < exact_us:
            first_faster = size
        sys.stdout.flush()
    return first_faster


def questions(n: int) -> list[str]:
    texts: list[str] = []
    with DATA.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            texts.append(row["question1"])
    return [texts[i % len(texts)] for i in range(n)]


def pick_verifier() -> tuple[Verifier, str]:
    try:
        return default_verifier(), "default_verifier()"
    except Exception as exc:  # the trained verifier may not be shipped in this checkout
        return AcceptAll(), f"AcceptAll (default_verifier() failed: {exc})"


def lookup(entries: int, queries: int) -> None:
    partition = b"\x07" * 16
    data = unit_vectors(entries, 3)
    texts = questions(entries)
    verifier, label = pick_verifier()
    with tempfile.TemporaryDirectory() as folder:
        index = FaissIndex(f"{folder}/bench.faiss", dim=DIM, refresh=3600)
        # Bound to its embedder while empty, as a cache does: an index whose vectors name no
        # embedder is refused (see "re-embedding" in the README).
        tier = SemanticTier(index, _Width(), verifier=verifier, threshold=0.9, k=4)
        rows = [
            IndexedEntry(
                CacheKey(i.to_bytes(32, "big"), b"s" * 16, b"m" * 16, b"n" * 16),
                partition,
                data[i],
                texts[i],
                None,
            )
            for i in range(entries)
        ]
        start = time.perf_counter()
        index.add_many(rows)
        stored = time.perf_counter() - start
        start = time.perf_counter()
        index.search(partition, data[0], 4, 0.0)  # loads it (exact), starts the HNSW build
        loaded = time.perf_counter() - start
        exact_ms = median_us(_Searcher(index, partition), data[:20]) / 1000
        start = time.perf_counter()
        index.wait_for_builds()
        built = time.perf_counter() - start
        kind = "HNSW" if hasattr(index._parts[partition].index, "hnsw") else "exact"
        picks = np.random.default_rng(4).choice(entries, size=queries, replace=False)
        asked = near(data[picks], 5)
        query_texts = [texts[(i + 1) % entries] for i in picks]  # another question's text
        truth = np.argmax(asked @ data.T, axis=1)  # the exact nearest, for recall
        if kind == "HNSW":
            print("\n| efSearch | search median ms | p90 ms | recall@1 |")
            print("|---:|---:|---:|---:|")
            for ef in (16, 32, 48, 64, 96):
                index.ef_search = ef
                times, right = [], 0
                for q, best in zip(asked, truth, strict=True):
                    t0 = time.perf_counter()
                    found = index.search(partition, q, 4, 0.0)
                    times.append(time.perf_counter() - t0)
                    right += bool(found) and int.from_bytes(found[0].key.digest, "big") == best
                p90 = sorted(times)[int(0.9 * len(times))] * 1000
                med = statistics.median(times) * 1000
                print(f"| {ef} | {med:.3f} | {p90:.3f} | {right / len(truth):.3f} |")
            index.ef_search = HNSW_EF_SEARCH
        search_times, judge_times = [], []
        hits = 0
        for q, text in zip(asked, query_texts, strict=True):
            t0 = time.perf_counter()
            found = index.search(partition, q, 4, 0.0)
            t1 = time.perf_counter()
            accepted = tier.judge(text, found, 0.9)
            t2 = time.perf_counter()
            search_times.append(t1 - t0)
            judge_times.append(t2 - t1)
            hits += bool(accepted)
        total = [a + b for a, b in zip(search_times, judge_times, strict=True)]
        index.close()
    ms = 1000.0
    print(f"\n{entries:,} entries in one partition ({kind}); verifier: {label}")
    print(
        f"bulk store {stored:.1f} s; first search (load) {loaded:.1f} s; searches while HNSW "
        f"builds (exact) {exact_ms:.1f} ms median; build finished {built:.1f} s later"
    )
    print("| part | median ms | p90 ms |")
    print("|---|---:|---:|")
    for name, values in (("search", search_times), ("judge", judge_times), ("total", total)):
        p90 = sorted(values)[int(0.9 * len(values))]
        print(f"| {name} | {statistics.median(values) * ms:.3f} | {p90 * ms:.3f} |")
    print(f"queries accepted by the verifier: {hits}/{queries}; rejections: {tier.rejected()}")


class _Searcher:
    """``median_us`` takes an object with FAISS's ``search(matrix, k)``."""

    def __init__(self, index: FaissIndex, partition: bytes) -> None:
        self.index, self.partition = index, partition

    def search(self, matrix: Any, k: int) -> Any:
        return self.index.search(self.partition, matrix[0], k // 2, 0.0)


class _Width:
    """Only the embedder's width matters here: queries come with their vectors."""

    name = "precomputed"
    dim = DIM

    def embed(self, texts: Any) -> Any:  # pragma: no cover - never called
        raise NotImplementedError

    async def aembed(self, texts: Any) -> Any:  # pragma: no cover - never called
        raise NotImplementedError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,2000,5000,10000,20000,50000,100000")
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--skip-crossover", action="store_true")
    args = parser.parse_args()
    if not args.skip_crossover:
        sizes = [int(s) for s in args.sizes.split(",")]
        first = crossover(sizes, args.queries)
        print(f"\nHNSW is faster from {first:,} entries" if first else "\nexact always faster")
    faiss.omp_set_num_threads(1)
    lookup(args.entries, args.queries)


if __name__ == "__main__":
    main()
