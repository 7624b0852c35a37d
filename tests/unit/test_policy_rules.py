"""Policy rules through the Cache: TTL by tag and model, "never cached" rules, the switches
(LLMCACHE_DISABLED, a stable rollout share of scopes) and what is never stored."""

from __future__ import annotations

import pytest

from llmcache import Cache, CachePolicy, CacheRequest, ConfigError, FakeClock, Scope
from llmcache.policy import rollout_bucket


def _cache(policy: CachePolicy, clock: FakeClock) -> Cache:
    return Cache.from_urls(["memory://"], policy=policy, clock=clock)


def _req(prompt: str = "q", **kw: object) -> CacheRequest:
    return CacheRequest(model="m", prompt=prompt, **kw)  # type: ignore[arg-type]


def test_tag_rules_set_the_ttl_and_the_smallest_wins(fake_clock: FakeClock) -> None:
    policy = CachePolicy(ttl_by_tag={"news": 60, "faq": 86_400}, default_ttl=3_600, ttl_jitter=0)
    cache = _cache(policy, fake_clock)
    cache.set(_req("n", tags=("news", "faq")), "headline")
    cache.set(_req("f", tags=("faq",)), "answer")
    cache.set(_req("plain"), "other")
    fake_clock.advance(61)
    assert cache.get(_req("n", tags=("news", "faq"))) is None
    assert cache.get(_req("f", tags=("faq",))) is not None
    fake_clock.advance(3_600)
    assert cache.get(_req("plain")) is None  # the default
    assert cache.get(_req("f", tags=("faq",))) is not None


def test_model_rules_apply_when_no_tag_rule_does(fake_clock: FakeClock) -> None:
    policy = CachePolicy(ttl_by_model={"fast-model": 10}, ttl_by_tag={"faq": 100}, ttl_jitter=0)
    cache = _cache(policy, fake_clock)
    cache.set(_req("a", model_name="fast-model"), "x")
    cache.set(_req("b", model_name="fast-model", tags=("faq",)), "y")
    cache.set(_req("c", model_name="slow-model"), "z")
    fake_clock.advance(11)
    assert cache.get(_req("a", model_name="fast-model")) is None
    assert cache.get(_req("b", model_name="fast-model", tags=("faq",))) is not None
    assert cache.get(_req("c", model_name="slow-model")) is not None


def test_a_call_ttl_beats_every_rule(fake_clock: FakeClock) -> None:
    cache = _cache(CachePolicy(ttl_by_tag={"news": 60}), fake_clock)
    cache.set(_req("n", tags=("news",)), "x", ttl=1_000)
    fake_clock.advance(61)
    assert cache.get(_req("n", tags=("news",))) is not None


def test_ttl_zero_rules_mean_never_cached(fake_clock: FakeClock) -> None:
    cache = _cache(CachePolicy(ttl_by_tag={"realtime": 0}, ttl_by_model={"live": 0}), fake_clock)
    assert cache.set(_req("r", tags=("realtime",)), "now") is False
    assert cache.set(_req("l", model_name="live"), "now") is False
    assert cache.set(_req("ok", tags=("faq",)), "kept") is True
    assert cache.get(_req("r", tags=("realtime",))) is None
    assert cache.get(_req("ok", tags=("faq",))) is not None
    assert cache.stats()["skipped"] == 1


def test_llmcache_disabled_turns_reads_and_writes_off(
    monkeypatch: pytest.MonkeyPatch, fake_clock: FakeClock
) -> None:
    warm = _cache(CachePolicy(), fake_clock)
    monkeypatch.setenv("LLMCACHE_DISABLED", "1")
    cache = Cache(warm.tiers, policy=CachePolicy(), clock=fake_clock)
    assert cache.set(_req(), "answer") is False
    monkeypatch.setenv("LLMCACHE_DISABLED", "0")
    warm.set(_req(), "answer")
    assert warm.get(_req()) is not None
    assert cache.get(_req()) is None  # the same tier, but this cache reads nothing


def test_a_bad_switch_value_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMCACHE_DISABLED", "maybe")
    with pytest.raises(ConfigError, match="LLMCACHE_DISABLED"):
        CachePolicy()
    monkeypatch.delenv("LLMCACHE_DISABLED")
    monkeypatch.setenv("LLMCACHE_ROLLOUT", "half")
    with pytest.raises(ConfigError, match="LLMCACHE_ROLLOUT"):
        CachePolicy()
    monkeypatch.setenv("LLMCACHE_ROLLOUT", "1.5")
    with pytest.raises(ConfigError, match="rollout"):
        CachePolicy()


def test_rollout_sends_a_stable_share_of_scopes(fake_clock: FakeClock) -> None:
    policy = CachePolicy(rollout=0.3)
    users = [Scope.of(user=f"user-{i}") for i in range(2_000)]
    inside = [s for s in users if policy.decide(_req(scope=s)).read]
    assert 0.25 < len(inside) / len(users) < 0.35
    # the same users every time, in every process (a hash of the scope, no randomness)
    assert inside == [s for s in users if CachePolicy(rollout=0.3).decide(_req(scope=s)).read]
    assert all(rollout_bucket(s) < 0.3 for s in inside)
    # a larger share keeps everyone who was already inside
    wider = {s for s in users if CachePolicy(rollout=0.6).decide(_req(scope=s)).write}
    assert set(inside) <= wider


def test_answers_cut_or_filtered_are_never_stored() -> None:
    policy = CachePolicy()
    assert not policy.may_store_answer("length").write
    assert not policy.may_store_answer("content_filter").write
    assert policy.may_store_answer("stop").write
    assert policy.may_store_answer(None).write
    assert CachePolicy(store_truncated=True).may_store_answer("length").write


def test_rules_are_validated() -> None:
    with pytest.raises(ConfigError, match="ttl"):
        CachePolicy(ttl_by_tag={"news": -1})
    with pytest.raises(ConfigError, match="keys"):
        CachePolicy(ttl_by_model={"": 5})
