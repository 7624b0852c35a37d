"""Every generation LangChain hands the cache comes back as it went in (on every tier)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.messages.tool import (
    invalid_tool_call,
    tool_call,
    tool_call_chunk,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk
from lc_fakes import ScriptedChat
from pydantic import BaseModel

from langchain_llmcache import LangChainCache
from langchain_llmcache.convert import from_payload, to_payload

LLM = "llm-string"


class Person(BaseModel):
    name: str
    age: int


def rich_message() -> AIMessage:
    return AIMessage(
        content=[
            {"type": "text", "text": "Looking that up."},
            {"type": "text", "text": "Ünïcode ✓ and \"quotes\" and 'apostrophes'"},
        ],
        name="assistant-7",
        id="run-original-id",
        tool_calls=[
            tool_call(name="search", args={"q": "paris", "limit": 3}, id="call_1"),
            tool_call(name="lookup", args={"ids": [1, 2], "deep": {"x": None}}, id="call_2"),
        ],
        invalid_tool_calls=[
            invalid_tool_call(name="broken", args="{not json", id="call_3", error="bad json")
        ],
        usage_metadata={
            "input_tokens": 24,
            "output_tokens": 17,
            "total_tokens": 41,
            "input_token_details": {"cache_read": 4},
        },
        response_metadata={"model_name": "gpt-x", "finish_reason": "tool_calls", "logprobs": None},
        additional_kwargs={"refusal": None, "extra": {"nested": [1, 2.5, True]}},
    )


def assert_same_message(served: BaseMessage, stored: BaseMessage) -> None:
    """Equal in everything but the fresh id and the hit marker."""
    assert type(served) is type(stored)
    assert served.id != stored.id
    assert served.response_metadata.pop("llmcache")["match"] == "exact"
    assert served.model_dump(exclude={"id"}) == stored.model_dump(exclude={"id"})


def test_plain_generations_round_trip(lc_tier_cache: LangChainCache) -> None:
    stored = [
        Generation(text="one", generation_info={"finish_reason": "stop", "logprobs": [0.1]}),
        Generation(text=""),  # an empty completion is a real answer, not a miss
        GenerationChunk(text="chunked", generation_info={"i": 1}),
    ]
    lc_tier_cache.update("prompt", LLM, stored)
    served = lc_tier_cache.lookup("prompt", LLM)
    assert isinstance(served, list)
    assert [type(g) for g in served] == [Generation, Generation, GenerationChunk]
    assert [g.text for g in served] == ["one", "", "chunked"]
    assert served == stored
    assert served[0].generation_info["logprobs"] == [0.1]
    assert served[1].generation_info["llmcache"]["tier"]  # marked even without stored info


def test_chat_generation_with_everything_round_trips(lc_tier_cache: LangChainCache) -> None:
    message = rich_message()
    stored = ChatGeneration(message=message, generation_info={"finish_reason": "tool_calls"})
    lc_tier_cache.update("prompt", LLM, [stored])
    [served] = lc_tier_cache.lookup("prompt", LLM) or []
    assert type(served) is ChatGeneration
    assert served.generation_info == {"finish_reason": "tool_calls"}
    assert served.text == stored.text
    assert served.message.tool_calls == message.tool_calls
    assert served.message.invalid_tool_calls == message.invalid_tool_calls
    assert served.message.usage_metadata == message.usage_metadata
    assert served.message.additional_kwargs == message.additional_kwargs
    assert served.message.name == "assistant-7"
    assert_same_message(served.message, message)


def test_chunk_types_round_trip(lc_tier_cache: LangChainCache) -> None:
    chunk = AIMessageChunk(
        content="partial answer",
        tool_call_chunks=[tool_call_chunk(name="search", args='{"q": "x"}', id="c1", index=0)],
        usage_metadata={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
        chunk_position="last",
    )
    stored = ChatGenerationChunk(message=chunk, generation_info={"chunk": True})
    lc_tier_cache.update("prompt", LLM, [stored])
    [served] = lc_tier_cache.lookup("prompt", LLM) or []
    assert type(served) is ChatGenerationChunk
    assert type(served.message) is AIMessageChunk
    assert served.message.tool_call_chunks == chunk.tool_call_chunks
    assert (
        served.message.tool_calls
        == chunk.tool_calls
        == [tool_call(name="search", args={"q": "x"}, id="c1")]
    )
    assert served.message.chunk_position == "last"
    assert_same_message(served.message, chunk)


def test_other_message_types_round_trip(lc_tier_cache: LangChainCache) -> None:
    stored = [
        ChatGeneration(message=HumanMessage(content="echo", name="u")),
        ChatGeneration(message=ToolMessage(content="42", tool_call_id="call_1", status="error")),
    ]
    lc_tier_cache.update("prompt", LLM, stored)
    served = lc_tier_cache.lookup("prompt", LLM) or []
    for got, want in zip(served, stored, strict=True):
        assert_same_message(got.message, want.message)


def test_pydantic_objects_in_additional_kwargs_do_not_break_the_store(
    lc_tier_cache: LangChainCache,
) -> None:
    message = AIMessage(content="", additional_kwargs={"parsed": Person(name="Ada", age=36)})
    lc_tier_cache.update("prompt", LLM, [ChatGeneration(message=message)])
    [served] = lc_tier_cache.lookup("prompt", LLM) or []
    # Stored as JSON: the object comes back as its dump (what JSON-mode parsers accept).
    assert served.message.additional_kwargs["parsed"] == {"name": "Ada", "age": 36}
    assert Person(**served.message.additional_kwargs["parsed"]) == Person(name="Ada", age=36)


@pytest.mark.parametrize(
    "usage",
    [
        {"total_cost": 0},
        {"input_tokens": 5, "output_tokens": 6, "total_tokens": 11, "total_cost": 0},
    ],
    ids=["total_cost_only", "total_cost_added"],
)
def test_what_langchains_hit_path_leaves_behind_round_trips(
    lc_tier_cache: LangChainCache, usage: dict[str, Any]
) -> None:
    # langchain-core's _convert_cached_generations sets usage_metadata={**old, "total_cost": 0}
    # through model_copy (no validation). {"total_cost": 0} alone fails AIMessage validation;
    # LangChain's SQLite/Redis caches then return the raw JSON as the answer text.
    message = AIMessage(content="The answer is 42.").model_copy(update={"usage_metadata": usage})
    lc_tier_cache.update("prompt", LLM, [ChatGeneration(message=message)])
    [served] = lc_tier_cache.lookup("prompt", LLM) or []
    assert served.message.content == "The answer is 42."
    assert served.text == "The answer is 42."
    assert served.message.usage_metadata == usage


def test_a_second_hit_of_a_chat_model_is_still_the_answer(lc_cache: LangChainCache) -> None:
    """Cache hits of hits: the message LangChain rewrote on a hit can be stored and served."""
    model = ScriptedChat(cache=lc_cache)
    model.invoke("question")
    again = model.invoke("question")
    assert again.usage_metadata == {"total_cost": 0}  # what langchain-core did to the hit
    lc_cache.update("another prompt", LLM, [ChatGeneration(message=again)])
    [served] = lc_cache.lookup("another prompt", LLM) or []
    assert served.message.content == "ok"


def test_structured_output_results_are_cached(lc_cache: LangChainCache) -> None:
    def reply(messages: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
        assert kwargs["tools"][0]["function"]["name"] == "Person"
        return AIMessage(
            content="",
            tool_calls=[tool_call(name="Person", args={"name": "Ada", "age": 36}, id="call_9")],
            additional_kwargs={"parsed": Person(name="Ada", age=36)},
        )

    model = ScriptedChat(reply=reply, cache=lc_cache)
    structured = model.with_structured_output(Person)
    assert structured.invoke("who?") == Person(name="Ada", age=36)
    assert structured.invoke("who?") == Person(name="Ada", age=36)
    raw = model.with_structured_output(Person, include_raw=True).invoke("who?")
    assert model.calls == 1
    assert raw["parsed"] == Person(name="Ada", age=36)
    assert raw["parsing_error"] is None
    assert raw["raw"].response_metadata["llmcache"]["tier"] == "memory"


def test_unstorable_generations_are_not_cached_and_do_not_raise(
    lc_cache: LangChainCache, caplog: pytest.LogCaptureFixture
) -> None:
    stored = [Generation(text="x", generation_info={"handle": object()})]
    with caplog.at_level(logging.WARNING, logger="llmcache"):
        lc_cache.update("prompt", LLM, stored)
    assert lc_cache.lookup("prompt", LLM) is None
    assert "not caching a LangChain answer" in caplog.text
    assert "not JSON serializable: object" in caplog.text


def test_an_answer_holding_nan_or_infinity_is_not_cached_rather_than_changed(
    lc_cache: LangChainCache, caplog: pytest.LogCaptureFixture
) -> None:
    # A local model's logprobs can hold -inf; JSON cannot: cached, it would come back as None.
    def reply(messages: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
        return AIMessage(content="yes", response_metadata={"logprobs": [0.0, float("-inf")]})

    model = ScriptedChat(reply=reply, cache=lc_cache)
    with caplog.at_level(logging.WARNING, logger="llmcache"):
        first = model.invoke("is it?")
        again = model.invoke("is it?")
    assert model.calls == 2  # not cached
    assert again.response_metadata["logprobs"] == [0.0, float("-inf")]
    assert "llmcache" not in again.response_metadata
    assert first.content == again.content == "yes"
    assert "not caching a LangChain answer" in caplog.text
    assert "-inf" in caplog.text


def test_a_stored_value_that_does_not_rebuild_is_a_miss_and_is_deleted(
    lc_cache: LangChainCache, caplog: pytest.LogCaptureFixture
) -> None:
    request = lc_cache.request_for("prompt", LLM)
    bad = {"v": 1, "generations": [{"kind": "chat", "message": {"type": "ai", "fields": {}}}]}
    lc_cache.cache.set(request, bad)
    with caplog.at_level(logging.WARNING, logger="llmcache"):
        assert lc_cache.lookup("prompt", LLM) is None
    assert "did not rebuild" in caplog.text
    assert lc_cache.cache.get(request) is None  # deleted, not retried on every call


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        {"v": 2, "generations": []},
        {"v": 1},
        {"v": 1, "generations": ["x"]},
        {"v": 1, "generations": [{"kind": "pickle"}]},
        {"v": 1, "generations": [{"kind": "generation", "text": 5}]},
        {"v": 1, "generations": [{"kind": "chat", "message": {"type": "os.system", "fields": {}}}]},
        {"v": 1, "generations": [{"kind": "generation", "text": "x", "info": [1]}]},
    ],
)
def test_hostile_or_foreign_payloads_are_refused(payload: Any) -> None:
    from langchain_llmcache.convert import PayloadError

    with pytest.raises(PayloadError):
        from_payload(payload)


def test_payload_is_plain_json_and_shares_nothing_with_the_caller() -> None:
    message = rich_message()
    payload = to_payload([ChatGeneration(message=message)])
    fields = payload["generations"][0]["message"]["fields"]
    fields["additional_kwargs"]["extra"]["nested"].append("mutated")
    assert message.additional_kwargs["extra"]["nested"] == [1, 2.5, True]
    assert "id" not in fields  # every hit gets a fresh id instead
