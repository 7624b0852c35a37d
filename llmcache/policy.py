"""What may be cached and for how long. Pure functions of the request: no I/O, no clock reads.

TTL meanings, the same in every tier:

* ``ttl`` not passed (``UNSET``): the policy's ``default_ttl``.
* ``ttl=None``: no TTL of our own; each tier applies its own default (``memory://?ttl=60``),
  and a tier without one keeps the entry until it is evicted, invalidated or cleared.
* ``ttl=0``: do not store at all.
* ``ttl > 0``: expire after that many seconds (spread by ``ttl_jitter``).

Where a TTL comes from, first match wins: the call's own ``ttl``; the smallest rule among the
request's tags (``ttl_by_tag``, e.g. ``{"news": 3600, "realtime": 0}``: a tag is also how a
*category* of content is named); the model's rule (``ttl_by_model``); ``default_ttl``. A rule
of 0 means "never cached": such requests are neither read nor stored.

Switches, read from the environment when a policy is built (so an operator can turn caching
off without a code change): ``LLMCACHE_DISABLED=1`` turns every read and write off;
``LLMCACHE_ROLLOUT=0.25`` sends a stable quarter of scopes through the cache, chosen by a hash
of the scope, so one user's experience is consistent from call to call.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from llmcache._sentinel import UNSET, Unset
from llmcache.errors import ConfigError
from llmcache.keys import scope_digest
from llmcache.request import CacheRequest, Scope

DEFAULT_MAX_ENTRY_BYTES = 1_000_000


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a request may be read from and written to the cache, and why not."""

    read: bool
    write: bool
    reason: str = ""


CACHE = Decision(read=True, write=True)
DISABLED = Decision(read=False, write=False, reason="disabled")
OUTSIDE_ROLLOUT = Decision(read=False, write=False, reason="scope outside the rollout")

_TRUE_WORDS = {"1", "true", "yes", "on"}
_FALSE_WORDS = {"", "0", "false", "no", "off"}


def _env_disabled() -> bool:
    raw = os.environ.get("LLMCACHE_DISABLED", "").strip().lower()
    if raw in _TRUE_WORDS:
        return True
    if raw in _FALSE_WORDS:
        return False
    raise ConfigError(f"LLMCACHE_DISABLED must be 1/0, true/false, yes/no or on/off, got {raw!r}")


def _env_rollout() -> float:
    raw = os.environ.get("LLMCACHE_ROLLOUT", "").strip()
    if not raw:
        return 1.0
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"LLMCACHE_ROLLOUT must be a fraction in [0, 1], got {raw!r}") from None


def rollout_bucket(scope: Scope) -> float:
    """Where a scope falls in [0, 1): stable across processes and releases (a hash of it)."""
    return int.from_bytes(scope_digest(scope)[:8], "big") / 2.0**64


def _frozen_rules(kind: str, rules: Mapping[str, float | None]) -> Mapping[str, float | None]:
    if not isinstance(rules, Mapping):
        raise ConfigError(f"{kind} must be a mapping of names to TTL seconds")
    checked: dict[str, float | None] = {}
    for name, ttl in rules.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{kind} keys must be non-empty strings, got {name!r}")
        checked[name] = check_ttl(ttl)
    return MappingProxyType(checked)


def check_ttl(ttl: float | None) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or math.isnan(ttl):
        raise ConfigError(f"ttl must be a number of seconds or None, got {ttl!r}")
    if ttl < 0:
        raise ConfigError(f"ttl must be >= 0 seconds (0 means 'do not store'), got {ttl}")
    return float(ttl)


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """Cacheability and TTL rules.

    The default caches everything (LangChain's expectation). ``CachePolicy.strict()`` caches
    only deterministic requests: temperature at most ``max_temperature`` and ``n == 1``.
    ``store_truncated=False`` (the default) never stores an answer cut by the token limit
    (``finish_reason == "length"``); adapters ask ``may_store_answer`` before storing.
    """

    strict_mode: bool = False
    max_temperature: float = 0.3
    max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES
    default_ttl: float | None = None
    ttl_jitter: float = 0.0
    ttl_by_model: Mapping[str, float | None] = field(default_factory=dict)
    ttl_by_tag: Mapping[str, float | None] = field(default_factory=dict)
    store_truncated: bool = False
    disabled: bool = field(default_factory=_env_disabled)
    rollout: float = field(default_factory=_env_rollout)
    # True when no rule can refuse a request: decide() then returns at once (the hot path).
    _caches_all: bool = field(init=False, repr=False, compare=False, default=True)

    def __post_init__(self) -> None:
        check_ttl(self.default_ttl)
        if not 0.0 <= self.ttl_jitter < 1.0:
            raise ConfigError(f"ttl_jitter must be in [0, 1), got {self.ttl_jitter}")
        if self.max_entry_bytes <= 0:
            raise ConfigError(f"max_entry_bytes must be positive, got {self.max_entry_bytes}")
        if isinstance(self.rollout, bool) or not 0.0 <= self.rollout <= 1.0:
            raise ConfigError(f"rollout must be a fraction in [0, 1], got {self.rollout!r}")
        by_model = _frozen_rules("ttl_by_model", self.ttl_by_model)
        by_tag = _frozen_rules("ttl_by_tag", self.ttl_by_tag)
        object.__setattr__(self, "ttl_by_model", by_model)
        object.__setattr__(self, "ttl_by_tag", by_tag)
        never = 0.0 in by_model.values() or 0.0 in by_tag.values()
        refuses = self.strict_mode or self.disabled or self.rollout < 1.0 or never
        object.__setattr__(self, "_caches_all", not refuses)

    @classmethod
    def strict(cls, max_temperature: float = 0.3, **kwargs: object) -> CachePolicy:
        return cls(strict_mode=True, max_temperature=max_temperature, **kwargs)  # type: ignore[arg-type]

    def decide(self, request: CacheRequest) -> Decision:
        if self._caches_all:
            return CACHE
        if self.disabled:
            return DISABLED
        if self.rollout < 1.0 and rollout_bucket(request.scope) >= self.rollout:
            return OUTSIDE_ROLLOUT
        never = self._never_cached(request)
        if never is not None:
            return never
        if not self.strict_mode or not request.params:
            return CACHE
        params = request.params
        temperature = params.get("temperature")
        if isinstance(temperature, (int, float)) and temperature > self.max_temperature:
            return Decision(False, False, f"temperature {temperature} > {self.max_temperature}")
        n = params.get("n")
        if isinstance(n, int) and n > 1:
            return Decision(False, False, f"n={n} asks for several samples")
        return CACHE

    def _never_cached(self, request: CacheRequest) -> Decision | None:
        for tag in request.tags:
            if self.ttl_by_tag.get(tag, 1.0) == 0.0:
                return Decision(False, False, f"tag {tag!r} has ttl 0 (never cached)")
        if self.ttl_by_model.get(request.model_name, 1.0) == 0.0:
            return Decision(False, False, f"model {request.model_name!r} has ttl 0 (never cached)")
        return None

    def may_store_answer(self, finish_reason: str | None) -> Decision:
        """Whether an answer that ended with ``finish_reason`` may be stored (any mode)."""
        if finish_reason == "length" and not self.store_truncated:
            return Decision(False, False, "answer cut by the token limit (finish_reason=length)")
        if finish_reason == "content_filter":
            return Decision(False, False, "answer withheld by a content filter")
        return CACHE

    def resolve_ttl(
        self, ttl: float | Unset | None, request: CacheRequest | None = None
    ) -> float | None:
        """The TTL to apply: the call's own if passed, else the tag, model or default rule."""
        if ttl is not UNSET:
            return check_ttl(ttl)
        if request is not None:
            by_tag = [self.ttl_by_tag[t] for t in request.tags if t in self.ttl_by_tag]
            limited = [t for t in by_tag if t is not None]
            if limited:
                return min(limited)
            if by_tag:  # only None rules matched: the tiers' own defaults
                return None
            if request.model_name in self.ttl_by_model:
                return self.ttl_by_model[request.model_name]
        return self.default_ttl

    def expires_at(
        self,
        ttl: float | None,
        now: float,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """Absolute expiry for a resolved positive TTL, jittered; None for "tier default"."""
        if ttl is None:
            return None
        spread = 1.0 + self.ttl_jitter * (2.0 * rand() - 1.0) if self.ttl_jitter else 1.0
        return now + ttl * spread
