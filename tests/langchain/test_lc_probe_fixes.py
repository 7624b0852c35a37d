"""Fixes from probing LangChain app shapes (agents, providers' metadata, completion models)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage
from lc_fakes import ScriptedChat

from langchain_llmcache import LangChainCache


@pytest.mark.parametrize(
    ("metadata", "rejected"),
    [
        ({"stopReason": "max_tokens"}, "truncated"),  # Bedrock Converse
        ({"done_reason": "length"}, "truncated"),  # Ollama
        (  # OpenAI Responses API: no finish_reason, the reason is in incomplete_details
            {"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}},
            "truncated",
        ),
        (
            {"status": "incomplete", "incomplete_details": {"reason": "content_filter"}},
            "content_filter",
        ),
        ({"stopReason": "guardrail_intervened"}, "content_filter"),  # Bedrock's guardrail
        ({"stopReason": "content_filtered"}, "content_filter"),
    ],
)
def test_cut_answers_of_other_providers_are_never_stored(
    lc_cache: LangChainCache, metadata: dict[str, Any], rejected: str
) -> None:
    def cut(messages: object, kwargs: object) -> AIMessage:
        return AIMessage(content="The answer is cut", response_metadata=metadata)

    model = ScriptedChat(reply=cut, cache=lc_cache)
    model.invoke("write a long essay")
    again = model.invoke("write a long essay")
    assert model.calls == 2
    assert "llmcache" not in again.response_metadata
    stats = lc_cache.cache.stats()
    assert stats["stores"] == 0
    assert stats["store_rejected"] == {rejected: 2}


def test_a_completed_responses_api_answer_is_stored(lc_cache: LangChainCache) -> None:
    def done(messages: object, kwargs: object) -> AIMessage:
        metadata = {"status": "completed", "incomplete_details": None, "stopReason": "end_turn"}
        return AIMessage(content="whole", response_metadata=metadata)

    model = ScriptedChat(reply=done, cache=lc_cache)
    model.invoke("q")
    assert model.invoke("q").content == "whole"
    assert model.calls == 1
