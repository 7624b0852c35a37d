"""Parsing the options every tier URL shares."""

from __future__ import annotations

import math
from urllib.parse import parse_qsl

from llmcache.errors import ConfigError
from llmcache.policy import MAX_TTL


def query_options(what: str, query: str, shown: str) -> dict[str, str]:
    """A URL's query options by name, blank values kept; ConfigError for an option given
    twice (which of the two was meant cannot be known)."""
    options: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in options:
            raise ConfigError(f"{what}: option {name!r} is given twice in {shown!r}")
        options[name] = value
    return options


def whole_number_option(tier: str, name: str, raw: str | None, shown: str) -> int | None:
    """An option that counts something (entries, bytes): None when absent."""
    if raw is None:
        return None
    # ASCII digits only: int() also takes "1_000", " 1" and other scripts' digits ("５").
    if not (raw.isascii() and raw.lstrip("-").isdigit()):
        raise ConfigError(f"{tier} tier: {name}={raw!r} in {shown!r} is not a whole number")
    return int(raw)


def seconds_option(
    tier: str, name: str, raw: str | None, shown: str, *, why: str = ""
) -> float | None:
    """An option that is a duration: a positive, finite number of seconds, or None when
    absent. ``why`` ends the message of a refused value (what 0 would mean, say)."""
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        raise ConfigError(
            f"{tier} tier: {name}={raw!r} in {shown!r} is not a number of seconds"
        ) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(
            f"{tier} tier: {name}={raw!r} in {shown!r} must be a positive number of seconds{why}"
        )
    return seconds


def ttl_option(tier: str, raw: str | None, shown: str) -> float | None:
    """The ``ttl`` option of a tier URL: the tier's default TTL in seconds, or None.

    ``shown`` is the URL as it may appear in a message (password redacted).
    """
    why = "; omit ttl for no expiry (ttl=0 would store nothing)"
    seconds = seconds_option(tier, "ttl", raw, shown, why=why)
    if seconds is not None and seconds > MAX_TTL:
        raise ConfigError(
            f"{tier} tier: ttl={raw!r} in {shown!r} is over {MAX_TTL:.0f} seconds (100 years); "
            "omit ttl for no expiry"
        )
    return seconds
