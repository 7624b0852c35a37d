"""Checks of ``LiteLLMCache``'s options: a typo there would otherwise turn caching off in
silence (LiteLLM compares call types and modes as given, and caches nothing that differs)."""

from __future__ import annotations

from typing import Any

from litellm.caching.caching import CacheMode
from litellm.types.utils import CallTypes

from llmcache.errors import ConfigError


def check_mode(mode: object) -> CacheMode:
    try:
        return CacheMode(mode)
    except ValueError:
        modes = [m.value for m in CacheMode]
        raise ConfigError(f"mode must be one of {modes}, got {mode!r}") from None


def check_call_types(call_types: object) -> list[Any]:
    """A list of LiteLLM call types (strings or ``CallTypes`` members), as given."""
    if isinstance(call_types, str) or not isinstance(call_types, (list, tuple)):
        raise ConfigError(
            "supported_call_types must be a list of LiteLLM call types, e.g. "
            f"['completion', 'acompletion'], got {call_types!r}"
        )
    known = {c.value for c in CallTypes}
    unknown = [t for t in call_types if getattr(t, "value", t) not in known]
    if unknown:
        raise ConfigError(
            f"supported_call_types: {unknown} are not LiteLLM call types; e.g. 'completion', "
            "'acompletion', 'text_completion', 'embedding', 'aembedding'"
        )
    return list(call_types)


def check_max_messages(max_messages: object) -> int | None:
    if max_messages is None:
        return None
    if isinstance(max_messages, bool) or not isinstance(max_messages, int) or max_messages < 1:
        raise ConfigError(
            f"max_messages must be a positive number of messages or None (no limit), got "
            f"{max_messages!r}"
        )
    return max_messages
