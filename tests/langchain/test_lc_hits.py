"""What a hit looks like to a LangChain user: marked, fresh ids, never the cache's own objects."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.messages.tool import tool_call
from langchain_core.outputs import ChatGeneration, Generation
from langchain_core.utils.utils import LC_ID_PREFIX
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from lc_fakes import CountingLLM, ScriptedChat

from langchain_llmcache import LangChainCache

LLM = "llm-string"


def test_a_chat_hit_is_marked_with_tier_and_match(lc_cache: LangChainCache) -> None:
    model = ScriptedChat(cache=lc_cache)
    first = model.invoke("hello")
    second = model.invoke("hello")
    assert model.calls == 1
    assert "llmcache" not in first.response_metadata  # a miss is not marked
    assert second.content == "ok"
    assert second.response_metadata["llmcache"] == {
        "tier": "memory",
        "match": "exact",
        "similarity": None,
    }


def test_a_plain_llm_hit_is_marked_in_generation_info(lc_cache: LangChainCache) -> None:
    llm = CountingLLM(cache=lc_cache)
    first = llm.generate(["tell me"]).generations[0][0]
    second = llm.generate(["tell me"]).generations[0][0]
    assert llm.calls == 1
    assert second.text == first.text == "first"
    assert second.generation_info is not None
    assert second.generation_info["llmcache"]["tier"] == "memory"
    assert llm.invoke("tell me") == "first"


def test_every_hit_gets_a_fresh_message_id(lc_cache: LangChainCache) -> None:
    model = ScriptedChat(cache=lc_cache)
    ids = [model.invoke("hello").id for _ in range(4)]
    assert model.calls == 1
    assert len(set(ids)) == 4
    assert all(i is not None and i.startswith(f"{LC_ID_PREFIX}-") for i in ids)


async def test_async_hits_get_fresh_ids_too(lc_cache: LangChainCache) -> None:
    model = ScriptedChat(cache=lc_cache)
    ids = [(await model.ainvoke("hello")).id for _ in range(3)]
    assert model.calls == 1
    assert len(set(ids)) == 3


def test_mutating_a_hit_never_changes_the_next_hit(lc_cache: LangChainCache) -> None:
    message = AIMessage(
        content="answer",
        tool_calls=[tool_call(name="f", args={"a": 1}, id="c1")],
        usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
        additional_kwargs={"k": "v"},
        response_metadata={"model_name": "m"},
    )
    lc_cache.update("p", LLM, [ChatGeneration(message=message, generation_info={"g": 1})])
    [first] = lc_cache.lookup("p", LLM) or []
    # What LangChain and LangGraph do to a returned hit, and what users do to a reply:
    first.message = first.message.model_copy(update={"usage_metadata": {"total_cost": 0}})
    [second] = lc_cache.lookup("p", LLM) or []
    second.message.id = "changed"
    second.message.response_metadata["mutated"] = True
    second.message.additional_kwargs["mutated"] = True
    second.message.tool_calls.append(tool_call(name="g", args={}, id="c2"))
    second.message.usage_metadata["input_tokens"] = 999  # type: ignore[index]
    second.generation_info["mutated"] = True  # type: ignore[index]
    [third] = lc_cache.lookup("p", LLM) or []
    assert third.message.id != "changed"
    assert "mutated" not in third.message.response_metadata
    assert third.message.additional_kwargs == {"k": "v"}
    assert [c["id"] for c in third.message.tool_calls] == ["c1"]
    assert third.message.usage_metadata == message.usage_metadata
    assert third.generation_info == {"g": 1}


def test_a_plain_hit_equals_what_was_stored_and_is_not_the_same_object(
    lc_cache: LangChainCache,
) -> None:
    stored = [Generation(text="a", generation_info={"x": 1}), Generation(text="b")]
    lc_cache.update("p", LLM, stored)
    first = lc_cache.lookup("p", LLM) or []
    second = lc_cache.lookup("p", LLM) or []
    assert first == second == stored
    assert first[0] is not second[0]
    assert first[0].generation_info is not second[0].generation_info
    first[0].generation_info["x"] = 2  # type: ignore[index]
    assert (lc_cache.lookup("p", LLM) or [])[0].generation_info == {"x": 1}
    assert set(dict(first[1].generation_info or {})) == {"llmcache"}


def test_sync_and_async_lookups_serve_the_same_answer(lc_cache: LangChainCache) -> None:
    import asyncio

    lc_cache.update("p", LLM, [ChatGeneration(message=AIMessage(content="same"))])
    sync = lc_cache.lookup("p", LLM) or []
    asyncs = asyncio.run(lc_cache.alookup("p", LLM)) or []
    assert [g.message.content for g in sync] == [g.message.content for g in asyncs] == ["same"]
    assert sync[0].message.response_metadata == asyncs[0].message.response_metadata


def _echo_graph(model: ScriptedChat) -> Any:
    """One node that answers the latest user message (a common router/classifier shape)."""

    def answer(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [model.invoke(state["messages"][-1:])]}

    graph = StateGraph(MessagesState)
    graph.add_node("answer", answer)
    graph.add_edge(START, "answer")
    return graph.compile(checkpointer=InMemorySaver())


def test_langgraph_keeps_every_cached_reply(lc_cache: LangChainCache) -> None:
    """Two turns served from the cache append two replies; none overwrites the other.

    langchain-core hands back the cached message id; LangGraph's add_messages then replaces
    the earlier reply with the same id (3 messages after 2 turns instead of 4).
    """
    model = ScriptedChat(cache=lc_cache)
    model.invoke([HumanMessage(content="same question")])  # prime: both turns below are hits
    app = _echo_graph(model)
    config = {"configurable": {"thread_id": "t1"}}
    app.invoke({"messages": [HumanMessage(content="same question")]}, config)
    state = app.invoke({"messages": [HumanMessage(content="same question")]}, config)
    assert model.calls == 1
    assert [m.type for m in state["messages"]] == ["human", "ai", "human", "ai"]
    assert [m.content for m in state["messages"] if m.type == "ai"] == ["ok", "ok"]


async def test_langgraph_keeps_every_cached_reply_async(lc_cache: LangChainCache) -> None:
    model = ScriptedChat(cache=lc_cache)
    app = _echo_graph(model)
    config = {"configurable": {"thread_id": "t2"}}
    await app.ainvoke({"messages": [HumanMessage(content="q")]}, config)  # miss, stored
    await app.ainvoke({"messages": [HumanMessage(content="q")]}, config)  # hit
    state = await app.ainvoke({"messages": [HumanMessage(content="q")]}, config)  # hit
    assert model.calls == 1
    assert len(state["messages"]) == 6


def test_the_langgraph_check_can_fail() -> None:
    """The same graph over LangChain's InMemoryCache loses a reply: what the test above guards.

    If a langchain-core release starts giving hits fresh ids itself, this documents it.
    """
    model = ScriptedChat(cache=InMemoryCache())
    app = _echo_graph(model)
    config = {"configurable": {"thread_id": "t3"}}
    app.invoke({"messages": [HumanMessage(content="q")]}, config)
    state = app.invoke({"messages": [HumanMessage(content="q")]}, config)
    assert len(state["messages"]) == 3


def test_hit_ids_are_uuid4_strings() -> None:
    import uuid

    from langchain_llmcache.hits import new_message_id

    ids = {new_message_id() for _ in range(2000)}
    assert len(ids) == 2000
    for message_id in list(ids)[:200]:
        assert message_id.startswith(f"{LC_ID_PREFIX}-")
        parsed = uuid.UUID(message_id[len(LC_ID_PREFIX) + 1 :])
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == message_id[len(LC_ID_PREFIX) + 1 :]


def test_clone_is_model_copy_without_the_overhead() -> None:
    from langchain_llmcache.hits import clone

    message = AIMessage(content="x", response_metadata={"a": 1}, id="old")
    update = {"id": "new", "response_metadata": {"b": 2}}
    ours, theirs = clone(message, update), message.model_copy(update=update)
    assert ours == theirs
    assert ours.model_fields_set == theirs.model_fields_set
    assert ours.model_dump() == theirs.model_dump()
    ours.extra_attr = 1  # type: ignore[attr-defined]  # AIMessage allows extra fields
    assert not hasattr(message, "extra_attr")
    assert message.id == "old"
    assert message.response_metadata == {"a": 1}


def test_set_llm_cache_makes_it_every_models_cache(lc_cache: LangChainCache) -> None:
    from langchain_core.globals import get_llm_cache, set_llm_cache

    before = get_llm_cache()
    set_llm_cache(lc_cache)
    try:
        first, second = ScriptedChat(), ScriptedChat()  # cache=None: the global one
        first.invoke("shared question")
        reply = second.invoke("shared question")
    finally:
        set_llm_cache(before)
    assert (first.calls, second.calls) == (1, 0)
    assert reply.response_metadata["llmcache"]["tier"] == "memory"


async def test_completion_models_hit_sync_and_async(lc_cache: LangChainCache) -> None:
    llm = CountingLLM(cache=lc_cache)
    assert llm.invoke("a") == "first"
    assert llm.invoke("b") == "second"
    result = await llm.agenerate(["a", "b", "c"])
    assert [g[0].text for g in result.generations] == ["first", "second", "third"]
    assert [await llm.ainvoke(p) for p in ("a", "b", "c")] == ["first", "second", "third"]
    assert llm.calls == 3


@pytest.mark.parametrize("urls", [["memory://"], ["memory://", "sqlite"], ["sqlite"]])
def test_every_hit_is_private_whichever_tier_serves_it(urls: list[str], tmp_path: Any) -> None:
    """First hits hand out freshly decoded objects, later ones copies of kept templates:
    mutating any hit in place never reaches the next one."""
    from llmcache import Cache

    urls = [f"sqlite:///{tmp_path}/c.db" if u == "sqlite" else u for u in urls]
    lc = LangChainCache(Cache.from_urls(urls))
    message = AIMessage(
        content="answer",
        tool_calls=[tool_call(name="f", args={"a": 1}, id="c1")],
        response_metadata={"model_name": "m"},
    )
    lc.update("p", LLM, [ChatGeneration(message=message, generation_info={"g": 1})])
    ids = set()
    for _ in range(5):
        [hit] = lc.lookup("p", LLM) or []
        assert isinstance(hit, ChatGeneration)
        assert hit.message.content == "answer"
        assert set(hit.message.response_metadata) == {"model_name", "llmcache"}
        assert [c["id"] for c in hit.message.tool_calls] == ["c1"]
        assert hit.generation_info == {"g": 1}
        ids.add(hit.message.id)
        hit.message.response_metadata["mutated"] = True
        hit.message.tool_calls.append(tool_call(name="g", args={}, id="c2"))
        hit.message.content = "mutated"
        hit.generation_info["mutated"] = True  # type: ignore[index]
    assert len(ids) == 5
    lc.cache.close()
