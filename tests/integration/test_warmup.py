"""Warm-up through the adapters, on memory, SQLite, MariaDB, PostgreSQL and Redis: FAQ answers
are served to the same question with no model call, only in their scope, and go with
``invalidate(tags=["faq"])``; a replayed log calls the model once per distinct top call, a
few at a time, and leaves hits behind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import litellm
import pytest
from conftest import with_query
from langchain_core.messages import HumanMessage, SystemMessage
from warmup_fakes import RecordingChat, answer_to

from langchain_llmcache import LangChainCache, cached
from langchain_llmcache.warmup import LangChainWarmup
from litellm_llmcache import LiteLLMCache
from litellm_llmcache.warmup import LiteLLMWarmup
from llmcache import Cache, FakeClock, scope
from llmcache.warmup import read_faq, read_log, replay_calls, warm_faq

FIVE_TIERS = ["memory", "sqlite", "mysql", "postgres", "redis"]

RESET = "How do I reset my password?"
REFUND = "What is the refund policy?"
FAQ_ROWS: list[dict[str, Any]] = [
    {"question": RESET, "answer": "Open Settings, then Security."},
    {"question": REFUND, "answer": "30 days, no questions asked.", "user": "alice",
     "tenant": "acme", "tags": ["billing"]},
]  # fmt: skip


def write_faq(directory: Path, kind: str) -> Path:
    path = directory / f"faq.{kind}"
    if kind == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in FAQ_ROWS), encoding="utf-8")
    else:
        lines = ["question,answer,user,tenant,tags"]
        for row in FAQ_ROWS:
            cells = [row["question"], row["answer"], row.get("user", ""), row.get("tenant", "")]
            cells.append(";".join(row.get("tags", [])))
            lines.append(",".join(f'"{c}"' for c in cells))
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_log(directory: Path, prompts: list[str], **extra: Any) -> Path:
    path = directory / "calls.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, **extra}) + "\n" for p in prompts))
    return path


@pytest.fixture
def cache(tier_url: str, fake_clock: FakeClock) -> Iterator[Cache]:
    if tier_url.startswith("redis"):
        # These tests are about warm-up, not faults: under a loaded CI machine a new connection
        # once took longer than the tier's 0.25 s connect timeout and a store failed open.
        tier_url = with_query(tier_url, socket_connect_timeout="5", socket_timeout="5")
    with Cache.from_urls([tier_url], clock=fake_clock) as built:
        yield built


# ------------------------------------------------------------------ FAQ, LangChain
@pytest.mark.parametrize("tier_url", FIVE_TIERS, indirect=True)
@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_faq_answers_are_langchain_hits_in_their_scope_until_invalidated(
    cache: Cache, tmp_path: Path, kind: str
) -> None:
    front = LangChainCache(cache)
    model = RecordingChat(cache=front)
    report = warm_faq(LangChainWarmup(front, model), read_faq(write_faq(tmp_path, kind)))
    assert (report.stored, report.skipped, report.failed) == (2, 0, 0)

    served = model.invoke(RESET)
    assert served.content == "Open Settings, then Security."
    assert served.response_metadata["llmcache"]["tier"] == cache.tiers[0].name
    with scope(user="alice", tenant="acme"):
        assert model.invoke(REFUND).content == "30 days, no questions asked."
    assert model.record.asked == []  # no model call for either

    with scope(user="bob", tenant="acme"):  # alice's row is not bob's
        assert model.invoke(REFUND).content == answer_to(REFUND)
    assert model.invoke(REFUND).content == answer_to(REFUND)  # nor the anonymous scope's
    assert model.record.asked == [REFUND, REFUND]

    assert cache.invalidate(tags=["faq"]) == 2
    assert model.invoke(RESET).content == answer_to(RESET)


def test_a_warmed_faq_answer_streams_through_cached(tmp_path: Path) -> None:
    # The stand-in hit's usage, rewritten by langchain-core to {"total_cost": 0}, was stored
    # with the answer, and replaying it as a stream raised a ValidationError in stream().
    with Cache.from_urls(["memory://"]) as cache:
        front = LangChainCache(cache)
        model = RecordingChat(cache=front)
        warm_faq(LangChainWarmup(front, model), read_faq(write_faq(tmp_path, "csv")))
        (stored,) = [s for s in cache.entries() if "Security" in json.dumps(s.entry.value)]
        message = stored.entry.value["generations"][0]["message"]["fields"]
        assert message.get("usage_metadata") is None
        streamed = "".join(str(chunk.content) for chunk in cached(model).stream(RESET))
        assert streamed == "Open Settings, then Security."
        assert model.record.asked == []


async def test_faq_answers_are_async_hits_and_carry_the_rows_own_tags(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    cache = Cache.from_urls(["memory://"], clock=fake_clock)
    front = LangChainCache(cache)
    model = RecordingChat(cache=front)
    warm_faq(LangChainWarmup(front, model), read_faq(write_faq(tmp_path, "csv")), tags=["kb"])
    assert (await model.ainvoke(RESET)).content == "Open Settings, then Security."
    assert cache.invalidate(tags=["billing"]) == 1  # the refund row's own tag
    assert cache.invalidate(tags=["faq"]) == 0  # tags=["kb"] replaced the default
    assert cache.invalidate(tags=["kb"]) == 1
    assert model.record.asked == []


def test_faq_with_the_apps_system_prompt_hits_that_conversation(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    cache = Cache.from_urls(["memory://"], clock=fake_clock)
    front = LangChainCache(cache)
    model = RecordingChat(cache=front)
    system = "You are the support assistant of Acme."
    target = LangChainWarmup(front, model, system_prompt=system)
    warm_faq(target, read_faq(write_faq(tmp_path, "jsonl")))
    served = model.invoke([SystemMessage(system), HumanMessage(RESET)])
    assert served.content == "Open Settings, then Security."
    assert model.invoke(RESET).content == answer_to(RESET)  # no system prompt: another call


def test_faq_rows_are_semantic_hits_with_a_semantic_tier(
    tmp_path: Path, semantic_cache: Any
) -> None:
    front = LangChainCache(semantic_cache())
    model = RecordingChat(cache=front)
    warm_faq(LangChainWarmup(front, model), read_faq(write_faq(tmp_path, "csv")))
    served = model.invoke("How can I reset my password?")
    assert served.content == "Open Settings, then Security."
    assert served.response_metadata["llmcache"]["match"] == "semantic"
    assert model.record.asked == []


def test_a_bad_file_stores_nothing(tmp_path: Path, fake_clock: FakeClock) -> None:
    from llmcache.warmup import WarmupFileError

    path = tmp_path / "faq.csv"
    path.write_text(f"question,answer\n{RESET},Settings.\n{REFUND},\n", encoding="utf-8")
    with pytest.raises(WarmupFileError, match=r"faq\.csv line 3: empty answer"):
        read_faq(path)
    faq = read_faq(path, skip_bad=True)
    cache = Cache.from_urls(["memory://"], clock=fake_clock)
    front = LangChainCache(cache)
    model = RecordingChat(cache=front)
    report = warm_faq(LangChainWarmup(front, model), faq)
    assert (report.stored, report.skipped) == (1, 1)
    assert report.bad_rows[0].line == 3
    assert model.invoke(RESET).content == "Settings."


class UnkeyableChat(RecordingChat):
    """A model LangChain cannot describe for its cache key (its llm_string fails)."""

    def _get_llm_string(self, stop: list[str] | None = None, **kwargs: Any) -> str:
        raise RuntimeError("cannot describe this model")


def test_rows_that_cannot_be_keyed_are_counted_as_failed(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    cache = Cache.from_urls(["memory://"], clock=fake_clock)
    model = UnkeyableChat()
    report = warm_faq(
        LangChainWarmup(LangChainCache(cache), model), read_faq(write_faq(tmp_path, "csv"))
    )
    assert (report.stored, report.failed) == (0, 2)
    assert report.errors[0] == "line 2: RuntimeError: cannot describe this model"
    assert model.record.asked == []


# ------------------------------------------------------------------ FAQ, LiteLLM
@pytest.mark.parametrize("tier_url", FIVE_TIERS, indirect=True)
def test_faq_answers_are_litellm_hits_in_their_scope(
    cache: Cache, tmp_path: Path, ll_install: Any
) -> None:
    front: LiteLLMCache = ll_install(cache)
    report = warm_faq(LiteLLMWarmup(front, "gpt-4o-mini"), read_faq(write_faq(tmp_path, "csv")))
    assert report.stored == 2

    ask = [{"role": "user", "content": RESET}]
    hit = litellm.completion(model="gpt-4o-mini", messages=ask, mock_response="model")
    assert hit.choices[0].message.content == "Open Settings, then Security."
    assert hit._hidden_params["cache_hit"] is True
    assert hit._hidden_params["llmcache"]["tier"] == cache.tiers[0].name

    refund = [{"role": "user", "content": REFUND}]
    acme = {"llmcache_tenant": "acme"}
    mine = litellm.completion(
        model="gpt-4o-mini", messages=refund, user="alice", metadata=acme, mock_response="model"
    )
    assert mine.choices[0].message.content == "30 days, no questions asked."
    other = litellm.completion(
        model="gpt-4o-mini", messages=refund, user="bob", metadata=acme, mock_response="model"
    )
    assert other.choices[0].message.content == "model"
    streamed = litellm.completion(
        model="gpt-4o-mini", messages=ask, stream=True, mock_response="model"
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == (
        "Open Settings, then Security."
    )
    assert cache.invalidate(tags=["faq"]) == 4  # each row: the plain and the streamed call
    again = litellm.completion(model="gpt-4o-mini", messages=ask, mock_response="model")
    assert again.choices[0].message.content == "model"


def test_litellm_faq_rows_are_semantic_hits_with_a_semantic_tier(
    tmp_path: Path, semantic_cache: Any, ll_install: Any
) -> None:
    front: LiteLLMCache = ll_install(semantic_cache())
    warm_faq(LiteLLMWarmup(front, "gpt-4o-mini"), read_faq(write_faq(tmp_path, "jsonl")))
    paraphrase = [{"role": "user", "content": "How can I reset my password?"}]
    hit = litellm.completion(model="gpt-4o-mini", messages=paraphrase, mock_response="model")
    assert hit.choices[0].message.content == "Open Settings, then Security."
    assert hit._hidden_params["llmcache"]["match"] == "semantic"


# ------------------------------------------------------------------ replaying a log
@pytest.mark.parametrize("tier_url", FIVE_TIERS, indirect=True)
async def test_replay_calls_the_model_once_per_top_call_and_leaves_hits(
    cache: Cache, tmp_path: Path
) -> None:
    prompts = ["a?"] * 3 + ["b?"] * 2 + ["c?"] * 2 + ["d?"]
    log = read_log(write_log(tmp_path, prompts, user="alice"))
    assert [(c.messages[0]["content"], c.count) for c in log.calls] == [
        ("a?", 3), ("b?", 2), ("c?", 2), ("d?", 1)
    ]  # fmt: skip
    front = LangChainCache(cache)
    model = RecordingChat(cache=front)
    report = await replay_calls(LangChainWarmup(front, model), log.top(3), concurrency=2)
    assert sorted(model.record.asked) == ["a?", "b?", "c?"]
    assert (report.model_calls, report.stored, report.failed) == (3, 3, 0)

    with scope(user="alice"):
        for prompt in ("a?", "b?", "c?"):
            served = await model.ainvoke(prompt)
            assert served.content == answer_to(prompt)
            assert "llmcache" in served.response_metadata
        assert "llmcache" not in (await model.ainvoke("d?")).response_metadata
    assert "llmcache" not in model.invoke("a?").response_metadata  # only alice's scope
    again = await replay_calls(LangChainWarmup(front, model), log.top(3))
    assert (again.already_cached, again.model_calls, again.skipped) == (3, 0, 3)


@pytest.mark.parametrize("limit", [1, 3])
async def test_replay_keeps_at_most_concurrency_calls_in_flight(
    tmp_path: Path, fake_clock: FakeClock, limit: int
) -> None:
    cache = Cache.from_urls(["memory://"], clock=fake_clock)
    log = read_log(write_log(tmp_path, [f"question {i}?" for i in range(10)]))
    model = RecordingChat()
    model.record.hold_until = limit
    await replay_calls(
        LangChainWarmup(LangChainCache(cache), model), log.top(10), concurrency=limit
    )
    assert len(model.record.asked) == 10
    assert model.record.max_in_flight == limit  # reached, never exceeded


async def test_a_failing_call_is_counted_and_the_others_go_on(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    cache = Cache.from_urls(["memory://"], clock=fake_clock)
    model = RecordingChat()
    model.record.fail_on = {"b?"}
    log = read_log(write_log(tmp_path, ["a?", "b?", "c?"]))
    report = await replay_calls(LangChainWarmup(LangChainCache(cache), model), log.top(3))
    assert (report.model_calls, report.stored, report.failed) == (2, 2, 1)
    assert report.errors[0].startswith("log line 2: RuntimeError")
    assert "sk-secret123" not in report.errors[0]


async def test_litellm_replay_stores_through_litellm(
    tmp_path: Path, fake_clock: FakeClock, ll_install: Any
) -> None:
    cache = Cache.from_urls(["memory://"], clock=fake_clock)
    front: LiteLLMCache = ll_install(cache)
    log = read_log(write_log(tmp_path, ["a?", "a?", "b?"], tenant="acme"))
    target = LiteLLMWarmup(front, "gpt-4o-mini", mock_response="replayed")
    report = await replay_calls(target, log.top(2))
    assert (report.model_calls, report.stored) == (2, 2)
    hit = litellm.completion(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "b?"}],
        metadata={"llmcache_tenant": "acme"},
        mock_response="unused",
    )
    assert hit.choices[0].message.content == "replayed"
    assert hit._hidden_params["cache_hit"] is True
    assert cache.clear() == 2
    tagged = await replay_calls(target, log.top(2), tags=["warm"])
    assert (tagged.model_calls, tagged.stored) == (2, 2)
    assert cache.invalidate(tags=["warm"]) == 2  # the replayed entries carry the tag
