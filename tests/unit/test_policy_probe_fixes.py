"""Policy fixes found by probing: TTL jitter never spreads an expiry past the 100-year bound
(an export of such an entry could not be imported), and a non-numeric fraction option is a
ConfigError like every other bad option."""

from __future__ import annotations

import io

import pytest

from llmcache import Cache, CachePolicy, CacheRequest, ConfigError, FakeClock
from llmcache.policy import MAX_TTL
from llmcache.transfer import export_entries, import_entries


def test_jitter_never_spreads_an_expiry_past_the_longest_ttl() -> None:
    clock = FakeClock()
    request = CacheRequest(model="m", prompt="kept a century", model_name="m")
    source = Cache.from_urls(["memory://"], clock=clock, rand=lambda: 0.999)  # jitter: +~10%
    assert source.set(request, {"answer": "42"}, ttl=MAX_TTL)
    hit = source.get(request)
    assert hit is not None
    assert hit.entry.expires_at is not None
    assert hit.entry.expires_at - clock() <= MAX_TTL

    exported = io.BytesIO()
    assert export_entries(source, exported).exported == 1
    exported.seek(0)
    clock.advance(1)
    target = Cache.from_urls(["memory://"], clock=clock)
    report = import_entries(target, exported)
    assert (report.imported, report.rejected) == (1, 0), report.problems
    served = target.get(request)
    assert served is not None
    assert served.entry.value == {"answer": "42"}


def test_jitter_still_spreads_ordinary_ttls_both_ways() -> None:
    policy = CachePolicy(ttl_jitter=0.1)
    assert policy.expires_at(100.0, 0.0, rand=lambda: 0.0) == pytest.approx(90.0)
    assert policy.expires_at(100.0, 0.0, rand=lambda: 0.999) == pytest.approx(109.98)
    assert policy.expires_at(None, 0.0, rand=lambda: 0.999) is None


@pytest.mark.parametrize("option", ["ttl_jitter", "early_recompute", "rollout"])
@pytest.mark.parametrize("value", ["0.1", None, [0.1]])
def test_a_fraction_that_is_not_a_number_is_a_config_error(option: str, value: object) -> None:
    with pytest.raises(ConfigError, match=option):
        CachePolicy(**{option: value})  # type: ignore[arg-type]
