"""Model name and sampling params read from real llm_strings, without eval."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from lc_fakes import CountingLLM, ScriptedChat, SerializableChat
from pydantic import Field

from langchain_llmcache.llm_string import LLMString, parse_llm_string, read_repr_pairs


def test_a_repr_style_chat_model() -> None:
    model = ScriptedChat(model_name="gpt-4o-mini", temperature=0.2)
    assert parse_llm_string(model._get_llm_string(stop=["\n"], n=2)) == LLMString(
        "gpt-4o-mini", {"temperature": 0.2, "n": 2}
    )


def test_a_serializable_chat_model_with_call_time_kwargs() -> None:
    model = SerializableChat(model_name="claude-x", temperature=0.0)
    llm_string = model._get_llm_string(stop=None, temperature=0.7, top_p=0.5)
    assert "---" in llm_string
    parsed = parse_llm_string(llm_string)
    assert parsed.model_name == "claude-x"
    assert parsed.params == {"temperature": 0.7, "top_p": 0.5}  # the call overrides


class KwargsChat(SerializableChat):
    """A model taking provider settings in ``model_kwargs``, as Bedrock's and OpenAI's do."""

    model_kwargs: dict[str, object] = Field(default_factory=dict)


def test_sampling_settings_in_model_kwargs_are_the_models() -> None:
    model = KwargsChat(model_name="bedrock-x", model_kwargs={"top_p": 0.5, "max_gen_len": 9})
    assert parse_llm_string(model._get_llm_string(stop=None)).params == {"top_p": 0.5}
    called = parse_llm_string(model._get_llm_string(stop=None, top_p=1.0))
    assert called.params == {"top_p": 1.0}  # the call overrides


def test_strict_mode_refuses_sampling_settings_in_model_kwargs() -> None:
    from langchain_llmcache import LangChainCache
    from llmcache import Cache, CachePolicy

    with Cache.from_urls(["memory://"], policy=CachePolicy.strict()) as cache:
        model = KwargsChat(
            model_name="bedrock-x", model_kwargs={"temperature": 1.5}, cache=LangChainCache(cache)
        )
        model.invoke("q")
        model.invoke("q")
        assert model.calls == 2 and cache.stats()["stores"] == 0


def test_a_completion_model_falls_back_to_its_type() -> None:
    llm = CountingLLM()
    llm_string = str(sorted({**llm._identifying_params, "_type": llm._llm_type}.items()))
    assert parse_llm_string(llm_string) == LLMString("counting-llm", {}, class_named=True)


def test_langchains_own_fake_model() -> None:
    model = FakeListChatModel(responses=["a", 'it\'s "quoted"', "back\\slash"])
    parsed = parse_llm_string(model._get_llm_string(stop=None, temperature=1))
    assert parsed == LLMString("fake-list-chat-model", {"temperature": 1}, class_named=True)


def test_model_field_preference() -> None:
    assert parse_llm_string("[('model', 'a'), ('model_name', 'b')]").model_name == "a"
    assert parse_llm_string("[('model_id', 'c'), ('_type', 't')]").model_name == "c"
    assert parse_llm_string("[('deployment_name', 'd')]").model_name == "d"
    head = '{"id": ["x", "Chat"], "kwargs": {}, "lc": 1, "name": "ChatX", "type": "constructor"}'
    assert parse_llm_string(head + "---[('stop', None)]").model_name == "ChatX"


def test_dashes_inside_the_json_or_the_tail() -> None:
    head = '{"kwargs": {"model": "m---1", "temperature": 0.1}, "name": "N"}'
    parsed = parse_llm_string(head + "---[('stop', ['---'])]")
    assert parsed == LLMString("m---1", {"temperature": 0.1})


def test_object_reprs_are_skipped_not_guessed() -> None:
    text = (
        "[('_type', 'openai-chat'), ('api_key', SecretStr('**********')), "
        "('callback', <function f at 0x7f00>), ('client', <openai.Client object at 0x1>), "
        "('model_name', 'gpt-x'), ('n', 1), ('temperature', 0.5)]"
    )
    assert read_repr_pairs(text) == {
        "_type": "openai-chat",
        "model_name": "gpt-x",
        "n": 1,
        "temperature": 0.5,
    }


def test_nothing_is_evaluated() -> None:
    text = "[('temperature', __import__('os').system('exit 3')), ('top_p', 0.9)]"
    assert read_repr_pairs(text) == {"top_p": 0.9}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[]", {}),
        ("[('a', None), ('b', True), ('c', False)]", {"a": None, "b": True, "c": False}),
        (
            "[('f', 1e-05), ('g', -2.5), ('h', inf), ('i', -7)]",
            {"f": 1e-05, "g": -2.5, "h": float("inf"), "i": -7},
        ),
        (
            "[('s', 'it\\'s'), ('t', \"say \\\"hi\\\"\"), ('u', '\\xe9\\u2713\\n')]",
            {"s": "it's", "t": 'say "hi"', "u": "é✓\n"},
        ),
        (
            "[('l', [1, (2, 3), {'k': [None]}]), ('e', ())]",
            {"l": [1, [2, 3], {"k": [None]}], "e": []},
        ),
        ("[('set', {1, 2}), ('after', 1)]", {"after": 1}),
        ("[('bytes', b'x'), ('after', 2)]", {"after": 2}),
        ("[('a', 1), ('b', 'unterminated)]", {"a": 1}),
        ("not a list at all", {}),
        ("", {}),
    ],
)
def test_repr_reader(text: str, expected: dict[str, object]) -> None:
    assert read_repr_pairs(text) == expected


@pytest.mark.parametrize("text", ["", "{", "{not json}---[]", "garbage---garbage", "[(", "[('x'"])
def test_unknown_shapes_give_no_name_and_no_params(text: str) -> None:
    assert parse_llm_string(text) == LLMString("", {})


def test_only_scalar_sampling_params_are_kept() -> None:
    text = (
        "[('max_tokens', 100), ('seed', 7), ('stop', ['x']), ('temperature', [0.1]), ('tools', [])]"
    )
    assert parse_llm_string(text).params == {"max_tokens": 100, "seed": 7}
