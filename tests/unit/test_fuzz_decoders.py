"""Fuzzing the paths that read untrusted input: stored LangChain payloads, tier URLs, LiteLLM
scope metadata, export files. Random, truncated, oversized and hostile inputs must give a
result or the package's own clear error (PayloadError, ConfigError, CodecError), never another
exception, and reading an export never holds more than one bounded line."""

from __future__ import annotations

import contextlib
import io
import json
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
from llmcache import Cache, CacheRequest, Scope
from llmcache.cli.existing import check_exists
from llmcache.errors import CodecError, ConfigError, ExportFileError
from llmcache.semantic.url import _options as semantic_options
from llmcache.tiers import tier_from_url
from llmcache.tiers.sql_url import parse_sql_url
from llmcache.transfer import decode_row, import_entries, read_lines

pytestmark = pytest.mark.figures("fuzzing")  # inputs tried, in the reliability figures

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


def test_a_bracketed_ipv6_host_is_a_host() -> None:
    """The bracketed-host check (urllib's own from Python 3.11.4, ours before it) refuses only
    what is no IPv6 address."""
    for url in ("redis://[::1]:6379/0", "redis://user:pw@[::1]:6379", "redis://[fe80::1%25lo]:1"):
        tier_from_url(url).close()


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
@example(url="MYSQL+PYMYSQL://[")  # urllib's "Invalid IPv6 URL" once escaped as a ValueError
def test_tier_urls_parse_or_raise_config_error(url: str) -> None:
    with contextlib.suppress(ConfigError):
        parse_sql_url(url)  # parsed only: building an SQL tier would create files and tables
    if url.split("://")[0] in ("memory", "redis", "rediss", "unix", "redis+cluster"):
        with contextlib.suppress(ConfigError):
            tier_from_url(url).close()  # no I/O before the first call
    with contextlib.suppress(ConfigError):
        check_exists([url])  # what the CLI's reading commands run first


semantic_url_text = st.builds(
    lambda scheme, rest: f"{scheme}{rest}",
    st.sampled_from(["faiss://", "FAISS://", "redisvl://", "redisvls://", "faiss://:memory:?"]),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=40),
)


@FUZZ
@given(url=semantic_url_text)
@example(url="faiss://[")
def test_semantic_urls_parse_or_raise_config_error(url: str) -> None:
    with contextlib.suppress(ConfigError):
        semantic_options(url)  # parsed only: opening an index would create files
    with contextlib.suppress(ConfigError):
        check_exists([], url)


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


# ---------------------------------------------------------------------------- export files
def _export() -> list[bytes]:
    """A real export's lines: the header, then two entries."""
    cache = Cache.from_urls(["memory://"], fleet_stats=False)
    cache.set(
        CacheRequest(model="m", prompt="p", model_name="gpt-x", tags=("faq",)), _valid_payload()
    )
    cache.set(CacheRequest(model="m", prompt="q", scope=Scope.of(user="u")), "plain", ttl=None)
    out = io.BytesIO()
    cache.export_entries(out)
    return out.getvalue().splitlines()


EXPORT = _export()
ROW_KEYS = ["s", "key", "scope", "namespace", "model", "created", "expires", "usage", "tags",
            "value", "semantic", "partition", "text"]  # fmt: skip
row_json = st.recursive(
    scalars | st.sampled_from(ROW_KEYS),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(ROW_KEYS) | st.text(max_size=6), inner, max_size=6)
    ),
    max_leaves=25,
)


def _dumps(doc: Any) -> bytes:
    """JSON text of any generated doc (also integers beyond 64 bits, which orjson won't write
    but a hostile file may hold)."""
    return json.dumps(doc).encode()


def _decodes_or_codec_error(line: bytes) -> None:
    try:
        stored = decode_row(line, now=1.7e9)
    except CodecError:
        return
    assert stored.entry is not None and len(stored.key.digest) == 32


@FUZZ
@given(path=st.lists(st.integers(0, 50), max_size=5), replacement=row_json)
def test_mutated_export_rows_decode_or_raise_codec_error(path: list[int], replacement: Any) -> None:
    row = orjson.loads(EXPORT[1 + path[0] % 2] if path else EXPORT[1])
    _decodes_or_codec_error(_dumps(_mutate(row, path[1:], replacement)))


@FUZZ
@given(line=st.binary(max_size=300) | row_json.map(_dumps), cut=st.integers(0, 10_000))
def test_random_and_truncated_export_lines_decode_or_raise_codec_error(
    line: bytes, cut: int
) -> None:
    _decodes_or_codec_error(line)
    row = EXPORT[1 + cut % 2]
    _decodes_or_codec_error(row[: cut % (len(row) + 1)])


@FUZZ
@given(
    lines=st.lists(
        st.sampled_from(EXPORT[1:]) | st.binary(max_size=200) | row_json.map(_dumps),
        max_size=8,
    ),
    header=st.sampled_from([EXPORT[0], b"", b"{}", b"\xff\xfe", b'{"format": "llmcache-export"}']),
)
def test_a_hostile_export_file_imports_what_is_valid_or_is_refused(
    lines: list[bytes], header: bytes
) -> None:
    data = b"\n".join([header, *lines])
    target = Cache.from_urls(["memory://"], fleet_stats=False)
    try:
        report = import_entries(target, io.BytesIO(data), max_line_bytes=4096)
    except ExportFileError:
        assert header != EXPORT[0]
        return
    assert report.imported + report.expired + report.rejected <= data.count(
        b"\n"
    )  # lines after the header


class _Recording(io.BytesIO):
    """A stream that records the largest read an import asks of it."""

    largest = 0

    def readline(self, size: int | None = -1) -> bytes:
        assert size is not None and size > 0, "an unbounded readline"
        line = super().readline(size)
        self.largest = max(self.largest, len(line))
        return line


@pytest.mark.parametrize("size", [4097, 100_000, 3_000_000])
def test_an_oversized_line_is_skipped_without_reading_it_whole(size: int) -> None:
    stream = _Recording(b"\n".join([EXPORT[0], EXPORT[1], b"[" * size, EXPORT[2]]) + b"\n")
    target = Cache.from_urls(["memory://"], fleet_stats=False)
    report = import_entries(target, stream, max_line_bytes=4096)
    assert report.imported == 2 and report.rejected == 1
    assert report.problems == [(3, "line longer than 4096 bytes")]
    assert stream.largest <= 64 * 1024  # never the whole line


def test_a_last_line_without_newline_is_read() -> None:
    lines = list(read_lines(io.BytesIO(b"a\nbb"), 10))
    assert lines == [(1, b"a\n"), (2, b"bb")]
