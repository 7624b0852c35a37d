"""Side by side through ``llm.invoke``: no cache, LangChain's caches, and llmcache's tiers.

One process, the same prompts for every contender, interleaved rounds (the order of the
contenders is shuffled every round), a zero-cost fake chat model so what is measured is the
cache. For each contender: µs per call on a hit and on a miss that stores; then the ratios
ours/theirs against the issue's targets.

    python benchmarks/bench_langchain.py                 # memory, SQLite, MariaDB
    python benchmarks/bench_langchain.py --rounds 30 --calls 300 --markdown out.md

LangChain's default SQLAlchemyCache table cannot be created on MySQL/MariaDB ("VARCHAR
requires a length"), so it is compared with a sized table of the same columns.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fake_models import ZeroCostChat
from langchain_core.caches import BaseCache, InMemoryCache

from langchain_llmcache import LangChainCache
from llmcache import Cache

DEFAULT_MYSQL = os.environ.get(
    "LLMCACHE_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)


@dataclass
class Contender:
    name: str
    cache: BaseCache | bool
    model: ZeroCostChat = field(init=False)
    hit_us: list[float] = field(default_factory=list)
    miss_us: list[float] = field(default_factory=list)
    # Outside the timer, after each timed loop: a write-behind tier's queue is written, so the
    # next contender does not share the machine with it (it did share it with the loop).
    settle: Callable[[], object] = lambda: None

    def __post_init__(self) -> None:
        self.model = ZeroCostChat(cache=self.cache)


def sized_sqlalchemy_cache(url: str, table: str) -> tuple[BaseCache, Callable[[], None]]:
    """LangChain-community's SQLAlchemyCache with the same columns, sized for MariaDB."""
    import sqlalchemy as sa
    from langchain_community.cache import SQLAlchemyCache
    from sqlalchemy.orm import declarative_base

    base = declarative_base()

    class SizedFullLLMCache(base):  # type: ignore[valid-type,misc]
        __tablename__ = table
        # InnoDB keys are at most 3072 bytes: 380 utf8mb4 chars each + idx fits.
        prompt = sa.Column(sa.String(380), primary_key=True)
        llm = sa.Column(sa.String(380), primary_key=True)
        idx = sa.Column(sa.Integer, primary_key=True)
        response = sa.Column(sa.Text)

    engine = sa.create_engine(url)
    cache = SQLAlchemyCache(engine, cache_schema=SizedFullLLMCache)

    def drop() -> None:
        base.metadata.drop_all(engine)
        engine.dispose()

    return cache, drop


def build_contenders(
    args: argparse.Namespace, tmp: Path
) -> tuple[list[Contender], list[Callable[[], None]]]:
    from langchain_community.cache import SQLiteCache

    cleanups: list[Callable[[], None]] = []
    ours: dict[str, Cache] = {
        "llmcache memory": Cache.from_urls(["memory://?maxsize=100000"]),
        "llmcache sqlite": Cache.from_urls([f"sqlite:///{tmp}/ours.db"]),
        # Opt-in for SQLite: stores queued for a writer thread (write_behind.py).
        "llmcache sqlite write-behind": Cache.from_urls(
            [f"sqlite:///{tmp}/ours_wb.db?write_behind=on"]
        ),
        "llmcache memory+sqlite": Cache.from_urls(
            ["memory://?maxsize=100000", f"sqlite:///{tmp}/ours2.db"]
        ),
    }
    contenders = [
        Contender("no cache", False),
        Contender("LangChain InMemoryCache", InMemoryCache()),
        Contender("LangChain SQLiteCache", SQLiteCache(database_path=str(tmp / "theirs.db"))),
    ]
    if args.mysql_url:
        prefix = f"bench{uuid.uuid4().hex[:8]}"
        # The default (write-behind: a store does not wait for InnoDB's fsync), and stores
        # that wait for their commit (write_behind=off).
        ours["llmcache mysql"] = Cache.from_urls([f"{args.mysql_url}?table_prefix={prefix}"])
        ours["llmcache mysql sync stores"] = Cache.from_urls(
            [f"{args.mysql_url}?table_prefix={prefix}wb&write_behind=off"]
        )
        theirs, drop = sized_sqlalchemy_cache(args.mysql_url, f"{prefix}_langchain")
        contenders.append(Contender("LangChain SQLAlchemyCache (MariaDB)", theirs))
        cleanups.append(drop)

        def drop_ours(
            caches: tuple[Cache, ...] = (
                ours["llmcache mysql"],
                ours["llmcache mysql sync stores"],
            ),
        ) -> None:
            from sqlalchemy import create_engine, inspect, text

            for cache in caches:
                cache.close()
            engine = create_engine(args.mysql_url)
            with engine.begin() as conn:
                for name in inspect(conn).get_table_names():
                    if name.startswith((prefix + "_", prefix + "wb_")):
                        conn.execute(text(f"DROP TABLE `{name}`"))
            engine.dispose()

        cleanups.append(drop_ours)
    contenders += [
        Contender(name, LangChainCache(cache), settle=cache.flush) for name, cache in ours.items()
    ]
    return contenders, cleanups


def per_call_us(model: ZeroCostChat, prompts: list[str]) -> float:
    gc.collect()
    start = time.perf_counter_ns()
    for prompt in prompts:
        model.invoke(prompt)
    return (time.perf_counter_ns() - start) / len(prompts) / 1000


RATIOS = [
    # (ours, theirs, what, target)
    ("llmcache memory", "LangChain InMemoryCache", "hit", 1.10),
    ("llmcache memory", "LangChain InMemoryCache", "miss", None),
    ("llmcache sqlite", "LangChain SQLiteCache", "hit", 0.35),
    ("llmcache sqlite", "LangChain SQLiteCache", "miss", 0.15),
    ("llmcache sqlite write-behind", "LangChain SQLiteCache", "hit", None),
    ("llmcache sqlite write-behind", "LangChain SQLiteCache", "miss", None),
    ("llmcache memory+sqlite", "LangChain SQLiteCache", "hit", None),
    ("llmcache memory+sqlite", "LangChain SQLiteCache", "miss", None),
    ("llmcache mysql", "LangChain SQLAlchemyCache (MariaDB)", "hit", 0.35),
    ("llmcache mysql", "LangChain SQLAlchemyCache (MariaDB)", "miss", 0.25),
    ("llmcache mysql sync stores", "LangChain SQLAlchemyCache (MariaDB)", "hit", None),
    ("llmcache mysql sync stores", "LangChain SQLAlchemyCache (MariaDB)", "miss", None),
]


def run(args: argparse.Namespace) -> str:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmpdir:
        contenders, cleanups = build_contenders(args, Path(tmpdir))
        try:
            hit_prompts = [
                f"Question {i}: what is {i} squared, briefly?" for i in range(args.calls)
            ]
            for c in contenders:  # warm: every hit prompt stored once, and code paths loaded
                for p in hit_prompts:
                    c.model.invoke(p)
                c.settle()
            for rnd in range(args.rounds):
                order = contenders[:]
                rng.shuffle(order)
                miss_prompts = [
                    f"Round {rnd} fresh question {i} {uuid.uuid4().hex}" for i in range(args.calls)
                ]
                for c in order:
                    c.hit_us.append(per_call_us(c.model, hit_prompts))
                    c.miss_us.append(per_call_us(c.model, miss_prompts))
                    c.settle()
                print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            for cleanup in cleanups:
                cleanup()
    return render(contenders, args)


def render(contenders: list[Contender], args: argparse.Namespace) -> str:
    by_name = {c.name: c for c in contenders}
    med = {c.name: (statistics.median(c.hit_us), statistics.median(c.miss_us)) for c in contenders}
    lines = [
        f"`python benchmarks/bench_langchain.py --rounds {args.rounds} --calls {args.calls}` "
        f"(median of {args.rounds} interleaved rounds of {args.calls} calls; µs per `llm.invoke`, "
        'zero-cost fake chat model; "no cache" hit and miss are both plain calls)',
        "",
        "| contender | hit µs | miss+store µs |",
        "|---|---:|---:|",
    ]
    for c in contenders:
        hit, miss = med[c.name]
        lines.append(f"| {c.name} | {hit:,.0f} | {miss:,.0f} |")
    lines += ["", "| ours / theirs | kind | ratio | target |", "|---|---|---:|---|"]
    for ours, theirs, kind, target in RATIOS:
        if ours not in by_name or theirs not in by_name:
            continue
        idx = 0 if kind == "hit" else 1
        ratio = med[ours][idx] / med[theirs][idx]
        verdict = (
            ""
            if target is None
            else (f"≤ {target:.2f} ✅" if ratio <= target else f"≤ {target:.2f} ❌")
        )
        label = "hit" if kind == "hit" else "miss+store"
        lines.append(f"| {ours} / {theirs} | {label} | {ratio:.3f}x | {verdict} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mysql-url", default=DEFAULT_MYSQL, help="'' to skip MariaDB contenders")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = parser.parse_args()
    table = run(args)
    print(table)
    if args.markdown:
        args.markdown.write_text(table, encoding="utf-8")


if __name__ == "__main__":
    main()
