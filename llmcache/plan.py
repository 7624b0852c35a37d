"""Plans: the cache's tier walk written once, as generators, and run by a sync or an async
driver (``Cache._run`` / ``Cache._arun``).

A plan yields an ``Op`` (a tier primitive to call) or a ``Sleep`` and receives the result, or
``UNAVAILABLE`` when the tier failed or its breaker skipped it.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

if TYPE_CHECKING:
    from llmcache.semantic.tier import SemanticTier
    from llmcache.tiers import Tier

T = TypeVar("T")


class Op(NamedTuple):
    """One tier primitive call a plan asks its driver to make."""

    tier: Tier | SemanticTier
    method: str  # a Tier primitive (get, set, delete, clear) or a SemanticTier one
    args: tuple[Any, ...]
    probe: bool = False  # a health probe: made even while the tier's breaker is open
    # An operator's call (listing): made even while the breaker is open, and its error is
    # raised to the caller, who asked for this tier's data, instead of failing open.
    strict: bool = False


class Sleep(NamedTuple):
    """A pause a plan asks its driver for (``time.sleep`` or ``asyncio.sleep``)."""

    seconds: float


class Unavailable:
    """Result of an operation on a tier that failed or whose breaker is open."""

    __slots__ = ()


UNAVAILABLE = Unavailable()

Plan = Generator[Op | Sleep, Any, T]
