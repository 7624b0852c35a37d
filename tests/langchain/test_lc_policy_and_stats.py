"""Model name, sampling params and usage reach the core: strict policy, stats, TTL."""

from __future__ import annotations

import threading

import pytest
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration
from lc_fakes import Reply, ScriptedChat, SerializableChat, text_reply

from langchain_llmcache import LangChainCache
from llmcache import Cache, CachePolicy, ConfigError, FakeClock


def usage_reply(messages: object, kwargs: object) -> AIMessage:
    return AIMessage(
        content="counted",
        usage_metadata={"input_tokens": 24, "output_tokens": 17, "total_tokens": 41},
    )


@pytest.fixture
def strict_cache(fake_clock: FakeClock) -> LangChainCache:
    return LangChainCache(
        Cache.from_urls(["memory://"], policy=CachePolicy.strict(), clock=fake_clock)
    )


@pytest.mark.parametrize("model_class", [ScriptedChat, SerializableChat])
def test_strict_policy_refuses_a_hot_temperature(
    strict_cache: LangChainCache, model_class: type[ScriptedChat]
) -> None:
    hot = model_class(temperature=0.9, cache=strict_cache)
    hot.invoke("tell me a story")
    hot.invoke("tell me a story")
    assert hot.calls == 2
    assert strict_cache.cache.stats()["stores"] == 0
    assert strict_cache.cache.stats()["skipped"] == 2


@pytest.mark.parametrize("model_class", [ScriptedChat, SerializableChat])
def test_strict_policy_caches_temperature_zero(
    strict_cache: LangChainCache, model_class: type[ScriptedChat]
) -> None:
    cold = model_class(temperature=0.0, cache=strict_cache)
    cold.invoke("2+2?")
    reply = cold.invoke("2+2?")
    assert cold.calls == 1
    assert reply.response_metadata["llmcache"]["match"] == "exact"


def test_strict_policy_sees_a_temperature_bound_at_call_time(strict_cache: LangChainCache) -> None:
    model = SerializableChat(temperature=0.0, cache=strict_cache)
    hot = model.bind(temperature=0.9)
    hot.invoke("story")
    hot.invoke("story")
    assert model.calls == 2
    model.bind(n=3).invoke("story")
    model.bind(n=3).invoke("story")
    assert model.calls == 4
    model.bind(best_of=3).invoke("story")  # several samples too; it was cached
    model.bind(best_of=3).invoke("story")
    assert model.calls == 6


def test_tokens_saved_after_a_hit_equal_the_stored_usage(lc_cache: LangChainCache) -> None:
    model = ScriptedChat(reply=usage_reply, cache=lc_cache)
    model.invoke("q")
    assert lc_cache.cache.stats()["tokens_saved"] == 0
    model.invoke("q")
    model.invoke("q")
    stats = lc_cache.cache.stats()
    assert stats["hits"] == 2
    assert stats["input_tokens_saved"] == 2 * 24
    assert stats["output_tokens_saved"] == 2 * 17
    assert stats["tokens_saved"] == 2 * 41


def test_usage_of_several_generations_of_one_call(lc_cache: LangChainCache) -> None:
    same = {"input_tokens": 10, "output_tokens": 30, "total_tokens": 40}
    gens = [ChatGeneration(message=AIMessage(content=t, usage_metadata=same)) for t in "ab"]
    lc_cache.update("p", "llm", gens)  # n=2: each message repeats the call's usage
    lc_cache.lookup("p", "llm")
    assert lc_cache.cache.stats()["tokens_saved"] == 40


def test_an_answer_reporting_impossible_usage_is_still_cached(lc_cache: LangChainCache) -> None:
    absurd = {"input_tokens": 10**13, "output_tokens": 7, "total_tokens": 10**13 + 7}
    gens = [ChatGeneration(message=AIMessage(content="odd", usage_metadata=absurd))]
    lc_cache.update("p", "llm", gens)  # neither raised into the call nor refused
    hit = lc_cache.lookup("p", "llm")
    assert hit is not None and hit[0].text == "odd"
    stats = lc_cache.cache.stats()
    assert stats["input_tokens_saved"] == 0 and stats["output_tokens_saved"] == 7


def test_entries_carry_the_model_name(lc_cache: LangChainCache) -> None:
    lc = LangChainCache(lc_cache.cache)
    model = SerializableChat(model_name="gpt-test-1", reply=text_reply("x"), cache=lc)
    model.invoke("q")
    request = lc.request_for(*_last_call(model))
    hit = lc_cache.cache.get(request)
    assert hit is not None
    assert hit.entry.model == "gpt-test-1"


def _last_call(model: ScriptedChat) -> tuple[str, str]:
    from langchain_core.load import dumps
    from langchain_core.messages import HumanMessage

    return dumps([HumanMessage(content="q")]), model._get_llm_string(stop=None)


def test_ttl_is_passed_to_the_core(lc_cache: LangChainCache, fake_clock: FakeClock) -> None:
    lc = LangChainCache(lc_cache.cache, ttl=60)
    model = ScriptedChat(cache=lc)
    model.invoke("q")
    fake_clock.advance(59)
    model.invoke("q")
    assert model.calls == 1
    fake_clock.advance(2)
    model.invoke("q")
    assert model.calls == 2


def test_ttl_zero_stores_nothing(lc_cache: LangChainCache) -> None:
    model = ScriptedChat(cache=LangChainCache(lc_cache.cache, ttl=0))
    model.invoke("q")
    model.invoke("q")
    assert model.calls == 2


def test_ttl_zero_calls_do_not_wait_for_each_other(lc_cache: LangChainCache) -> None:
    # Nothing will be stored, so no call may lead the others: they waited for the first
    # call's answer (single-flight) and then called the model one after another.
    together = threading.Barrier(4, timeout=10)

    def reply(messages: object, kwargs: object) -> AIMessage:
        together.wait()  # raises BrokenBarrierError unless all four calls are in the model
        return AIMessage(content="fresh")

    model = ScriptedChat(reply=reply, cache=LangChainCache(lc_cache.cache, ttl=0))
    replies = model.batch(["same question"] * 4, config={"max_concurrency": 4})
    assert [r.content for r in replies] == ["fresh"] * 4 and model.calls == 4


def test_bad_arguments_are_refused_at_construction(lc_cache: LangChainCache) -> None:
    with pytest.raises(ConfigError, match="ttl must be >= 0"):
        LangChainCache(lc_cache.cache, ttl=-1)
    with pytest.raises(ConfigError, match=r"takes an llmcache\.Cache"):
        LangChainCache("memory://")  # type: ignore[arg-type]


def test_no_cache_means_cache_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("LLMCACHE_URLS", "memory://?maxsize=7")
    lc = LangChainCache()
    try:
        assert [t.name for t in lc.cache.tiers] == ["memory"]
        assert lc.cache.tiers[0].maxsize == 7  # type: ignore[attr-defined]
    finally:
        lc.close()


def cut_reply(reason: str, key: str = "finish_reason") -> Reply:
    return lambda messages, kwargs: AIMessage(content="partial", response_metadata={key: reason})


@pytest.mark.parametrize(
    ("reason", "key", "rejected"),
    [
        ("length", "finish_reason", "truncated"),  # OpenAI
        ("max_tokens", "stop_reason", "truncated"),  # Anthropic
        ("content_filter", "finish_reason", "content_filter"),
        ("SAFETY", "finish_reason", "content_filter"),  # Gemini
    ],
)
def test_cut_or_filtered_answers_are_never_stored(
    lc_cache: LangChainCache, reason: str, key: str, rejected: str
) -> None:
    model = ScriptedChat(reply=cut_reply(reason, key), cache=lc_cache)
    model.invoke("write a long essay")
    model.invoke("write a long essay")
    assert model.calls == 2
    stats = lc_cache.cache.stats()
    assert stats["stores"] == 0
    assert stats["store_rejected"] == {rejected: 2}


def test_truncated_answers_are_stored_when_allowed(fake_clock: FakeClock) -> None:
    policy = CachePolicy(store_truncated=True)
    lc = LangChainCache(Cache.from_urls(["memory://"], policy=policy, clock=fake_clock))
    model = ScriptedChat(reply=cut_reply("length"), cache=lc)
    model.invoke("write a long essay")
    reply = model.invoke("write a long essay")
    assert model.calls == 1 and reply.content == "partial"
