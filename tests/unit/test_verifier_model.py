"""The shipped model file: loads, reproduces its own operating point, and a missing or corrupt
file fails with an error that names the file and the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmcache.semantic.verifier import AcceptAll, PairVerifier, Verifier, default_verifier
from llmcache.semantic.verifier_features import FEATURE_NAMES
from llmcache.semantic.verifier_model import VerifierModelError, load_model

SHIPPED = Path(__file__).resolve().parents[2] / "llmcache" / "semantic" / "verifier_model.json"


def test_shipped_model_loads_and_is_json_only() -> None:
    model = load_model(FEATURE_NAMES)
    assert model.features == FEATURE_NAMES
    assert 0.0 < model.threshold < 1.0
    assert len(model.trees) > 10
    doc = json.loads(SHIPPED.read_text())
    assert doc["format"] == "llmcache-pair-verifier"


def test_flattened_trees_give_the_trees_sum() -> None:
    import math

    model = load_model(FEATURE_NAMES)
    x = [0.93, 0.05, 0.7, 0.6, 0.8, 0.85, 0.1, 8.0] + [0.0] * (len(FEATURE_NAMES) - 8)
    raw = model.baseline + sum(t.predict(x) for t in model.trees)
    assert model.probability(x) == pytest.approx(1 / (1 + math.exp(-raw)), abs=1e-12)


def test_default_verifier_is_the_trained_one() -> None:
    v = default_verifier()
    assert isinstance(v, PairVerifier)
    assert isinstance(v, Verifier)
    assert not isinstance(v, AcceptAll)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(VerifierModelError, match=r"nope\.json: file not found"):
        load_model(FEATURE_NAMES, path)


def test_corrupt_json_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(VerifierModelError, match="not valid JSON"):
        load_model(FEATURE_NAMES, path)


def _shipped_doc() -> dict[str, object]:
    return dict(json.loads(SHIPPED.read_text()))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="pickle"), "not a llmcache-pair-verifier file"),
        (lambda d: d.update(version=99), "version 99"),
        (lambda d: d.update(features=["cosine"]), "features differ"),
        (lambda d: d.update(trees=[]), "no trees"),
        (lambda d: d.pop("threshold"), "missing or bad field"),
        (lambda d: d["trees"][0].update(left=[0] * len(d["trees"][0]["left"])), "points outside"),
        (lambda d: d["trees"][0].update(value=[]), "different lengths"),
        (lambda d: d["trees"][0].pop("feature"), "tree 0 is malformed"),
    ],
)
def test_malformed_model_is_rejected(tmp_path: Path, change: object, message: str) -> None:
    doc = _shipped_doc()
    change(doc)  # type: ignore[operator]
    path = tmp_path / "model.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(VerifierModelError, match=message):
        load_model(FEATURE_NAMES, path)


def test_threshold_is_validated_and_overrides_the_default() -> None:
    with pytest.raises(ValueError, match="threshold"):
        PairVerifier(threshold=1.5)
    strict = PairVerifier(threshold=1.0)
    lax = PairVerifier(threshold=0.0)
    q, c = "How can I lose weight fast?", "How do I lose weight quickly?"
    assert not strict.verify(q, c, 0.93, 0.6).accepted
    assert lax.verify(q, c, 0.93, 0.6).accepted


def test_below_the_floor_is_rejected_with_a_reason() -> None:
    v = PairVerifier()
    verdict = v.verify("a question", "another", v.model.min_similarity - 0.01)
    assert not verdict.accepted
    assert verdict.reason == "below_verifier_floor"


def test_verdicts_explain_rejections() -> None:
    v = PairVerifier()
    verdict = v.verify("Is Python faster than Java?", "Is Java faster than Python?", 0.97, 0.7)
    assert not verdict.accepted and verdict.reason == "direction_swapped:than"
    verdict = v.verify(
        "What is the best laptop under 500 dollars?",
        "What is the best laptop under 900 dollars?",
        0.96,
        0.7,
    )
    assert not verdict.accepted and verdict.reason == "numbers_differ"


def test_same_words_up_to_case_and_punctuation_are_accepted() -> None:
    v = PairVerifier()
    verdict = v.verify(
        "How do I invest in mutual funds in India?",
        "how do i invest in mutual funds in india",
        0.99,
        0.7,
    )
    assert verdict.accepted and verdict.score == 1.0
    # One word changed is not "the same words": the model decides (and here rejects).
    verdict = v.verify(
        "How do I invest in mutual funds in India?",
        "How do I invest in mutual funds in China?",
        0.95,
        0.7,
    )
    assert not verdict.accepted


def test_score_is_zero_when_a_rule_rejects() -> None:
    v = PairVerifier()
    assert v.score("Is Python faster than Java?", "Is Java faster than Python?", 0.97, 0.7) == 0.0
    assert (
        0.0
        < v.score(
            "How can I lose weight fast?", "What is the fastest way to lose weight?", 0.9, 0.7
        )
        < 1.0
    )


@pytest.mark.parametrize(
    ("query", "candidate"),
    [
        ("Is it unsafe to eat raw eggs?", "Is it safe to eat raw eggs?"),
        ("Is it illegal to drive barefoot?", "Is it legal to drive barefoot?"),
        ("Why do people dislike cilantro?", "Why do people like cilantro?"),
    ],
)
def test_a_prefix_antonym_is_rejected_however_close(query: str, candidate: str) -> None:
    # Found in the semantic notebook: the model alone served these at cosine 0.99.
    verifier = default_verifier()
    assert verifier.verify(query, candidate, 0.99) == (False, 0.0, "antonym")
    assert verifier.score(query, candidate, 0.99) == 0.0
