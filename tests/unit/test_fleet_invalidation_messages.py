"""The fleet invalidation messages: what is sent is what is applied, and a failed publish
never fails the invalidation that already happened (the tier side is in
tests/integration/test_fleet_invalidation.py, against real Redis servers)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from llmcache.fleet_invalidation import FleetInvalidation, decode, encode_clear, encode_invalidate
from llmcache.keys import label_digest
from llmcache.tiers.selector import Selector


def test_an_invalidation_round_trips_with_its_age_as_a_point_in_time() -> None:
    selector = Selector(
        scope=b"s" * 16,
        model=b"m" * 16,
        tags=frozenset({label_digest("tag", "kb"), label_digest("tag", "faq")}),
        older_than=60.0,
    )
    removal = decode(encode_invalidate("me", selector, now=1_000.0))
    assert removal.sender == "me" and not removal.clear
    assert removal.selector == selector._replace(older_than=None)
    assert removal.cutoff == 940.0


def test_a_clear_round_trips_with_or_without_a_scope() -> None:
    assert decode(encode_clear("me", None)).scope is None
    removal = decode(encode_clear("me", b"s" * 16))
    assert removal.clear and removal.scope == b"s" * 16


class _Unreachable:
    """A broadcaster whose server is gone (the publishing side only: no listener runs)."""

    name, prefix = "redis", "llmcache"

    def publish(self, channel: str, message: bytes) -> None:
        raise ConnectionError("Connection refused")

    async def apublish(self, channel: str, message: bytes) -> None:
        raise ConnectionError("Connection refused")

    def pubsub(self) -> Any:
        raise AssertionError("a cache without a memory tier does not listen")


async def test_a_failed_publish_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    fleet = FleetInvalidation(_Unreachable(), None, clock=lambda: 0.0)
    with caplog.at_level(logging.WARNING, logger="llmcache"):
        fleet.cleared(None)
        await fleet.ainvalidated(Selector(model=b"m" * 16), now=0.0)
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING"]
    assert "memory tiers drop those entries at their TTL" in caplog.text
    fleet.close()
