"""What a chat call gives the semantic tier: the last user text, and the rest to match exactly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ll_helpers import MODEL, ask

from litellm_llmcache import LiteLLMCache
from litellm_llmcache.request import NAMESPACE, build_request
from litellm_llmcache.semantic import semantic_fields
from llmcache import Cache


def test_plain_text_question() -> None:
    text, context = semantic_fields(ask("What is the capital of France?"))
    assert text == "What is the capital of France?"
    assert context == {"before": [], "asked": {"role": "user", "content_parts": []}, "after": []}


def test_the_last_user_message_is_embedded_and_the_rest_is_context() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question", "name": "ann"},
        {"role": "tool", "content": "tool output", "tool_call_id": "t1"},
    ]
    text, context = semantic_fields(messages)
    assert text == "second question"
    assert context["before"] == messages[:3]
    assert context["asked"] == {"role": "user", "name": "ann", "content_parts": []}
    assert context["after"] == messages[4:]


def test_text_parts_are_joined_and_other_parts_stay_in_the_context() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    content = [{"type": "text", "text": "What is"}, image, {"type": "text", "text": "this?"}]
    text, context = semantic_fields([{"role": "user", "content": content}])
    assert text == "What is\nthis?"
    assert context["asked"]["content_parts"] == [image]


def test_other_images_give_another_context() -> None:
    def with_image(url: str) -> list[dict[str, Any]]:
        parts = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": url}]
        return [{"role": "user", "content": parts}]

    one, two = semantic_fields(with_image("a.png")), semantic_fields(with_image("b.png"))
    assert one.text == two.text
    assert one.context != two.context


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "system", "content": "only a system prompt"}],
        [{"role": "user", "content": "   "}],
        [{"role": "user", "content": [{"type": "image_url", "image_url": "x.png"}]}],
        [{"role": "user", "content": None}],
        "not a list",
    ],
)
def test_calls_without_user_text_are_not_eligible(messages: Any) -> None:
    assert semantic_fields(messages) == (None, None)


def test_build_request_fills_the_fields_only_when_asked() -> None:
    kwargs = {"model": MODEL, "messages": ask("hello"), "temperature": 0.2}
    plain = build_request(kwargs, NAMESPACE)
    assert plain.semantic_text is None
    assert plain.semantic_context is None
    semantic = build_request(kwargs, NAMESPACE, semantic=True)
    assert semantic.semantic_text == "hello"
    assert semantic.semantic_context is not None
    # the exact key is the same either way
    assert (semantic.model, semantic.prompt, semantic.params) == (
        plain.model,
        plain.prompt,
        plain.params,
    )


def test_text_completions_and_embeddings_get_no_semantic_fields() -> None:
    for kwargs in ({"model": MODEL, "prompt": "hi"}, {"model": MODEL, "input": ["hi"]}):
        request = build_request(kwargs, NAMESPACE, semantic=True)
        assert request.semantic_text is None


def test_the_adapter_builds_semantic_fields_only_for_a_semantic_cache() -> None:
    cache = Cache.from_urls(["memory://"])
    try:
        adapter = LiteLLMCache(cache)
        request = adapter._request({"model": MODEL, "messages": ask("hello")})
        assert request is not None
        assert request.semantic_text is None  # no semantic component: nothing built
    finally:
        cache.close()


def test_a_paraphrase_is_served_through_litellm_by_a_semantic_cache(
    semantic_cache: Callable[..., Cache], ll_install: Callable[..., LiteLLMCache]
) -> None:
    """End to end: the fields built here let the semantic tier serve a close question, and
    only to the same user."""
    import litellm

    ll_install(semantic_cache())
    first = litellm.completion(
        model=MODEL, messages=ask("What is the capital city of France?"), mock_response="Paris"
    )
    assert first.choices[0].message.content == "Paris"
    close = litellm.completion(
        model=MODEL, messages=ask("What's the capital city of France?"), mock_response="other"
    )
    assert close.choices[0].message.content == "Paris"
    assert close._hidden_params["llmcache"]["match"] == "semantic"
    other_user = litellm.completion(
        model=MODEL,
        messages=ask("What's the capital city of France?"),
        mock_response="bob's",
        user="bob",
    )
    assert other_user.choices[0].message.content == "bob's"
