"""Semantic tier parts without servers: partitions, URLs, embedders' plumbing, judging."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from word_embeddings import WordEmbeddings

from llmcache.errors import ConfigError
from llmcache.keys import request_key
from llmcache.request import CacheRequest, Scope
from llmcache.semantic.embedders import LangChainEmbedder, as_embedder
from llmcache.semantic.index import Candidate
from llmcache.semantic.partition import partition_digest
from llmcache.semantic.tier import SemanticTier
from llmcache.semantic.url import semantic_from_url
from llmcache.semantic.verifier import AcceptAll, Verdict


def _partition(**fields: Any) -> bytes:
    request = CacheRequest(**{"model": "m", "prompt": "p", **fields})
    return partition_digest(request, request_key(request))


# ------------------------------------------------------------------ partitions
def test_partition_is_16_bytes_and_ignores_prompt_and_dict_order() -> None:
    a = _partition(prompt="one", params={"t": 0, "n": 1}, semantic_context={"a": 1, "b": 2})
    b = _partition(prompt="two", params={"n": 1, "t": 0}, semantic_context={"b": 2, "a": 1})
    assert len(a) == 16
    assert a == b


@pytest.mark.parametrize(
    "change",
    [
        {"scope": Scope.of(user="bob")},
        {"scope": Scope.of(user="alice", acl=["kb-1"])},
        {"model": "other-model"},
        {"params": {"temperature": 0.5}},
        {"namespace": "other-app"},
        {"semantic_context": {"system": "You are a pirate."}},
        {"semantic_context": {"before": ["an earlier turn"]}},
    ],
)
def test_everything_but_the_last_turn_changes_the_partition(change: dict[str, Any]) -> None:
    base = {"scope": Scope.of(user="alice"), "semantic_context": None}
    assert _partition(**base) != _partition(**{**base, **change})


# ------------------------------------------------------------------ embedders
def test_langchain_embeddings_are_normalized_batched_and_cached() -> None:
    embeddings = WordEmbeddings()
    embedder = LangChainEmbedder(embeddings, batch_size=2)
    assert embedder.dim == 16  # probed once
    embeddings.calls.clear()
    texts = ["a b", "c d", "a b", "e f", "g h"]
    out = embedder.embed(texts)
    assert out.shape == (5, 16) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0)
    assert np.array_equal(out[0], out[2])
    assert embeddings.calls == [["a b", "c d"], ["e f", "g h"]]  # 4 new texts, batches of 2
    again = embedder.embed(["e f", "a b"])
    assert embeddings.calls == [["a b", "c d"], ["e f", "g h"]]  # all from the LRU
    assert np.array_equal(again[1], out[0])


def test_lru_is_bounded() -> None:
    embeddings = WordEmbeddings()
    embedder = LangChainEmbedder(embeddings, dim=16, lru_size=1)
    embedder.embed(["a"])
    embedder.embed(["b"])
    embedder.embed(["a"])
    assert embeddings.calls == [["a"], ["b"], ["a"]]


def test_async_embedding_gives_the_same_vectors() -> None:
    embedder = LangChainEmbedder(WordEmbeddings(), dim=16)
    sync = LangChainEmbedder(WordEmbeddings(), dim=16).embed(["hello world"])
    assert np.array_equal(asyncio.run(embedder.aembed(["hello world"])), sync)


def test_embedder_errors_name_the_problem() -> None:
    embedder = LangChainEmbedder(WordEmbeddings(), dim=16)
    with pytest.raises(ConfigError, match="list of texts"):
        embedder.embed("one text")
    with pytest.raises(ValueError, match="zero or non-finite"):
        embedder.embed([""])  # no words: a zero vector cannot be normalized
    wrong = LangChainEmbedder(WordEmbeddings(), dim=8)
    with pytest.raises(ValueError, match="expected 1 vectors of 8 floats"):
        wrong.embed(["x"])
    with pytest.raises(ConfigError, match="embed_documents"):
        as_embedder(object())
    with pytest.raises(ConfigError, match="unknown embedder"):
        as_embedder("word2vec")


# ------------------------------------------------------------------ URLs
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("faiss:/x", "must look like"),
        ("annoy://x", "unknown semantic scheme"),
        ("faiss://:memory:?treshold=0.9", "unknown option"),
        ("faiss://:memory:?threshold=high", "must be a number"),
        ("faiss://:memory:?threshold=1.5", r"in \[-1, 1\]"),
        ("faiss://:memory:?k=0", "positive integer"),
        ("faiss://:memory:?verify=maybe", "'on' or 'off'"),
        ("faiss://?threshold=0.9", "needs a path"),
        ("faiss:///no/such/folder/x.faiss", "does not exist"),
        ("faiss://tmp/no-such-llmcache-dir/x.faiss", "does not exist"),
        ("faiss://tmp/x.faiss", "three slashes: faiss:///tmp/x.faiss"),
        # Which of the two was meant? Silently taking the last one would pick for the user.
        ("faiss://:memory:?threshold=0.95&threshold=0.5", "'threshold' is given twice"),
    ],
)
def test_bad_semantic_urls_are_refused(
    url: str, message: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths: where ./tmp does not exist
    with pytest.raises(ConfigError, match=message):
        semantic_from_url(url, embedder=WordEmbeddings())


def test_url_options_reach_the_tier(tmp_path: Any) -> None:
    tier = semantic_from_url(
        f"faiss://{tmp_path}/v.faiss?threshold=0.75&k=7&verify=off", embedder=WordEmbeddings()
    )
    try:
        assert (tier.threshold, tier.k, tier.index.dim) == (0.75, 7, 16)
        assert isinstance(tier.verifier, AcceptAll)
    finally:
        tier.close()


# ------------------------------------------------------------------ judging candidates
class RejectNumbers:
    def verify(
        self, query: str, candidate: str, similarity: float, runner_up: float | None = None
    ) -> Verdict:
        if any(ch.isdigit() for ch in candidate):
            return Verdict(False, 0.0, "number")
        return Verdict(True, similarity)


class Broken:
    def verify(
        self, query: str, candidate: str, similarity: float, runner_up: float | None = None
    ) -> Verdict:
        raise RuntimeError("model file is corrupt")


def _tier(verifier: Any) -> SemanticTier:
    return semantic_from_url("faiss://:memory:", embedder=WordEmbeddings(), verifier=verifier)


def _cand(text: str, similarity: float) -> Candidate:
    request = CacheRequest(model="m", prompt=text)
    return Candidate(request_key(request), similarity, text)


def test_judge_keeps_order_and_counts_each_rejection_reason() -> None:
    tier = _tier(RejectNumbers())
    candidates = [_cand("top 10 films", 0.97), _cand("best films", 0.95), _cand("x", 0.5)]
    accepted = tier.judge("best movies", candidates, threshold=0.9)
    assert [c.text for c in accepted] == ["best films"]
    assert tier.rejected() == {"number": 1, "below_threshold": 1}
    tier.reset_stats()
    assert tier.rejected() == {}


def test_a_failing_verifier_rejects_instead_of_raising() -> None:
    tier = _tier(Broken())
    assert tier.judge("q", [_cand("q", 0.99)], threshold=0.9) == []
    assert tier.rejected() == {"verifier_error": 1}


def test_lookup_vector_is_kept_for_the_store_once() -> None:
    tier = _tier(AcceptAll())
    vector = np.ones(16, dtype=np.float32)
    tier.remember(b"k" * 32, vector)
    assert tier.recall(b"k" * 32) is vector
    assert tier.recall(b"k" * 32) is None


def test_from_env_reads_the_semantic_url(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmcache import Cache

    monkeypatch.setenv("LLMCACHE_URLS", "memory://")
    monkeypatch.setenv("LLMCACHE_SEMANTIC", f"faiss://{tmp_path}/v.faiss?threshold=0.93&verify=off")
    cache = Cache.from_env()  # MiniLM loads on first use, not here
    try:
        assert cache.semantic is not None
        assert (cache.semantic.threshold, cache.semantic.embedder.name) == (0.93, "minilm")
    finally:
        cache.close()


def test_a_bad_semantic_url_closes_the_tiers_built_before(tmp_path: Any) -> None:
    from llmcache import Cache

    with pytest.raises(ConfigError, match="unknown semantic scheme"):
        Cache.from_urls([f"sqlite:///{tmp_path}/e.db"], semantic="annoy://x")


class ShortReader(LangChainEmbedder):
    """An embedder of one's own that says what it reads: at most 5 words, and no word in
    capitals (its unread parts)."""

    def cannot_read(self, text: str) -> str | None:
        return "too_long" if len(text.split()) > 5 else None

    def unread_parts(self, text: str) -> tuple[str, ...]:
        return tuple(word for word in text.split() if word.isupper())


def test_what_an_embedder_cannot_read_is_kept_out() -> None:
    tier = semantic_from_url(
        "faiss://:memory:", embedder=ShortReader(WordEmbeddings()), verifier=AcceptAll()
    )
    long = "one two three four five six"
    assert not isinstance(tier.embed("one two"), str)
    assert tier.embed(long) == "too_long" == asyncio.run(tier.aembed(long))
    many = tier.embed_many(["a b", long, "c d"])
    assert [v is None for v in many] == [False, True, False]
    assert np.array_equal(many[2], tier.embed("c d"))  # the rest keep their places
    assert asyncio.run(tier.aembed_many([long, "a b"]))[0] is None
    accepted = tier.judge("q", [_cand(long, 0.99), _cand("short one", 0.98)], threshold=0.9)
    assert [c.text for c in accepted] == ["short one"]
    assert tier.rejected() == {"too_long": 1}
    accepted = tier.judge("what is X", [_cand("what is Y", 0.99), _cand("what X", 0.9)], 0.9)
    assert [c.text for c in accepted] == ["what X"]
    assert tier.rejected() == {"too_long": 1, "unknown_words_differ": 1}
    tier.skip("too_long", long)
    assert tier.skipped() == {"too_long": 1}
    tier.reset_stats()
    assert tier.skipped() == {} == tier.rejected()
