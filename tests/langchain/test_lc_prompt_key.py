"""Turns after a cached reply still hit: the key ignores LangChain's per-message bookkeeping."""

from __future__ import annotations

from langchain_core.load import dumps
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.messages.tool import tool_call
from lc_fakes import ScriptedChat

from langchain_llmcache import LangChainCache
from langchain_llmcache.prompt_key import key_prompt


def _history(reply: AIMessage) -> str:
    return dumps([HumanMessage(content="q"), reply, HumanMessage(content="and then?")])


def test_metadata_of_earlier_replies_does_not_change_the_key() -> None:
    computed = AIMessage(
        content="a",
        id="run-1",
        response_metadata={"finish_reason": "stop", "model": "x"},
        usage_metadata={"input_tokens": 3, "output_tokens": 1, "total_tokens": 4},
    )
    served = AIMessage(
        content="a",
        id="lc_run-2",
        response_metadata={"llmcache": {"tier": "memory", "match": "exact"}},
        usage_metadata={"input_tokens": 3, "output_tokens": 1, "total_tokens": 4},
    )
    assert key_prompt(_history(computed)) == key_prompt(_history(served))


def test_what_the_model_sees_still_changes_the_key() -> None:
    call = tool_call(name="f", args={"x": 1}, id="c1")
    other = tool_call(name="f", args={"x": 2}, id="c1")
    assert key_prompt(_history(AIMessage(content="a"))) != key_prompt(
        _history(AIMessage(content="b"))
    )
    assert key_prompt(_history(AIMessage(content="", tool_calls=[call]))) != key_prompt(
        _history(AIMessage(content="", tool_calls=[other]))
    )
    with_tool = dumps([ToolMessage(content="1", tool_call_id="c1")])
    assert key_prompt(with_tool) != key_prompt(dumps([ToolMessage(content="1", tool_call_id="c2")]))


def test_prompts_without_bookkeeping_are_keyed_as_they_are() -> None:
    first_turn = dumps([HumanMessage(content="hi")])
    assert key_prompt(first_turn) is first_turn
    text = 'a plain prompt that says "response_metadata"'
    assert key_prompt(text) is text


def test_a_completion_prompt_that_is_json_is_keyed_as_it_is() -> None:
    # A completion model's prompt is the user's text: JSON holding "id" and "usage_metadata"
    # lost them, and two different prompts were one key, served one answer.
    one = '[{"type": "constructor", "kwargs": {"content": "refund?", "usage_metadata": 5}}]'
    other = '[{"type":"constructor","kwargs":{"content":"refund?","usage_metadata":{},"id":"o-2"}}]'
    assert key_prompt(one) is one and key_prompt(other) is other


def test_a_conversation_continued_after_a_hit_hits_again(lc_cache: LangChainCache) -> None:
    model = ScriptedChat(cache=lc_cache)
    question = [HumanMessage(content="q")]
    first = model.invoke(question)
    follow_up = [*question, first, HumanMessage(content="more")]
    model.invoke(follow_up)
    assert model.calls == 2
    served = model.invoke(question)  # a hit: marked, usage rewritten by langchain-core
    assert "llmcache" in served.response_metadata
    again = model.invoke([*question, served, HumanMessage(content="more")])
    assert model.calls == 2
    assert again.response_metadata["llmcache"]["match"] == "exact"


def test_a_conversation_holding_a_lone_surrogate_hits_after_a_hit(
    lc_cache: LangChainCache,
) -> None:
    # A file name decoded with surrogateescape: orjson does not read the escape dumps writes
    # for it, and the key kept the earlier reply's hit marker: every later turn missed.
    name = b"report-\xe9t\xe9.txt".decode("utf-8", "surrogateescape")
    model = ScriptedChat(cache=lc_cache)
    question = [HumanMessage(content=f"Summarize {name}")]
    first = model.invoke(question)
    model.invoke([*question, first, HumanMessage(content="shorter")])
    served = model.invoke(question)
    assert "llmcache" in served.response_metadata
    again = model.invoke([*question, served, HumanMessage(content="shorter")])
    assert model.calls == 2
    assert again.response_metadata["llmcache"]["match"] == "exact"
    # what the model sees still changes the key
    model.invoke([*question, served, HumanMessage(content="longer")])
    assert model.calls == 3


def test_text_nested_deeper_than_the_stack_is_keyed_as_it_is() -> None:
    deep = "[" * 100_000 + '"usage_metadata"'
    assert key_prompt(deep) is deep
