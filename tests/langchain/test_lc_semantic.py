"""LangChain over the semantic tier: what is embedded, what must match, what a hit shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.load import dumps
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from lc_fakes import CountingLLM, ScriptedChat, scope_reply

from langchain_llmcache import LangChainCache
from langchain_llmcache.semantic_text import semantic_fields
from llmcache import Cache, scope

Build = Callable[..., Cache]

ASKED = "How do I reset my password?"
PARAPHRASE = "How can I reset my password?"


# ------------------------------------------------------------------ what is embedded
def test_the_last_human_turn_is_embedded_and_the_rest_must_match() -> None:
    messages = [
        SystemMessage("You are terse."),
        HumanMessage("hi", id="m1"),
        AIMessage("hello", id="m2", response_metadata={"model": "x"}),
        HumanMessage(ASKED, id="m3"),
    ]
    fields = semantic_fields(dumps(messages))
    assert fields.text == ASKED
    before = fields.context["before"]
    assert [m["content"] for m in before] == ["You are terse.", "hi", "hello"]
    assert fields.context["after"] == [] and fields.context["last"] is None
    # Message ids and response metadata never reach the provider: they do not split it.
    again = [
        SystemMessage("You are terse."),
        HumanMessage("hi", id="other"),
        AIMessage("hello"),
        HumanMessage(PARAPHRASE),
    ]
    assert semantic_fields(dumps(again)).context == fields.context


def test_non_text_parts_of_the_last_turn_must_match_exactly() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    message = HumanMessage(content=[{"type": "text", "text": "What is in it?"}, image])
    fields = semantic_fields(dumps([message]))
    assert fields.text == "What is in it?"
    assert fields.context["last"] == {"attachments": [image]}


def test_plain_prompts_and_prompts_without_a_human_turn() -> None:
    assert semantic_fields("tell me a joke") == ("tell me a joke", None)
    assert semantic_fields('[{"not": "a message"}]').text == '[{"not": "a message"}]'
    assert semantic_fields(dumps([SystemMessage("only a system prompt")])).text is None
    assert semantic_fields(dumps([HumanMessage("")])).text is None


def test_no_semantic_fields_without_a_semantic_tier(lc_cache: LangChainCache) -> None:
    request = lc_cache.request_for(dumps([HumanMessage(ASKED)]), "llm")
    assert request.semantic_text is None and request.semantic_context is None


# ------------------------------------------------------------------ end to end
def test_a_paraphrase_is_served_and_marked_semantic(semantic_cache: Build) -> None:
    model = ScriptedChat(cache=LangChainCache(semantic_cache()))
    first = model.invoke(ASKED)
    second = model.invoke(PARAPHRASE)
    assert model.calls == 1
    assert second.content == first.content == "ok"
    marker = second.response_metadata["llmcache"]
    assert marker["match"] == "semantic" and marker["tier"] == "memory"
    assert 0.8 <= marker["similarity"] < 1.0


def test_another_system_prompt_or_model_is_never_served(semantic_cache: Build) -> None:
    lc = LangChainCache(semantic_cache())
    model = ScriptedChat(cache=lc)
    model.invoke([SystemMessage("Answer in French."), HumanMessage(ASKED)])
    model.invoke([SystemMessage("Answer in German."), HumanMessage(PARAPHRASE)])
    assert model.calls == 2
    other = ScriptedChat(cache=lc, model_name="scripted-2")
    other.invoke([SystemMessage("Answer in French."), HumanMessage(PARAPHRASE)])
    assert other.calls == 1
    model.invoke([SystemMessage("Answer in French."), HumanMessage(PARAPHRASE)])
    assert model.calls == 2  # its own conversation still hits


def test_user_a_is_never_served_user_bs_entry(semantic_cache: Build) -> None:
    cache = semantic_cache(semantic="faiss://:memory:?threshold=-1&refresh=0")
    model = ScriptedChat(cache=LangChainCache(cache), reply=scope_reply)
    with scope(user="bob", tenant="acme"):
        assert model.invoke(ASKED).content == f"for bob: {ASKED}"
    with scope(user="alice", tenant="acme"):
        first = model.invoke(ASKED)  # bob's exact question: similarity 1.0, another partition
        assert first.content == f"for alice: {ASKED}"
        assert "llmcache" not in first.response_metadata
        for text in (PARAPHRASE, "Something else entirely"):  # any similarity: alice's own entry
            assert model.invoke(text).content == f"for alice: {ASKED}"
    with scope(user="bob", tenant="acme"):
        assert model.invoke(PARAPHRASE).content == f"for bob: {ASKED}"


async def test_async_invoke_hits_semantically(semantic_cache: Build) -> None:
    model = ScriptedChat(cache=LangChainCache(semantic_cache()))
    await model.ainvoke(ASKED)
    second = await model.ainvoke(PARAPHRASE)
    assert model.calls == 1
    assert second.response_metadata["llmcache"]["match"] == "semantic"


def test_completion_models_embed_their_prompt(semantic_cache: Build) -> None:
    llm = CountingLLM(cache=LangChainCache(semantic_cache()))
    assert llm.invoke(ASKED) == "first"
    result: Any = llm.generate([PARAPHRASE]).generations[0][0]
    assert llm.calls == 1 and result.text == "first"
    assert result.generation_info["llmcache"]["match"] == "semantic"
