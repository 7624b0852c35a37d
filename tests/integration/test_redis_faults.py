"""A broken Redis never fails a LangChain call. Each test starts its own redis-server on a
spare port (no persistence) and breaks it for real: stopped, out of memory, a read-only
replica, stalled by DEBUG SLEEP, a Sentinel primary killed. Through all of it ``llm.invoke``
returns the model's answer, the fault is logged once per outage and counted in
``errors_by_tier``, and the breaker keeps calls from trying the dead server again and again.

Connection attempts are counted by the tier's own redis-py pool, whose connection class is
swapped for a subclass that counts ``connect`` calls (a real connection, not a fake).
The down phases run the breaker on a fake monotonic clock, so what is skipped does not depend
on how fast this machine is; recovery runs on real clocks, polled for at most 5 s.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from figures import record
from langchain_core.language_models.llms import LLM

from langchain_llmcache import LangChainCache
from llmcache import Cache, CacheRequest, FakeClock
from llmcache.tiers.memory import MemoryTier
from llmcache.tiers.redis import RedisTier

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)

RECOVERY_SECONDS = 5.0


def spare_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisProcess:
    """A redis-server this test owns: started, stopped and restarted on one port."""

    def __init__(self, workdir: Path, *extra: str) -> None:
        self.port = spare_port()
        self.workdir = workdir
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), "--enable-debug-command", "yes",
             *self.extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(port=self.port, socket_timeout=0.5) as client:
                    client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on {self.port} did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisProcess]:
    proc = RedisProcess(tmp_path)
    proc.start()
    yield proc
    proc.stop()


class Answering(LLM):
    """A model that answers every prompt and counts its calls."""

    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "answering"

    def _call(self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any) -> str:
        self.calls += 1
        return f"answer to {prompt}"

    async def _acall(
        self, prompt: str, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> str:
        return self._call(prompt)


def counting(tier: RedisTier) -> list[int]:
    """Count the tier's socket connection attempts (sync pool): returns a one-item counter."""
    count = [0]
    pool = tier._sync().connection_pool
    base = pool.connection_class

    class Counting(base):  # type: ignore[misc,valid-type]
        def _connect(self, *args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            return super()._connect(*args, **kwargs)

    pool.connection_class = Counting
    pool.reset()  # forget connections made by the old class
    return count


def acounting(tier: RedisTier) -> list[int]:
    """``counting`` for the tier's redis.asyncio pool (of the running loop)."""
    count = [0]
    pool = tier._async().connection_pool
    base = pool.connection_class

    class Counting(base):  # type: ignore[misc,valid-type]
        async def _connect(self, *args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            return await super()._connect(*args, **kwargs)

    pool.connection_class = Counting
    pool.reset()
    return count


def warnings_about(caplog: pytest.LogCaptureFixture, tier: str, what: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "llmcache" and f"tier {tier} {what}" in r.getMessage()
    ]


def seconds_until_redis_hit(
    cache: Cache,
    request: CacheRequest,
    seconds: float = RECOVERY_SECONDS,
    *,
    tier: str = "redis",
    breaker_clock: FakeClock | None = None,
    memory: MemoryTier | None = None,
) -> float | None:
    """Poll (store, then read) until Redis itself serves a hit: the seconds that took, or
    None after ``seconds``. A fake breaker clock is moved past the cool-down at each try (the
    time a real one would wait is not what is measured); a memory tier in front is emptied
    before each read, so the hit must come from Redis."""
    started = time.monotonic()
    while time.monotonic() < started + seconds:
        if breaker_clock is not None:
            breaker_clock.advance(5)
        cache.set(request, "back")
        if memory is not None:
            memory.clear(None)
        hit = cache.get(request)
        if hit is not None and hit.tier == tier:
            return round(time.monotonic() - started, 2)
        time.sleep(0.05)
    return None


def redis_hit_within(cache: Cache, request: CacheRequest, seconds: float) -> bool:
    """Poll (store, then read) until Redis itself serves a hit; at most ``seconds``."""
    return seconds_until_redis_hit(cache, request, seconds) is not None


def record_outage(fault: str, answers: list[str], prompts: list[str], **figures: Any) -> None:
    """One row of a Redis fault's figures; callers got an error when their answer is not the
    model's (an exception would have failed the test before this)."""
    errors = sum(a != f"answer to {p}" for a, p in zip(answers, prompts, strict=True))
    record(f"fault: {fault}", calls_during_outage=len(prompts), caller_errors=errors, **figures)


def stall(server: RedisProcess, seconds: int) -> threading.Thread:
    """Stall the server (DEBUG SLEEP, from a thread) and return once it has stopped answering;
    join the thread to wait for the end of the stall."""
    sleeper = threading.Thread(
        target=lambda: server.client().execute_command("DEBUG", "SLEEP", seconds)
    )
    sleeper.start()
    wait_until_stalled(server)
    return sleeper


def wait_until_stalled(server: RedisProcess) -> None:
    """Return once the server has stopped answering (DEBUG SLEEP started), within 5 s."""
    deadline = time.monotonic() + 5
    probe = redis.Redis(port=server.port, socket_timeout=0.1, retry=None)
    try:
        while time.monotonic() < deadline:
            try:
                probe.ping()
            except (redis.TimeoutError, redis.ConnectionError):  # a timeout, wrapped or not
                return
            time.sleep(0.01)
        raise AssertionError("DEBUG SLEEP never stalled the server")
    finally:
        probe.close()


# ---------------------------------------------------------------------------- server down
def test_invoke_answers_while_redis_is_down_and_logs_once(
    server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    tier = RedisTier.from_url(server.url)
    breaker_clock = FakeClock()
    memory = MemoryTier()
    cache = Cache([memory, tier], monotonic=breaker_clock)
    llm = Answering(cache=LangChainCache(cache))
    assert llm.invoke("warm-up") == "answer to warm-up"  # Redis works: stored there too
    attempts = counting(tier)
    server.stop()
    with caplog.at_level(logging.WARNING, logger="llmcache"):
        answers = [llm.invoke(f"question {i}") for i in range(20)]
        again = llm.invoke("question 3")  # served by memory, still up
    assert answers == [f"answer to question {i}" for i in range(20)]
    assert again == "answer to question 3" and llm.calls == 21
    assert len(warnings_about(caplog, "redis", "failed")) == 1  # once per outage
    assert cache.stats()["errors_by_tier"]["redis"] >= 1
    assert cache.stats()["breakers"]["redis"] == "open"
    # The breaker skips the tier: one failing call reached it, not twenty.
    assert 1 <= attempts[0] <= 2, attempts[0]
    attempts_during_outage = attempts[0]  # recovery below connects again
    server.start()
    recovery = seconds_until_redis_hit(
        cache, CacheRequest(model="m", prompt="back"), breaker_clock=breaker_clock, memory=memory
    )
    record_outage(
        "Redis stopped (LangChain invoke, memory in front)",
        [*answers, again],
        [f"question {i}" for i in [*range(20), 3]],
        log_lines_per_outage=len(warnings_about(caplog, "redis", "failed")),
        connection_attempts=attempts_during_outage,
        seconds_until_hits_after_restart=recovery,
    )
    cache.close()


async def test_ainvoke_answers_while_redis_is_down(
    server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    tier = RedisTier.from_url(server.url)
    breaker_clock = FakeClock()
    cache = Cache([tier], monotonic=breaker_clock)
    llm = Answering(cache=LangChainCache(cache))
    assert await llm.ainvoke("warm-up") == "answer to warm-up"
    attempts = acounting(tier)
    server.stop()
    with caplog.at_level(logging.WARNING, logger="llmcache"):
        answers = [await llm.ainvoke(f"q{i}") for i in range(10)]
    assert answers == [f"answer to q{i}" for i in range(10)]
    assert len(warnings_about(caplog, "redis", "failed")) == 1
    assert cache.stats()["errors_by_tier"]["redis"] >= 1
    assert 1 <= attempts[0] <= 2, attempts[0]  # redis.asyncio's own pool: the breaker skips
    attempts_during_outage = attempts[0]
    server.start()
    recovery = seconds_until_redis_hit(
        cache, CacheRequest(model="m", prompt="back"), breaker_clock=breaker_clock
    )
    record_outage(
        "Redis stopped (LangChain ainvoke)",
        answers,
        [f"q{i}" for i in range(10)],
        log_lines_per_outage=len(warnings_about(caplog, "redis", "failed")),
        connection_attempts=attempts_during_outage,
        seconds_until_hits_after_restart=recovery,
    )
    await cache.aclose()


def test_after_a_restart_redis_serves_hits_again_within_5s(
    server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    cache = Cache([RedisTier.from_url(server.url)])  # real clocks: the breaker probes for real
    llm = Answering(cache=LangChainCache(cache))
    request = CacheRequest(model="m", prompt="after restart")
    with caplog.at_level(logging.WARNING, logger="llmcache"):
        server.stop()
        first = llm.invoke("while down")
        assert first == "answer to while down"
        server.start()
        recovery = seconds_until_redis_hit(cache, request)
        assert recovery is not None
        assert len(warnings_about(caplog, "redis", "recovered")) == 1
        # A second outage is a new outage: logged once more.
        server.stop()
        answers = [llm.invoke("down again"), llm.invoke("still down")]
        assert answers == ["answer to down again", "answer to still down"]
    assert len(warnings_about(caplog, "redis", "failed")) == 2
    record_outage(
        "Redis stopped, restarted, stopped again (real breaker clock)",
        [first, *answers],
        ["while down", "down again", "still down"],
        outages=2,
        log_lines_per_outage=len(warnings_about(caplog, "redis", "failed")) // 2,
        seconds_until_hits_after_restart=recovery,
    )
    cache.close()


# ---------------------------------------------------------------------------- error replies
def test_out_of_memory_fails_open(server: RedisProcess, caplog: pytest.LogCaptureFixture) -> None:
    breaker_clock = FakeClock()
    memory = MemoryTier()
    cache = Cache([memory, RedisTier.from_url(server.url)], monotonic=breaker_clock)
    llm = Answering(cache=LangChainCache(cache))
    admin = server.client()
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)
    with caplog.at_level(logging.WARNING, logger="llmcache"):
        answers = [llm.invoke(f"q{i}") for i in range(5)]
    assert answers == [f"answer to q{i}" for i in range(5)]
    failures = warnings_about(caplog, "redis", "failed")
    assert len(failures) == 1 and "OutOfMemoryError" in failures[0], failures
    assert cache.stats()["errors_by_tier"]["redis"] >= 1
    assert llm.invoke("q0") == "answer to q0" and llm.calls == 5  # memory still serves
    admin.config_set("maxmemory", 0)
    admin.close()
    recovery = seconds_until_redis_hit(
        cache, CacheRequest(model="m", prompt="back"), breaker_clock=breaker_clock, memory=memory
    )
    record_outage(
        "Redis out of memory (OOM replies), memory in front",
        answers,
        [f"q{i}" for i in range(5)],
        log_lines_per_outage=len(failures),
        seconds_until_hits_after_maxmemory_lifted=recovery,
    )
    cache.close()


def test_a_read_only_replica_fails_open(
    server: RedisProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    primary_dir = tmp_path / "primary"
    primary_dir.mkdir()
    primary = RedisProcess(primary_dir)
    primary.start()
    try:
        admin = server.client()
        admin.replicaof("127.0.0.1", primary.port)  # the tier's server is now a replica
        breaker_clock = FakeClock()
        cache = Cache([RedisTier.from_url(server.url)], monotonic=breaker_clock)
        llm = Answering(cache=LangChainCache(cache))
        with caplog.at_level(logging.WARNING, logger="llmcache"):
            answers = [llm.invoke(f"q{i}") for i in range(5)]
        assert answers == [f"answer to q{i}" for i in range(5)]
        failures = warnings_about(caplog, "redis", "failed")
        assert len(failures) == 1 and "ReadOnlyError" in failures[0], failures
        assert cache.stats()["errors_by_tier"]["redis"] >= 1
        admin.replicaof("NO", "ONE")
        admin.close()
        recovery = seconds_until_redis_hit(
            cache, CacheRequest(model="m", prompt="back"), breaker_clock=breaker_clock
        )
        record_outage(
            "Redis a read-only replica (READONLY replies)",
            answers,
            [f"q{i}" for i in range(5)],
            log_lines_per_outage=len(failures),
            seconds_until_hits_after_promotion=recovery,
        )
        cache.close()
    finally:
        primary.stop()


def restart_loading(server: RedisProcess, keys: int) -> None:
    """Restart ``server`` on a dataset of ``keys`` keys that it loads slowly (100 µs a key,
    answering other clients meanwhile); return once a client has been told LOADING."""
    admin = server.client()
    admin.execute_command("DEBUG", "POPULATE", keys, "filler")
    admin.save()
    admin.close()
    server.stop()
    server.extra = ("--key-load-delay", "100", "--loading-process-events-interval-bytes", "1024")
    server.proc = subprocess.Popen(
        ["redis-server", "--port", str(server.port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(server.workdir), *server.extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    probe = redis.Redis(port=server.port, socket_timeout=0.5, retry=None)
    try:
        while time.monotonic() < deadline:
            try:
                probe.ping()
            except redis.BusyLoadingError:
                return
            except redis.ConnectionError:
                time.sleep(0.01)  # not listening yet
            else:
                raise AssertionError("the server finished loading before it was asked")
        raise AssertionError("the server never said LOADING")
    finally:
        probe.close()


def test_a_server_still_loading_its_data_fails_open(
    server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis answers LOADING while it loads its dataset after a restart: every call gets the
    model's answer, the outage is logged once, and hits come back once it has loaded."""
    cache = Cache([RedisTier.from_url(server.url)])  # real clocks: the breaker probes for real
    llm = Answering(cache=LangChainCache(cache))
    assert llm.invoke("kept") == "answer to kept" and llm.invoke("kept") == "answer to kept"
    assert llm.calls == 1  # stored in Redis, and served from it
    with caplog.at_level(logging.WARNING, logger="llmcache"):
        restart_loading(server, 10_000)  # about a second of loading
        answers = [llm.invoke(f"q{i}") for i in range(5)]
        assert cache.get(CacheRequest(model="m", prompt="kept")) is None  # not readable yet
        loaded = time.monotonic() + 30
        while time.monotonic() < loaded:
            with server.client() as admin:
                try:
                    admin.ping()
                    break
                except redis.BusyLoadingError:
                    time.sleep(0.05)
        recovery = seconds_until_redis_hit(cache, CacheRequest(model="m", prompt="back"))
    assert answers == [f"answer to q{i}" for i in range(5)]
    failures = warnings_about(caplog, "redis", "failed")
    assert len(failures) == 1 and "LOADING" in failures[0].upper(), failures
    assert cache.stats()["errors_by_tier"]["redis"] >= 1
    assert recovery is not None  # within 5 s of the end of loading
    assert llm.invoke("kept") == "answer to kept" and llm.calls == 6  # from Redis, as before
    cache.close()


def test_a_stalled_server_times_out_and_fails_open(
    server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    tier = RedisTier.from_url(server.url)
    breaker_clock = FakeClock()
    memory = MemoryTier()
    cache = Cache([memory, tier], monotonic=breaker_clock)
    llm = Answering(cache=LangChainCache(cache))
    assert llm.invoke("warm-up") == "answer to warm-up"
    attempts = counting(tier)
    sleeper = stall(server, 2)
    try:
        with caplog.at_level(logging.WARNING, logger="llmcache"):
            answers = [llm.invoke(f"q{i}") for i in range(10)]
    finally:
        sleeper.join(timeout=10)
    assert answers == [f"answer to q{i}" for i in range(10)]
    failures = warnings_about(caplog, "redis", "failed")
    assert len(failures) == 1 and "Timeout" in failures[0], failures
    assert cache.stats()["errors_by_tier"]["redis"] >= 1
    assert attempts[0] <= 2, attempts[0]  # one timed-out call; the rest skipped
    attempts_during_outage = attempts[0]
    recovery = seconds_until_redis_hit(
        cache, CacheRequest(model="m", prompt="back"), breaker_clock=breaker_clock, memory=memory
    )
    record_outage(
        "Redis stalled (DEBUG SLEEP 2), memory in front",
        answers,
        [f"q{i}" for i in range(10)],
        log_lines_per_outage=len(failures),
        connection_attempts=attempts_during_outage,
        seconds_until_hits_after_the_stall=recovery,
    )
    cache.close()


async def test_a_stalled_server_times_out_on_the_async_path_and_no_late_reply_is_served(
    server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """The async path reads replies under its own timeout (redis_direct): a GET that timed
    out must drop its connection, or the stalled reply, arriving later, would be read as the
    answer to the next command on it."""
    tier = RedisTier.from_url(server.url)
    breaker_clock = FakeClock()
    cache = Cache([tier], monotonic=breaker_clock, single_flight_timeout=None)
    llm = Answering(cache=LangChainCache(cache))
    for i in range(4):  # entries the stalled reads ask for
        assert await llm.ainvoke(f"stored {i}") == f"answer to stored {i}"
    sleeper = stall(server, 2)
    started = time.monotonic()
    try:
        with caplog.at_level(logging.WARNING, logger="llmcache"):
            stalled = await asyncio.gather(*(llm.ainvoke(f"stored {i}") for i in range(4)))
            answers = [await llm.ainvoke(f"q{i}") for i in range(10)]
    finally:
        await asyncio.to_thread(sleeper.join, 10)
    assert stalled == [f"answer to stored {i}" for i in range(4)]  # the model's, or a hit
    assert answers == [f"answer to q{i}" for i in range(10)]
    assert time.monotonic() - started < 2.0  # timed out (0.5 s), then skipped by the breaker
    failures = warnings_about(caplog, "redis", "failed")
    assert len(failures) == 1 and "Timeout" in failures[0], failures
    breaker_clock.advance(60)  # the breaker probes Redis again
    for i in range(4):  # every entry is its own, on whichever connection serves it
        hit = await cache.aget(CacheRequest(model="m", prompt=f"own {i}"))
        assert hit is None
        await cache.aset(CacheRequest(model="m", prompt=f"own {i}"), f"value {i}")
    for _ in range(3):
        served = await asyncio.gather(
            *(cache.aget(CacheRequest(model="m", prompt=f"own {i}")) for i in range(4))
        )
        assert [h.entry.value if h else None for h in served] == [f"value {i}" for i in range(4)]
        assert [h.tier if h else None for h in served] == ["redis"] * 4
    await cache.aclose()


async def block_the_loop(seconds: float) -> None:
    """CPU-bound work on the event loop (an app's own, or LiteLLM's after 64 calls): it
    starts on the loop's next turn, when a read just sent is waiting for its reply."""
    await asyncio.sleep(0)
    time.sleep(seconds)  # noqa: ASYNC251 - blocking the loop is the point


async def test_a_busy_event_loop_is_not_an_outage(
    server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """The event loop busy past the socket timeout (0.5 s) while Redis answers at once: the
    reply is in the socket buffer when the loop comes back, so it is read, not timed out.
    (Before, each store was lost and logged as an outage, and the breaker skipped Redis.)"""
    await stores_and_hits_through_a_busy_loop(Cache.from_urls([server.url]), caplog)


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="Python 3.10 has no asyncio.timeout: its reads keep redis-py's wall-time timeout",
)
async def test_a_busy_event_loop_is_not_an_outage_through_sentinel(
    redis_sentinel_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The same on a Sentinel-managed connection, read through redis-py (its reads notice a
    demoted primary), not redis_direct's stream reader. redis-py takes more turns of the loop
    before it reads, so the primary is paused (CLIENT PAUSE 150 ms) to keep each read waiting
    while the loop is busy (from 50 ms to 850 ms)."""
    url = f"{redis_sentinel_url}?prefix=busy{uuid.uuid4().hex[:8]}"
    cache = Cache.from_urls([url])
    tier = cache.tiers[0].name
    where = urlsplit(redis_sentinel_url)  # one sentinel: redis+sentinel://host:port/service
    sentinel = redis.Sentinel([(where.hostname, where.port)])
    primary = sentinel.master_for(where.path.strip("/"))
    loop = asyncio.get_running_loop()
    await cache.aset(CacheRequest(model="m", prompt="warm-up"), "connected")
    try:
        with caplog.at_level(logging.WARNING, logger="llmcache"):
            for i in range(2):
                request = CacheRequest(model="m", prompt=f"q{i}")
                primary.execute_command("CLIENT", "PAUSE", 150, "ALL")
                loop.call_later(0.05, time.sleep, 0.8)
                await cache.aset(request, f"a{i}")
                primary.execute_command("CLIENT", "PAUSE", 150, "ALL")
                loop.call_later(0.05, time.sleep, 0.8)
                hit = await cache.aget(request)
                assert hit is not None, f"q{i}: a miss"
                assert (hit.tier, hit.entry.value) == (tier, f"a{i}")
        assert warnings_about(caplog, tier, "failed") == []
    finally:
        primary.close()
        await cache.aclear()
        await cache.aclose()


async def stores_and_hits_through_a_busy_loop(
    cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    tier = cache.tiers[0].name
    await cache.aset(CacheRequest(model="m", prompt="warm-up"), "connected")
    try:
        with caplog.at_level(logging.WARNING, logger="llmcache"):
            for i in range(3):
                request = CacheRequest(model="m", prompt=f"q{i}")
                busy = asyncio.create_task(block_the_loop(0.8))
                await cache.aset(request, f"a{i}")
                await busy
                busy = asyncio.create_task(block_the_loop(0.8))
                hit = await cache.aget(request)
                await busy
                assert hit is not None, f"q{i}: a miss"
                assert (hit.tier, hit.entry.value) == (tier, f"a{i}")
        assert warnings_about(caplog, tier, "failed") == []
        assert cache.stats()["errors_by_tier"].get(tier, 0) == 0
    finally:
        await cache.aclear()
        await cache.aclose()


async def test_a_busy_event_loop_at_the_first_connect_is_not_an_outage(
    server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """The same at the first call of a new cache, which connects (timeout 0.25 s): an app
    whose first requests arrive together keeps its loop busy while the connect completes."""
    cache = Cache.from_urls([server.url])
    request = CacheRequest(model="m", prompt="first")
    with caplog.at_level(logging.WARNING, logger="llmcache"):
        busy = asyncio.create_task(block_the_loop(0.8))
        await cache.aset(request, "stored")
        await busy
        hit = await cache.aget(request)
    assert hit is not None, "the first store was lost"
    assert (hit.tier, hit.entry.value) == ("redis", "stored")
    assert warnings_about(caplog, "redis", "failed") == []
    await cache.aclose()


async def test_a_stalled_server_still_times_out_while_the_loop_is_busy(
    server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """The grace a busy loop gets is one more timeout, not an unbounded wait: with Redis
    stalled for 3 s and the loop busy 0.8 s at the deadline, the store gives up after about
    0.8 + 0.5 s and fails open."""
    cache = Cache.from_urls([server.url])
    await cache.aset(CacheRequest(model="m", prompt="warm-up"), "connected")
    sleeper = stall(server, 3)
    started = time.monotonic()
    try:
        with caplog.at_level(logging.WARNING, logger="llmcache"):
            busy = asyncio.create_task(block_the_loop(0.8))
            await cache.aset(CacheRequest(model="m", prompt="during the stall"), "lost")
            await busy
            waited = time.monotonic() - started
    finally:
        await asyncio.to_thread(sleeper.join, 10)
    assert waited < 2.5, waited  # the server stays stalled until about 3 s
    failures = warnings_about(caplog, "redis", "failed")
    assert len(failures) == 1 and "Timeout" in failures[0], failures
    await cache.aclose()


# ---------------------------------------------------------------------------- Sentinel failover
FAILOVER_SECONDS = 20.0  # down-after 1 s, then election and promotion: a few seconds


class SentinelGroup:
    """A primary, a replica and one sentinel (quorum 1) this test owns."""

    service = "faults"

    def __init__(self, workdir: Path) -> None:
        (workdir / "primary").mkdir()
        (workdir / "replica").mkdir()
        self.primary = RedisProcess(workdir / "primary")
        self.primary.start()
        self.replica = RedisProcess(
            workdir / "replica", "--replicaof", "127.0.0.1", str(self.primary.port)
        )
        self.replica.start()
        self.port = spare_port()
        conf = workdir / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {workdir}\n"
            f"sentinel monitor {self.service} 127.0.0.1 {self.primary.port} 1\n"
            f"sentinel down-after-milliseconds {self.service} 1000\n"
            f"sentinel failover-timeout {self.service} 5000\n"
        )
        self.sentinel = subprocess.Popen(
            ["redis-server", str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.wait(lambda: self.knows_replica(), "the sentinel to see the replica")

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.service}"

    def admin(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=1, decode_responses=True)

    def knows_replica(self) -> bool:
        with self.admin() as admin:
            try:
                replicas = admin.sentinel_slaves(self.service)
            except redis.RedisError:
                return False
        return any(r["port"] == self.replica.port and r["is_slave"] for r in replicas) and (
            self.replica.client().info("replication")["master_link_status"] == "up"
        )

    def master_port(self) -> int:
        with self.admin() as admin:
            _, port = admin.sentinel_get_master_addr_by_name(self.service)
        return int(port)

    @staticmethod
    def wait(condition: Any, what: str, seconds: float = FAILOVER_SECONDS) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting for {what}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.sentinel.kill()
        self.sentinel.wait(timeout=10)
        self.replica.stop()
        self.primary.stop()


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    group = SentinelGroup(tmp_path)
    yield group
    group.stop()


def test_sentinel_failover_is_survived_without_a_new_cache(
    sentinel_group: SentinelGroup, caplog: pytest.LogCaptureFixture
) -> None:
    cache = Cache([RedisTier.from_url(sentinel_group.url)])  # real clocks
    llm = Answering(cache=LangChainCache(cache))
    assert llm.invoke("before") == "answer to before"
    hit = cache.get(CacheRequest(model="m", prompt="x"))  # a miss, served by the primary
    assert hit is None and cache.stats()["errors_by_tier"] == {}
    killed = time.monotonic()
    sentinel_group.primary.stop()
    with caplog.at_level(logging.WARNING, logger="llmcache"):
        during = llm.invoke("during")
        assert during == "answer to during"  # fails open while there is none
        SentinelGroup.wait(
            lambda: sentinel_group.master_port() == sentinel_group.replica.port,
            "the sentinel to promote the replica",
        )
        promoted = time.monotonic()
        request = CacheRequest(model="m", prompt="after failover")
        deadline = time.monotonic() + RECOVERY_SECONDS
        served = False
        while not served and time.monotonic() < deadline:
            cache.set(request, "v")
            found = cache.get(request)
            served = found is not None and found.tier == "redis-sentinel"
            time.sleep(0.05)
        served_at = time.monotonic()
    assert served, "the promoted replica did not serve within 5 s of the failover"
    assert llm.invoke("after") == "answer to after"
    assert sentinel_group.replica.client().dbsize() >= 1  # the stores went to the new primary
    record_outage(
        "Sentinel primary killed, replica promoted (same Cache)",
        [during],
        ["during"],
        log_lines_per_outage=len(warnings_about(caplog, "redis-sentinel", "failed")),
        seconds_until_promotion=round(promoted - killed, 2),
        seconds_until_hits_after_promotion=round(served_at - promoted, 2),
    )
    cache.close()
