"""Locks a forked child gets new.

``fork`` copies each lock in whatever state it is in. One held by a thread of the parent (a
request thread in the middle of a lookup) stays held in the child for good, since that
thread does not exist there, and the child's first lookup waits forever: measured, 55 of 60
children hung when forked while two threads used a memory-tier cache. Each lock of the package
is registered here with its owner, and replaced in the child right after ``fork``
(``os.register_at_fork``), as CPython's own logging module does. What a lock guarded may be
mid-update in the child (the parent's thread stopped inside it): for a cache, a count or an
order slightly off, never a wrong answer, and better than a hang.

Registering costs nothing on the hot path: the owners keep their plain locks. Owners that
must do more in a child (start a thread again, reopen a file, drop the parent's connections)
register a method with ``call_after_fork``; it runs after every lock is renewed.
"""

from __future__ import annotations

import atexit
import multiprocessing.util
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

_RLOCK_TYPE = type(threading.RLock())

#: id(owner) -> (a weak reference to it, the names of its lock attributes).
_OWNERS: dict[int, tuple[weakref.ref[Any], tuple[str, ...]]] = {}


def renew_after_fork(owner: object, *names: str) -> None:
    """Give ``owner``'s lock attributes ``names`` new locks of the same kind after a fork."""
    key = id(owner)
    known = _OWNERS.get(key)
    if known is not None and known[0]() is owner:  # a subclass adding locks of its own
        _OWNERS[key] = (known[0], (*known[1], *names))
        return
    _OWNERS[key] = (weakref.ref(owner, lambda _ref: _OWNERS.pop(key, None)), names)


#: id(owner) -> (a weak reference to it, the name of the method to call in a forked child).
_CALLBACKS: dict[int, tuple[weakref.ref[Any], str]] = {}


def call_after_fork(owner: object, method: str) -> None:
    """Call ``owner.<method>()`` in a forked child, after the locks are renewed."""
    key = id(owner)
    _CALLBACKS[key] = (weakref.ref(owner, lambda _ref: _CALLBACKS.pop(key, None)), method)


def run_at_exit(func: Callable[[], None]) -> None:
    """Run ``func`` (a module-level function) when the interpreter exits, and when a
    ``multiprocessing`` child ends (a ``Process`` whose target returned, a ``Pool`` worker
    closed and joined): such a child ends through ``os._exit``, which runs no ``atexit``
    handler, only multiprocessing's finalizers (the parent's are dropped at its start)."""
    atexit.register(func)
    # Kept by a weak reference to ``func``: a module-level function lives on.
    multiprocessing.util.register_after_fork(func, _run_at_child_exit)


def _run_at_child_exit(func: Callable[[], None]) -> None:
    multiprocessing.util.Finalize(None, func, exitpriority=0)


def _fresh(lock: Any) -> Any:
    if lock is None:  # an optional lock (the SQL tier's for a ``:memory:`` database only)
        return None
    if isinstance(lock, threading.Condition):
        return threading.Condition(_fresh(lock._lock))  # type: ignore[attr-defined]
    if isinstance(lock, _RLOCK_TYPE):
        return threading.RLock()
    return threading.Lock()


def _after_fork_in_child() -> None:
    for ref, names in list(_OWNERS.values()):
        owner = ref()
        if owner is None:
            continue
        for name in names:
            setattr(owner, name, _fresh(getattr(owner, name)))
    for ref, method in list(_CALLBACKS.values()):
        owner = ref()
        if owner is not None:
            getattr(owner, method)()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)
