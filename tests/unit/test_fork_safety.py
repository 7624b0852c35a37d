"""A forked child gets new locks for every lock registered (``llmcache.fork_safety``)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import pytest

from llmcache import Cache, CacheRequest
from llmcache.fork_safety import renew_after_fork
from llmcache.tiers.memory import MemoryTier

REQ = CacheRequest(model="m", prompt="What is the capital of France?")


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


@pytest.mark.timeout(30)
def test_a_child_forked_while_a_task_leads_a_key_does_not_wait_for_it() -> None:
    """A cache whose event loop (in a thread) is computing a key when the process forks: the
    child's call of that key does not wait for a leader that does not run in the child (it
    would never be seen to end: the child would wait out the bound, 30 s here), it leads."""
    cache = Cache([MemoryTier()], single_flight_timeout=30)
    leading, finish = threading.Event(), threading.Event()

    async def leader() -> None:
        assert await cache.aget(REQ) is None  # leads
        leading.set()
        await asyncio.to_thread(finish.wait, 20)  # "calling the model"
        await cache.aset(REQ, "parent's answer")

    thread = threading.Thread(target=asyncio.run, args=(leader(),))
    thread.start()
    assert leading.wait(5)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.alarm(10)  # a child waiting for the parent's leader is killed: the test fails
            code = 0 if cache.get(REQ) is None else 2  # no answer here yet: the child leads
        finally:
            os._exit(code)
    try:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        finish.set()
        thread.join()
    hit = cache.get(REQ)
    assert hit is not None and hit.entry.value == "parent's answer"
