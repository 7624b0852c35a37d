"""Running a warm-up: store FAQ answers without a model, or replay logged calls through one.

The adapters say how a question becomes a request and a stored value, and how a call is made
through the cache (``WarmupTarget``: ``langchain_llmcache.warmup``, ``litellm_llmcache.warmup``);
this module walks the rows, sets each row's scope and tags, counts, and bounds concurrency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from llmcache._sentinel import UNSET, Unset
from llmcache.context import scope, tags
from llmcache.entry import NO_USAGE, Usage
from llmcache.errors import ConfigError, LLMCacheError
from llmcache.policy import check_ttl
from llmcache.redact import describe_error
from llmcache.request import CacheRequest, Scope, check_tags
from llmcache.warmup.faq import FaqFile, FaqRow
from llmcache.warmup.log import LoggedCall
from llmcache.warmup.source import BadRow

if TYPE_CHECKING:
    from collections.abc import Iterator

    from llmcache.cache import Cache

#: Tags every FAQ entry carries unless told otherwise: ``invalidate(tags=["faq"])`` removes them.
FAQ_TAGS = ("faq",)
DEFAULT_CONCURRENCY = 4
#: Failures kept (described) in a report; the count covers them all.
MAX_ERRORS_KEPT = 20

Progress = Callable[[], None]

NOT_STORED = (
    "not stored: no tier took it (see the logged tier error) or the cache policy refused it"
)


class FaqAnswer(NamedTuple):
    """What storing one FAQ row writes: the request a later call makes, and its value."""

    request: CacheRequest
    value: Any
    usage: Usage = NO_USAGE


class WarmupTarget(Protocol):
    """How one adapter warms a cache (see ``langchain_llmcache.warmup``,
    ``litellm_llmcache.warmup``)."""

    @property
    def cache(self) -> Cache: ...

    def faq_answers(self, question: str, answer: str) -> Sequence[FaqAnswer]:
        """The requests ``question`` makes through the adapter (one per way of asking that
        is keyed apart, e.g. streamed or not), in the ambient scope and tags, each with the
        value the adapter itself would store for the answer ``answer``."""
        ...

    async def replay(self, messages: Sequence[Mapping[str, Any]]) -> bool:
        """Make the call through the cache, as an app would; True if the cache answered."""
        ...


@dataclass
class WarmupReport:
    """How a warm-up went. ``skipped``: bad rows left out, and logged calls the cache
    already answered; ``failed``: rows not stored, or calls the model failed."""

    stored: int = 0
    skipped: int = 0
    failed: int = 0
    elapsed_seconds: float = 0.0
    model_calls: int = 0  # replays the model answered (the cache did not)
    already_cached: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the first failures, described

    def left_out(self, bad: Sequence[BadRow]) -> None:
        """Count the bad rows a file reader left out (``skip_bad``) as skipped."""
        self.bad_rows.extend(bad)
        self.skipped += len(bad)

    def failure(self, where: str, exc: BaseException) -> None:
        self.failed += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(f"{where}: {describe_error(exc)}")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["elapsed_seconds"] = round(self.elapsed_seconds, 3)
        data["bad_rows"] = [{"line": b.line, "reason": b.reason} for b in self.bad_rows]
        return data


@contextmanager
def _asked_as(who: Scope, labels: Sequence[str]) -> Iterator[None]:
    """The row's whole scope (nothing inherited from an enclosing block) and its tags."""
    with scope(user=who.user, tenant=who.tenant, acl=who.acl), tags(*labels):
        yield


def warm_faq(
    target: WarmupTarget,
    faq: FaqFile | Iterable[FaqRow],
    *,
    tags: Sequence[str] = FAQ_TAGS,
    ttl: float | Unset | None = UNSET,
    progress: Progress | None = None,
) -> WarmupReport:
    """Store each row's answer as the adapter would have stored the model's, in the row's
    scope, tagged with ``tags`` and the row's own tags. No model is called. A row counts as
    stored when every entry the adapter keys for it was stored.

    ``ttl``: not passed = the cache policy's default, None = each tier's default.
    """
    labels = check_tags(tags)
    lifetime = ttl if ttl is UNSET else check_ttl(ttl)
    report = WarmupReport()
    if isinstance(faq, FaqFile):
        rows: Iterable[FaqRow] = faq.rows
        report.left_out(faq.bad)
    else:
        rows = faq
    started = time.perf_counter()
    for row in rows:
        try:
            with _asked_as(row.scope, (*labels, *row.tags)):
                answers = target.faq_answers(row.question, row.answer)
            stored = [
                target.cache.set(a.request, a.value, usage=a.usage, ttl=lifetime) for a in answers
            ]
        except Exception as exc:  # an unkeyable row, an unstorable answer, a model that fails
            report.failure(f"line {row.line}", exc)
        else:
            if all(stored):
                report.stored += 1
            else:
                report.failure(f"line {row.line}", LLMCacheError(NOT_STORED))
        if progress is not None:
            progress()
    report.elapsed_seconds = time.perf_counter() - started
    return report


async def replay_calls(
    target: WarmupTarget,
    calls: Iterable[LoggedCall],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    tags: Sequence[str] = (),
    progress: Progress | None = None,
) -> WarmupReport:
    """Make each call through the cache, at most ``concurrency`` at a time, in its logged
    scope (and tagged with ``tags``). A call the model fails is counted and described, and
    the others go on. ``stored`` counts the entries the cache stored meanwhile. (Bad lines
    of the log: ``report.left_out(log.bad)``.)
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency must be a whole number >= 1, got {concurrency!r}")
    labels = check_tags(tags)
    report = WarmupReport()
    gate = asyncio.Semaphore(concurrency)

    async def replay_one(call: LoggedCall) -> None:
        async with gate:
            try:
                with _asked_as(call.scope, labels):
                    cached = await target.replay(call.messages)
            except Exception as exc:  # the model's error for one prompt is not fatal
                report.failure(f"log line {call.line}", exc)
            else:
                if cached:
                    report.already_cached += 1
                else:
                    report.model_calls += 1
        if progress is not None:
            progress()

    stores_before = target.cache.stats()["stores"]
    started = time.perf_counter()
    await asyncio.gather(*(replay_one(call) for call in calls))
    report.elapsed_seconds = time.perf_counter() - started
    report.stored = min(report.model_calls, target.cache.stats()["stores"] - stores_before)
    report.skipped += report.already_cached
    return report
