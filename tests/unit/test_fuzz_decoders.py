"""Fuzzing the paths that read untrusted input: stored LangChain payloads, tier URLs, LiteLLM
scope metadata. Random, truncated, oversized and hostile inputs must give a result or the
package's own clear error (PayloadError, ConfigError), never another exception."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage
from langchain_core.messages.tool import tool_call
from langchain_core.outputs import ChatGeneration, Generation

from langchain_llmcache.convert import PayloadError, from_payload, to_payload
from litellm_llmcache.scope import scope_of
from llmcache import Scope
from llmcache.errors import ConfigError
from llmcache.tiers import tier_from_url
from llmcache.tiers.sql_url import parse_sql_url

VOCABULARY = [
    "v", "generations", "kind", "message", "type", "fields", "content", "text", "info",
    "tool_calls", "usage_metadata", "response_metadata", "id", "name", "args", "ai", "human",
    "chat", "plain", "additional_kwargs", "input_tokens", "output_tokens", "total_tokens",
]  # fmt: skip
keys = st.sampled_from(VOCABULARY) | st.text(max_size=8)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(VOCABULARY)
)
json_like = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25,
)
# The long campaign raises this (scripts/reliability.sh); CI runs the default.
EXAMPLES = int(os.environ.get("LLMCACHE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid_payload() -> dict[str, Any]:
    message = AIMessage(
        content="hi",
        tool_calls=[tool_call(name="f", args={"x": 1}, id="c1")],
        usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
    )
    return to_payload([ChatGeneration(message=message), Generation(text="t")])


def _mutate(doc: Any, path: list[int], replacement: Any) -> Any:
    """Replace the node reached by following ``path`` (indices mod the children count)."""
    if not path or not isinstance(doc, (dict, list)) or not doc:
        return replacement
    if isinstance(doc, dict):
        name = list(doc)[path[0] % len(doc)]
        return {**doc, name: _mutate(doc[name], path[1:], replacement)}
    index = path[0] % len(doc)
    return [*doc[:index], _mutate(doc[index], path[1:], replacement), *doc[index + 1 :]]


@FUZZ
@given(path=st.lists(st.integers(0, 50), max_size=6), replacement=json_like)
def test_mutated_stored_payloads_rebuild_or_raise_payload_error(
    path: list[int], replacement: Any
) -> None:
    payload = _mutate(_valid_payload(), path, replacement)
    try:
        generations = from_payload(payload)
    except PayloadError:
        return
    assert all(isinstance(g, Generation) for g in generations)


@FUZZ
@given(doc=json_like)
def test_random_json_payloads_rebuild_or_raise_payload_error(doc: Any) -> None:
    with contextlib.suppress(PayloadError):
        from_payload({"v": _valid_payload()["v"], "generations": [doc]})


@pytest.mark.parametrize(
    "url",
    ["memory://[", "redis://[", "redis+cluster://[::1", "rediss://a:b@[x]:1", "redis://h:99999"],
)
def test_urls_urllib_cannot_parse_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match=r"tier URL|port|redis"):
        tier_from_url(url)


def test_a_huge_payload_is_handled_without_blowing_up() -> None:
    payload = _valid_payload()
    payload["generations"] = payload["generations"] * 20_000
    assert len(from_payload(orjson.loads(orjson.dumps(payload)))) == 40_000


url_text = st.text(
    st.characters(exclude_categories=("Cs",)), max_size=60
) | st.builds(
    lambda scheme, rest: f"{scheme}{rest}",
    st.sampled_from(
        ["memory://", "sqlite:///", "mysql+pymysql://", "postgresql+psycopg://", "redis://",
         "rediss://", "unix://", "redis+cluster://", "redis+sentinel://", "memory://?maxsize="]
    ),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=40),
)  # fmt: skip


@FUZZ
@given(url=url_text)
def test_tier_urls_parse_or_raise_config_error(url: str) -> None:
    with contextlib.suppress(ConfigError):
        parse_sql_url(url)  # parsed only: building an SQL tier would create files and tables
    if url.split("://")[0] in ("memory", "redis", "rediss", "unix", "redis+cluster"):
        with contextlib.suppress(ConfigError):
            tier_from_url(url).close()  # no I/O before the first call


metadata_values = json_like | st.lists(st.text(max_size=3000), max_size=3)


@FUZZ
@given(
    user=metadata_values,
    metadata=st.dictionaries(
        st.sampled_from(["llmcache_user", "llmcache_tenant", "llmcache_acl", "other"]),
        metadata_values,
        max_size=4,
    ),
)
# Found by the long campaign: an ACL entry that is itself a list raised TypeError.
@example(user=None, metadata={"llmcache_acl": [[]]})
@example(user="bob", metadata={"llmcache_acl": [{"a": 1}, "kb-1"]})
def test_litellm_scope_metadata_gives_a_scope_or_a_config_error(
    user: Any, metadata: dict[str, Any]
) -> None:
    try:
        scope = scope_of(user, metadata)
    except ConfigError:
        return
    assert isinstance(scope, Scope)
