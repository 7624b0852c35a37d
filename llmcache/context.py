"""``scope(...)``, ``tags(...)`` and ``cache_control(...)``: the ambient user/tenant/ACL, entry
tags and policy overrides of the current call, each held in a contextvar.

A contextvar follows asyncio tasks (each task copies the context it was created in) and
LangChain's executor threads (``run_in_executor`` copies the context). Code of ours that moves
work to a thread uses ``asyncio.to_thread``, which copies it too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import TypeVar

from llmcache._sentinel import UNSET, Unset
from llmcache.errors import ConfigError
from llmcache.policy import check_ttl
from llmcache.request import ANONYMOUS, NO_CONTROL, CacheControl, Scope, check_tags

_current_scope: ContextVar[Scope] = ContextVar("llmcache_scope", default=ANONYMOUS)
_current_tags: ContextVar[tuple[str, ...]] = ContextVar("llmcache_tags", default=())
_current_control: ContextVar[CacheControl] = ContextVar("llmcache_control", default=NO_CONTROL)

#: The three readers above, bound once: an adapter's hot path calls them directly (one
#: C call each) instead of through the ``current_*`` functions.
read_scope = _current_scope.get
read_tags = _current_tags.get
read_control = _current_control.get

_KEEP = object()

#: How the LiteLLM adapter names a scope part a call gave several values for (its user=
#: inside another user's ``scope``): an id of its own, so no single id may start with it,
#: or an id taken from a client could name that combined scope and read its entries.
COMBINED_PREFIX = "\x00llmcache-combined:"

_T = TypeVar("_T")


def _restore(var: ContextVar[_T], token: Token[_T], outer: _T) -> None:
    """End a block: undo its ``set``. A block can end in another context than the one it
    began in: a generator holding ``with scope(...)`` across its yields, iterated by a
    server that runs each step in a fresh copy of the request's context (Starlette's
    ``iterate_in_threadpool``, ``anyio.to_thread.run_sync``). ``reset`` then raises
    ValueError into the user's stream; the value the block began with is put back instead."""
    try:
        var.reset(token)
    except ValueError:
        var.set(outer)


def current_scope() -> Scope:
    """The scope of the running call (anonymous outside any ``scope(...)`` block)."""
    return _current_scope.get()


@contextmanager
def scope(
    user: str | object | None = _KEEP,
    tenant: str | object | None = _KEEP,
    acl: Iterable[str] | object | None = _KEEP,
) -> Iterator[Scope]:
    """Run the block as ``user`` of ``tenant`` holding ``acl``.

    Parts not given are inherited from an enclosing ``scope`` block, so
    ``with scope(tenant="acme"): with scope(user="alice"): ...`` is alice@acme.
    Pass ``None`` to drop an inherited part explicitly.
    """
    outer = _current_scope.get()
    new = Scope.of(
        user=outer.user if user is _KEEP else user,  # type: ignore[arg-type]
        tenant=outer.tenant if tenant is _KEEP else tenant,  # type: ignore[arg-type]
        acl=outer.acl if acl is _KEEP else acl,  # type: ignore[arg-type]
    )
    for kind, part in (("user", new.user), ("tenant", new.tenant)):
        if part is not None and part.startswith(COMBINED_PREFIX):
            raise ConfigError(f"scope {kind} {part!r} uses a prefix reserved by llmcache")
    token = _current_scope.set(new)
    try:
        yield new
    finally:
        _restore(_current_scope, token, outer)


def current_tags() -> tuple[str, ...]:
    """The tags of the running call's ``tags(...)`` blocks, outermost first (empty outside)."""
    return _current_tags.get()


@contextmanager
def tags(*names: str) -> Iterator[tuple[str, ...]]:
    """Tag every entry stored in the block with ``names``, e.g. ``with tags("faq", "kb-7"):``.

    Tags add up across nested blocks. They describe an entry (they are not part of its key),
    so ``cache.invalidate(tags=["kb-7"])`` can later remove every answer built on ``kb-7``.
    """
    outer = _current_tags.get()
    new = check_tags((*outer, *names))
    token = _current_tags.set(new)
    try:
        yield new
    finally:
        _restore(_current_tags, token, outer)


def current_control() -> CacheControl:
    """The policy overrides of the running call (``NO_CONTROL`` outside ``cache_control``)."""
    return _current_control.get()


@contextmanager
def cache_control(
    *,
    ttl: float | Unset | None = UNSET,
    no_cache: bool | None = None,
    no_store: bool | None = None,
    strict: bool | None = None,
) -> Iterator[CacheControl]:
    """Override the cache policy for the calls in the block (LangChain and LiteLLM alike).

    ``ttl``: seconds to keep these answers (wins over every TTL rule; 0 = do not store;
    None = each tier's default); ``no_cache=True``: do not read, still store;
    ``no_store=True``: read, do not store; ``strict``: True/False forces strict mode on/off.
    What is not given is inherited from an enclosing block.
    """
    for name, flag in (("no_cache", no_cache), ("no_store", no_store), ("strict", strict)):
        if flag is not None and not isinstance(flag, bool):
            raise ConfigError(f"cache_control({name}=...) must be True, False or None: {flag!r}")
    outer = _current_control.get()
    new = CacheControl(
        ttl=outer.ttl if ttl is UNSET else check_ttl(ttl),
        no_cache=outer.no_cache if no_cache is None else no_cache,
        no_store=outer.no_store if no_store is None else no_store,
        strict=outer.strict if strict is None else strict,
    )
    token = _current_control.set(NO_CONTROL if new == NO_CONTROL else new)
    try:
        yield new
    finally:
        _restore(_current_control, token, outer)
