"""A cache built, and used, before a fork (gunicorn ``--preload``, Celery's prefork pool).

The worker and its parent then look up the same entries at the same time. Neither may use
the other's connections: two processes on one socket read each other's replies (errors, or
another key's answer), and two on one SQLite connection share locks only one of them holds.
Every tier kind that has connections, against the real servers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from conftest import TIER_KINDS, tier_url_of

from llmcache import Cache, CacheRequest

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
