"""SQLite under faults: a writer killed with SIGKILL mid-write, and a full disk.

- SIGKILL: a process writes large entries in a loop and reports each acknowledged store; it is
  killed at a random moment. The file must pass ``PRAGMA integrity_check``, every entry in it
  must decode, and every store acknowledged before the kill must read back identical.
- Full disk: the SQLite file lives on a 1 MB filesystem of its own (tmpfs). Stores beyond the
  space fail inside the cache (counted, never raised to the caller); what was stored before
  stays readable; once space is freed, stores succeed again.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from figures import record

from llmcache import Cache, CacheRequest


def _request(i: int) -> CacheRequest:
    return CacheRequest(model="m", prompt=f"entry-{i}")


def _value(i: int) -> str:
    return f"{i}:" + "payload " * (2_000 + i % 500)


def _writer(url: str, acks: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    cache = Cache.from_urls([url], fleet_stats=False)
    i = 0
    while True:
        if cache.set(_request(i), _value(i)):
            acks.put(i)
        i += 1


def test_a_writer_killed_mid_write_leaves_a_consistent_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/killed.db"
    Cache.from_urls([url]).close()  # schema first: the kill must land in a store
    ctx = multiprocessing.get_context("spawn")
    acks = ctx.Queue()
    writer = ctx.Process(target=_writer, args=(url, acks))
    writer.start()
    deadline = time.monotonic() + 30
    while acks.empty() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(random.uniform(0.2, 0.8))
    assert writer.pid is not None
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    acknowledged = []
    while not acks.empty():
        acknowledged.append(acks.get())
    assert len(acknowledged) > 5

    with sqlite3.connect(tmp_path / "killed.db") as raw:
        integrity = raw.execute("PRAGMA integrity_check").fetchone()
    assert integrity == ("ok",)
    cache = Cache.from_urls([url], fleet_stats=False)
    intact = 0
    for i in acknowledged:
        hit = cache.get(_request(i))
        assert hit is not None, f"acknowledged entry {i} was lost"
        assert hit.entry.value == _value(i)
        intact += 1
    assert cache.stats()["decode_errors"] == 0
    cache.close()
    record(
        "fault: SQLite writer killed with SIGKILL mid-write",
        kills=1,
        entries_acknowledged=len(acknowledged),
        entries_intact=intact,
        entries_lost=len(acknowledged) - intact,
        integrity_check=integrity[0],
    )


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a small tmpfs for the full-disk test: {done.stderr!r}")
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_never_reaches_the_caller(tiny_disk: Path) -> None:
    url = f"sqlite:///{tiny_disk}/full.db"
    filler = tiny_disk / "other-files"  # what an operator deletes to free space
    filler.write_bytes(b"\0" * 400_000)
    cache = Cache.from_urls([url], fleet_stats=False)
    stored = []
    attempts = 400
    first_refused = attempts
    for i in range(attempts):  # ~16 KB each: far more than 1 MB
        if cache.set(_request(i), _value(i)):  # a raise here fails the test: no error counter
            stored.append(i)
        else:
            first_refused = min(first_refused, i)
    assert 0 < len(stored) < 400
    assert cache.stats()["errors_by_tier"]  # counted, not raised
    # What was stored before the disk filled up is still served: failed writes open the
    # tier's write breaker only, reads go on.
    served = sum(cache.get(_request(i)) is not None for i in stored)
    assert served == len(stored)

    # Space comes back: stores work again (after the breaker's probe, within 5 s).
    filler.unlink()
    deadline = time.monotonic() + 10
    freed = time.monotonic()
    while not cache.set(_request(10_000), "after the disk was freed"):
        assert time.monotonic() < deadline, "stores did not resume after space was freed"
        time.sleep(0.2)
    resumed_after = time.monotonic() - freed
    hit = cache.get(_request(10_000))
    assert hit is not None and hit.entry.value == "after the disk was freed"
    after_freed = sum(cache.set(_request(20_000 + i), f"after {i}") for i in range(10))
    cache.close()
    with sqlite3.connect(tiny_disk / "full.db") as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    record(
        "fault: SQLite disk full (1 MB tmpfs), then space freed",
        stores_attempted_while_full=attempts - first_refused,
        caller_errors=0,  # every store above returned (True or False); none raised
        earlier_entries_served=served,
        entries_lost=len(stored) - served,
        stores_after_space_freed=1 + after_freed,
        seconds_until_stores_resumed=round(resumed_after, 2),
    )
