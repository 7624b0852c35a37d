"""Property-based: any chat response LiteLLM hands the cache comes back equal from a hit.

Arbitrary answer text (any Unicode, or none beside tool calls), tool calls with arbitrary
JSON arguments, finish reasons, and usage with provider-cached prompt tokens go through the
real ``litellm.completion`` path twice: the first call stores the response (a miss), the
second, whose own mock answer differs, must be served the first one unchanged.

Two rules are LiteLLM's own, for its caches as for ours, so the strategies respect them:
LiteLLM never hands a cache a response with no output (empty text and no tool call), and
it rebuilds a cached message that calls tools with ``finish_reason="tool_calls"``.
"""

from __future__ import annotations

import itertools
from typing import Any

import litellm
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from json_strategies import json_values, names, text
from ll_helpers import MODEL, ask

from litellm_llmcache import LiteLLMCache
from llmcache import Cache, CachePolicy

pytestmark = pytest.mark.figures("properties")  # inputs tried, in the reliability figures

tool_calls = st.lists(
    st.builds(
        lambda ident, name, args: {
            "id": ident,
            "type": "function",
            "function": {"name": name, "arguments": orjson.dumps(args).decode()},
        },
        st.from_regex(r"call_[a-z0-9]{1,12}", fullmatch=True),
        names,
        st.dictionaries(names, json_values, max_size=4),
    ),
    max_size=3,
)
usage = st.builds(
    lambda prompt, completion, cached: {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": min(cached, prompt)},
    },
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
)
finish_reasons = st.sampled_from(["stop", "tool_calls", "length"])

_prompts = itertools.count()


def _response(content: str | None, calls: list[dict[str, Any]], finish: str, use: Any) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": "chatcmpl-property",
        "model": MODEL,
        "choices": [{"index": 0, "finish_reason": finish, "message": message}],
        "usage": use,
    }


def _answer(response: Any) -> dict[str, Any]:
    """What a user reads from a response: the message, tool calls, finish reason, usage."""
    choice = response.choices[0]
    calls = choice.message.tool_calls or []
    usage = response.usage
    details = usage.prompt_tokens_details
    return {
        "content": choice.message.content,
        "tool_calls": [
            (c.id, c.function.name, orjson.loads(c.function.arguments) if calls else None)
            for c in calls
        ],
        "finish_reason": choice.finish_reason,
        "usage": (
            usage.prompt_tokens,
            usage.completion_tokens,
            None if details is None else details.cached_tokens,
        ),
    }


@settings(max_examples=60, deadline=None)
@given(content=st.none() | text, calls=tool_calls, finish=finish_reasons, use=usage)
def test_any_chat_response_is_served_back_unchanged(
    content: str | None, calls: list[dict[str, Any]], finish: str, use: dict[str, Any]
) -> None:
    if calls:
        finish = "tool_calls"
    elif not content:
        content = "a"  # LiteLLM never stores a response without output
    before = litellm.cache
    # An answer cut by the token limit is stored only when allowed: allowed here, since the
    # property is about what survives storage.
    cache = Cache.from_urls(["memory://"], policy=CachePolicy(store_truncated=True))
    litellm.cache = LiteLLMCache(cache)
    try:
        messages = ask(f"property question {next(_prompts)}")
        first = litellm.completion(
            model=MODEL, messages=messages, mock_response=_response(content, calls, finish, use)
        )
        second = litellm.completion(
            model=MODEL, messages=messages, mock_response=_response("other", [], "stop", use)
        )
    finally:
        litellm.cache = before
        cache.close()
    assert first._hidden_params.get("cache_hit") is not True
    assert second._hidden_params["cache_hit"] is True
    assert _answer(second) == _answer(first)
