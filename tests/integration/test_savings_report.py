"""Dollars saved, ours and the provider's prompt cache's, after real LangChain and LiteLLM
traffic on a priced model: in ``stats()``, in the history a SQL or Redis tier keeps, and in
``llmcache report`` (table, JSON, PNG chart). Expected dollars are computed here, independently,
with ``litellm.cost_per_token``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import litellm
import pytest
from click.testing import CliRunner
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from langchain_llmcache import LangChainCache
from litellm_llmcache import LiteLLMCache
from llmcache import Cache, CacheRequest, FakeClock, Usage
from llmcache.cli.app import cli
from llmcache.tiers.sql import SqlTier
from llmcache.tiers.sql_schema import MIGRATIONS
from llmcache.tiers.sql_url import parse_sql_url

MODEL = "gpt-4o-mini"
PROMPT, COMPLETION, PROVIDER_CACHED = 1200, 300, 800


def lc_answer(text: str, cache_read: int = 0) -> AIMessage:
    """A provider's reply as LangChain reports it: model and usage in the metadata."""
    return AIMessage(
        content=text,
        response_metadata={"model_name": MODEL},
        usage_metadata={
            "input_tokens": PROMPT,
            "output_tokens": COMPLETION,
            "total_tokens": PROMPT + COMPLETION,
            "input_token_details": {"cache_read": cache_read},
        },
    )


def langchain_traffic(cache: Cache) -> None:
    """2 misses (the second with 800 prompt tokens from the provider's cache), then 3 hits."""
    replies = iter([lc_answer("plain"), lc_answer("discounted", PROVIDER_CACHED)])
    llm = GenericFakeChatModel(messages=replies, cache=LangChainCache(cache))
    assert llm.invoke("q1").content == "plain"
    assert llm.invoke("q2").content == "discounted"
    for prompt in ("q1", "q1", "q2"):
        assert llm.invoke(prompt).response_metadata["llmcache"]["match"] == "exact"


def litellm_response(cached: int) -> litellm.ModelResponse:
    return litellm.ModelResponse(
        model=MODEL,
        choices=[{"message": {"role": "assistant", "content": "ll"}, "finish_reason": "stop"}],
        usage=litellm.Usage(
            prompt_tokens=1000,
            completion_tokens=200,
            total_tokens=1200,
            prompt_tokens_details={"cached_tokens": cached},
        ),
    )


def litellm_traffic(cache: Cache) -> None:
    """1 miss (400 prompt tokens from the provider's cache), then 2 hits."""
    before = litellm.cache
    litellm.cache = LiteLLMCache(cache)
    try:
        ask = [{"role": "user", "content": "ll-q"}]
        litellm.completion(model=MODEL, messages=ask, mock_response=litellm_response(400))
        for _ in range(2):
            hit = litellm.completion(model=MODEL, messages=ask, mock_response="not called")
            assert hit._hidden_params["cache_hit"] is True
    finally:
        litellm.cache = before


def cost(prompt: int, completion: int, cache_read: int = 0) -> float:
    dollars_in, dollars_out = litellm.cost_per_token(
        model=MODEL,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cache_read_input_tokens=cache_read,
    )
    return float(dollars_in + dollars_out)


def provider_saving(cache_read: int) -> float:
    return cost(cache_read, 0) - cost(cache_read, 0, cache_read)


# What one run of both kinds of traffic saved, computed apart from llmcache.
OURS = (
    2 * cost(PROMPT, COMPLETION)  # two hits of q1
    + cost(PROMPT, COMPLETION, PROVIDER_CACHED)  # a hit of q2: its original bill, discounted
    + 2 * cost(1000, 200, 400)  # two LiteLLM hits
)
PROVIDER = provider_saving(PROVIDER_CACHED) + provider_saving(400)  # once per miss
HITS, TOKENS_IN, TOKENS_OUT = 5, 3 * PROMPT + 2 * 1000, 3 * COMPLETION + 2 * 200


def test_stats_price_each_model_and_never_count_the_providers_saving_twice() -> None:
    with Cache.from_urls(["memory://"]) as cache:
        langchain_traffic(cache)
        litellm_traffic(cache)
        stats = cache.stats()
    row = stats["by_model"][MODEL]
    assert (row["hits"], row["tokens_saved_input"], row["tokens_saved_output"]) == (
        HITS,
        TOKENS_IN,
        TOKENS_OUT,
    )
    assert row["cost_saved_usd"] == pytest.approx(OURS)
    assert row["provider_cache_read_tokens"] == PROVIDER_CACHED + 400
    assert row["provider_cache_saved_usd"] == pytest.approx(PROVIDER)
    assert row["priced"] is True
    assert stats["cost_saved_usd"] == pytest.approx(OURS)
    assert stats["provider_cache_saved_usd"] == pytest.approx(PROVIDER)
    assert stats["unpriced_models"] == []


def test_a_model_litellm_does_not_price_saves_tokens_and_is_reported_unpriced() -> None:
    replies = iter([AIMessage(content="a", usage_metadata=_usage(50, 5))])
    with Cache.from_urls(["memory://"]) as cache:
        llm = GenericFakeChatModel(messages=replies, cache=LangChainCache(cache))
        llm.invoke("q")
        llm.invoke("q")
        stats = cache.stats()
    assert stats["tokens_saved"] == 55
    assert stats["cost_saved_usd"] == 0.0  # never a guessed price
    assert stats["unpriced_models"] == ["generic-fake-chat-model"]


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "input_tokens": prompt,
        "output_tokens": completion,
        "total_tokens": prompt + completion,
    }


def test_the_report_window_leaves_older_hours_out(fake_clock: FakeClock) -> None:
    with Cache.from_urls(["memory://"], clock=fake_clock) as cache:
        langchain_traffic(cache)
        fake_clock.advance(3 * 24 * 3600)
        litellm_traffic(cache)
        last_day = cache.savings(since=fake_clock() - 24 * 3600)
        everything = cache.savings()
    assert [r.hits for r in last_day.rows] == [2]
    assert last_day.cost_saved_usd == pytest.approx(2 * cost(1000, 200, 400))
    assert everything.cost_saved_usd == pytest.approx(OURS)
    assert len(everything.hourly) == 2


# ---------------------------------------------------------------------------- kept by a tier
@pytest.fixture(params=["sqlite", "mysql", "postgres", "redis", "redis_cluster"])
def history_url(request: pytest.FixtureRequest, tmp_path: Path, table_prefix: str) -> Iterator[str]:
    """A store that keeps the savings history, under a private table or key prefix."""
    from conftest import delete_redis_keys, drop_tables, with_query

    kind = request.param
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path}/llmcache.db"
        return
    base = request.getfixturevalue(f"{kind}_url")
    if kind.startswith("redis"):
        yield with_query(base, prefix=table_prefix)
        delete_redis_keys(base, table_prefix)
    else:
        yield with_query(base, table_prefix=table_prefix)
        drop_tables(base, table_prefix)


def test_the_history_adds_up_every_run_on_the_store(history_url: str) -> None:
    for _ in range(2):  # two runs, one after the other (a laptop, or two processes)
        with Cache.from_urls(["memory://", history_url]) as cache:
            langchain_traffic(cache)
            litellm_traffic(cache)
            cache.clear()  # so the next run misses first again (and clear keeps the history)
    with Cache.from_urls([history_url], fleet_stats=False) as reader:
        report = reader.savings()
    (row,) = report.rows
    assert (row.model, row.hits, row.tokens_saved_input) == (MODEL, 2 * HITS, 2 * TOKENS_IN)
    assert row.cost_saved_usd == pytest.approx(2 * OURS)
    assert row.provider_cache_saved_usd == pytest.approx(2 * PROVIDER)


def test_clear_and_invalidate_leave_the_history_alone(history_url: str) -> None:
    with Cache.from_urls(["memory://", history_url]) as cache:
        langchain_traffic(cache)
        cache.invalidate(model=MODEL)
        cache.clear()
        assert cache.savings().rows[0].hits == 3


def test_a_model_name_holding_a_nul_does_not_stop_the_history(history_url: str) -> None:
    # PostgreSQL refuses NUL in text: the batch failed and was retried for ever, so no
    # model's savings were ever recorded again by that process.
    odd, plain = (
        CacheRequest(model="m", prompt="a", model_name="odd\x00model"),
        CacheRequest(model="m", prompt="b", model_name="plain-model"),
    )
    with Cache.from_urls(["memory://", history_url]) as cache:
        for request in (odd, plain):
            cache.set(request, "answer", usage=Usage(10, 5))
            assert cache.get(request) is not None
        report = cache.savings()
    assert sorted(row.hits for row in report.rows) == [1, 1]
    assert "plain-model" in {row.model for row in report.rows}


def test_llmcache_report_prints_the_dollars_and_writes_a_png(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/llmcache.db"
    with Cache.from_urls(["memory://", url]) as cache:
        langchain_traffic(cache)
        litellm_traffic(cache)
    for since in ("7d", "99999999999d"):  # back before 1970: all of it (was a traceback)
        result = CliRunner().invoke(cli, ["report", "--url", url, "--json", "--since", since])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["models"][MODEL]["hits"] == HITS
    table = CliRunner().invoke(cli, ["report", "--url", url, "--since", "99999999999d"])
    assert table.exit_code == 0 and MODEL in table.output, table.output
    report = json.loads(result.output)
    model = report["models"][MODEL]
    assert model["hits"] == HITS
    assert model["cost_saved_usd"] == pytest.approx(OURS)
    assert model["provider_cache_saved_usd"] == pytest.approx(PROVIDER)
    assert report["total_saved_usd"] == pytest.approx(OURS + PROVIDER)

    chart = tmp_path / "savings.png"
    table = CliRunner().invoke(cli, ["report", "--url", url, "--chart", str(chart)])
    assert table.exit_code == 0, table.output
    assert MODEL in table.output
    assert f"${OURS:.6f}" in table.output  # less than a dollar: shown to the micro-dollar
    assert f"${OURS + PROVIDER:.6f}" in table.output
    png = chart.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 10_000  # a drawn chart, not an empty canvas


def test_llmcache_report_names_the_problem_of_a_bad_call(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/llmcache.db"
    bad_since = CliRunner().invoke(cli, ["report", "--url", url, "--since", "a week"])
    assert bad_since.exit_code == 2
    assert "--since takes a positive number and a unit" in bad_since.output
    no_history = CliRunner().invoke(cli, ["report", "--url", "memory://"])
    assert no_history.exit_code == 1
    assert "kept by a SQL or Redis tier" in no_history.output
    assert "Traceback" not in no_history.output + bad_since.output


def test_the_chart_names_its_extra_when_matplotlib_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails
    url = f"sqlite:///{tmp_path}/llmcache.db"
    Cache.from_urls([url]).close()  # an app made it
    result = CliRunner().invoke(cli, ["report", "--url", url, "--chart", str(tmp_path / "c.png")])
    assert result.exit_code == 2
    assert "pip install 'llmcache[report]'" in result.output
    assert not (tmp_path / "c.png").exists()


def test_fleet_stats_carry_the_per_model_dollars(redis_prefix_url: str) -> None:
    a = Cache.from_urls(["memory://", redis_prefix_url])
    b = Cache.from_urls(["memory://", redis_prefix_url])
    langchain_traffic(a)
    litellm_traffic(b)
    b.close()
    fleet = a.fleet_stats()
    a.close()
    assert fleet is not None
    row = fleet["by_model"][MODEL]
    assert row["hits"] == HITS
    assert row["cost_saved_usd"] == pytest.approx(OURS)
    assert fleet["provider_cache_saved_usd"] == pytest.approx(PROVIDER)


@pytest.mark.parametrize("history_url", ["sqlite", "mysql", "postgres"], indirect=True)
def test_a_version_2_store_gains_the_history_and_keeps_its_entries(history_url: str) -> None:
    question = CacheRequest(model="m", prompt="q", model_name=MODEL)
    with Cache([SqlTier(parse_sql_url(history_url), migrations=MIGRATIONS[:2])]) as v2:
        v2.set(question, "stored by the previous release", usage=Usage(PROMPT, COMPLETION))
    with Cache.from_urls([history_url]) as cache:  # opening it migrates it
        hit = cache.get(question)
        assert hit is not None
        assert hit.entry.value == "stored by the previous release"
        (row,) = cache.savings().rows
    assert (row.model, row.hits) == (MODEL, 1)
    assert row.cost_saved_usd == pytest.approx(cost(PROMPT, COMPLETION))


def test_the_report_says_which_models_are_unpriced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/llmcache.db"
    replies = iter([AIMessage(content="a", usage_metadata=_usage(50, 5))])
    with Cache.from_urls(["memory://", url]) as cache:
        llm = GenericFakeChatModel(messages=replies, cache=LangChainCache(cache))
        llm.invoke("q")
        llm.invoke("q")
    result = CliRunner().invoke(cli, ["report", "--url", url])
    assert result.exit_code == 0, result.output
    assert "generic-fake-chat-model" in result.output
    assert "unpriced" in result.output
    as_json = json.loads(CliRunner().invoke(cli, ["report", "--url", url, "--json"]).output)
    row = as_json["models"]["generic-fake-chat-model"]
    assert (row["hits"], row["priced"], row["cost_saved_usd"]) == (1, False, 0.0)
