"""``scope(...)`` and ``tags(...)``: the ambient user/tenant/ACL and entry tags of the current
call, each held in a contextvar.

A contextvar follows asyncio tasks (each task copies the context it was created in) and
LangChain's executor threads (``run_in_executor`` copies the context). Code of ours that moves
work to a thread uses ``asyncio.to_thread``, which copies it too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from llmcache.request import ANONYMOUS, Scope
from llmcache.tiers.selector import check_tags

_current_scope: ContextVar[Scope] = ContextVar("llmcache_scope", default=ANONYMOUS)
_current_tags: ContextVar[tuple[str, ...]] = ContextVar("llmcache_tags", default=())

_KEEP = object()


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
    token = _current_scope.set(new)
    try:
        yield new
    finally:
        _current_scope.reset(token)


def current_tags() -> tuple[str, ...]:
    """The tags of the running call's ``tags(...)`` blocks, outermost first (empty outside)."""
    return _current_tags.get()


@contextmanager
def tags(*names: str) -> Iterator[tuple[str, ...]]:
    """Tag every entry stored in the block with ``names``, e.g. ``with tags("faq", "kb-7"):``.

    Tags add up across nested blocks. They describe an entry (they are not part of its key),
    so ``cache.invalidate(tags=["kb-7"])`` can later remove every answer built on ``kb-7``.
    """
    new = check_tags((*_current_tags.get(), *names))
    token = _current_tags.set(new)
    try:
        yield new
    finally:
        _current_tags.reset(token)
