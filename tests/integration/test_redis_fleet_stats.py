"""Fleet-wide counters in Redis: every process's hits and misses add up, off the hot path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import redis
from click.testing import CliRunner

from llmcache import Cache, CacheRequest, Usage
from llmcache.cli.app import cli
from llmcache.tiers.memory import MemoryTier
from llmcache.tiers.redis import RedisTier


def process_view(url: str) -> Cache:
    return Cache([MemoryTier(), RedisTier.from_url(url)])


def test_counters_of_several_processes_add_up(redis_prefix_url: str) -> None:
    a, b = process_view(redis_prefix_url), process_view(redis_prefix_url)
    question = CacheRequest(model="m", prompt="q")
    assert a.get(question) is None  # a: 1 miss
    a.set(question, "answer", usage=Usage(30, 12))
    for _ in range(3):
        assert b.get(question) is not None  # b: 3 hits from Redis, then memory
    b.close()  # publishes what is left
    fleet = a.fleet_stats()  # a's own counters are published first
    assert fleet is not None
    assert (fleet["hits"], fleet["misses"]) == (3, 1)
    assert fleet["tokens_saved"] == 3 * 42
    assert fleet["hits_by_tier"] == {"redis": 1, "memory": 2}
    assert fleet["hit_rate"] == 0.75
    a.close()


def test_clear_leaves_the_fleet_counters_alone(redis_prefix_url: str) -> None:
    cache = process_view(redis_prefix_url)
    cache.get(CacheRequest(model="m", prompt="q"))
    cache.clear()
    fleet = cache.fleet_stats()
    assert fleet is not None
    assert fleet["misses"] == 1
    cache.close()


def test_the_publisher_thread_stops_on_close(redis_prefix_url: str) -> None:
    cache = process_view(redis_prefix_url)
    assert cache._publisher is not None
    thread = cache._publisher._thread
    assert thread.is_alive()
    assert thread in threading.enumerate()
    cache.close()
    assert not thread.is_alive()


def test_a_dead_redis_keeps_counts_for_later_and_never_raises() -> None:
    cache = Cache([MemoryTier(), RedisTier.from_url("redis://127.0.0.1:1/0")])
    cache.get(CacheRequest(model="m", prompt="q"))
    assert cache._publisher is not None
    assert cache._publisher.flush() is False
    assert cache._stats.take_deltas()["misses"] == 1  # kept for the next batch
    cache.close()


def test_llmcache_stats_prints_the_fleet_counters(redis_prefix_url: str) -> None:
    cache = process_view(redis_prefix_url)
    question = CacheRequest(model="m", prompt="q")
    cache.get(question)
    cache.set(question, "answer", usage=Usage(5, 5))
    cache.get(question)
    cache.close()
    result = CliRunner().invoke(cli, ["stats", "--url", redis_prefix_url, "--json"])
    assert result.exit_code == 0, result.output
    view = json.loads(result.output)
    assert (view["hits"], view["misses"], view["tokens_saved"]) == (1, 1, 10)
    table = CliRunner().invoke(cli, ["stats", "--url", redis_prefix_url])
    assert table.exit_code == 0
    assert "50.0%" in table.output


def test_llmcache_stats_without_redis_is_one_clear_line() -> None:
    result = CliRunner().invoke(cli, ["stats", "--url", "memory://"])
    assert result.exit_code == 1
    assert "Redis tier" in result.output
    assert "Traceback" not in result.output


def test_a_forked_worker_publishes_its_own_gains_once(redis_prefix_url: str) -> None:
    """Built before a fork (gunicorn --preload): the worker's counters reach the fleet from a
    publisher thread of its own (threads do not survive a fork), and what the parent had
    gained but not yet sent is counted once, not by both."""
    cache = process_view(redis_prefix_url)
    question = CacheRequest(model="m", prompt="q")
    assert cache.get(question) is None  # the parent's miss, perhaps not yet published
    cache.set(question, "answer")
    pid = os.fork()
    if pid == 0:  # the worker: 3 hits, published by its own thread (it never calls close)
        code = 1
        try:
            for _ in range(3):
                assert cache.get(question) is not None
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                fleet = cache._stats_sink.read_stats()  # type: ignore[union-attr]
                if fleet.get("hits", 0) >= 3:
                    code = 0
                    break
                time.sleep(0.05)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the worker's hits never reached Redis"
    fleet = cache.fleet_stats()
    assert fleet is not None
    assert (fleet["hits"], fleet["misses"], fleet["stores"]) == (3, 1, 1)
    cache.close()


def test_llmcache_stats_shows_savings_below_a_cent(redis_prefix_url: str) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    cache = process_view(redis_prefix_url)
    question = CacheRequest(model="m", prompt="q", model_name="gpt-4o-mini")
    cache.set(question, "answer", usage=Usage(100, 10))
    assert cache.get(question) is not None  # saves $0.000021 at gpt-4o-mini's price
    cache.close()
    table = CliRunner().invoke(cli, ["stats", "--url", redis_prefix_url])
    assert table.exit_code == 0, table.output
    assert "$0.000021" in table.output  # as `llmcache report` shows it
    assert "$0.0000 " not in table.output


def test_reset_stats_leaves_the_fleet_what_was_not_sent_yet(redis_prefix_url: str) -> None:
    cache = process_view(redis_prefix_url)
    question = CacheRequest(model="m", prompt="q")
    cache.get(question)
    cache.set(question, "answer")
    cache.get(question)
    cache.reset_stats()  # this process's stats() restart; the fleet's counts do not
    cache.get(question)
    assert cache.stats()["hits"] == 1
    fleet = cache.fleet_stats()
    assert fleet is not None
    assert (fleet["hits"], fleet["misses"]) == (2, 1)
    cache.close()


def test_a_script_that_never_closes_its_cache_still_counts(redis_prefix_url: str) -> None:
    script = (
        "import sys\n"
        "from llmcache import Cache, CacheRequest, Usage\n"
        "cache = Cache.from_urls(['memory://', sys.argv[1]])\n"
        "question = CacheRequest(model='m', prompt='q', model_name='gpt-4o-mini')\n"
        "cache.get(question)\n"
        "cache.set(question, 'answer', usage=Usage(10, 1))\n"
        "cache.get(question)\n"
        "cache.get(question)\n"  # exits within the publisher's first second, no close()
    )
    done = subprocess.run(
        [sys.executable, "-c", script, redis_prefix_url], capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    reader = process_view(redis_prefix_url)
    fleet = reader.fleet_stats()
    assert fleet is not None
    assert (fleet["hits"], fleet["misses"], fleet["tokens_saved"]) == (2, 1, 22)
    assert [row.hits for row in reader.savings().rows] == [2]  # the history too
    reader.close()


def test_a_whole_dollar_amount_after_a_fraction_is_counted_once(redis_prefix_url: str) -> None:
    # 1.0 went out as HINCRBY onto "0.5", which Redis refused; the batch was handed back and
    # its other counts (applied: a pipeline is no transaction) were sent again every second.
    cache = process_view(redis_prefix_url)
    question = CacheRequest(model="m", prompt="q")
    cache.set(question, "answer")
    cache.get(question)
    cache.record_cost_saved(0.5)  # an adapter that prices its own hits
    cache.fleet_stats()  # published
    cache.get(question)
    cache.record_cost_saved(1.0)
    for _ in range(3):  # each call publishes first
        fleet = cache.fleet_stats()
        assert fleet is not None
        assert fleet["hits"] == 2
        assert fleet["cost_saved_usd"] == 1.5
    cache.close()


def test_a_counter_redis_refuses_does_not_count_the_others_again(
    redis_prefix_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = process_view(redis_prefix_url)
    tier = cache.tiers[1]
    assert isinstance(tier, RedisTier)
    question = CacheRequest(model="m", prompt="q")
    cache.set(question, "answer")
    raw = redis.Redis.from_url(redis_prefix_url.split("?")[0])
    raw.hset(tier._stats_key(), "hits", 2**63 - 1)  # one more overflows: refused
    with caplog.at_level("WARNING", logger="llmcache"):
        cache.get(question)
        cache.get(CacheRequest(model="m", prompt="other"))  # a miss
        for _ in range(3):
            fleet = cache.fleet_stats()
            assert fleet is not None and fleet["misses"] == 1
    assert "refused 1 of" in caplog.text
    raw.close()
    cache.close()
