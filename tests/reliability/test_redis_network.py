"""Redis behind a slow or dropping network path (a proxy on loopback that the test controls).

Calls never raise, stay bounded by the socket timeout instead of hanging, are served by the
tier above while Redis is unreachable, and Redis serves hits again soon after the path heals.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from conftest import delete_redis_keys, with_query
from figures import record
from flaky_proxy import FlakyProxy, flaky_proxy

from llmcache import Cache, CacheRequest, fleet_invalidation

SOCKET_TIMEOUT = 0.5  # the redis tier's default (seconds)


@pytest.fixture
def proxied(redis_url: str, table_prefix: str) -> Iterator[tuple[FlakyProxy, str]]:
    port = int(redis_url.split(":")[2].split("/")[0])
    with flaky_proxy(port) as proxy:
        yield proxy, with_query(f"redis://127.0.0.1:{proxy.port}/0", prefix=table_prefix)
    delete_redis_keys(redis_url, table_prefix)


def _req(i: int) -> CacheRequest:
    return CacheRequest(model="m", prompt=f"net-{i}")


def _timed(call: object) -> float:
    started = time.monotonic()
    call()  # type: ignore[operator]
    return time.monotonic() - started


def test_a_slow_then_dropped_then_healed_link(proxied: tuple[FlakyProxy, str]) -> None:
    proxy, url = proxied
    cache = Cache.from_urls(["memory://?maxsize=1000", url], fleet_stats=False)
    below_only = Cache.from_urls([url], fleet_stats=False)  # reads Redis itself, no memory
    for i in range(20):
        assert cache.set(_req(i), f"answer {i}")

    # Slow: every chunk waits longer than the socket timeout.
    proxy.delay = SOCKET_TIMEOUT * 2
    slow = [_timed(lambda i=i: below_only.get(_req(i))) for i in range(10)]
    assert max(slow) < SOCKET_TIMEOUT * 3  # bounded: a timeout, never a hang

    # Dropped: connections die mid-flight and new ones are closed at once.
    proxy.delay = 0.0
    proxy.cut()
    dropped = [_timed(lambda i=i: below_only.get(_req(i))) for i in range(50)]
    assert max(dropped) < SOCKET_TIMEOUT * 3
    hit = cache.get(_req(3))  # the memory tier still answers
    assert hit is not None and hit.tier == "memory"
    assert below_only.stats()["errors_by_tier"]

    # Healed: Redis serves again within 5 s (the breaker's probe).
    proxy.heal()
    healed_at = time.monotonic()
    while (found := below_only.get(_req(5))) is None:
        assert time.monotonic() - healed_at < 5.0, "Redis did not serve again within 5 s"
        time.sleep(0.05)
    recovery = time.monotonic() - healed_at
    assert found.tier == "redis" and found.entry.value == "answer 5"
    record(
        "fault: Redis link slow, then dropped, then healed",
        slowest_call_ms_while_slow=round(max(slow) * 1000),
        slowest_call_ms_while_dropped=round(max(dropped) * 1000),
        recovery_seconds=round(recovery, 2),
        caller_errors=0,
    )
    cache.close()
    below_only.close()


def test_a_silently_dead_invalidation_channel_is_noticed(
    proxied: tuple[FlakyProxy, str],
    redis_url: str,
    table_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A subscriber only reads: a path that stops carrying data without closing (a NAT or load
    # balancer forgetting an idle flow) would leave it deaf to invalidations for good. The
    # listener PINGs a quiet channel and replaces a connection that does not answer; back on
    # the channel it empties the memory tier, since what was sent meanwhile never arrived.
    monkeypatch.setattr(fleet_invalidation, "PING_EVERY_SECONDS", 0.3)
    monkeypatch.setattr(fleet_invalidation, "REPLY_SECONDS", 0.5)
    proxy, url = proxied
    with (
        Cache.from_urls(["memory://", url], fleet_stats=False) as far,
        Cache.from_urls([with_query(redis_url, prefix=table_prefix)], fleet_stats=False) as near,
    ):
        listener = far._fleet_invalidation
        assert listener is not None and listener.subscribed.wait(5)
        far.set(_req(1), "answer")
        assert (hit := far.get(_req(1))) is not None and hit.tier == "memory"

        proxy.delay = 3600.0  # the path holds every byte from now on, and closes nothing
        near.clear()  # published while the far listener cannot hear it
        started = time.monotonic()
        while listener.subscribed.is_set():  # the unanswered PING gives it away
            assert time.monotonic() - started < 5.0, "a deaf channel went unnoticed"
            time.sleep(0.05)

        proxy.heal()  # new connections pass again
        assert listener.subscribed.wait(10)
        hit = far.get(_req(1))
        assert hit is None or hit.tier != "memory"  # the memory tier was emptied
