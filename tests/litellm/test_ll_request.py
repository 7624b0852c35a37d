"""``build_request`` gives the same request whether the caller hands it the call's controls
(the adapter reads them once per lookup or store) or lets it read them itself, and a plain
call's model identity takes no shortcut that a Router call would need."""

from __future__ import annotations

from typing import Any

import pytest
from ll_helpers import MODEL, ask

from litellm_llmcache.controls import controls_of
from litellm_llmcache.request import NAMESPACE, build_request, model_identity
from llmcache import cache_control, scope
from llmcache.keys import request_key

CALLS: list[dict[str, Any]] = [
    {},
    {"cache": {"namespace": "team-a", "ttl": 10}},
    {"cache": {"no-store": True, "s-maxage": 5}},
    {"metadata": {"llmcache_ttl": 0, "llmcache_tags": ["t"], "llmcache_user": "alice"}},
    {"metadata": {"model_group": "grp", "caching_groups": [("grp", "other")]}},
    {"litellm_params": {"metadata": {"model_group": "grp"}}},
    {"litellm_metadata": {"model_group": "grp"}},
    {"user": "bob", "temperature": 0.2, "stream": False},
]


@pytest.mark.parametrize("extra", CALLS)
def test_given_controls_build_the_same_request(extra: dict[str, Any]) -> None:
    kwargs = {"model": MODEL, "messages": ask("q"), **extra}
    with scope(tenant="acme"), cache_control(no_cache=True):
        read_here = build_request(kwargs, NAMESPACE)
        handed = build_request(kwargs, NAMESPACE, controls=controls_of(kwargs))
    assert handed == read_here
    assert request_key(handed) == request_key(read_here)
    assert handed.control == read_here.control


@pytest.mark.parametrize(
    ("extra", "identity"),
    [
        ({}, MODEL),
        ({"metadata": None}, MODEL),
        ({"metadata": {"model_group": "grp"}}, "model_group:grp"),
        ({"litellm_metadata": {"model_group": "grp"}}, "model_group:grp"),
        ({"litellm_params": {"metadata": {"model_group": "grp"}}}, "model_group:grp"),
    ],
)
def test_model_identity(extra: dict[str, Any], identity: str) -> None:
    assert model_identity({"model": MODEL, **extra}) == identity


def test_every_parameter_litellm_keys_is_keyed() -> None:
    """LiteLLM's own cache keys on these (a list that grows with its releases); a parameter
    left out would let two calls that differ by it share an answer."""
    from litellm.litellm_core_utils.model_param_helper import ModelParamHelper

    from litellm_llmcache.request import ANSWER_PARAMS, PROMPT_FIELDS

    apart = {"model", "user", "metadata", *PROMPT_FIELDS}  # keyed apart, or the scope
    assert set(ModelParamHelper.get_all_llm_api_params()) - apart <= ANSWER_PARAMS


@pytest.mark.parametrize(
    ("param", "one", "other"),
    [
        ("previous_response_id", "resp_A", "resp_B"),  # Responses API: another conversation
        ("conversation", "conv_A", "conv_B"),
        ("documents", [{"text": "Paris is in France"}], [{"text": "Rome is in Italy"}]),
        ("stream_options", {"include_usage": True}, {"include_usage": False}),
    ],
)
def test_calls_that_differ_by_a_parameter_litellm_keys_have_different_keys(
    param: str, one: Any, other: Any
) -> None:
    base = {"model": MODEL, "messages": ask("What did I just say?")}
    first = request_key(build_request({**base, param: one}, NAMESPACE))
    assert first != request_key(build_request({**base, param: other}, NAMESPACE))


def test_responses_in_two_conversations_are_not_served_each_others_answer(
    ll_adapter: Any,
) -> None:
    import litellm

    def answer(previous: str, mock: str) -> str:
        response = litellm.responses(
            model=MODEL,
            input="What did I just say?",
            previous_response_id=previous,
            mock_response=mock,
        )
        return str(response.output[0].content[0].text)

    assert answer("resp_A", "You said A") == "You said A"
    assert answer("resp_B", "You said B") == "You said B"  # was "You said A"
    assert answer("resp_A", "not called") == "You said A"  # its own conversation: a hit


@pytest.mark.parametrize(
    ("param", "one", "other"),
    [
        ("input_type", "search_query", "search_document"),  # Cohere: another vector
        ("task_type", "RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT"),  # Gemini embeddings
        ("repetition_penalty", 1.0, 1.3),  # vLLM, Hugging Face
        ("max_new_tokens", 16, 512),
        # Taken for credentials ("token" in their names): served each other's answers.
        ("stop_token_ids", [128001], [13]),  # vLLM
        ("allowed_token_ids", [1, 2], [3]),
    ],
)
def test_a_providers_own_parameter_is_keyed(param: str, one: Any, other: Any) -> None:
    """LiteLLM passes these to the provider and its own cache ignores them; two calls that
    differ by one must not share an answer."""
    base = {"model": MODEL, "input": ["what is a cache?"]}
    first = request_key(build_request({**base, param: one}, NAMESPACE))
    assert first != request_key(build_request({**base, param: other}, NAMESPACE))


@pytest.mark.parametrize(
    ("param", "one", "other"),
    [
        ("timeout", 5, 30),
        ("extra_headers", {"X-Trace": "a"}, {"X-Trace": "b"}),
        ("aws_secret_access_key", "secret-1", "secret-2"),  # who pays, not what is answered
        ("azure_ad_token", "token-1", "token-2"),
        ("aws_access_key_id", "AKIA1", "AKIA2"),
        ("aws_session_token", "t-1", "t-2"),
        ("vertex_credentials", "{...}", "{....}"),
        ("client_secret_value", "s-1", "s-2"),
        ("parent_otel_span", object(), object()),  # not data
        ("mock_delay", 0.3, None),  # LiteLLM's test doubles, as mock_response
        ("session_id", "s-1", "s-2"),
        ("aws_region_name", "us-east-1", "eu-west-1"),
        ("litellm_params", {"litellm_call_id": "1"}, {"litellm_call_id": "2"}),
    ],
)
def test_transport_credentials_and_objects_are_not_keyed(param: str, one: Any, other: Any) -> None:
    base = {"model": MODEL, "messages": ask("q")}
    plain = request_key(build_request(base, NAMESPACE))
    assert request_key(build_request({**base, param: one}, NAMESPACE)) == plain
    assert request_key(build_request({**base, param: other}, NAMESPACE)) == plain


def test_embeddings_for_a_query_are_not_served_for_a_document(ll_adapter: Any) -> None:
    import litellm

    def embed(input_type: str, mock: list[float]) -> list[float]:
        response = litellm.embedding(
            model="text-embedding-3-small",
            input=["a cache"],
            input_type=input_type,
            mock_response=mock,
        )
        row = response.data[0]
        return list(row["embedding"] if isinstance(row, dict) else row.embedding)

    assert embed("search_query", [0.1, 0.2]) == [0.1, 0.2]
    assert embed("search_document", [0.3, 0.4]) == [0.3, 0.4]  # was [0.1, 0.2]
    assert embed("search_query", [9.0, 9.0]) == [0.1, 0.2]  # a hit
