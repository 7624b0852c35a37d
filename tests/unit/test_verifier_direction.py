"""Direction checks: asymmetric relations with their sides swapped are rejected; symmetric
ones and genuine rewordings are not."""

from __future__ import annotations

import pytest

from llmcache.semantic.verifier_direction import direction_reason

SWAPPED = [
    (
        "How do I convert code from Python 2 to Python 3?",
        "How do I convert code from Python 3 to Python 2?",
    ),
    ("Is Python faster than Java?", "Is Java faster than Python?"),
    ("How do I migrate from MySQL to PostgreSQL?", "How do I migrate from PostgreSQL to MySQL?"),
    ("Should I learn Java before Python?", "Should I learn Python before Java?"),
    ("How do I turn Pocket URLs into PDFs?", "How do I turn PDFs into Pocket URLs?"),
    ("Why do cats chase dogs?", "Why do dogs chase cats?"),
    ("Why choose React over Angular?", "Why choose Angular over React?"),
]

SAME = [
    ("Python vs Java: which is better?", "Java vs Python: which is better?"),
    ("What is the difference between TCP and UDP?", "What is the difference between UDP and TCP?"),
    ("Should I learn Java or Python?", "Should I learn Python or Java?"),
    ("Should I learn Java before Python?", "Should I learn Python after Java?"),
    ("How do I move from Delhi to Mumbai?", "How can I relocate from Delhi to Mumbai?"),
    ("How do I learn Python?", "What is the best way to learn Python?"),
    ("Is Python faster than Java?", "Is Python quicker than Java?"),
]


@pytest.mark.parametrize(("query", "candidate"), SWAPPED)
def test_swapped_relation_is_rejected_with_a_reason(query: str, candidate: str) -> None:
    reason = direction_reason(query, candidate)
    assert reason is not None
    assert reason.startswith(("direction_swapped:", "words_swapped"))
    # The check is about the pair, not who asked first.
    assert direction_reason(candidate, query) is not None


@pytest.mark.parametrize(("query", "candidate"), SAME)
def test_same_relation_passes(query: str, candidate: str) -> None:
    assert direction_reason(query, candidate) is None


def test_before_turned_after_with_the_same_sides_is_rejected() -> None:
    reason = direction_reason(
        "What should I eat before a workout?", "What should I eat after a workout?"
    )
    assert reason == "direction_reversed:before/after"
