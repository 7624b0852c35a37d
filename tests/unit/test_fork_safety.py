"""A forked child gets new locks for every lock registered (``llmcache.fork_safety``)."""

from __future__ import annotations

import os
import threading

from llmcache.fork_safety import renew_after_fork


class Owner:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")


class SubclassWithMore(Owner):
    """Registers a lock of its own after its base registered one: both are renewed."""

    def __init__(self) -> None:
        super().__init__()
        self._other = threading.RLock()
        self._optional: threading.Lock | None = None
        self._cond = threading.Condition()
        renew_after_fork(self, "_other", "_optional", "_cond")


def test_locks_held_in_the_parent_are_free_in_the_child() -> None:
    owner = SubclassWithMore()
    for lock in (owner._lock, owner._other, owner._cond):
        lock.acquire()  # held at the fork: a plain Lock would stay held in the child
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            free = all(lock.acquire(timeout=1) for lock in (owner._lock, owner._other, owner._cond))
            kinds = (type(owner._other) is type(threading.RLock()), owner._optional is None)
            code = 0 if free and all(kinds) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not owner._lock.acquire(blocking=False)  # the parent's own locks are untouched
