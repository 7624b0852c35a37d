"""``cached(llm)``: ``stream``/``astream`` are served from the cache as streams, and stored.

Without it, langchain-core's ``stream``/``astream`` never touch the cache (the control test at
the end shows it), so every streamed call is a paid miss.
"""

from __future__ import annotations

import operator
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import reduce
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.messages.tool import tool_call
from langchain_core.tools import tool
from langgraph.prebuilt import create_react_agent
from lc_stream_fakes import StreamingChat

from langchain_llmcache import LangChainCache
from langchain_llmcache.streaming import CachedChatModel, cached
from llmcache import scope


def _total(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    return reduce(operator.add, chunks)


def test_a_second_stream_is_served_from_the_cache_as_a_stream(lc_cache: LangChainCache) -> None:
    model = StreamingChat(cache=lc_cache)
    llm = cached(model)
    first = list(llm.stream("hi"))
    second = list(llm.stream("hi"))
    assert model.calls == 1
    assert len(second) > 2  # still a stream, not one blob
    assert _total(second).content == _total(first).content == "hello there friend"
    assert _total(second).response_metadata["llmcache"]["tier"] == "memory"
    assert "llmcache" not in _total(first).response_metadata
    assert _total(second).usage_metadata == _total(first).usage_metadata


async def test_astream_is_served_from_the_cache(lc_cache: LangChainCache) -> None:
    model = StreamingChat(cache=lc_cache)
    llm = cached(model)
    first = [c async for c in llm.astream("hi")]
    second = [c async for c in llm.astream("hi")]
    assert model.calls == 1
    assert len(second) > 2
    assert _total(second).content == _total(first).content
    assert _total(second).response_metadata["llmcache"]["match"] == "exact"


def test_stream_and_invoke_share_one_entry(lc_cache: LangChainCache) -> None:
    model = StreamingChat(cache=lc_cache)
    answer = model.invoke("shared")  # the bare model, LangChain's own cache path
    chunks = list(cached(model).stream("shared"))
    assert model.calls == 1
    assert _total(chunks).content == answer.content

    list(cached(model).stream("streamed first"))
    again = model.invoke("streamed first")
    assert model.calls == 2
    assert again.response_metadata["llmcache"]["tier"] == "memory"


def test_tool_call_chunks_survive_the_cache(lc_cache: LangChainCache) -> None:
    call = tool_call(name="lookup_order", args={"order_id": 42, "fields": ["eta"]}, id="call_1")
    model = StreamingChat(
        cache=lc_cache, reply=lambda messages: AIMessage(content="", tool_calls=[call])
    )
    llm = cached(model)
    first = _total(list(llm.stream("where is my order")))
    second_chunks = list(llm.stream("where is my order"))
    second = _total(second_chunks)
    assert model.calls == 1
    assert first.tool_calls == second.tool_calls == [call]
    assert any(c.tool_call_chunks for c in second_chunks)


def test_an_abandoned_stream_stores_nothing(lc_cache: LangChainCache) -> None:
    model = StreamingChat(cache=lc_cache)
    stream = cached(model).stream("hi")
    next(stream)
    stream.close()  # the caller stopped reading: the answer is incomplete
    list(cached(model).stream("hi"))
    assert model.calls == 2


def test_a_stream_that_fails_midway_stores_nothing(lc_cache: LangChainCache) -> None:
    model = StreamingChat(cache=lc_cache, fail_after=1)
    with pytest.raises(ConnectionError):
        list(cached(model).stream("hi"))
    model.fail_after = None
    list(cached(model).stream("hi"))
    assert model.calls == 2
    list(cached(model).stream("hi"))
    assert model.calls == 2


def test_streamed_entries_keep_their_scope(lc_cache: LangChainCache) -> None:
    model = StreamingChat(cache=lc_cache, reply=lambda m: AIMessage(content=f"to {m[-1].content}"))
    llm = cached(model)
    with scope(user="alice"):
        list(llm.stream("secret"))
    with scope(user="bob"):
        served = _total(list(llm.stream("secret")))
    assert model.calls == 2
    assert "llmcache" not in served.response_metadata


def test_cache_false_turns_the_wrapper_off(lc_cache: LangChainCache) -> None:
    model = StreamingChat(cache=False)
    llm = cached(model)
    list(llm.stream("hi"))
    list(llm.stream("hi"))
    assert model.calls == 2


def test_the_global_cache_is_used_when_the_model_has_none(lc_cache: LangChainCache) -> None:
    from langchain_core.globals import set_llm_cache

    set_llm_cache(lc_cache)
    try:
        model = StreamingChat()
        list(cached(model).stream("global"))
        list(cached(model).stream("global"))
        assert model.calls == 1
    finally:
        set_llm_cache(None)


def test_without_the_wrapper_langchain_streams_past_the_cache(lc_cache: LangChainCache) -> None:
    """The control: what ``cached`` fixes (langchain-core 1.8)."""
    model = StreamingChat(cache=lc_cache)
    list(model.stream("hi"))
    list(model.stream("hi"))
    assert model.calls == 2


def test_cached_rejects_what_is_not_a_chat_model() -> None:
    with pytest.raises(TypeError, match="chat model"):
        cached("gpt-4o")  # type: ignore[arg-type]
    model = StreamingChat()
    assert cached(cached(model)).model is model
    assert isinstance(cached(model), CachedChatModel)


@tool
def order_status(order_id: int) -> str:
    """The delivery status of an order."""
    return f"order {order_id}: arriving Tuesday"


def _agent_reply(messages: list[BaseMessage]) -> AIMessage:
    if messages[-1].type == "tool":
        return AIMessage(content=f"Your {messages[-1].content}")
    call = tool_call(name="order_status", args={"order_id": 42}, id="call_42")
    return AIMessage(content="", tool_calls=[call])


def _run_agent(model: StreamingChat) -> tuple[list[Any], list[BaseMessage]]:
    agent = create_react_agent(cached(model), [order_status])
    streamed = []
    final: list[BaseMessage] = []
    for mode, payload in agent.stream(
        {"messages": [HumanMessage(content="where is order 42?")]},
        stream_mode=["messages", "values"],
    ):
        if mode == "messages":
            streamed.append(payload[0])
        else:
            final = payload["messages"]
    return streamed, final


def test_a_langgraph_agent_streams_from_the_cache(lc_cache: LangChainCache) -> None:
    model = StreamingChat(cache=lc_cache, reply=_agent_reply)
    _, first = _run_agent(model)
    assert model.calls == 2  # the tool call turn and the answer turn
    second_stream, second = _run_agent(model)
    assert model.calls == 2  # both turns served from the cache
    assert [m.type for m in second] == ["human", "ai", "tool", "ai"]
    assert second[-1].content == first[-1].content == "Your order 42: arriving Tuesday"
    assert second[1].tool_calls[0]["args"] == {"order_id": 42}
    assert len([c for c in second_stream if isinstance(c, AIMessageChunk)]) > 2
    assert len({m.id for m in second}) == 4  # cached replies do not overwrite each other


@pytest.mark.timeout(30)
def test_followers_wait_for_a_stream_read_slowly(lc_cache: LangChainCache) -> None:
    """A thread streaming a miss leads its key's flight. While its consumer works between
    chunks the stream's generators are off the thread's stack, but the call is not over:
    followers asking meanwhile wait for the stream's answer instead of calling the model."""
    model = StreamingChat(cache=lc_cache)
    llm = cached(model)
    streaming = threading.Event()

    def consume() -> str:
        text = ""
        for chunk in llm.stream("slow reader"):
            streaming.set()
            time.sleep(0.5)  # the consumer's work between chunks
            text += str(chunk.content)
        return text

    with ThreadPoolExecutor(3) as pool:
        leader = pool.submit(consume)
        assert streaming.wait(5)
        followers = [pool.submit(llm.invoke, "slow reader") for _ in range(2)]
        assert leader.result() == "hello there friend"
        assert [f.result().content for f in followers] == ["hello there friend"] * 2
    assert model.calls == 1
