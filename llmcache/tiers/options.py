"""Parsing the options every tier URL shares."""

from __future__ import annotations

import math

from llmcache.errors import ConfigError


def ttl_option(tier: str, raw: str | None, shown: str) -> float | None:
    """The ``ttl`` option of a tier URL: the tier's default TTL in seconds, or None.

    ``shown`` is the URL as it may appear in a message (password redacted).
    """
    if raw is None:
        return None
    try:
        ttl = float(raw)
    except ValueError:
        raise ConfigError(f"{tier} tier: ttl={raw!r} in {shown!r} is not a number") from None
    if not math.isfinite(ttl) or ttl <= 0:
        raise ConfigError(
            f"{tier} tier: ttl={raw!r} in {shown!r} must be a positive number of seconds; "
            "omit ttl for no expiry (ttl=0 would store nothing)"
        )
    return ttl
