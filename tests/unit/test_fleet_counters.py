"""What a process adds to the fleet-wide counters: deltas since the last publish."""

from __future__ import annotations

from llmcache.entry import Usage
from llmcache.stats import Stats, fleet_view


def test_deltas_are_what_was_added_since_the_last_take() -> None:
    stats = Stats()
    stats.hit("memory", "exact", "gpt-4o-mini", Usage(10, 5))
    stats.miss()
    first = stats.take_deltas()
    assert first == {
        "hits": 1,
        "misses": 1,
        "input_tokens_saved": 10,
        "output_tokens_saved": 5,
        "hits_by_tier:memory": 1,
        "hits_by_match:exact": 1,
        "model_hits:gpt-4o-mini": 1,
        "model_input_tokens:gpt-4o-mini": 10,
        "model_output_tokens:gpt-4o-mini": 5,
    }
    assert stats.take_deltas() == {}
    stats.hit("redis", "exact", "ollama/llama3:8b", Usage(1, 1))
    stats.saved(0.25)
    assert stats.take_deltas() == {
        "hits": 1,
        "input_tokens_saved": 1,
        "output_tokens_saved": 1,
        "cost_saved_usd": 0.25,
        "hits_by_tier:redis": 1,
        "hits_by_match:exact": 1,
        "model_hits:ollama/llama3:8b": 1,
        "model_input_tokens:ollama/llama3:8b": 1,
        "model_output_tokens:ollama/llama3:8b": 1,
    }


def test_deltas_that_were_not_published_come_back_next_time() -> None:
    stats = Stats()
    stats.miss()
    lost = stats.take_deltas()
    stats.untake(lost)  # the tier was down
    stats.miss()
    assert stats.take_deltas() == {"misses": 2}


def test_reset_never_produces_negative_deltas() -> None:
    stats = Stats()
    stats.miss()
    stats.take_deltas()
    stats.reset()
    stats.miss()
    assert stats.take_deltas() == {"misses": 1}


def test_fleet_view_has_the_shape_of_stats() -> None:
    view = fleet_view(
        {"hits": 3.0, "misses": 1.0, "hits_by_tier:redis": 3.0, "cost_saved_usd": 0.5}
    )
    assert view["hit_rate"] == 0.75
    assert view["hits_by_tier"] == {"redis": 3}
    assert view["tokens_saved"] == 0
    assert view["cost_saved_usd"] == 0.5
    assert fleet_view({})["hit_rate"] == 0.0


def test_fleet_view_rebuilds_per_model_rows_whose_names_hold_colons() -> None:
    stats = Stats()
    stats.hit("redis", "exact", "ollama/llama3:8b", Usage(7, 3, 2, 0))
    view = fleet_view(stats.take_deltas())
    assert view["by_model"] == {"ollama/llama3:8b": [1, 7, 3, 2, 0, 0, 0]}


def test_a_reset_keeps_what_was_not_published_yet_for_the_fleet() -> None:
    stats = Stats()
    stats.hit("memory", "exact", "gpt-4o-mini", Usage(10, 5))
    stats.miss()
    stats.reset()  # before the publisher's next batch: stats() restarts, the fleet does not
    stats.miss()
    assert stats.snapshot()["misses"] == 1
    assert stats.take_deltas() == {
        "hits": 1,
        "misses": 2,
        "input_tokens_saved": 10,
        "output_tokens_saved": 5,
        "hits_by_tier:memory": 1,
        "hits_by_match:exact": 1,
        "model_hits:gpt-4o-mini": 1,
        "model_input_tokens:gpt-4o-mini": 10,
        "model_output_tokens:gpt-4o-mini": 5,
    }
    assert stats.take_deltas() == {}


def test_a_refused_hit_after_its_publish_is_taken_back_from_the_fleet() -> None:
    stats = Stats()
    stats.hit("redis", "exact", "gpt-4o-mini", Usage(10, 5))
    stats.take_deltas()
    stats.refused("redis", "exact", "gpt-4o-mini", Usage(10, 5))  # LiteLLM's s-maxage
    deltas = stats.take_deltas()
    assert deltas["hits"] == -1 and deltas["misses"] == 1
    assert deltas["hits_by_tier:redis"] == -1 and deltas["hits_by_match:exact"] == -1


def test_fleet_view_keeps_the_row_of_answers_without_a_model_name() -> None:
    stats = Stats()
    stats.hit("memory", "exact", "", Usage(100, 10))  # CacheRequest's model_name defaults to ""
    view = fleet_view(stats.take_deltas())
    assert view["by_model"] == {"": [1, 100, 10, 0, 0, 0, 0]}
    assert all(":" not in name for name in view)  # no stray "model_hits:" counter
