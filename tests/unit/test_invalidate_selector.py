"""The Selector that ``Cache.invalidate`` builds: validation, and which entries it matches."""

from __future__ import annotations

import pytest

from llmcache import CacheEntry, CacheRequest, ConfigError, Scope, request_key
from llmcache.keys import label_digest, scope_digest
from llmcache.request import ANONYMOUS
from llmcache.tiers.selector import build_selector, selects

U_XY = Scope.of(user="u", acl=["x", "y"])
U_YX = Scope.of(user="u", acl=["y", "x", "y"])


def key_and_entry(
    *,
    scope: Scope = ANONYMOUS,
    model_name: str = "m",
    namespace: str = "",
    tags: tuple[str, ...] = (),
) -> tuple[object, CacheEntry]:
    request = CacheRequest(
        model="llm", prompt="p", scope=scope, model_name=model_name, namespace=namespace
    )
    return request_key(request), CacheEntry("v", created_at=100.0, tags=tags)


def matches(entry_kwargs: dict[str, object], now: float = 200.0, **criteria: object) -> bool:
    key, entry = key_and_entry(**entry_kwargs)  # type: ignore[arg-type]
    selector = build_selector(**criteria)  # type: ignore[arg-type]
    return selects(selector, key, entry, selector.cutoff(now))  # type: ignore[arg-type]


def test_criteria_are_digests_of_what_tiers_index() -> None:
    selector = build_selector(
        tags=["a", "b", "a"], scope=Scope.of(user="u"), model="m", namespace="v1", older_than=5
    )
    assert selector.tags == frozenset({label_digest("tag", "a"), label_digest("tag", "b")})
    assert selector.scope == scope_digest(Scope.of(user="u"))
    assert selector.model == label_digest("model", "m")
    assert selector.namespace == label_digest("namespace", "v1")
    assert selector.cutoff(100.0) == 95.0
    assert not selector.scope_only
    assert build_selector(scope=Scope.of(user="u")).scope_only


@pytest.mark.parametrize(
    ("entry", "criteria", "expected"),
    [
        ({"tags": ("a",)}, {"tags": ["a", "z"]}, True),
        ({"tags": ("b",)}, {"tags": ["a"]}, False),
        ({}, {"tags": ["a"]}, False),
        ({"scope": U_XY}, {"scope": U_YX}, True),  # ACL order does not matter
        ({"scope": Scope.of(user="u", tenant="t")}, {"scope": Scope.of(user="u")}, False),
        ({"model_name": "m"}, {"model": "m"}, True),
        ({"model_name": "m2"}, {"model": "m"}, False),
        ({"namespace": "v1"}, {"namespace": "v1"}, True),
        ({}, {"namespace": "v1"}, False),
        ({}, {"older_than": 100}, True),  # created at 100, now 200: exactly 100 s old
        ({}, {"older_than": 100.001}, False),
        ({"tags": ("a",), "model_name": "m"}, {"tags": ["a"], "model": "other"}, False),
    ],
)  # fmt: skip
def test_selects(entry: dict[str, object], criteria: dict[str, object], expected: bool) -> None:
    assert matches(entry, **criteria) is expected


@pytest.mark.parametrize(
    ("criteria", "message"),
    [
        ({}, "use clear()"),
        ({"tags": "faq"}, "not one string"),
        ({"tags": []}, "at least one tag"),
        ({"tags": [None]}, "non-empty string"),
        ({"scope": "alice"}, "takes an llmcache.Scope"),
        ({"namespace": 1}, "namespace=...) must be a string"),
        ({"older_than": -0.5}, ">= 0"),
        ({"older_than": float("nan")}, "finite"),
        ({"older_than": False}, "seconds of age"),
    ],
)
def test_bad_criteria_name_the_problem(criteria: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_selector(**criteria)  # type: ignore[arg-type]
    assert message in str(info.value)
