"""``cached(llm)``: ``stream``/``astream`` are served from the cache as streams, and stored.

Without it, langchain-core's ``stream``/``astream`` never touch the cache (the control test at
the end shows it), so every streamed call is a paid miss.
"""

from __future__ import annotations

import asyncio
import operator
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import reduce
from typing import Any

import pytest
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.messages.tool import invalid_tool_call, tool_call
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import create_react_agent
from lc_stream_fakes import (
    CountingHandler,
    CountingLimiter,
    JsonSchemaChat,
    ScriptedChat,
    StreamingChat,
)
from pydantic import BaseModel

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


async def test_astream_works_for_a_model_that_cannot_stream(lc_cache: LangChainCache) -> None:
    """As for the bare model (its ``astream`` falls back to ``ainvoke``): no exception."""
    model = ScriptedChat(cache=lc_cache)
    llm = cached(model)
    first = [c async for c in llm.astream("hi")]
    second = [c async for c in llm.astream("hi")]
    assert _total(first).content == _total(second).content == "hello there friend"
    assert model.calls == 1
    assert _total(second).response_metadata["llmcache"]["tier"] == "memory"


async def test_a_langgraph_astream_of_a_model_that_cannot_stream(lc_cache: LangChainCache) -> None:
    model = ScriptedChat(cache=lc_cache)
    llm = cached(model)

    async def answer(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [await llm.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("answer", answer)
    graph.add_edge(START, "answer")
    graph.add_edge("answer", END)
    app = graph.compile()
    for _ in range(2):  # a miss, then a hit
        streamed = [
            message.content
            async for message, _meta in app.astream(
                {"messages": [HumanMessage(content="hi")]}, stream_mode="messages"
            )
        ]
        assert "".join(streamed) == "hello there friend"
    assert model.calls == 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("ending", ["abandoned", "failed"])
def test_a_stream_ended_unstored_does_not_hold_its_followers(
    lc_cache: LangChainCache, ending: str
) -> None:
    model = StreamingChat(cache=lc_cache, fail_after=1 if ending == "failed" else None)
    llm = cached(model)
    # Read here, not in a helper: this thread leads the key's flight, and the call it is seen
    # to lead is this function, still running while the other caller waits.
    stream = llm.stream("hi")
    next(stream)
    if ending == "abandoned":
        stream.close()  # what ``break`` out of a ``for`` loop does
    else:
        with pytest.raises(ConnectionError):
            list(stream)
    model.fail_after = None
    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(llm.invoke, "hi")
        # At once, not after the single-flight bound (30 s) waiting for an answer never stored.
        assert other.result(timeout=5).content == "hello there friend"
    assert model.calls == 2


@pytest.mark.timeout(60)
@pytest.mark.parametrize("ending", ["abandoned", "failed"])
async def test_an_astream_ended_unstored_does_not_hold_its_followers(
    lc_cache: LangChainCache, ending: str
) -> None:
    model = StreamingChat(cache=lc_cache, fail_after=1 if ending == "failed" else None)
    llm = cached(model)
    if ending == "abandoned":
        async for _chunk in llm.astream("hi"):
            break  # this task goes on running: it is not seen to have given up
    else:
        with pytest.raises(ConnectionError):
            async for _chunk in llm.astream("hi"):
                pass
    model.fail_after = None
    other = await asyncio.wait_for(llm.ainvoke("hi"), 5)  # another task
    assert other.content == "hello there friend"
    assert model.calls == 2


def test_a_streamed_hit_adds_up_to_the_invoked_hit(lc_cache: LangChainCache) -> None:
    def reply(messages: list[BaseMessage]) -> AIMessage:
        return AIMessage(
            content="Let me check that order.",
            name="support-bot",
            additional_kwargs={"reasoning": "look it up"},
            tool_calls=[tool_call(name="lookup_order", args={"order_id": 42}, id="call_1")],
            invalid_tool_calls=[
                invalid_tool_call(name="refund", args="{bad", id="call_2", error="bad JSON")
            ],
            usage_metadata={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
        )

    model = StreamingChat(cache=lc_cache, reply=reply)
    llm = cached(model)
    llm.invoke("where is my order")
    invoked = llm.invoke("where is my order")
    streamed = _total(list(llm.stream("where is my order")))
    assert model.calls == 1
    for field in (
        "content",
        "name",
        "tool_calls",
        "invalid_tool_calls",
        "additional_kwargs",
        "usage_metadata",
    ):
        assert getattr(streamed, field) == getattr(invoked, field), field
    assert streamed.response_metadata["llmcache"]["tier"] == "memory"
    assert streamed.invalid_tool_calls[0]["error"] == "bad JSON"  # not made a valid call


def test_an_entry_holding_langchains_total_cost_usage_streams(lc_cache: LangChainCache) -> None:
    # langchain-core's hit path leaves usage_metadata={"total_cost": 0} on what it served,
    # and LangChain's own cache path (older warm-ups too) stored that: a chunk refuses it.
    model = StreamingChat(cache=lc_cache)
    llm = cached(model)
    call = llm._cache_call([HumanMessage(content="hi")], None, {})
    assert call is not None
    message = AIMessage(content="stored answer").model_copy(
        update={"usage_metadata": {"total_cost": 0}}  # as langchain-core writes it
    )
    lc_cache.update(call.prompt, call.llm_string, [ChatGeneration(message=message)])
    assert "".join(str(c.content) for c in llm.stream("hi")) == "stored answer"
    assert model.calls == 0


def test_the_models_output_version_is_kept(lc_cache: LangChainCache) -> None:
    model = StreamingChat(cache=lc_cache, output_version="v1")
    llm = cached(model)
    blocks = [{"type": "text", "text": "hello there friend"}]
    assert llm.invoke("hi").content == blocks
    assert llm.invoke("hi").content == blocks
    assert model.invoke("hi").content == blocks  # the bare model, served the wrapper's entry
    streamed = _total(list(llm.stream("hi")))
    assert isinstance(streamed.content, list)
    assert streamed.text == "hello there friend"
    assert model.calls == 1


class City(BaseModel):
    name: str


def test_structured_output_is_the_models_own_and_cached(lc_cache: LangChainCache) -> None:
    model = JsonSchemaChat(cache=lc_cache, reply=lambda m: AIMessage(content='{"name": "Paris"}'))
    llm = cached(model)
    structured = llm.with_structured_output(City)
    assert structured.invoke("capital of France?") == City(name="Paris")
    assert structured.invoke("capital of France?") == City(name="Paris")
    assert model.calls == 1
    assert model.sent[0]["response_format"]["type"] == "json_schema"  # its method, not tools
    raw = llm.with_structured_output(City, include_raw=True).invoke("capital of France?")
    assert isinstance(raw, dict)
    assert raw["parsed"] == City(name="Paris")
    assert raw["raw"].response_metadata["llmcache"]["tier"] == "memory"
    assert model.calls == 1


class _OpaqueChat(ScriptedChat):
    """Structured output that calls the model from inside a function."""

    def with_structured_output(
        self, schema: dict[str, Any] | type, *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        return RunnableLambda(lambda value: City.model_validate_json(str(self.invoke(value).text)))


def test_structured_output_the_cache_cannot_reach_is_refused() -> None:
    with pytest.raises(TypeError, match="with_structured_output"):
        cached(_OpaqueChat()).with_structured_output(City)


@pytest.mark.parametrize("call", ["invoke", "ainvoke", "stream", "astream"])
async def test_the_models_rate_limiter_and_callbacks_are_used(
    lc_cache: LangChainCache, call: str
) -> None:
    limiter, handler = CountingLimiter(), CountingHandler()
    model = StreamingChat(cache=lc_cache, rate_limiter=limiter, callbacks=[handler])
    llm = cached(model)
    for _ in range(2):  # a miss, then a hit
        if call == "invoke":
            llm.invoke("hi")
        elif call == "ainvoke":
            await llm.ainvoke("hi")
        elif call == "stream":
            list(llm.stream("hi"))
        else:
            [c async for c in llm.astream("hi")]
    assert model.calls == 1
    assert limiter.acquired == 1  # the model call only: a hit does not wait, as in LangChain
    assert handler.ended == 2  # every call, as for the bare model


def test_the_models_disable_streaming_is_kept(lc_cache: LangChainCache) -> None:
    model = StreamingChat(cache=lc_cache, disable_streaming=True)
    llm = cached(model)
    for _ in range(2):  # a miss, then a hit: one chunk each, as the bare model gives
        chunks = list(llm.stream("hi"))
        assert [c.content for c in chunks] == ["hello there friend"]
    assert model.calls == 1


class ReportingChat(ScriptedChat):
    """Reports as many integrations do: the finish reason in ``generation_info``, the model
    name in ``llm_output``, which LangChain moves into the message's ``response_metadata``."""

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self._answer(messages, kwargs)
        generation = ChatGeneration(message=message, generation_info={"finish_reason": "stop"})
        return ChatResult(generations=[generation], llm_output={"model_name": "reporter-1"})


@pytest.mark.parametrize("first", ["wrapper", "bare model"])
def test_a_hit_reports_what_the_miss_reported(lc_cache: LangChainCache, first: str) -> None:
    # LangChain's cache path stores the message with generation_info and llm_output merged
    # into its response_metadata; the wrapper stores the same, so either one's hit says it.
    model = ReportingChat(cache=lc_cache)
    llm = cached(model)
    callers = {"wrapper": llm, "bare model": model}
    missed = callers[first].invoke("hi")
    assert missed.response_metadata["model_name"] == "reporter-1"
    for name, caller in callers.items():
        hit = caller.invoke("hi")
        assert hit.response_metadata["llmcache"]["tier"] == "memory", name
        assert hit.response_metadata["model_name"] == "reporter-1", name
        assert hit.response_metadata["finish_reason"] == "stop", name
    assert model.calls == 1
