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
