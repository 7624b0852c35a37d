"""The entry codec: JSON only, round-trips, and refuses anything it did not write."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from llmcache import Cache, CacheRequest
from llmcache.entry import ENTRY_SCHEMA, CacheEntry, Usage, check_finite, decode, encode
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
        b'{"s": 1, "value": 1, "created": 0, "usage": null}',
        b'{"s": 1, "value": 1, "created": 0, "usage": [1, 0], "usage_cache": [-1, 0]}',
        b'{"s": 1, "value": 1, "created": 0, "usage": [1, 0], "usage_cache": "some"}',
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


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        {"logprobs": [{"token": "a", "logprob": float("-inf")}]},
        ["x", ("y", float("inf"))],
    ],
)
def test_nan_and_infinities_are_refused_not_stored_as_null(value: object) -> None:
    # orjson writes both as null: the answer would come back changed.
    assert b"null" in encode(CacheEntry(value=value, created_at=0))
    with pytest.raises(CodecError, match="JSON cannot represent"):
        check_finite(value)


def test_a_numpy_nan_is_refused_too() -> None:
    with pytest.raises(CodecError, match="JSON cannot represent"):
        check_finite({"score": np.float64("nan")})


def test_finite_values_pass_the_check() -> None:
    check_finite({"a": [1.5, -0.0, 1e308, None, True, "nan", {"b": (2, 3.25)}]})


def test_the_core_refuses_nan_in_a_value_it_is_given(caplog: pytest.LogCaptureFixture) -> None:
    cache = Cache.from_urls(["memory://"])
    request = CacheRequest(model="m", prompt="p")
    with caplog.at_level(logging.WARNING, logger="llmcache"):
        assert cache.set(request, {"score": float("nan")}) is False
    assert cache.get(request) is None
    assert "JSON cannot represent" in caplog.text
    assert cache.set(request, {"score": 0.5}) is True
    hit = cache.get(request)
    assert hit is not None and hit.entry.value == {"score": 0.5}


def test_provider_cache_tokens_round_trip() -> None:
    entry = CacheEntry(value="a", created_at=1.0, model="m", usage=Usage(1000, 20, 400, 100))
    assert decode(encode(entry)).usage == Usage(1000, 20, 400, 100)


def test_entries_written_before_provider_cache_tokens_still_decode() -> None:
    # The exact bytes an llmcache without ``usage_cache`` stored (schema 1, two-token usage).
    old = b'{"s":1,"value":"a","created":1.0,"expires":null,"model":"m","usage":[12,34],"tags":[]}'
    entry = decode(old)
    assert entry.usage == Usage(12, 34)
    assert (entry.usage.cache_read_tokens, entry.usage.cache_creation_tokens) == (0, 0)


def test_entries_without_provider_cache_tokens_are_stored_as_before() -> None:
    # An older llmcache reading this entry finds only the fields it knows.
    stored = encode(CacheEntry(value="a", created_at=1.0, usage=Usage(12, 34)))
    assert b"usage_cache" not in stored
