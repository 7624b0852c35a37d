"""``llmcache demo --semantic``: the demo's cache gets the semantic tier and consults it."""

from __future__ import annotations

import json

from click.testing import CliRunner

from llmcache.cli.app import cli


def test_demo_with_the_semantic_tier() -> None:
    args = ["demo", "--calls", "20", "--latency", "0", "--json"]
    result = CliRunner().invoke(cli, [*args, "--semantic", "faiss://:memory:?verify=off"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)["stats"]
    assert stats["breakers"]["semantic:faiss"] == "closed"
    # Misses were looked up in the index: the candidates it found were judged (different
    # support questions: none close enough to serve).
    assert stats["semantic_rejected"]["below_threshold"] > 0
    assert stats["hits_by_match"] == {"exact": stats["hits"]}


def test_a_bad_semantic_url_stops_the_demo_with_its_reason() -> None:
    result = CliRunner().invoke(cli, ["demo", "--calls", "2", "--semantic", "annoy://x"])
    assert result.exit_code != 0
    assert "unknown semantic scheme 'annoy'" in result.output
