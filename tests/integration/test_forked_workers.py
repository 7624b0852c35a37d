"""A cache built, and used, before a fork (gunicorn ``--preload``, Celery's prefork pool).

The worker and its parent then look up the same entries at the same time. Neither may use
the other's connections: two processes on one socket read each other's replies (errors, or
another key's answer), and two on one SQLite connection share locks only one of them holds.
Every tier kind that has connections, against the real servers.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TIER_KINDS, tier_url_of
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.outputs import Generation

from langchain_llmcache import LangChainCache
from llmcache import Cache, CacheRequest
from llmcache.semantic.verifier import AcceptAll

ANSWERS = {f"question {i}?": f"answer {i}" for i in range(40)}
ROUNDS = 15


@pytest.fixture(params=[kind for kind in TIER_KINDS if kind != "memory"])
def shared_url(
    request: pytest.FixtureRequest, tmp_path: object, table_prefix: str
) -> Iterator[str]:
    yield from tier_url_of(request.param, request, tmp_path, table_prefix)


def req(prompt: str) -> CacheRequest:
    return CacheRequest(model="m", prompt=prompt)


def every_answer_its_own(cache: Cache) -> bool:
    for _ in range(ROUNDS):
        for question, answer in ANSWERS.items():
            hit = cache.get(req(question))
            if hit is None or hit.entry.value != answer:
                return False
    return not cache.stats()["errors_by_tier"]


def test_a_forked_worker_and_its_parent_never_share_a_connection(shared_url: str) -> None:
    cache = Cache.from_urls([shared_url], fleet_stats=False, fleet_invalidation=False)
    for question, answer in ANSWERS.items():
        cache.set(req(question), answer)
    cache.flush()  # write-behind tiers: every answer is stored before the fork
    assert every_answer_its_own(cache)  # connections opened, used and pooled before the fork
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: its exit code says what it saw
        code = 1
        try:
            os.read(go_r, 1)
            code = 0 if every_answer_its_own(cache) else 2
        finally:
            os._exit(code)
    try:
        os.write(go_w, b"!")  # both look up at the same time
        parent_ok = every_answer_its_own(cache)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the worker got errors or wrong answers"
        assert parent_ok, "the parent got errors or wrong answers"
    finally:
        os.close(go_r)
        os.close(go_w)
        cache.close()


class NormalizedFakeEmbedding(DeterministicFakeEmbedding):
    """LangChain's deterministic fake, on the text's lower-case words: "Question 3?" and
    "question 3" are one vector (a semantic match) under two exact keys. No model: a forked
    process with torch's thread pools is another test's subject."""

    def embed_query(self, text: str) -> list[float]:
        return super().embed_query(" ".join(re.findall(r"[a-z0-9]+", text.lower())))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(text) for text in texts]


def semantic_req(text: str) -> CacheRequest:
    return CacheRequest(model="m", prompt=text, semantic_text=text)


def served_semantically(cache: Cache, who: str, count: int) -> bool:
    """Each of ``who``'s questions, asked in other words, gets its own answer by meaning."""
    for i in range(count):
        hit = cache.get(semantic_req(f"{who} question {i}"))
        if hit is None or (hit.match, hit.entry.value) != ("semantic", f"{who} answer {i}"):
            return False
    return True


def test_a_forked_worker_shares_the_faiss_index_file_with_its_parent(tmp_path: Path) -> None:
    """Both store and search the same FAISS index file at the same time; each finds the
    other's entries, and the file is whole afterwards (SQLite forbids using a connection
    across a fork: the worker opens its own)."""
    cache = Cache.from_urls(
        ["memory://", f"sqlite:///{tmp_path}/entries.db"],
        semantic=f"faiss://{tmp_path}/vectors.faiss?threshold=0.95&refresh=0",
        embedder=NormalizedFakeEmbedding(size=64),
        verifier=AcceptAll(),
        fleet_stats=False,
    )
    cache.set(semantic_req("Parent question 0?"), "Parent answer 0")
    assert served_semantically(cache, "Parent", 1)  # the index file in use before the fork
    index: Any = cache.semantic.index  # type: ignore[union-attr]
    parents_connection = index._db
    stored_r, stored_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        code = 1
        try:
            if index._db is parents_connection:  # SQLite's rule: never across a fork
                os._exit(4)
            for i in range(30):
                cache.set(semantic_req(f"Worker question {i}?"), f"Worker answer {i}")
            if not served_semantically(cache, "Worker", 30):
                code = 2
            else:
                os.read(stored_r, 1)  # the parent's stores are done
                code = 0 if served_semantically(cache, "Parent", 30) else 3
        finally:
            os._exit(code)
    try:
        for i in range(1, 30):
            cache.set(semantic_req(f"Parent question {i}?"), f"Parent answer {i}")
        os.write(stored_w, b"!")
        assert served_semantically(cache, "Parent", 30)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        assert code == 0, f"worker: {'used the parent connection' if code == 4 else 'wrong'}"
        assert served_semantically(cache, "Worker", 30)
    finally:
        os.close(stored_r)
        os.close(stored_w)
        cache.close()
    for path in tmp_path.iterdir():
        if path.suffix in (".faiss", ".db"):
            with sqlite3.connect(path) as db:
                assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",), path


def test_a_worker_forked_while_threads_use_the_cache_does_not_hang() -> None:
    """A fork copies each lock as it is: one held by a request thread of the parent stays
    held in the child, where that thread does not exist (before llmcache.fork_safety: 55 of
    60 such children hung on their first lookup). Threads look up and store all the time
    here, through the core and the LangChain adapter, while the parent forks 30 workers."""
    cache = Cache.from_urls(["memory://?maxsize=1000"], fleet_stats=False)
    adapter = LangChainCache(cache)
    generations = [Generation(text="an answer")]
    requests = [req(f"question {i}?") for i in range(100)]
    for request in requests:
        cache.set(request, "an answer")
    stop = threading.Event()

    def use_the_cache() -> None:
        i = 0
        while not stop.is_set():
            cache.get(requests[i % 100])
            cache.set(requests[(i * 7) % 100], "an answer")
            adapter.update(f"prompt {i % 50}", "llm", generations)
            adapter.lookup(f"prompt {(i * 3) % 50}", "llm")
            i += 1

    threads = [threading.Thread(target=use_the_cache, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    hung = failed = 0
    try:
        for _ in range(30):
            pid = os.fork()
            if pid == 0:  # the worker: a lookup, a store, the stats
                code = 1
                try:
                    ok = cache.get(requests[3]) is not None and cache.set(requests[4], "new")
                    ok = ok and adapter.lookup("prompt 1", "llm") is not None
                    code = 0 if ok and cache.stats()["hits"] else 2
                finally:
                    os._exit(code)
            deadline = time.monotonic() + 5
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    failed += os.waitstatus_to_exitcode(status) != 0
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    hung += 1
                    break
                time.sleep(0.005)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        cache.close()
    assert (hung, failed) == (0, 0)
