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


B1, B2 = base64.b64encode(K1).decode(), base64.b64encode(K2).decode()
#: A key as some tools print it (url-safe, unpadded): it passes for a well-formed key id.
ID_SHAPED = B1.rstrip("=").replace("+", "-").replace("/", "_")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("k1", "entry 1 is not id:base64key"),
        ("k1:not base64!", "entry 1: the key .* is not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "entry 1: the key .* must be 32 bytes"),
        (f"bad id:{B1}", "entry 1: the id .* must be"),
        (f"k1:{B1},k1:{B2}", r"entry 2: its id \('k1'\) appears twice"),
        # Written the wrong way round (base64key:id): the key is where the id goes.
        (f"{B1}:k1", "entry 1: the id .* write id:base64key, the id first"),
        (f"k2:{B2},{B1}:k1", "entry 2: the id"),
        (f"{ID_SHAPED}:k1", "entry 1: the key .* is not valid base64"),
        (f"{ID_SHAPED}:{B2},{ID_SHAPED}:{B2}", "entry 2: its id appears twice"),
    ],
    ids=[
        "no-colon",
        "bad-base64",
        "short-key",
        "bad-id",
        "id-twice",
        "swapped",
        "second-swapped",
        "swapped-id-shaped",
        "id-shaped-twice",
    ],
)
def test_bad_key_configuration_is_a_clear_error_without_the_secret(
    value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        Sealer.from_env({"LLMCACHE_ENCRYPTION_KEYS": value})
    shown = str(info.value)
    for secret in (B1, B2, B1.rstrip("="), ID_SHAPED, "not base64"):
        assert secret not in shown


@pytest.mark.parametrize(
    ("keys", "current", "message"),
    [
        ({B1: K1}, None, "encryption key 1: its id must be"),
        ({"k1": K1, ID_SHAPED: b"short"}, None, "encryption key 2 must be 32 bytes"),
        ({"k1": K1}, ID_SHAPED, "the current encryption key is not in the ring"),
    ],
    ids=["key-as-id", "id-shaped-key-as-id", "id-shaped-current"],
)
def test_a_bad_key_ring_in_code_never_echoes_what_may_be_a_key(
    keys: dict[str, bytes], current: str | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        Sealer(keys, current=current)
    assert B1.rstrip("=") not in str(info.value) and ID_SHAPED not in str(info.value)


def test_a_short_well_formed_id_is_named_in_errors() -> None:
    with pytest.raises(ConfigError, match=r"encryption key 1 \('k9'\) must be 32 bytes"):
        Sealer({"k9": b"short"})
    with pytest.raises(ConfigError, match=r"current encryption key \('k3'\) is not in the ring"):
        Sealer({"k1": K1}, current="k3")


def test_repr_never_shows_key_material() -> None:
    text = repr(Sealer({"k1": K1}))
    assert "k1" in text
    assert base64.b64encode(K1).decode() not in text and str(K1) not in text
