"""Property-based: any chat generation LangChain can hand the cache comes back equal.

Arbitrary text (any Unicode), tool calls with arbitrary JSON arguments, usage, response
metadata and generation_info survive to_payload -> JSON bytes -> from_payload.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from json_strategies import json_values, names, text
from langchain_core.messages import AIMessage
from langchain_core.messages.tool import tool_call
from langchain_core.outputs import ChatGeneration, Generation

from langchain_llmcache.convert import from_payload, to_payload

pytestmark = pytest.mark.figures("properties")  # inputs tried, in the reliability figures

calls = st.builds(
    lambda name, args, ident: tool_call(name=name, args=args, id=ident),
    names,
    st.dictionaries(names, json_values, max_size=4),
    st.from_regex(r"call_[a-z0-9]{1,12}", fullmatch=True),
)
usage = st.builds(
    lambda i, o: {"input_tokens": i, "output_tokens": o, "total_tokens": i + o},
    st.integers(0, 10**6),
    st.integers(0, 10**6),
)
messages = st.builds(
    lambda content, tool_calls, use, meta: AIMessage(
        content=content, tool_calls=tool_calls, usage_metadata=use, response_metadata=meta
    ),
    text,
    st.lists(calls, max_size=3),
    st.none() | usage,
    st.dictionaries(names, json_values, max_size=3),
)


def _through_storage(generations: list[Generation]) -> tuple[Generation, ...]:
    stored = orjson.dumps(to_payload(generations))
    return from_payload(orjson.loads(stored))


@settings(max_examples=150, deadline=None)
@given(message=messages, info=st.none() | st.dictionaries(names, json_values, max_size=3))
def test_any_chat_generation_round_trips(message: AIMessage, info: dict[str, Any] | None) -> None:
    (back,) = _through_storage([ChatGeneration(message=message, generation_info=info)])
    assert isinstance(back, ChatGeneration)
    assert back.message == message
    assert back.message.tool_calls == message.tool_calls
    assert back.generation_info == info


@settings(max_examples=100, deadline=None)
@given(texts=st.lists(text, min_size=1, max_size=4))
def test_any_plain_generations_round_trip(texts: list[str]) -> None:
    generations = [Generation(text=t) for t in texts]
    assert [g.text for g in _through_storage(generations)] == texts
