"""Encryption at rest (opt-in): stored entries sealed with AES-256-GCM.

With a ``Sealer`` configured, every payload a tier stores is an envelope, never plain JSON::

    b"LCE1" | key-id length (1 byte) | key id (ASCII) | nonce (12 bytes) | ciphertext + tag

The entry's key digest is the associated data, so a sealed value only opens under the key it
was stored for: a row copied onto another key (or another scope's key) does not decrypt.

Keys come from ``LLMCACHE_ENCRYPTION_KEYS``: comma-separated ``id:base64key`` pairs of 32-byte
keys, the first one sealing new entries and all of them opening old ones, so a key is rotated
by putting the new one first and dropping the old one once its entries have expired::

    LLMCACHE_ENCRYPTION_KEYS="k2:<base64 32 bytes>,k1:<base64 32 bytes>"
    python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"

An entry sealed under a key that is no longer configured is a miss (left in place: another
process may still hold that key); one that fails authentication (tampered, truncated, or a
plain entry where sealed ones are expected) is a miss and is deleted, like any undecodable value.
AES-GCM cannot tell a tampered value from one opened with the wrong key: a process given
another key under an id the fleet uses (a staging ``k1`` in production) deletes every entry
of that id it looks up. Give every key an id of its own.

What is not sealed: the digests tiers index entries by (scope, model, namespace, tags: unkeyed
BLAKE2b, so whoever reads the store and can guess an id, such as a user's e-mail or a tag,
can tell which entries are that user's or carry that tag, and how many), created and expiry
times, sizes, a semantic index's vectors, and the fleet counters and savings history, which
hold model names (Redis ``<prefix>:stats`` and ``<prefix>:savings:*``, SQL
``<prefix>_savings``). Answers, prompts, tags, usage and the model an entry names are inside
the sealed payload.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from typing import Any

from llmcache._optional import require
from llmcache.errors import CodecError, ConfigError

MAGIC = b"LCE1"
NONCE_BYTES = 12
KEY_BYTES = 32
ENV_VAR = "LLMCACHE_ENCRYPTION_KEYS"
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: The longest key id an error shows (longer ones could be a key pasted where the id goes).
_SHOWN_ID_CHARS = 24


def _plausible_id(key_id: object) -> bool:
    """Whether ``key_id`` may be shown: a valid id too short to be key material (a 32-byte
    key is at least 43 characters of base64)."""
    return (
        isinstance(key_id, str)
        and len(key_id) <= _SHOWN_ID_CHARS
        and bool(_KEY_ID.fullmatch(key_id))
    )


def _shown(key_id: object) -> str:
    """The id as an error may show it after the key's position: only when it cannot be a key."""
    return f" ({key_id!r})" if _plausible_id(key_id) else ""


class UnknownKeyError(CodecError):
    """A sealed value whose key id is not configured here: a miss, but not corrupt."""


class Sealer:
    """Seals and opens stored payloads with AES-256-GCM under a ring of keys."""

    def __init__(self, keys: Mapping[str, bytes], *, current: str | None = None) -> None:
        aead = require(
            "cryptography.hazmat.primitives.ciphers.aead",
            extra="crypto",
            feature="encryption at rest",
        )
        if not keys:
            raise ConfigError("encryption at rest needs at least one key")
        self._ciphers: dict[str, Any] = {}
        for position, (key_id, key) in enumerate(keys.items(), 1):
            if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
                # Never echoed: a key written where its id goes would be printed.
                raise ConfigError(
                    f"encryption key {position}: its id must be 1-64 of A-Z a-z 0-9 _ . - "
                    "(ids name keys; the key itself goes in the value)"
                )
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise ConfigError(
                    f"encryption key {position}{_shown(key_id)} must be {KEY_BYTES} bytes"
                )
            self._ciphers[key_id] = aead.AESGCM(key)
        self.current = current if current is not None else next(iter(keys))
        if self.current not in self._ciphers:
            raise ConfigError(
                f"the current encryption key{_shown(self.current)} is not in the ring"
            )
        self._header = MAGIC + bytes([len(self.current)]) + self.current.encode("ascii")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Sealer | None:
        """The sealer ``LLMCACHE_ENCRYPTION_KEYS`` describes, or None when it is not set."""
        raw = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
        if not raw:
            return None
        keys: dict[str, bytes] = {}
        # Errors name an entry by its position and never echo what it holds: an entry written
        # the wrong way round (base64key:id) puts the key where the id is expected.
        for position, part in enumerate(raw.split(","), 1):
            key_id, sep, encoded = part.strip().partition(":")
            where = f"{ENV_VAR}: entry {position}"
            if not sep:
                raise ConfigError(f"{where} is not id:base64key")
            if not _KEY_ID.fullmatch(key_id):
                raise ConfigError(
                    f"{where}: the id (before the ':') must be 1-64 of A-Z a-z 0-9 _ . -; "
                    "write id:base64key, the id first"
                )
            if key_id in keys:
                raise ConfigError(f"{where}: its id{_shown(key_id)} appears twice")
            try:
                keys[key_id] = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise ConfigError(
                    f"{where}: the key (after the ':') is not valid base64; write id:base64key"
                ) from None
            if len(keys[key_id]) != KEY_BYTES:
                raise ConfigError(
                    f"{where}: the key (after the ':') must be {KEY_BYTES} bytes, "
                    f"not {len(keys[key_id])}"
                )
        return cls(keys)

    def seal(self, payload: bytes, bound_to: bytes) -> bytes:
        """The envelope of ``payload``, opened only with ``bound_to`` (the entry's key)."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.current].encrypt(nonce, payload, bound_to)
        return b"".join((self._header, nonce, sealed))

    def open(self, envelope: bytes, bound_to: bytes) -> bytes:
        """The payload inside ``envelope``; raises CodecError (UnknownKeyError for a key id
        that is not configured) when it is not a valid envelope for ``bound_to``."""
        view = bytes(envelope)
        if not view.startswith(MAGIC) or len(view) < len(MAGIC) + 1:
            raise CodecError("stored entry is not sealed, but encryption at rest is on")
        id_len = view[len(MAGIC)]
        start = len(MAGIC) + 1
        key_id = view[start : start + id_len].decode("ascii", "replace")
        body = view[start + id_len :]
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownKeyError(f"stored entry is sealed with key {key_id!r}, not configured")
        if len(body) < NONCE_BYTES + 16:
            raise CodecError("sealed entry is truncated")
        invalid_tag = require(
            "cryptography.exceptions", extra="crypto", feature="encryption at rest"
        ).InvalidTag
        try:
            plain: bytes = cipher.decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], bound_to)
        except invalid_tag:
            raise CodecError("sealed entry failed authentication (tampered or moved)") from None
        return plain

    def __repr__(self) -> str:  # never the keys themselves
        return f"Sealer(current={self.current!r}, keys={sorted(self._ciphers)})"
