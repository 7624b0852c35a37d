"""Pair features: each one moves the way its name says when one thing about the pair changes."""

from __future__ import annotations

import pytest

from llmcache.semantic.verifier_features import (
    FEATURE_NAMES,
    MARGIN_CAP,
    is_prefix_antonym,
    order_agreement,
    pair_features,
    parse,
)


def feats(q: str, c: str, sim: float = 0.95, runner: float | None = 0.5) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, pair_features(q, c, sim, runner), strict=True))


def test_vector_matches_names() -> None:
    assert len(pair_features("a b", "a c", 0.9)) == len(FEATURE_NAMES)


def test_identical_texts_look_identical() -> None:
    f = feats("How do I learn Python?", "How do I learn Python?")
    assert f["word_jaccard"] == 1.0
    assert f["char3_jaccard"] == 1.0
    assert f["word_sequence_ratio"] == 1.0
    assert f["order_agreement"] == 1.0
    for name in (
        "numbers_only_query",
        "numbers_only_candidate",
        "negation_differs",
        "entities_only_query",
        "single_substitutions",
        "same_words_reordered",
    ):
        assert f[name] == 0.0, name


def test_margin_is_clipped_and_missing_runner_up_is_a_clear_winner() -> None:
    assert feats("a", "b", 0.9, 0.85)["margin"] == pytest.approx(0.05)
    assert feats("a", "b", 0.9, 0.95)["margin"] == 0.0
    assert feats("a", "b", 0.9, 0.1)["margin"] == MARGIN_CAP
    assert feats("a", "b", 0.9, None)["margin"] == MARGIN_CAP


def test_changed_number_is_seen_on_both_sides() -> None:
    f = feats("Best laptop under 500 dollars in 2016?", "Best laptop under 700 dollars in 2016?")
    assert f["numbers_only_query"] == 1.0
    assert f["numbers_only_candidate"] == 1.0
    assert parse("It costs 1,000").numbers == {"1000"}


def test_changed_name_is_an_entity_difference() -> None:
    f = feats("What is the capital of France?", "What is the capital of Germany?")
    assert f["entities_only_query"] == 1.0
    assert f["entities_only_candidate"] == 1.0
    assert f["single_substitutions"] == 1.0


def test_first_word_capital_is_not_an_entity() -> None:
    assert parse("Python is great").entities == frozenset()
    assert parse("I love Python and iPhone").entities == {"python", "iphone"}


def test_negation_parity() -> None:
    assert feats("Can I eat eggs?", "Can I not eat eggs?")["negation_differs"] == 1.0
    assert feats("Why can't I sleep?", "Why am I not able to sleep?")["negation_differs"] == 0.0


def test_question_word_difference() -> None:
    assert feats("Why is the sky blue?", "What is the sky blue?")["question_word_differs"] == 1.0
    assert feats("Why is the sky blue?", "why is the sky blue")["question_word_differs"] == 0.0


def test_swapped_words_lower_order_agreement_and_flag_reordering() -> None:
    f = feats("Why do cats chase dogs?", "Why do dogs chase cats?")
    assert f["same_words_reordered"] == 1.0
    assert f["order_agreement"] < 1.0
    assert order_agreement(("a", "b", "c"), ("c", "b", "a")) == 0.0
    assert order_agreement(("a", "b", "c"), ("a", "b", "c")) == 1.0


def test_prefix_antonyms() -> None:
    assert is_prefix_antonym("legal", "illegal")
    assert is_prefix_antonym("dislike", "like")
    assert not is_prefix_antonym("in", "inn")
    assert feats("Is it possible to fly?", "Is it impossible to fly?")["prefix_antonym"] == 1.0


@pytest.mark.parametrize(
    ("asked", "cached"),
    [  # each served at 0.95 to 0.99 before: accented words were split at their accents
        (
            "Comment désactiver l'authentification à deux facteurs ?",
            "Comment activer l'authentification à deux facteurs ?",
        ),
        ("¿Cómo desactivo el modo oscuro?", "¿Cómo activo el modo oscuro?"),
        ("Hur avbokar jag mitt bord?", "Hur bokar jag mitt bord?"),
        ("Wie kann ich mein Konto entsperren?", "Wie kann ich mein Konto sperren?"),
    ],
)
def test_opposite_verbs_of_other_latin_languages_are_rejected(asked: str, cached: str) -> None:
    from llmcache.semantic.verifier import default_verifier

    verdict = default_verifier().verify(asked, cached, 0.985, None)
    assert (verdict.accepted, verdict.reason) == (False, "antonym")


def test_symmetric_marker() -> None:
    assert feats("Python vs Java?", "Java vs Python?")["symmetric_marker"] == 1.0
    assert (
        feats("Is Python faster than Java?", "Is Java faster than Python?")["symmetric_marker"]
        == 0.0
    )


def test_empty_texts_do_not_crash() -> None:
    assert len(pair_features("", "", 1.0)) == len(FEATURE_NAMES)
    assert len(pair_features("???", "!!", 0.8, 0.7)) == len(FEATURE_NAMES)
