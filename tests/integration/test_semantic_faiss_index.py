"""FaissIndex on real FAISS and a real SQLite file: partitions, HNSW, removal, sharing."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from llmcache.errors import ConfigError
from llmcache.keys import CacheKey
from llmcache.semantic.faiss_index import FaissIndex
from llmcache.semantic.index import IndexedEntry

DIM = 32
NOW = 1_700_000_000.0
P1, P2 = b"\x01" * 16, b"\x02" * 16
SCOPE_A, SCOPE_B = b"A" * 16, b"B" * 16


def unit(seed: int) -> npt.NDArray[np.float32]:
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)  # type: ignore[no-any-return,unused-ignore]


def near(vector: npt.NDArray[np.float32], seed: int, noise: float) -> npt.NDArray[np.float32]:
    moved = vector + noise * unit(seed)
    return (moved / np.linalg.norm(moved)).astype(np.float32)  # type: ignore[no-any-return]


def entry(
    n: int,
    vector: npt.NDArray[np.float32],
    partition: bytes = P1,
    *,
    scope: bytes = SCOPE_A,
    expires_at: float | None = None,
) -> IndexedEntry:
    key = CacheKey(n.to_bytes(32, "big"), scope, b"m" * 16, b"n" * 16)
    return IndexedEntry(key, partition, vector, f"text {n}", expires_at)


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "vectors.faiss")


def test_search_stays_inside_the_partition(path: str) -> None:
    index = FaissIndex(path, dim=DIM)
    query = unit(1)
    index.add(entry(1, query, P2))  # identical vector, other partition
    index.add(entry(2, near(query, 2, 0.3), P1))
    index.add(entry(3, near(query, 3, 0.6), P1))
    found = index.search(P1, query, 5, NOW)
    assert [int.from_bytes(c.key.digest, "big") for c in found] == [2, 3]
    assert found[0].similarity > found[1].similarity
    assert found[0].text == "text 2"
    assert index.search(b"\x03" * 16, query, 5, NOW) == []
    index.close()


def test_hnsw_above_the_size_finds_the_nearest(path: str) -> None:
    index = FaissIndex(path, dim=DIM, hnsw_above=50)
    vectors = [unit(100 + i) for i in range(200)]
    for i, vector in enumerate(vectors):
        index.add(entry(i, vector))
    assert int.from_bytes(index.search(P1, vectors[5], 1, NOW)[0].key.digest, "big") == 5
    index.wait_for_builds()  # the first search loaded it exact; HNSW was built meanwhile
    assert hasattr(index._parts[P1].index, "hnsw")
    for i in (0, 77, 199):
        best = index.search(P1, vectors[i], 1, NOW)[0]
        assert int.from_bytes(best.key.digest, "big") == i
        assert best.similarity == pytest.approx(1.0, abs=1e-5)
    index.close()


def test_small_partitions_are_exact(path: str) -> None:
    index = FaissIndex(path, dim=DIM, hnsw_above=50)
    for i in range(10):
        index.add(entry(i, unit(i)))
    index.search(P1, unit(0), 1, NOW)
    assert not hasattr(index._parts[P1].index, "hnsw")
    index.close()


def test_delete_and_replace_remove_old_vectors(path: str) -> None:
    index = FaissIndex(path, dim=DIM)
    index.add(entry(1, unit(1)))
    index.add(entry(2, unit(2)))
    assert len(index.search(P1, unit(1), 5, NOW)) == 2
    assert index.delete([(1).to_bytes(32, "big")]) == 1
    assert [c.text for c in index.search(P1, unit(1), 5, NOW)] == ["text 2"]
    index.add(entry(2, unit(3)))  # the same entry stored again: one vector, the new one
    found = index.search(P1, unit(3), 5, NOW)
    assert len(found) == 1 and found[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert len(index) == 1
    index.close()


def test_many_deletes_compact_the_partition(path: str) -> None:
    index = FaissIndex(path, dim=DIM)
    for i in range(100):
        index.add(entry(i, unit(i)))
    index.search(P1, unit(0), 1, NOW)
    index.delete([i.to_bytes(32, "big") for i in range(60)])
    part = index._parts[P1]
    assert part.dead < 60  # rebuilt along the way
    found = index.search(P1, unit(70), 100, NOW)
    assert sorted(int.from_bytes(c.key.digest, "big") for c in found) == list(range(60, 100))
    index.close()


def test_expired_vectors_are_skipped_and_removed(path: str) -> None:
    index = FaissIndex(path, dim=DIM)
    index.add(entry(1, unit(1), expires_at=NOW + 10))
    index.add(entry(2, near(unit(1), 5, 0.5)))
    assert len(index.search(P1, unit(1), 5, NOW)) == 2
    found = index.search(P1, unit(1), 5, NOW + 10)
    assert [c.text for c in found] == ["text 2"]
    assert len(index) == 1  # the expired one is gone from the file too
    index.close()


def test_clear_all_or_one_scope(path: str) -> None:
    index = FaissIndex(path, dim=DIM)
    index.add(entry(1, unit(1), scope=SCOPE_A))
    index.add(entry(2, unit(2), scope=SCOPE_B))
    assert index.clear(SCOPE_A) == 1
    assert [c.text for c in index.search(P1, unit(1), 5, NOW)] == ["text 2"]
    assert index.clear(None) == 1
    assert index.search(P1, unit(1), 5, NOW) == []
    index.close()


def test_vectors_persist_across_reopen(path: str) -> None:
    index = FaissIndex(path, dim=DIM)
    index.add(entry(1, unit(1)))
    index.close()
    again = FaissIndex(path, dim=DIM)
    assert [c.text for c in again.search(P1, unit(1), 1, NOW)] == ["text 1"]
    again.close()
    with pytest.raises(ConfigError, match="holds 32-d vectors"):
        FaissIndex(path, dim=DIM + 1)


def test_two_openers_see_each_others_stores_and_clears(path: str) -> None:
    # Two instances on one file behave like two processes: separate connections and memory.
    writer = FaissIndex(path, dim=DIM, refresh=0)
    reader = FaissIndex(path, dim=DIM, refresh=0)
    assert reader.search(P1, unit(1), 5, NOW) == []  # partition loaded (empty)
    writer.add(entry(1, unit(1)))
    assert [c.text for c in reader.search(P1, unit(1), 5, NOW)] == ["text 1"]
    writer.add(entry(1, unit(2), expires_at=NOW + 5))  # stored again: replaces, for both
    found = reader.search(P1, unit(2), 5, NOW)
    assert len(found) == 1 and found[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert reader.search(P1, unit(2), 5, NOW + 6) == []  # the new row's expiry counts
    writer.add(entry(2, unit(3)))
    writer.clear(None)
    assert reader.search(P1, unit(3), 5, NOW) == []
    writer.close()
    reader.close()


def test_expiring_a_vector_keeps_a_newer_row_stored_elsewhere(path: str) -> None:
    old = FaissIndex(path, dim=DIM, refresh=3600)
    old.add(entry(1, unit(1), expires_at=NOW + 5))
    old.search(P1, unit(1), 5, NOW)
    other = FaissIndex(path, dim=DIM)
    other.add(entry(1, unit(1), expires_at=NOW + 100))  # stored again by another process
    assert old.search(P1, unit(1), 5, NOW + 10) == []  # its own copy had expired
    assert len(old) == 1  # but the other process's row is still there
    old.close()
    other.close()


def test_a_reader_refreshes_only_after_its_interval(path: str) -> None:
    writer = FaissIndex(path, dim=DIM)
    reader = FaissIndex(path, dim=DIM, refresh=3600)
    writer.add(entry(1, unit(1)))
    assert len(reader.search(P1, unit(2), 5, NOW)) == 1  # loaded, with entry 1
    writer.add(entry(2, unit(2)))
    assert len(reader.search(P1, unit(2), 5, NOW)) == 1  # within its refresh interval
    reader._refreshed -= 3600  # as if the interval had passed
    assert reader.search(P1, unit(2), 5, NOW)[0].text == "text 2"
    writer.close()
    reader.close()


def test_vectors_added_during_a_build_are_kept(path: str) -> None:
    index = FaissIndex(path, dim=DIM, hnsw_above=50)
    index.add_many([entry(i, unit(i)) for i in range(60)])
    index.search(P1, unit(0), 1, NOW)  # loads; the HNSW build starts
    for i in range(60, 90):
        index.add(entry(i, unit(i)))
    index.wait_for_builds()
    for i in (3, 59, 60, 89):
        assert int.from_bytes(index.search(P1, unit(i), 1, NOW)[0].key.digest, "big") == i
    index.close()


def test_loaded_partitions_are_bounded_and_reload(path: str) -> None:
    index = FaissIndex(path, dim=DIM, max_partitions=2)
    parts = [bytes([n]) * 16 for n in range(1, 4)]
    for n, partition in enumerate(parts):
        index.add(entry(n, unit(n), partition))
        index.search(partition, unit(n), 1, NOW)
    assert index.search(b"\x09" * 16, unit(0), 1, NOW) == []  # empty: not kept
    assert list(index._parts) == parts[1:]  # the least recently searched went
    assert [c.text for c in index.search(parts[0], unit(0), 1, NOW)] == ["text 0"]
    assert list(index._parts) == [parts[2], parts[0]]
    index.close()


def test_threads_add_and_search_at_once(path: str) -> None:
    index = FaissIndex(path, dim=DIM, hnsw_above=100)
    errors: list[BaseException] = []

    def work(base: int) -> None:
        try:
            for i in range(base, base + 60):
                index.add(entry(i, unit(i)))
                index.search(P1, unit(i), 3, NOW)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n * 1000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    index.wait_for_builds()
    assert len(index) == 240
    best = index.search(P1, unit(2010), 1, NOW)[0]
    assert int.from_bytes(best.key.digest, "big") == 2010
    index.close()


def test_async_methods_match_sync(path: str) -> None:
    import asyncio

    index = FaissIndex(path, dim=DIM)

    async def run() -> None:
        await index.aadd(entry(1, unit(1)))
        found = await index.asearch(P1, unit(1), 2, NOW)
        assert found == index.search(P1, unit(1), 2, NOW)
        assert await index.adelete([(1).to_bytes(32, "big")]) == 1
        assert await index.aclear(None) == 0
        await index.aclose()

    asyncio.run(run())


async def test_texts_give_each_held_entrys_partition_and_text(path: str) -> None:
    index = FaissIndex(path, dim=DIM)
    index.add(entry(1, unit(1)))
    index.add(entry(2, unit(2), P2, scope=SCOPE_B))
    wanted = [n.to_bytes(32, "big") for n in (1, 2, 3)]  # 3 was never added
    expected = {wanted[0]: (P1, "text 1"), wanted[1]: (P2, "text 2")}
    assert index.texts(wanted) == expected
    assert await index.atexts(wanted) == expected
    index.delete([wanted[0]])
    assert index.texts(wanted) == {wanted[1]: (P2, "text 2")}
    index.close()


# ---------------------------------------------------------------------------- embedder names
def renumbered(texts: list[str]) -> npt.NDArray[np.float32]:
    """Another embedder's vectors for ``text N``: unit(1000 + N)."""
    return np.stack([unit(1000 + int(t.split()[1])) for t in texts])


def test_an_index_holds_one_embedders_vectors(path: str) -> None:
    index = FaissIndex(path, dim=DIM)
    index.bind_embedder("model-a")
    index.add(entry(1, unit(1)))
    index.close()
    other = FaissIndex(path, dim=DIM)
    with pytest.raises(ConfigError, match="holds the vectors of embedder 'model-a'") as info:
        other.bind_embedder("model-b")
    assert "'model-b'" in str(info.value) and "llmcache reindex" in str(info.value)
    other.bind_embedder("model-a")  # the one that made them: nothing lost
    assert [c.text for c in other.search(P1, unit(1), 2, NOW)] == ["text 1"]
    other.clear(None)
    other.bind_embedder("model-b")  # empty: any embedder may start it
    other.add(entry(2, unit(2)))
    with pytest.raises(ConfigError, match="embedder 'model-b'"):
        other.bind_embedder("model-a")
    other.close()


def test_vectors_stored_before_indexes_named_their_embedder_are_refused(path: str) -> None:
    index = FaissIndex(path, dim=DIM)
    index.add(entry(1, unit(1)))  # as earlier versions stored them: no name
    with pytest.raises(ConfigError, match="unnamed embedder"):
        index.bind_embedder("model-a")
    index.close()


def test_reembed_replaces_every_vector_for_every_opener(path: str) -> None:
    writer, reader = FaissIndex(path, dim=DIM), FaissIndex(path, dim=DIM, refresh=0)
    writer.bind_embedder("model-a")
    for n in (1, 2, 3):
        writer.add(entry(n, unit(n)))
    assert reader.search(P1, unit(2), 1, NOW)[0].text == "text 2"  # loaded with old vectors
    batches: list[int] = []
    assert writer.reembed(renumbered, "model-b", batch=2, progress=batches.append) == 3
    assert batches == [2, 1]
    for index in (writer, reader):  # the reader reloads: the clear-style generation moved
        best = index.search(P1, unit(1002), 1, NOW)[0]
        assert best.text == "text 2" and best.similarity == pytest.approx(1.0, abs=1e-5)
    fresh = FaissIndex(path, dim=DIM)
    fresh.bind_embedder("model-b")
    with pytest.raises(ConfigError, match="embedder 'model-b'"):
        fresh.bind_embedder("model-a")
    for index in (writer, reader, fresh):
        index.close()


def test_a_running_process_follows_a_reindex_of_its_file(path: str) -> None:
    app = FaissIndex(path, dim=DIM, refresh=0)
    app.bind_embedder("model-a")
    for n in (1, 2):
        app.add(entry(n, unit(n)))
    assert app.search(P1, unit(1), 1, NOW)[0].text == "text 1"
    operator = FaissIndex(path, dim=DIM)  # llmcache reindex, in another process
    operator.reembed(renumbered, "model-b")
    # The app embeds with model-a: searching model-b's vectors would mean nothing, and its
    # stores would mix two embedders' vectors in one file.
    with pytest.raises(ConfigError, match="holds the vectors of embedder 'model-b'"):
        app.search(P1, unit(1), 1, NOW)
    with pytest.raises(ConfigError, match="embedder 'model-b'"):
        app.add(entry(3, unit(3)))
    assert len(operator) == 2  # nothing of model-a's was added
    operator.reembed(lambda texts: np.stack([unit(int(t.split()[1])) for t in texts]), "model-a")
    assert app.search(P1, unit(2), 1, NOW)[0].text == "text 2"  # back, without a restart
    app.add(entry(3, unit(3)))
    assert app.search(P1, unit(3), 1, NOW)[0].text == "text 3"
    for index in (app, operator):
        index.close()


def test_a_process_sees_an_emptied_file_taken_by_another_embedder(path: str) -> None:
    app = FaissIndex(path, dim=DIM, refresh=0)
    app.bind_embedder("model-a")
    app.add(entry(1, unit(1)))
    app.clear(None)  # empty: the next tier to open it may name another embedder
    newcomer = FaissIndex(path, dim=DIM, refresh=0)
    newcomer.bind_embedder("model-b")
    newcomer.add(entry(2, unit(2)))
    with pytest.raises(ConfigError, match="holds the vectors of embedder 'model-b'"):
        app.search(P1, unit(2), 1, NOW)  # never model-b's vectors searched with model-a's
    with pytest.raises(ConfigError, match="embedder 'model-b'"):
        app.add(entry(3, unit(3)))
    assert [c.text for c in newcomer.search(P1, unit(2), 5, NOW)] == ["text 2"]
    for index in (app, newcomer):
        index.close()


def test_reembed_with_a_wider_embedder_changes_nothing(path: str) -> None:
    index = FaissIndex(path, dim=DIM)
    index.bind_embedder("model-a")
    index.add(entry(1, unit(1)))
    with pytest.raises(ConfigError, match=f"holds {DIM}-d vectors"):
        index.reembed(lambda texts: np.ones((len(texts), DIM * 2), np.float32), "wide")
    index.bind_embedder("model-a")  # still named, still the old vectors
    assert index.search(P1, unit(1), 1, NOW)[0].similarity == pytest.approx(1.0, abs=1e-5)
    index.close()


@pytest.mark.parametrize("hnsw_above", [5_000, 50])
def test_semantic_vectors_expired_while_loaded_do_not_hide_a_live_one(
    path: str, hnsw_above: int
) -> None:
    index = FaissIndex(path, dim=DIM, hnsw_above=hnsw_above)
    query = unit(1)
    for i in range(60):  # unrelated live vectors: the partition is large enough for HNSW
        index.add(entry(1000 + i, unit(2000 + i)))
    index.add(entry(1, near(query, 2, 0.5)))  # live, less close
    for i in range(40):  # closer, all expiring at NOW + 10
        index.add(entry(100 + i, near(query, 300 + i, 0.05), expires_at=NOW + 10))
    assert len(index.search(P1, query, 4, NOW)) == 4  # loaded while they were alive
    index.wait_for_builds()
    found = [int.from_bytes(c.key.digest, "big") for c in index.search(P1, query, 4, NOW + 11)]
    assert found[0] == 1  # the live one, first: the expired ones neither come nor hide it
    assert len(found) == 4 and not any(100 <= n < 140 for n in found)
    index.close()
