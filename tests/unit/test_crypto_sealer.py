"""The AES-GCM sealer behind encryption at rest: round trip, binding, tampering, rotation."""

from __future__ import annotations

import base64
import os

import pytest

from llmcache.crypto import MAGIC, Sealer, UnknownKeyError
from llmcache.errors import CodecError, ConfigError

K1, K2 = os.urandom(32), os.urandom(32)
KEY = b"k" * 32  # an entry's key digest


def _env(*pairs: tuple[str, bytes]) -> dict[str, str]:
    value = ",".join(f"{kid}:{base64.b64encode(k).decode()}" for kid, k in pairs)
    return {"LLMCACHE_ENCRYPTION_KEYS": value}


def test_sealed_values_round_trip_and_hide_the_text() -> None:
    sealer = Sealer({"k1": K1})
    envelope = sealer.seal(b'{"answer": "the launch code is 1234"}', KEY)
    assert envelope.startswith(MAGIC)
    assert b"launch" not in envelope and b"1234" not in envelope
    assert sealer.open(envelope, KEY) == b'{"answer": "the launch code is 1234"}'
    assert sealer.seal(b"same", KEY) != sealer.seal(b"same", KEY)  # a fresh nonce each time


def test_a_value_moved_to_another_key_does_not_open() -> None:
    sealer = Sealer({"k1": K1})
    envelope = sealer.seal(b"alice's answer", KEY)
    with pytest.raises(CodecError, match="authentication"):
        sealer.open(envelope, b"x" * 32)


@pytest.mark.parametrize("cut", [5, 10, 20, -1])
def test_tampered_or_truncated_values_are_codec_errors(cut: int) -> None:
    sealer = Sealer({"k1": K1})
    envelope = bytearray(sealer.seal(b"payload bytes here", KEY))
    if cut == -1:
        envelope[-1] ^= 1
    else:
        del envelope[cut:]
    with pytest.raises(CodecError):
        sealer.open(bytes(envelope), KEY)


def test_plain_entries_are_refused_when_encryption_is_on() -> None:
    with pytest.raises(CodecError, match="not sealed"):
        Sealer({"k1": K1}).open(b'{"s": 1, "value": "planted"}', KEY)


def test_rotation_keeps_old_entries_readable_until_the_old_key_goes() -> None:
    old = Sealer.from_env(_env(("k1", K1)))
    assert old is not None
    sealed_before = old.seal(b"old answer", KEY)
    rotated = Sealer.from_env(_env(("k2", K2), ("k1", K1)))
    assert rotated is not None and rotated.current == "k2"
    assert rotated.open(sealed_before, KEY) == b"old answer"
    assert rotated.seal(b"new", KEY)[len(MAGIC) + 1 :].startswith(b"k2")
    retired = Sealer.from_env(_env(("k2", K2)))
    assert retired is not None
    with pytest.raises(UnknownKeyError, match="k1"):
        retired.open(sealed_before, KEY)


def test_no_keys_configured_means_no_encryption() -> None:
    assert Sealer.from_env({}) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("k1", "id:base64key"),
        ("k1:not base64!", "not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "32 bytes"),
        (f"bad id:{base64.b64encode(K1).decode()}", "key id"),
        (f"k1:{base64.b64encode(K1).decode()},k1:{base64.b64encode(K2).decode()}", "twice"),
    ],
)
def test_bad_key_configuration_is_a_clear_error_without_the_secret(
    value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        Sealer.from_env({"LLMCACHE_ENCRYPTION_KEYS": value})
    secret = value.partition(":")[2]
    if len(secret) > 8:
        assert secret not in str(info.value)


def test_repr_never_shows_key_material() -> None:
    text = repr(Sealer({"k1": K1}))
    assert "k1" in text
    assert base64.b64encode(K1).decode() not in text and str(K1) not in text
