"""What may be cached and for how long. Pure functions of the request: no I/O, no clock reads.

TTL meanings, the same in every tier:

* ``ttl`` not passed (``UNSET``): the policy's ``default_ttl``.
* ``ttl=None``: no TTL of our own; each tier applies its own default (``memory://?ttl=60``),
  and a tier without one keeps the entry until it is evicted, invalidated or cleared.
* ``ttl=0``: do not store at all.
* ``ttl > 0``: expire after that many seconds (spread by ``ttl_jitter``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from llmcache._sentinel import UNSET, Unset
from llmcache.errors import ConfigError
from llmcache.request import CacheRequest

DEFAULT_MAX_ENTRY_BYTES = 1_000_000


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a request may be read from and written to the cache, and why not."""

    read: bool
    write: bool
    reason: str = ""


CACHE = Decision(read=True, write=True)


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
    """

    strict_mode: bool = False
    max_temperature: float = 0.3
    max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES
    default_ttl: float | None = None
    ttl_jitter: float = 0.0

    def __post_init__(self) -> None:
        check_ttl(self.default_ttl)
        if not 0.0 <= self.ttl_jitter < 1.0:
            raise ConfigError(f"ttl_jitter must be in [0, 1), got {self.ttl_jitter}")
        if self.max_entry_bytes <= 0:
            raise ConfigError(f"max_entry_bytes must be positive, got {self.max_entry_bytes}")

    @classmethod
    def strict(cls, max_temperature: float = 0.3, **kwargs: object) -> CachePolicy:
        return cls(strict_mode=True, max_temperature=max_temperature, **kwargs)  # type: ignore[arg-type]

    def decide(self, request: CacheRequest) -> Decision:
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

    def resolve_ttl(self, ttl: float | Unset | None) -> float | None:
        """The TTL to apply: the call's own if passed, else the policy default."""
        return self.default_ttl if ttl is UNSET else check_ttl(ttl)

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
