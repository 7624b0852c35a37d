"""What may be cached and for how long. Pure functions of the request: no I/O, no clock reads.

TTL meanings, the same in every tier:

* ``ttl`` not passed (``UNSET``): the policy's ``default_ttl``.
* ``ttl=None``: no TTL of our own; each tier applies its own default (``memory://?ttl=60``),
  and a tier without one keeps the entry until it is evicted, invalidated or cleared.
* ``ttl=0``: do not store at all.
* ``ttl > 0``: expire after that many seconds, spread by ``ttl_jitter`` (±10% by default, so
  entries written together do not expire together; ``ttl_jitter=0`` for exact expiry).

Where a TTL comes from, first match wins: the call's ``CacheControl.ttl``
(``llmcache.cache_control(ttl=...)``, LiteLLM's ``cache={"ttl": ...}``); the ``ttl`` passed to
``Cache.set`` (an adapter's default); the smallest rule among the request's tags
(``ttl_by_tag``, e.g. ``{"faq": 7 * 86400, "news": 3600, "realtime": 0}``: a tag is also how a
*category* of content is named); the model's rule (``ttl_by_model``); ``default_ttl``. A rule
of 0 means "never cached": such requests are neither read nor stored.

Whether a request may be cached: strict mode (``strict_mode``, per model ``strict_by_model``,
per call ``CacheControl.strict``) admits only deterministic requests; ``CacheControl`` can also
skip the read (``no_cache``) or the store (``no_store``) of one call.

Switches, read from the environment when a policy is built (so an operator can turn caching
off without a code change): ``LLMCACHE_DISABLED=1`` turns every read and write off;
``LLMCACHE_ROLLOUT=0.25`` sends a stable quarter of scopes through the cache, chosen by a hash
of the scope, so one user's experience is consistent from call to call.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeGuard

from llmcache._sentinel import UNSET, Unset
from llmcache.errors import ConfigError
from llmcache.freshness import Popularity
from llmcache.keys import not_a_request, scope_digest
from llmcache.request import NO_CONTROL, CacheControl, CacheRequest, Scope

DEFAULT_MAX_ENTRY_BYTES = 1_000_000
#: Each positive TTL is spread uniformly by ± this fraction (entries written together by a
#: batch or a warm-up would otherwise all expire, and be recomputed, at the same moment).
DEFAULT_TTL_JITTER = 0.1


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a request may be read from and written to the cache, and why not."""

    read: bool
    write: bool
    reason: str = ""


CACHE = Decision(read=True, write=True)
DISABLED = Decision(read=False, write=False, reason="disabled")
OUTSIDE_ROLLOUT = Decision(read=False, write=False, reason="scope outside the rollout")
TRUNCATED = Decision(False, False, "truncated")  # cut by the token limit
FILTERED = Decision(False, False, "content_filter")  # withheld by a content filter
#: Finish reasons (lower-cased) of an answer cut by the token limit, or withheld by a filter.
TRUNCATED_REASONS = frozenset({"length", "max_tokens", "max_output_tokens"})
FILTERED_REASONS = frozenset(
    {
        "content_filter",
        "refusal",
        "safety",
        "recitation",
        "blocklist",
        "prohibited_content",
        "guardrail_intervened",  # Bedrock Converse: a guardrail's canned reply
        "content_filtered",  # Bedrock Converse
    }
)
NO_CACHE = Decision(read=False, write=True, reason="no_cache: this call does not read")
NO_STORE = Decision(read=True, write=False, reason="no_store: this call does not store")
NO_CACHE_NO_STORE = Decision(read=False, write=False, reason="no_cache and no_store")

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


def _frozen_switches(kind: str, rules: Mapping[str, bool]) -> Mapping[str, bool]:
    if not isinstance(rules, Mapping):
        raise ConfigError(f"{kind} must be a mapping of model names to True/False")
    for name, value in rules.items():
        if not isinstance(name, str) or not name or not isinstance(value, bool):
            raise ConfigError(f"{kind} maps model names to True/False, got {name!r}: {value!r}")
    return MappingProxyType(dict(rules))


def _frozen_rules(kind: str, rules: Mapping[str, float | None]) -> Mapping[str, float | None]:
    if not isinstance(rules, Mapping):
        raise ConfigError(f"{kind} must be a mapping of names to TTL seconds")
    checked: dict[str, float | None] = {}
    for name, ttl in rules.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{kind} keys must be non-empty strings, got {name!r}")
        checked[name] = check_ttl(ttl)
    return MappingProxyType(checked)


#: The longest TTL taken (100 years): None says "no expiry". Longer ones overflowed Redis's
#: PX and MySQL refused infinity, so a store failed, and the tier's breaker opened for others.
MAX_TTL = 100 * 365 * 86400.0


def check_ttl(ttl: float | None) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or math.isnan(ttl):
        raise ConfigError(f"ttl must be a number of seconds or None, got {ttl!r}")
    if ttl < 0:
        raise ConfigError(f"ttl must be >= 0 seconds (0 means 'do not store'), got {ttl}")
    if ttl > MAX_TTL:
        raise ConfigError(
            f"ttl must be at most {MAX_TTL:.0f} seconds (100 years), got {ttl}; "
            "use None for no expiry"
        )
    return float(ttl)


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """Cacheability and TTL rules.

    The default caches everything (LangChain's expectation). ``CachePolicy.strict()`` caches
    only deterministic requests: temperature at most ``max_temperature``, one sample (``n``,
    ``best_of``), and no other sampling parameter (``top_p`` below 1, ``top_k`` above 1)
    unless a ``seed`` pins it. ``strict_by_model`` turns strict mode on (True) or off (False)
    for single models, e.g. ``{"gpt-4o": True, "local-embedder": False}``.
    ``store_truncated=False`` (the default) never stores an answer cut by the token limit
    (``finish_reason == "length"``); the cache asks ``may_store_answer`` before storing.
    ``popularity`` and ``early_recompute`` keep hot entries fresh (``llmcache.freshness``).
    """

    strict_mode: bool = False
    max_temperature: float = 0.3
    max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES
    default_ttl: float | None = None
    ttl_jitter: float = DEFAULT_TTL_JITTER
    ttl_by_model: Mapping[str, float | None] = field(default_factory=dict)
    ttl_by_tag: Mapping[str, float | None] = field(default_factory=dict)
    strict_by_model: Mapping[str, bool] = field(default_factory=dict)
    popularity: Popularity | None = None
    early_recompute: float = 0.0
    store_truncated: bool = False
    disabled: bool = field(default_factory=_env_disabled)
    rollout: float = field(default_factory=_env_rollout)
    # True when no rule can refuse a request: decide() then returns at once (the hot path).
    _caches_all: bool = field(init=False, repr=False, compare=False, default=True)

    def __post_init__(self) -> None:
        check_ttl(self.default_ttl)
        for switch in ("strict_mode", "store_truncated", "disabled"):
            # A string ("false" read from a config file) would be true in every test below.
            if not isinstance(getattr(self, switch), bool):
                raise ConfigError(f"{switch} must be True or False, got {getattr(self, switch)!r}")
        temperature = self.max_temperature
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise ConfigError(f"max_temperature must be a number, got {temperature!r}")
        if math.isnan(temperature):  # every comparison with NaN is false: nothing refused
            raise ConfigError("max_temperature must be a number, got nan")
        size = self.max_entry_bytes
        if isinstance(size, bool) or not isinstance(size, int):
            raise ConfigError(f"max_entry_bytes must be a whole number, got {size!r}")
        for fraction in ("ttl_jitter", "early_recompute", "rollout"):
            # A string ("0.1" read from a config file) raised TypeError from the checks below.
            if not _is_number(getattr(self, fraction)):
                raise ConfigError(f"{fraction} must be a number, got {getattr(self, fraction)!r}")
        if not 0.0 <= self.ttl_jitter < 1.0:
            raise ConfigError(f"ttl_jitter must be in [0, 1), got {self.ttl_jitter}")
        if not 0.0 <= self.early_recompute < 1.0:
            raise ConfigError(
                f"early_recompute must be a fraction of an entry's lifetime in [0, 1), "
                f"got {self.early_recompute}"
            )
        if self.popularity is not None and not isinstance(self.popularity, Popularity):
            raise ConfigError("popularity must be a llmcache.freshness.Popularity or None")
        if self.max_entry_bytes <= 0:
            raise ConfigError(f"max_entry_bytes must be positive, got {self.max_entry_bytes}")
        if isinstance(self.rollout, bool) or not 0.0 <= self.rollout <= 1.0:
            raise ConfigError(f"rollout must be a fraction in [0, 1], got {self.rollout!r}")
        by_model = _frozen_rules("ttl_by_model", self.ttl_by_model)
        by_tag = _frozen_rules("ttl_by_tag", self.ttl_by_tag)
        object.__setattr__(self, "ttl_by_model", by_model)
        object.__setattr__(self, "ttl_by_tag", by_tag)
        strict_by_model = _frozen_switches("strict_by_model", self.strict_by_model)
        object.__setattr__(self, "strict_by_model", strict_by_model)
        never = 0.0 in by_model.values() or 0.0 in by_tag.values()
        strict = self.strict_mode or any(strict_by_model.values())
        refuses = strict or self.disabled or self.rollout < 1.0 or never
        object.__setattr__(self, "_caches_all", not refuses)

    @classmethod
    def strict(cls, max_temperature: float = 0.3, **kwargs: object) -> CachePolicy:
        return cls(strict_mode=True, max_temperature=max_temperature, **kwargs)  # type: ignore[arg-type]

    def decide(self, request: CacheRequest) -> Decision:
        try:
            control = request.control
        except AttributeError:  # checked here, off the hot path: get(), set() start here
            raise not_a_request(request) from None
        if self._caches_all and control is NO_CONTROL:
            return CACHE
        if not isinstance(control, CacheControl):
            raise ConfigError(
                "CacheRequest.control must be an llmcache.CacheControl (or use "
                f"llmcache.cache_control(...) around the call), got {type(control).__name__}"
            )
        if self.disabled:
            return DISABLED
        if self.rollout < 1.0 and rollout_bucket(request.scope) >= self.rollout:
            return OUTSIDE_ROLLOUT
        never = self._never_cached(request)
        if never is not None:
            return never
        strict = control.strict
        if strict is None:
            strict = self.strict_by_model.get(request.model_name, self.strict_mode)
        if strict and request.params:
            refused = self._not_deterministic(request.params)
            if refused is not None:
                return refused
        if control.no_cache:
            return NO_CACHE_NO_STORE if control.no_store else NO_CACHE
        return NO_STORE if control.no_store else CACHE

    def _not_deterministic(self, params: Mapping[str, object]) -> Decision | None:
        """Why strict mode refuses a request with these parameters (None: it does not)."""
        temperature = params.get("temperature")
        if _is_number(temperature) and temperature > self.max_temperature:
            return Decision(False, False, f"temperature {temperature} > {self.max_temperature}")
        for name in ("n", "best_of"):
            count = params.get(name)
            if _is_number(count) and count > 1:
                return Decision(False, False, f"{name}={count} asks for several samples")
        if params.get("seed") is None:  # a seed pins what sampling would pick
            top_p, top_k = params.get("top_p"), params.get("top_k")
            if _is_number(top_p) and top_p < 1:
                return Decision(False, False, f"top_p={top_p} samples and no seed pins it")
            if _is_number(top_k) and top_k > 1:
                return Decision(False, False, f"top_k={top_k} samples and no seed pins it")
        return None

    def _never_cached(self, request: CacheRequest) -> Decision | None:
        for tag in request.tags:
            if self.ttl_by_tag.get(tag, 1.0) == 0.0:
                return Decision(False, False, f"tag {tag!r} has ttl 0 (never cached)")
        if self.ttl_by_model.get(request.model_name, 1.0) == 0.0:
            return Decision(False, False, f"model {request.model_name!r} has ttl 0 (never cached)")
        return None

    def may_store_answer(self, finish_reason: str | None) -> Decision:
        """Whether an answer that ended with ``finish_reason`` may be stored (any mode).

        Providers' spellings are understood: OpenAI/LiteLLM ``length``/``content_filter``,
        Anthropic ``max_tokens``/``refusal``, Gemini ``MAX_TOKENS``/``SAFETY``...
        """
        if finish_reason is None:
            return CACHE
        reason = finish_reason.lower()
        if reason in TRUNCATED_REASONS and not self.store_truncated:
            return TRUNCATED
        if reason in FILTERED_REASONS:
            return FILTERED
        return CACHE

    def refuses_answer(self, finish_reasons: Iterable[str | None]) -> Decision | None:
        """The first of an answer's finish reasons (one per choice) that bars storing it."""
        for finish_reason in finish_reasons:
            decision = self.may_store_answer(finish_reason)
            if not decision.write:
                return decision
        return None

    def resolve_ttl(
        self, ttl: float | Unset | None, request: CacheRequest | None = None
    ) -> float | None:
        """The TTL to apply: the call's control, else ``ttl`` if passed, else the tag, model
        or default rule."""
        if request is not None and request.control.ttl is not UNSET:
            return check_ttl(request.control.ttl)
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
        # Never past MAX_TTL: a TTL taken at the bound, spread up, would give an expiry that
        # the tiers' bound and ``llmcache import`` refuse (an export of it could not be read).
        return now + min(ttl * spread, MAX_TTL)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
