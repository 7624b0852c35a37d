"""Policy decisions and TTL meanings; the circuit breaker's state machine on a fake clock."""

from __future__ import annotations

import pytest

from llmcache import UNSET, Cache, CachePolicy, CacheRequest, ConfigError, FakeClock, cache_control
from llmcache.breaker import BreakerState, CircuitBreaker
from llmcache.policy import MAX_TTL


def req(**params: object) -> CacheRequest:
    return CacheRequest(model="m", prompt="p", params=params)


def test_default_policy_caches_everything() -> None:
    policy = CachePolicy()
    assert policy.decide(req(temperature=1.5, n=3)).write


@pytest.mark.parametrize(
    ("params", "cacheable"),
    [
        ({"temperature": 0.0}, True),
        ({"temperature": 0.3}, True),
        ({"temperature": 0.9}, False),
        ({"n": 1}, True),
        ({"n": 2}, False),
        ({}, True),
    ],
)
def test_strict_policy(params: dict[str, object], cacheable: bool) -> None:
    decision = CachePolicy.strict().decide(req(**params))
    assert decision.read is cacheable and decision.write is cacheable
    if not cacheable:
        assert decision.reason


def test_ttl_meanings() -> None:
    policy = CachePolicy(default_ttl=60, ttl_jitter=0)  # exact expiry is the point
    assert policy.resolve_ttl(UNSET) == 60  # not passed: the policy default
    assert policy.resolve_ttl(None) is None  # None: the tier's default
    assert policy.resolve_ttl(0) == 0  # zero: do not store (never swallowed into a default)
    assert policy.expires_at(10, now=100.0) == 110.0
    assert policy.expires_at(None, now=100.0) is None


@pytest.mark.parametrize("bad", [-1, float("nan"), "10", True])
def test_bad_ttl_is_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match="ttl"):
        CachePolicy().resolve_ttl(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        # "false" from a config file is a true string: strict mode would be on.
        ({"strict_mode": "false"}, "strict_mode must be True or False"),
        ({"store_truncated": 1}, "store_truncated must be True or False"),
        ({"disabled": "no"}, "disabled must be True or False"),
        # Every comparison with NaN is false: strict mode would refuse nothing.
        ({"max_temperature": float("nan")}, "max_temperature must be a number"),
        ({"max_temperature": "0.3"}, "max_temperature must be a number"),
        ({"max_entry_bytes": 1.5}, "max_entry_bytes must be a whole number"),
    ],
)
def test_bad_policy_options_are_refused(options: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        CachePolicy(**options)  # type: ignore[arg-type]


def test_jitter_spreads_expiry_within_bounds() -> None:
    policy = CachePolicy(ttl_jitter=0.1)
    assert policy.expires_at(100, now=0.0, rand=lambda: 0.0) == pytest.approx(90.0)
    assert policy.expires_at(100, now=0.0, rand=lambda: 1.0) == pytest.approx(110.0)


def test_breaker_opens_probes_and_recovers() -> None:
    clock = FakeClock(0.0)
    breaker = CircuitBreaker(cooldown=1.0, max_cooldown=4.0, clock=clock)
    assert breaker.allow()
    assert breaker.failed() is True  # a new outage: log it
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.advance(1.0)
    assert breaker.allow()  # one probe
    assert not breaker.allow()  # ...and only one at a time
    assert breaker.failed() is False  # still the same outage: do not log again
    clock.advance(1.5)
    assert not breaker.allow()  # cool-down doubled to 2 s
    clock.advance(0.5)
    assert breaker.allow()
    assert breaker.succeeded() is True
    assert breaker.state is BreakerState.CLOSED and breaker.allow()


def test_breaker_cooldown_is_capped_so_recovery_is_seen_within_5s() -> None:
    clock = FakeClock(0.0)
    breaker = CircuitBreaker(cooldown=0.5, max_cooldown=4.0, clock=clock)
    breaker.failed()
    for _ in range(20):
        clock.advance(10)
        assert breaker.allow()
        breaker.failed()
    clock.advance(4.0)
    assert breaker.allow()


@pytest.mark.parametrize("ttl", [float("inf"), 1e300, MAX_TTL + 1])
def test_a_ttl_past_a_hundred_years_is_refused_where_it_is_given(ttl: float) -> None:
    # Redis's PX overflowed and MySQL refused infinity: the store failed, and the breaker
    # then skipped the tier for every caller. None says "no expiry".
    with Cache.from_urls(["memory://"]) as cache:
        request = CacheRequest(model="m", prompt="p")
        with pytest.raises(ConfigError, match=r"at most 3153600000 seconds .*use None"):
            cache.set(request, "v", ttl=ttl)
        assert cache.set(request, "v", ttl=MAX_TTL) and cache.get(request) is not None
    with pytest.raises(ConfigError, match="at most 3153600000 seconds"):
        CachePolicy(default_ttl=ttl)
    with pytest.raises(ConfigError, match="at most 3153600000 seconds"):
        CachePolicy(ttl_by_tag={"faq": ttl})
    with pytest.raises(ConfigError, match="at most 3153600000 seconds"), cache_control(ttl=ttl):
        pass
