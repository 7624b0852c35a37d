"""Canonical keys: equal requests share a key; anything that changes the answer does not."""

from __future__ import annotations

import dataclasses

import pytest

from llmcache import CacheRequest, Scope, request_key
from llmcache.errors import CodecError
from llmcache.keys import KEY_VERSION, scope_digest, with_model_name
from llmcache.request import CacheControl


def key(**kw: object) -> bytes:
    base: dict[str, object] = {"model": "m", "prompt": "p"}
    base.update(kw)
    return request_key(CacheRequest(**base)).digest  # type: ignore[arg-type]


def test_equal_requests_equal_keys_whatever_dict_order() -> None:
    a = key(prompt={"a": 1, "b": [1, 2]}, params={"x": 1, "y": 2})
    b = key(prompt={"b": [1, 2], "a": 1}, params={"y": 2, "x": 1})
    assert a == b


def test_acl_order_and_duplicates_do_not_matter() -> None:
    s1 = Scope.of(user="u", acl=["kb-7", "kb-9"])
    s2 = Scope.of(user="u", acl=["kb-9", "kb-7", "kb-9"])
    assert key(scope=s1) == key(scope=s2)
    assert scope_digest(s1) == scope_digest(s2)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # delimiter tricks: a naive "user|tenant" join would make these collide
        (Scope.of(user="a|b", tenant="c"), Scope.of(user="a", tenant="b|c")),
        (Scope.of(user="a:b"), Scope.of(user="a", tenant="b")),
        (Scope.of(user="alice"), Scope.of(tenant="alice")),
        (Scope.of(acl=["a,b"]), Scope.of(acl=["a", "b"])),
        (Scope.of(user="Alice"), Scope.of(user="alice")),
        (Scope.of(user="alice "), Scope.of(user="alice")),
        (Scope.of(user="é"), Scope.of(user="e\u0301")),  # NFC vs NFD stay distinct
        (Scope.of(acl=["kb-7"]), Scope.of(acl=["kb-7", "kb-9"])),
    ],
)
def test_distinct_scopes_never_share_a_key(a: Scope, b: Scope) -> None:
    assert key(scope=a) != key(scope=b)
    assert scope_digest(a) != scope_digest(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"model": "m1"}, {"model": "m2"}),
        ({"prompt": "Python 2 to 3"}, {"prompt": "Python 3 to 2"}),
        ({"prompt": "x"}, {"prompt": "x "}),
        ({"prompt": "x"}, {"prompt": "X"}),
        ({"prompt": ["ab", "c"]}, {"prompt": ["a", "bc"]}),
        ({"model": "ab", "prompt": "c"}, {"model": "a", "prompt": "bc"}),
        ({"params": {"t": 1}}, {"params": {"t": 2}}),
        ({"params": {"t": 1}}, {}),
        ({"namespace": "v1"}, {"namespace": "v2"}),
        ({"prompt": 1}, {"prompt": "1"}),
    ],
)
def test_anything_that_changes_the_answer_changes_the_key(
    a: dict[str, object], b: dict[str, object]
) -> None:
    assert key(**a) != key(**b)


def test_nan_infinities_and_none_are_four_keys() -> None:
    # orjson writes the three floats as null: they were one key, served one another's answer.
    values = [float("nan"), float("inf"), float("-inf"), None]
    assert len({key(params={"temperature": v}) for v in values}) == 4
    assert len({key(prompt=["x", {"bias": [v]}]) for v in values}) == 4
    assert key(params={"t": float("inf")}) == key(params={"t": float("inf")})
    assert key(params={"t": None, "p": "null"}) == key(params={"p": "null", "t": None})


def test_tags_and_model_name_do_not_change_the_key() -> None:
    assert key(tags=("faq",), model_name="gpt") == key()


def test_key_is_versioned_and_fixed_size() -> None:
    k = request_key(CacheRequest(model="m", prompt="p"))
    assert len(k.digest) == 32 and len(k.scope) == 16 and len(k.hex) == 64
    assert KEY_VERSION >= 1


def test_unkeyable_prompt_is_a_clear_error() -> None:
    with pytest.raises(CodecError, match="cannot build a cache key"):
        key(prompt=object())


def test_a_renamed_request_keeps_its_digest_and_labels_the_new_model() -> None:
    """``with_model_name`` (the adapters' store under the model that answered) gives the key a
    freshly built request with that model name has, whether or not the key was computed."""
    for computed_first in (True, False):
        request = CacheRequest(model="m", prompt="p", namespace="ns", model_name="Class")
        if computed_first:
            request_key(request)
        renamed = with_model_name(request, "gpt-4o-mini")
        fresh = CacheRequest(model="m", prompt="p", namespace="ns", model_name="gpt-4o-mini")
        assert request_key(renamed) == request_key(fresh)
        assert request_key(renamed).model != request_key(request).model
        assert request.model_name == "Class"  # the looked-up request is left as it was
    same = CacheRequest(model="m", prompt="p", model_name="gpt")
    assert with_model_name(same, "gpt") is same


def test_a_renamed_request_carries_every_other_field() -> None:
    request = CacheRequest(
        model="m",
        prompt=[{"role": "user", "content": "hi"}],
        params={"temperature": 0},
        scope=Scope.of(user="alice", tenant="acme", acl=["kb"]),
        namespace="ns",
        model_name="Class",
        tags=("faq",),
        semantic_text="hi",
        semantic_context={"system": "be brief"},
        semantic_threshold=0.9,
        control=CacheControl(ttl=60),
    )
    renamed = with_model_name(request, "gpt-4o-mini")
    for f in dataclasses.fields(CacheRequest):
        if f.name not in ("model_name", "key_memo"):
            assert getattr(renamed, f.name) == getattr(request, f.name), f.name
    assert renamed.model_name == "gpt-4o-mini"


def test_pydantic_classes_in_params_are_keyed_by_their_schema() -> None:
    from pydantic import BaseModel

    class City(BaseModel):
        name: str

    class Person(BaseModel):
        name: str
        age: int

    def keyed(schema: type) -> bytes:
        # A response_format nested in a parameter: keying it raised (model_dump unbound).
        params = {"response_format": {"type": "json_schema", "schema": schema}}
        return request_key(CacheRequest(model="m", prompt="p", params=params)).digest

    assert keyed(City) == keyed(City)
    assert keyed(City) != keyed(Person)
