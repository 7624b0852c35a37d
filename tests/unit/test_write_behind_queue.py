"""The write-behind queue on its own (llmcache/tiers/write_behind.py), with real threads.

The writer here is a plain function that records batches and can be held or made to fail; the
SQL tiers' use of the queue is tested against the servers in test_sql_write_behind.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import pytest

from llmcache.entry import CacheEntry
from llmcache.keys import CacheKey
from llmcache.tiers.write_behind import Queued, WriteBehind


def item(n: int, payload: bytes = b"v", expires_at: float | None = None) -> Queued:
    key = CacheKey(
        digest=n.to_bytes(32, "big"), scope=b"s" * 16, model=b"m" * 16, namespace=b"n" * 16
    )
    entry = CacheEntry(value=n, created_at=0.0, expires_at=expires_at, model="m")
    return Queued(key, entry, payload, 0.0, expires_at)


class Writer:
    """Records what it writes; ``hold`` keeps it inside a batch, ``fail`` makes batches fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()
        self.fail = False

    def __call__(self, batch: Sequence[Queued]) -> None:
        self.entered.set()
        self.hold.wait(10)
        if self.fail:
            raise RuntimeError("server says no")
        self.batches.append([q.entry.value for q in batch])


def test_queued_stores_are_visible_until_written_then_written_in_batches() -> None:
    writer = Writer()
    writer.hold.clear()
    behind = WriteBehind(writer, name="test")
    assert behind.submit(item(0))
    assert writer.entered.wait(5)  # the writer took item 0 and is held inside its batch
    for n in range(1, 6):
        assert behind.submit(item(n))
    assert behind.queued(item(3).key.digest, 0.0) is not None
    assert behind.flush(0.1) is False  # held: not written yet
    writer.hold.set()
    assert behind.flush(5)
    assert writer.batches == [[0], [1, 2, 3, 4, 5]]  # what queued during a batch shares one
    assert behind.queued(item(3).key.digest, 0.0) is None and behind.idle
    behind.close()


def test_a_newer_store_of_a_key_replaces_the_queued_one() -> None:
    writer = Writer()
    writer.hold.clear()
    behind = WriteBehind(writer, name="test")
    behind.submit(item(99))
    assert writer.entered.wait(5)
    first, second = item(1, b"old"), item(1, b"new")
    behind.submit(first)
    behind.submit(second)
    assert behind.queued(first.key.digest, 0.0) is second
    writer.hold.set()
    behind.close()
    assert writer.batches == [[99], [1]]


def test_an_expired_queued_store_is_not_served() -> None:
    writer_held = Writer()
    writer_held.hold.clear()
    behind = WriteBehind(writer_held, name="test")
    behind.submit(item(0))
    assert writer_held.entered.wait(5)
    behind.submit(item(1, expires_at=10.0))
    assert behind.queued(item(1).key.digest, 9.0) is not None
    assert behind.queued(item(1).key.digest, 10.0) is None
    writer_held.hold.set()
    behind.close()


def test_back_pressure_bounds_the_queue() -> None:
    writer = Writer()
    writer.hold.clear()
    behind = WriteBehind(writer, name="test", max_pending=3, max_batch=2)
    behind.submit(item(0))
    assert writer.entered.wait(5)
    for n in range(1, 3):
        assert behind.submit(item(n))
    # Queue full (item 0 in flight counts until written): the next caller waits for the writer.
    waiter = threading.Thread(target=behind.submit, args=(item(3),), daemon=True)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()
    writer.hold.set()
    waiter.join(5)
    assert not waiter.is_alive()
    behind.close()
    assert sorted(n for batch in writer.batches for n in batch) == [0, 1, 2, 3]


def test_a_byte_budget_bounds_the_queue_too() -> None:
    writer = Writer()
    writer.hold.clear()
    behind = WriteBehind(writer, name="test", max_pending_bytes=10)
    behind.submit(item(0, b"x" * 6))
    waiter = threading.Thread(target=behind.submit, args=(item(1, b"y" * 6),), daemon=True)
    assert writer.entered.wait(5)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()  # 12 bytes would not fit in 10
    writer.hold.set()
    waiter.join(5)
    assert not waiter.is_alive()
    behind.close()


def test_a_failed_batch_is_reported_and_stores_are_refused_until_one_succeeds() -> None:
    writer = Writer()
    writer.fail = True
    errors: list[Exception] = []
    behind = WriteBehind(writer, name="test")
    behind.on_error = errors.append
    assert behind.submit(item(0))
    assert behind.flush(5)
    assert [str(e) for e in errors] == ["server says no"]
    assert behind.submit(item(1)) is False  # the owner stores it itself and learns the outcome
    behind.stored_directly()  # ... and it succeeded
    writer.fail = False
    assert behind.submit(item(2))
    assert behind.flush(5)
    assert writer.batches == [[2]]
    behind.close()


def test_flush_called_back_from_the_writer_does_not_deadlock() -> None:
    writer = Writer()
    writer.fail = True
    behind = WriteBehind(writer, name="test")
    results: list[bool] = []
    behind.on_error = lambda _exc: results.append(behind.flush())
    behind.submit(item(0))
    assert behind.flush(5)
    assert results == [False]
    behind.close()


def test_submit_after_close_is_refused() -> None:
    behind = WriteBehind(Writer(), name="test")
    behind.close()
    assert behind.submit(item(0)) is False


@pytest.mark.parametrize("bad", [{"max_pending": 0}, {"max_batch": 0}, {"max_pending_bytes": 0}])
def test_bounds_must_be_positive(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        WriteBehind(Writer(), name="test", **bad)


def test_an_idle_writer_ends_and_the_next_store_starts_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llmcache.tiers import write_behind

    monkeypatch.setattr(write_behind, "IDLE_EXIT_SECONDS", 0.05)
    writer = Writer()
    behind = WriteBehind(writer, name="test")
    behind.submit(item(0))
    assert behind.flush(5)
    first = behind._thread
    assert first is not None
    first.join(5)
    assert not first.is_alive() and behind._thread is None  # no idle thread left behind
    assert behind.submit(item(1)) and behind.flush(5)
    assert writer.batches == [[0], [1]]
    behind.close()


def test_a_store_made_while_failing_replaces_the_queued_one_and_its_bytes() -> None:
    writer = Writer()
    writer.hold.clear()
    behind = WriteBehind(writer, name="test", max_pending_bytes=10)
    behind.submit(item(0, b"a"))
    assert writer.entered.wait(5)
    behind.submit(item(1, b"x" * 8))  # queued behind the held batch: 9 of 10 bytes
    behind.suspend()  # the owner saw the server fail
    assert behind.submit(item(1, b"y")) is False  # stored by the owner; the queued one dropped
    assert behind.queued(item(1).key.digest, 0.0) is None
    behind.stored_directly()
    # The dropped store's 8 bytes are free again: 1 + 8 fits without waiting for the writer.
    assert returns_quickly(lambda: behind.submit(item(2, b"z" * 8)))
    writer.hold.set()
    behind.close()


def returns_quickly(call: Callable[[], bool]) -> bool:
    done: list[bool] = []
    worker = threading.Thread(target=lambda: done.append(call()), daemon=True)
    worker.start()
    worker.join(0.3)
    return not worker.is_alive() and done == [True]
