"""The entry codec: JSON only, round-trips, and refuses anything it did not write."""

from __future__ import annotations

import pytest

from llmcache.entry import ENTRY_SCHEMA, CacheEntry, Usage, decode, encode
from llmcache.errors import CodecError


def test_round_trip() -> None:
    entry = CacheEntry(
        value={"text": "", "calls": [{"name": "f", "args": {"x": 1}}], "none": None},
        created_at=1.5,
        expires_at=99.0,
        model="gpt-x",
        usage=Usage(12, 34),
        tags=("faq", "kb-7"),
    )
    back = decode(encode(entry))
    assert back == entry


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\x04\x95",  # a pickle header: never unpickled
        b"not json",
        b"[1, 2]",
        b'{"s": 999, "value": 1, "created": 0}',
        b'{"s": 1, "created": 0}',
        b'{"s": 1, "value": 1, "created": "yesterday"}',
        b'{"s": 1, "value": 1, "created": 0, "usage": [-1, 0]}',
        b'{"s": 1, "value": 1, "created": 0, "usage": "lots"}',
        b'{"s": 1, "value": 1, "created": 0, "tags": [1]}',
        b'{"s": 1, "value": 1, "created": 0, "model": 5}',
        b'{"s": 1, "value": 1, "created": 0, "expires": true}',
    ],
)
def test_undecodable_values_raise_codec_error(data: bytes) -> None:
    with pytest.raises(CodecError):
        decode(data)


def test_schema_version_is_stored() -> None:
    assert b'"s":%d' % ENTRY_SCHEMA in encode(CacheEntry(value=1, created_at=0))


def test_unencodable_value_is_a_codec_error() -> None:
    with pytest.raises(CodecError, match="cannot store"):
        encode(CacheEntry(value=object(), created_at=0))
